"""Sources: formats, column mapping, bad rows quarantined, keys deduped, snapshots, re-runs."""

import gzip
import json
import logging
import re
from datetime import date

import dagster as dg
import pytest
import yaml

from checks.sources import SourcesError, load_sources
from resources.warehouse import Warehouse
from telemetry_assets.defs.sources.assets import source_asset
from telemetry_assets.settings import CONFIG_DIR
from telemetry_assets.sources.load import load_source

DAY = date(2026, 9, 14)
SPECS = load_sources(CONFIG_DIR / "sources.yaml")
TICKETS_HEADER = "ticket_id,user_id,conversation_id,created_at,channel,status,category"


def csv_bytes(*lines):
    return ("\n".join(lines) + "\n").encode()


def jsonl_bytes(*records):
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def rows(con, table, day=DAY):
    return con.execute(f"SELECT * EXCLUDE (source_key, line_number) FROM {table} WHERE dt = ? ORDER BY ALL", [day]).fetchall()


def tickets(con):
    return con.execute("SELECT ticket_id, category FROM sources.support_tickets ORDER BY 1").fetchall()


def quarantined(con, origin):
    return con.execute(
        "SELECT line_number, list_transform(violations, lambda v: v.type) FROM audit.quarantine WHERE origin = ? ORDER BY ALL",
        [origin]).fetchall()


def test_csv_gzip_and_jsonl_land_typed(lake, warehouse):
    lake.put("sources/support_tickets/dt=2026-09-14/a.csv.gz", gzip.compress(csv_bytes(
        TICKETS_HEADER, "T-1,usr_1,conv_1,2026-09-14T10:00:00Z,email,open,billing", "T-2,usr_2,,2026-09-14T11:00:00Z,chat,solved,bug")))
    lake.put("sources/conversions/dt=2026-09-14/c.jsonl", jsonl_bytes(
        {"conversion_id": "cv1", "user_id": "usr_1", "conversation_id": None, "occurred_at": "2026-09-14T12:00:00Z",
         "type": "purchase", "revenue": 49.0}))
    assert load_source(lake, warehouse, SPECS["support_tickets"], DAY).valid == 2
    assert load_source(lake, warehouse, SPECS["conversions"], DAY).valid == 1
    tickets = rows(warehouse, "sources.support_tickets")
    assert [(t[1], t[3], str(t[4])) for t in tickets] == [("T-1", "conv_1", "2026-09-14 10:00:00"), ("T-2", None, "2026-09-14 11:00:00")]
    assert rows(warehouse, "sources.conversions")[0][-1] == 49.0


def test_bad_rows_are_quarantined_with_their_type_and_counted(lake, warehouse):
    lake.put("sources/conversions/dt=2026-09-14/c.jsonl", jsonl_bytes(
        {"conversion_id": "ok", "user_id": "u", "occurred_at": "2026-09-14T12:00:00Z", "type": "purchase", "revenue": 9},
        {"conversion_id": "no-user", "occurred_at": "2026-09-14T12:00:00Z", "type": "purchase"},
        {"conversion_id": "bad-time", "user_id": "u", "occurred_at": "soon", "type": "purchase"},
        {"conversion_id": "refund", "user_id": "u", "occurred_at": "2026-09-14T12:00:00Z", "type": "purchase", "revenue": -5},
        {"conversion_id": "text-revenue", "user_id": "u", "occurred_at": "2026-09-14T12:00:00Z", "type": "x", "revenue": "lots"},
        '{"conversion_id": "cut',
        "[1, 2]",
        "",
    ))
    report = load_source(lake, warehouse, SPECS["conversions"], DAY)
    assert (report.rows_read, report.valid, report.quarantined, report.duplicates) == (7, 1, 6, 0)
    assert quarantined(warehouse, "sources.conversions") == [
        (2, ["Required-Missing"]), (3, ["Datatype-Mismatch"]), (4, ["Advance-Rules-Violation"]),
        (5, ["Datatype-Mismatch"]), (6, ["Malformed-Line"]), (7, ["Malformed-Line"])]


@pytest.mark.parametrize("revenue", ["inf", "-Infinity", "NaN", "1e400"])
def test_a_source_number_that_is_not_finite_is_a_datatype_mismatch(lake, warehouse, revenue):
    lake.put("sources/conversions/dt=2026-09-14/c.csv", csv_bytes(
        "conversion_id,user_id,occurred_at,type,revenue", f"cv1,u,2026-09-14T12:00:00Z,purchase,{revenue}"))
    report = load_source(lake, warehouse, SPECS["conversions"], DAY)
    assert (report.valid, report.quarantined) == (0, 1)
    assert quarantined(warehouse, "sources.conversions") == [(2, ["Datatype-Mismatch"])]


def test_a_csv_row_with_the_wrong_number_of_fields_is_malformed(lake, warehouse):
    lake.put("sources/support_tickets/dt=2026-09-14/a.csv", csv_bytes(
        TICKETS_HEADER, "T-1,usr_1,,2026-09-14T10:00:00Z,email,open,billing", "T-2,usr_2,2026-09-14T11:00:00Z"))
    report = load_source(lake, warehouse, SPECS["support_tickets"], DAY)
    assert (report.valid, report.quarantined) == (1, 1)
    assert quarantined(warehouse, "sources.support_tickets") == [(3, ["Malformed-Line"])]


def test_a_csv_header_without_a_required_column_quarantines_every_row_of_its_file_and_says_why(lake, warehouse):
    lake.put("sources/support_tickets/dt=2026-09-14/a.csv", csv_bytes(
        "Ticket ID,user_id,created_at", "T-1,usr_1,2026-09-14T10:00:00Z", "", "T-2,usr_2,2026-09-14T11:00:00Z"))
    lake.put("sources/support_tickets/dt=2026-09-14/b.csv", csv_bytes(
        TICKETS_HEADER, "T-3,usr_3,,2026-09-14T12:00:00Z,chat,open,technical"))
    report = load_source(lake, warehouse, SPECS["support_tickets"], DAY)
    assert (report.rows_read, report.valid, report.quarantined) == (3, 1, 2)
    assert tickets(warehouse) == [("T-3", "technical")]
    assert warehouse.execute(
        "SELECT source_key, line_number, violations[1].type, violations[1].message FROM audit.quarantine ORDER BY 2"
    ).fetchall() == [
        ("sources/support_tickets/dt=2026-09-14/a.csv", line, "Required-Missing",
         "the file's header lacks a required column (sources.yaml maps support_tickets.ticket_id from ticket_id); "
         "the header is: Ticket ID, user_id, created_at")
        for line in (2, 4)]


def test_a_csv_header_naming_a_mapped_column_twice_quarantines_every_row_of_its_file(lake, warehouse):
    lake.put("sources/support_tickets/dt=2026-09-14/a.csv", csv_bytes(
        TICKETS_HEADER + ",user_id", "T-1,usr_1,,2026-09-14T10:00:00Z,email,open,billing,usr_2"))
    report = load_source(lake, warehouse, SPECS["support_tickets"], DAY)
    assert (report.rows_read, report.valid, report.quarantined) == (1, 0, 1)
    assert warehouse.execute("SELECT violations[1].type, violations[1].message FROM audit.quarantine").fetchall() == [
        ("Malformed-Line", "the file's header names user_id more than once")]


def test_an_optional_column_a_csv_header_lacks_lands_as_null_and_is_reported(lake, warehouse):
    lake.put("sources/conversions/dt=2026-09-14/a.csv", csv_bytes(
        "conversion_id,user_id,occurred_at,type,amount", "cv1,u,2026-09-14T12:00:00Z,purchase,49"))
    lake.put("sources/conversions/dt=2026-09-14/b.jsonl", jsonl_bytes(
        {"conversion_id": "cv2", "user_id": "u", "occurred_at": "2026-09-14T13:00:00Z", "type": "purchase"}))
    report = load_source(lake, warehouse, SPECS["conversions"], DAY)
    assert (report.valid, report.quarantined) == (2, 0)
    assert report.columns_not_in_header == (
        "sources/conversions/dt=2026-09-14/a.csv: conversation_id", "sources/conversions/dt=2026-09-14/a.csv: revenue")
    assert warehouse.execute("SELECT conversion_id, revenue FROM sources.conversions ORDER BY 1").fetchall() == [
        ("cv1", None), ("cv2", None)]



def test_the_source_asset_warns_of_the_columns_a_csv_header_lacked(tmp_path, lake):
    lake.put("sources/conversions/dt=2026-09-14/a.csv", csv_bytes(
        "conversion_id,user_id,conversation_id,occurred_at,type,amount", "cv1,u,,2026-09-14T12:00:00Z,purchase,49"))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([source_asset(SPECS["conversions"])], partition_key=DAY.isoformat(), instance=instance,
                            resources={"lake": lake, "warehouse": Warehouse(database=str(tmp_path / "w.duckdb"))})
    [materialization] = result.asset_materializations_for_node("sources__conversions")
    assert materialization.metadata["valid"].value == 1
    assert materialization.metadata["columns_not_in_header"].value == "sources/conversions/dt=2026-09-14/a.csv: revenue"
    warnings = [e.user_message for e in instance.all_logs(result.run_id) if e.level == logging.WARNING]
    assert any("sources.conversions 2026-09-14: optional columns read as NULL" in w and "a.csv: revenue" in w
               for w in warnings), warnings

def test_a_quoted_csv_field_may_hold_line_breaks_and_its_row_is_numbered_by_its_first_line(lake, warehouse):
    lake.put("sources/support_tickets/dt=2026-09-14/a.csv", csv_bytes(
        TICKETS_HEADER, 'T-1,usr_1,,2026-09-14T10:00:00Z,email,open,"billing\r\nsee ""invoice""\nattached"',
        "T-2,usr_2,,2026-09-14T11:00:00Z,chat,open,technical"))
    report = load_source(lake, warehouse, SPECS["support_tickets"], DAY)
    assert (report.rows_read, report.valid, report.quarantined) == (2, 2, 0)
    assert tickets(warehouse) == [("T-1", 'billing\nsee "invoice"\nattached'), ("T-2", "technical")]


def test_a_csv_quote_closed_mid_field_or_left_open_quarantines_its_row_and_says_which_lines(lake, warehouse):
    lake.put("sources/support_tickets/dt=2026-09-14/a.csv", csv_bytes(
        TICKETS_HEADER,
        'T-1,usr_1,,2026-09-14T10:00:00Z,email,open,"27" monitor"',  # a quote closed mid-field
        "T-2,usr_2,,2026-09-14T11:00:00Z,chat,open,technical",
        'T-3,usr_3,,2026-09-14T12:00:00Z,chat,open,"billing',  # open to the end: T-4 is inside it
        "T-4,usr_4,,2026-09-14T13:00:00Z,chat,open,technical"))
    report = load_source(lake, warehouse, SPECS["support_tickets"], DAY)
    assert (report.rows_read, report.valid, report.quarantined) == (3, 1, 2)
    assert tickets(warehouse) == [("T-2", "technical")]
    assert warehouse.execute("SELECT line_number, violations[1].message FROM audit.quarantine ORDER BY 1").fetchall() == [
        (2, "not valid CSV on its line: ',' expected after '\"'"),
        (4, "not valid CSV on its lines 4 to 5: unexpected end of data")]


def test_a_csv_field_longer_than_the_csv_modules_default_limit_lands(lake, warehouse):
    lake.put("sources/support_tickets/dt=2026-09-14/a.csv", csv_bytes(
        TICKETS_HEADER, "T-1,usr_1,,2026-09-14T10:00:00Z,email,open," + "long description " * 10_000,
        "T-2,usr_2,,2026-09-14T11:00:00Z,chat,open,technical"))
    report = load_source(lake, warehouse, SPECS["support_tickets"], DAY)
    assert (report.rows_read, report.valid) == (2, 2)
    assert [len(category) for _, category in tickets(warehouse)] == [170_000, 9]


@pytest.mark.parametrize("name, header", [("a.csv", [TICKETS_HEADER]), ("a.jsonl", [])])
def test_an_unreadable_source_line_is_quarantined_and_the_rest_lands(lake, warehouse, name, header):
    good = ("T-1,usr_1,,2026-09-14T10:00:00Z,email,open,billing" if header else
            json.dumps({"ticket_id": "T-1", "user_id": "usr_1", "created_at": "2026-09-14T10:00:00Z"}))
    lake.put(f"sources/support_tickets/dt=2026-09-14/{name}",
             csv_bytes(*header, good) + b"T-2,usr_\xff,broken\n" + csv_bytes(good.replace("T-1", "T-3")))
    report = load_source(lake, warehouse, SPECS["support_tickets"], DAY)
    assert (report.rows_read, report.valid, report.quarantined) == (3, 2, 1)
    assert quarantined(warehouse, "sources.support_tickets") == [(len(header) + 2, ["Malformed-Line"])]


def test_a_key_exported_twice_keeps_its_last_row(lake, warehouse):
    lake.put("sources/support_tickets/dt=2026-09-14/a.csv", csv_bytes(
        TICKETS_HEADER, "T-1,usr_1,,2026-09-14T10:00:00Z,email,open,billing"))
    lake.put("sources/support_tickets/dt=2026-09-14/b.csv", csv_bytes(
        TICKETS_HEADER, "T-1,usr_1,,2026-09-14T10:00:00Z,email,solved,billing"))
    report = load_source(lake, warehouse, SPECS["support_tickets"], DAY)
    assert (report.valid, report.duplicates) == (1, 1)
    assert rows(warehouse, "sources.support_tickets")[0][6] == "solved"


def test_rows_read_and_checked_a_few_at_a_time_land_what_one_batch_lands(tmp_path, lake, monkeypatch):
    """A bad value in a later batch is still quarantined, a key repeated across batches still keeps its last row."""
    import duckdb

    from telemetry_assets.sources import load

    good = {"user_id": "u", "occurred_at": "2026-09-14T12:00:00Z", "type": "purchase", "revenue": 9}
    lake.put("sources/conversions/dt=2026-09-14/a.jsonl", jsonl_bytes(
        {**good, "conversion_id": "cv1"}, {**good, "conversion_id": "cv2"}, {**good, "conversion_id": "cv3"},
        {**good, "conversion_id": "late-bad", "revenue": -5}, '{"conversion_id": "cut'))
    lake.put("sources/conversions/dt=2026-09-14/b.jsonl", jsonl_bytes({**good, "conversion_id": "cv1", "revenue": 12}))

    one_batch = load.BATCH_ROWS

    def landed(batch_rows):
        monkeypatch.setattr(load, "BATCH_ROWS", batch_rows)
        with duckdb.connect(str(tmp_path / f"batches-{batch_rows}.duckdb")) as con:
            report = load_source(lake, con, SPECS["conversions"], DAY)
            return report, rows(con, "sources.conversions"), quarantined(con, "sources.conversions")

    in_twos = landed(2)
    assert in_twos == landed(one_batch)
    report, conversions, quarantine = in_twos
    assert (report.rows_read, report.valid, report.quarantined, report.duplicates) == (6, 3, 2, 1)
    assert [(c[1], c[-1]) for c in conversions] == [("cv1", 12.0), ("cv2", 9.0), ("cv3", 9.0)]
    assert quarantine == [(4, ["Advance-Rules-Violation"]), (5, ["Malformed-Line"])]


def test_a_day_without_files_or_with_only_unreadable_lines_lands_nothing_and_says_so(lake, warehouse):
    report = load_source(lake, warehouse, SPECS["conversions"], DAY)
    assert (report.objects, report.rows_read, report.valid, report.quarantined) == (0, 0, 0, 0)
    lake.put("sources/conversions/dt=2026-09-14/c.jsonl", jsonl_bytes('{"conversion_id": "cut'))
    report = load_source(lake, warehouse, SPECS["conversions"], DAY)
    assert (report.objects, report.rows_read, report.valid, report.quarantined) == (1, 1, 0, 1)
    assert rows(warehouse, "sources.conversions") == []
    assert quarantined(warehouse, "sources.conversions") == [(1, ["Malformed-Line"])]


def test_a_helpdesk_export_is_used_by_mapping_columns_in_config(tmp_path, lake, warehouse):
    raw = yaml.safe_load((CONFIG_DIR / "sources.yaml").read_text())
    mapping = {"ticket_id": "Id", "user_id": "Requester external id", "created_at": "Created at", "channel": "Via",
               "status": "Status", "category": "Group", "conversation_id": "AI conversation"}
    for column, header in mapping.items():
        raw["sources"]["support_tickets"]["columns"][column]["from"] = header
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(raw))
    spec = load_sources(tmp_path / "sources.yaml")["support_tickets"]
    lake.put("sources/support_tickets/dt=2026-09-14/zendesk.csv", csv_bytes(
        "Id,Subject,Requester external id,Created at,Via,Status,Group,AI conversation",
        '42,"Refund, please",usr_9,2026-09-14 09:30:00+00:00,web,open,Billing,conv_7'))
    load_source(lake, warehouse, spec, DAY)
    assert warehouse.execute(
        """SELECT ticket_id, user_id, conversation_id, created_at::VARCHAR, channel, status, category
           FROM sources.support_tickets""").fetchall() == [
        ("42", "usr_9", "conv_7", "2026-09-14 09:30:00", "web", "open", "Billing")]


def test_the_ledger_names_every_file_a_load_read_with_its_rows_and_a_rerun_replaces_it(lake, warehouse):
    lake.put("sources/support_tickets/dt=2026-09-14/a.csv", csv_bytes(
        TICKETS_HEADER, "T-1,usr_1,,2026-09-14T10:00:00Z,email,open,billing", "T-2,usr_2,2026-09-14T11:00:00Z"))
    lake.put("sources/support_tickets/dt=2026-09-14/header-only.csv", csv_bytes(TICKETS_HEADER))
    lake.put("sources/support_tickets/dt=2026-09-15/other-day.csv", csv_bytes(TICKETS_HEADER))
    ledger = "SELECT dt::VARCHAR, source, source_key, rows_read FROM audit.source_files ORDER BY ALL"
    for _ in range(2):
        load_source(lake, warehouse, SPECS["support_tickets"], DAY)
        assert warehouse.execute(ledger).fetchall() == [
            ("2026-09-14", "sources.support_tickets", "sources/support_tickets/dt=2026-09-14/a.csv", 2),
            ("2026-09-14", "sources.support_tickets", "sources/support_tickets/dt=2026-09-14/header-only.csv", 0)]

def test_profiles_are_a_snapshot_where_the_latest_file_wins(lake, warehouse):
    header = "user_id,plan,country,signup_at"
    lake.put("sources/user_profiles/dt=2026-09-01/p.csv", csv_bytes(header, "usr_1,free,GB,2026-01-01", "usr_2,pro,US,2026-02-01"))
    lake.put("sources/user_profiles/dt=2026-09-10/p.csv", csv_bytes(header, "usr_1,pro,GB,2026-01-01"))
    lake.put("sources/user_profiles/dt=2026-09-20/p.csv", csv_bytes(header, "usr_1,enterprise,GB,2026-01-01"))
    report = load_source(lake, warehouse, SPECS["user_profiles"], DAY)
    assert (report.objects, report.valid, report.duplicates) == (2, 2, 1)
    assert [(r[1], r[2]) for r in rows(warehouse, "sources.user_profiles")] == [("usr_1", "pro"), ("usr_2", "pro")]


def test_rerunning_a_source_day_gives_identical_rows(lake, warehouse):
    lake.put("sources/conversions/dt=2026-09-14/c.jsonl", jsonl_bytes(
        {"conversion_id": "a", "user_id": "u", "occurred_at": "2026-09-14T12:00:00Z", "type": "purchase"}, "{bad"))
    first = load_source(lake, warehouse, SPECS["conversions"], DAY)
    snapshot = rows(warehouse, "sources.conversions"), quarantined(warehouse, "sources.conversions")
    assert load_source(lake, warehouse, SPECS["conversions"], DAY) == first
    assert (rows(warehouse, "sources.conversions"), quarantined(warehouse, "sources.conversions")) == snapshot


@pytest.mark.parametrize("change, named", [
    (lambda s: s["conversions"].update(key="order_id"), "sources.conversions.key: 'order_id' is not one of its columns"),
    (lambda s: s.update(conversions="yes"), "sources.conversions: must be a mapping"),
    (lambda s: s["conversions"].update(dated="false"), "sources.conversions.dated: must be true or false, not 'false'"),
    (lambda s: s["conversions"]["columns"].update(user_id="string"), "sources.conversions.columns.user_id: must be a mapping"),
    (lambda s: s["conversions"]["columns"]["user_id"].update(type="text"), "sources.conversions.columns.user_id.type: 'text'"),
    (lambda s: s["conversions"]["columns"]["user_id"].update(required="yes"),
     "sources.conversions.columns.user_id.required: must be true or false, not 'yes'"),
    (lambda s: s["conversions"]["columns"]["revenue"].update(minimum="0"),
     "sources.conversions.columns.revenue.minimum: must be a number, not '0'"),
    (lambda s: s["conversions"]["columns"]["type"].update(minimum=0),
     "sources.conversions.columns.type.minimum: only an integer or number field has bounds"),
    (lambda s: s["conversions"]["columns"]["type"].update(enum=["purchase", 1]),
     "sources.conversions.columns.type.enum: must be a non-empty list of strings"),
])
def test_a_bad_sources_file_names_the_key(tmp_path, change, named):
    raw = yaml.safe_load((CONFIG_DIR / "sources.yaml").read_text())
    change(raw["sources"])
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SourcesError, match=re.escape(named)):
        load_sources(tmp_path / "s.yaml")
