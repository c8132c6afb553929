"""Erasure of one person: their rows leave every table, the secure store, the exports and the
database files; everyone else's stay as they were; the checks and metrics still reconcile; and
the person never comes back when a day or a source is loaded again."""

import gzip
import json
import os
import re
import stat
from collections import Counter
from datetime import date, timedelta

import dagster as dg
import duckdb
import pytest

from checks import asset_checks
from checks.sources import load_sources
from resources.object_store import LocalObjectStore
from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.analytics.joins import build_joins
from telemetry_assets.cli import main
from telemetry_assets.govern import erasure
from telemetry_assets.govern.erasure import (
    ERASURE_TABLE,
    Request,
    RequestsError,
    erase_people,
    id_digest,
    load_erased_ids,
    load_requests,
)
from telemetry_assets.generate.traffic import GeneratorConfig, generate
from telemetry_assets.govern.safety import compute_safety
from telemetry_assets.ingest.partition import ingest_partition
from telemetry_assets.ingest.reconcile import landed_row_counts
from telemetry_assets.ingest.tables import IDENTITY_LINKS, governed_table
from telemetry_assets.sources.load import load_source
from tests.builders import ai_call, gz, page_call, segment_consent
from tests.pipeline_runs import telemetry

DAY = date(2026, 9, 14)
GONE = ("usr_gone", "anon_gone_1", "anon_gone_2")  # named; seen with usr_gone on an event; linked by an identify call
GONE_TEXT = "quokka-gone-4411"  # in the person's free text: never PII, so the warehouse keeps it redacted or not
STAY_TEXT = "heron-stay-8023"
CONVERSATIONS = ("conv_gone_a", "conv_gone_b", "conv_gone_c")  # theirs, found by their ids
PERSON_LINES = 9  # every raw line below that carries one of GONE or of their conversations


def track(event, user, anonymous, conversation, consent=None, **properties):
    call = ai_call(event, consent=consent, conversation_id=conversation, **properties)
    call["anonymousId"] = anonymous
    if user is None:
        del call["userId"]
    else:
        call["userId"] = user
    return call


def identify(user, anonymous):
    return {"type": "identify", "messageId": f"identify-{user}-{anonymous}", "userId": user, "anonymousId": anonymous,
            "receivedAt": "2026-09-14T07:59:00.000Z", "context": segment_consent(), "traits": {}}


def raw_day():
    prompt, response, action = "ai_user_prompt_created", "ai_llm_response_received", "ai_user_action"
    no_analytics = segment_consent(analytics=False)  # still reaches ai_observability and the archive
    gone_page = {**page_call(), "userId": "usr_gone"}
    return gz(
        track(prompt, None, "anon_gone_1", "conv_gone_a", prompt_text=f"{GONE_TEXT} before sign-in"),
        track(response, "usr_gone", "anon_gone_1", "conv_gone_a", response_text=f"{GONE_TEXT} answer"),
        track(action, "usr_gone", "anon_gone_1", "conv_gone_a", feedback=f"{GONE_TEXT} thanks"),
        identify("usr_gone", "anon_gone_2"),
        track(prompt, None, "anon_gone_2", "conv_gone_b", prompt_text=f"{GONE_TEXT} on another device"),
        # the answer, sent by the backend under its own anonymous id: theirs only by the conversation
        track(response, None, "anon_backend", "conv_gone_b", response_text=f"{GONE_TEXT} answered"),
        track(prompt, "usr_gone", "anon_gone_1", "conv_gone_c", consent=no_analytics, prompt_text=f"{GONE_TEXT} private"),
        # a conversation the warehouse never gets: found in the exports, with its answer under another backend id
        track(response, None, "anon_server", "conv_gone_c", consent=no_analytics, response_text=f"{GONE_TEXT} private answer"),
        gone_page,
        track(prompt, "usr_stay", "anon_stay", "conv_stay", prompt_text=f"{STAY_TEXT} hello"),
        track(response, "usr_stay", "anon_stay", "conv_stay", response_text=f"{STAY_TEXT} answer"),
        track(action, "usr_stay", "anon_stay", "conv_stay", feedback=f"{STAY_TEXT} thanks"),
        identify("usr_stay", "anon_stay_2"),
    )


SOURCE_FILES = {
    "sources/support_tickets/dt=2026-09-14/tickets.csv": "ticket_id,user_id,conversation_id,created_at,channel,status,category\n"
    "t1,usr_gone,conv_gone_a,2026-09-14T09:00:00Z,email,open,billing\nt2,usr_stay,conv_stay,2026-09-14T09:00:00Z,chat,open,bug\n"
    "t3,usr_agent,conv_gone_b,2026-09-14T09:30:00Z,chat,open,bug\n"  # an agent's, on their conversation
    "t4,usr_agent,conv_gone_c,2026-09-14T09:40:00Z,chat,open,bug\n",  # and on the one only the exports show
    "sources/conversions/dt=2026-09-14/conversions.csv": "conversion_id,user_id,conversation_id,occurred_at,type,revenue\n"
    "c1,usr_gone,,2026-09-14T10:00:00Z,upgrade,20\nc2,usr_stay,,2026-09-14T10:00:00Z,upgrade,20\n",
    "sources/user_profiles/profiles.csv": "user_id,plan,country,signup_at\n"
    "usr_gone,pro,DE,2026-01-01T00:00:00Z\nusr_stay,free,FR,2026-02-01T00:00:00Z\n",
}


@pytest.fixture
def home(tmp_path, lake, plan, policy, secure_store):
    """The day and its sources put in the lake, and a function that lands them (ingest, sources, joins)."""
    lake.put(f"raw/ai_events/dt={DAY}/part-0.jsonl.gz", raw_day())
    for key, text in SOURCE_FILES.items():
        lake.put(key, text.encode())
    warehouse = Warehouse(database=str(tmp_path / "warehouse.duckdb"))

    def land():
        with warehouse.get_connection() as con:
            report = ingest_partition(lake, con, DAY, plan, policy, secure_store, today=DAY + timedelta(days=1))
            assert all(f.unaccounted == 0 for f in report.files)
            sources = {spec.table: load_source(lake, con, spec, DAY) for spec in load_sources(settings.sources_path()).values()}
            build_joins(con, DAY, policy)
        return report, sources

    return warehouse, land


def erase(lake, warehouse, secure_store, user_ids, anonymous_ids):
    """One request, as `telemetry erase --user-id ... --anonymous-id ...` makes it."""
    (report,) = erase_people(lake, warehouse, secure_store, [Request(tuple(user_ids), tuple(anonymous_ids))])
    return report


def everything(warehouse, secure_store, lake) -> dict[str, list[str]]:
    """Every row of every place that can hold a person, as text: the tables of the erased schemas,
    the secure store, and each destination's exports."""
    places = {}
    with duckdb.connect(warehouse.database, read_only=True) as con:
        tables = [f"{s}.{t}" for s, t in con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
                  if s in erasure.ERASED_SCHEMAS]
        for table in tables:
            places[table] = sorted(str(row) for row in con.execute(f"SELECT * FROM {table}").fetchall())
    with secure_store.get_connection() as con:
        places["secure_store.raw_text"] = sorted(str(row) for row in con.execute("SELECT * FROM raw_text").fetchall())
    for key in lake.list_keys("exports/"):
        place = "exports/" + key.split("/")[1]
        with lake.open(key) as stream:
            places.setdefault(place, []).extend(gzip.decompress(stream.read()).decode().splitlines())
    return places


def mentioning(places: dict[str, list[str]], ids) -> dict[str, int]:
    """Rows per place that name one of `ids` (each quoted, as a row's text or JSON writes it)."""
    found = {place: sum(any(f"'{i}'" in row or f'"{i}"' in row for i in ids) for row in rows) for place, rows in places.items()}
    return {place: n for place, n in found.items() if n}


def rows_of_the_person(places: dict[str, list[str]]) -> dict[str, int]:
    """Rows per place that are the erased person's: those naming one of their ids or conversations,
    and in the secure store the backends' two answers, archived under no id of theirs (found by their
    message ids)."""
    found = mentioning(places, GONE + CONVERSATIONS)
    found["secure_store.raw_text"] += 2
    return found


def test_erasure_takes_one_person_out_of_every_place_and_leaves_everyone_else(home, secure_store, lake, policy, plan):
    warehouse, land = home
    land()
    before = everything(warehouse, secure_store, lake)
    theirs = rows_of_the_person(before)
    assert {"governed.ai_user_prompt_created", "governed.ai_llm_response_received", "governed.ai_user_action",
            IDENTITY_LINKS, "analytics.ai_turns", "analytics.ai_conversations", "sources.support_tickets",
            "sources.conversions", "sources.user_profiles", "secure_store.raw_text", "exports/ai_observability",
            "exports/product_analytics"} <= set(theirs)
    for path in (warehouse.database, secure_store.database):  # so the same test below can fail
        assert GONE_TEXT.encode() in open(path, "rb").read()

    report = erase(lake, warehouse, secure_store, ["usr_gone"], [])

    after = everything(warehouse, secure_store, lake)
    assert mentioning(after, GONE + CONVERSATIONS) == {}
    assert report.rows_erased == theirs  # every row of theirs, and nothing else, counted where it was
    for place, rows in before.items():
        assert after.get(place, []) == [row for row in rows if not any(i in row for i in (*GONE, "conv_gone", GONE_TEXT))], place
    for path in (warehouse.database, secure_store.database):
        assert GONE_TEXT.encode() not in open(path, "rb").read()
        assert STAY_TEXT.encode() in open(path, "rb").read()
    assert stat.S_IMODE(os.stat(secure_store.database).st_mode) == 0o600

    with duckdb.connect(warehouse.database) as con:
        (named, digests, conversations, completed, rows, files, marked), = con.execute(
            f"SELECT named_sha256s, id_sha256s, conversation_sha256s, completed_at IS NOT NULL, rows_erased, export_files_rewritten, "
            f"log_rows_marked FROM {ERASURE_TABLE} WHERE request_id = ?", [report.request_id]).fetchall()
        assert named == [id_digest("usr_gone")] and digests == sorted(map(id_digest, GONE)) and "usr_gone" not in str(digests)
        # conv_gone_c never reached the warehouse (no analytics consent): it was found in the exports
        assert conversations == sorted(map(id_digest, CONVERSATIONS)) and report.conversations_suppressed == 3
        assert completed and rows == report.rows_erased and files == report.export_files_rewritten > 0
        # the seven AI events of theirs are stamped in the log; the three of the other person are not
        assert marked == report.log_rows_marked == 7
        assert con.execute("SELECT count(*) FILTER (erased_at IS NULL), count(*) FROM audit.governance_log").fetchone() == (3, 10)
        # the ledgers still reconcile with what is left
        landed = landed_row_counts(con, DAY)
        events = [governed_table(name) for name in plan.events]
        assert sum(landed[table] for table in events) == landed["delivered_to_warehouse"] == 3
        links, erased_links = con.execute("SELECT sum(identity_links), sum(identity_links_erased) FROM audit.ingest_files").fetchone()
        assert (links, erased_links, landed[IDENTITY_LINKS]) == (2, 1, 1)
        with secure_store.get_connection() as secure_con:
            safety = compute_safety(con, lake, secure_con, DAY, policy, events)
        assert safety["consent_enforcement_rate"] == 1.0 and safety["audit_completeness"] == 1.0
    assert report.days == [DAY]


def test_a_day_and_its_sources_loaded_again_leave_the_erased_person_out(home, secure_store, lake):
    warehouse, land = home
    land()
    erase(lake, warehouse, secure_store, ["usr_gone"], [])

    report, sources = land()

    assert mentioning(everything(warehouse, secure_store, lake), GONE + CONVERSATIONS) == {}
    assert report.total("erased_events") == PERSON_LINES and report.total("valid_events") == 3
    assert report.total("non_ai_events") == 1  # the other person's identify call; theirs and their page view are erased
    assert {table: s.erased for table, s in sources.items()} == {
        "sources.support_tickets": 3, "sources.conversions": 1, "sources.user_profiles": 1}
    with duckdb.connect(warehouse.database, read_only=True) as con:
        # the new landing's ledgers start from nothing erased: ingest dropped the person itself
        assert con.execute("SELECT sum(identity_links), coalesce(sum(identity_links_erased), 0), sum(erased_events) "
                           "FROM audit.ingest_files").fetchone() == (1, 0, PERSON_LINES)
        assert con.execute("SELECT count(*) FROM audit.governance_log WHERE erased_at IS NOT NULL").fetchone() == (0,)


@pytest.fixture
def export_reads(monkeypatch) -> Counter:
    """How many times each export file is opened from now on."""
    reads, reading = Counter(), LocalObjectStore.open

    def open_counted(store, key):
        if key.startswith("exports/"):
            reads[key] += 1
        return reading(store, key)

    monkeypatch.setattr(LocalObjectStore, "open", open_counted)
    return reads


def test_several_people_in_one_run_read_the_exports_together_and_each_request_counts_its_own(
        home, secure_store, lake, export_reads):
    warehouse, land = home
    land()
    before = everything(warehouse, secure_store, lake)
    export_reads.clear()

    gone, stays = erase_people(lake, warehouse, secure_store, [Request(("usr_gone",)), Request(("usr_stay",))])

    # read once for both, and once more for the conversation found there (conv_gone_c)
    assert export_reads and set(export_reads.values()) == {2}
    assert gone.rows_erased == rows_of_the_person(before)
    assert stays.rows_erased == mentioning(before, ("usr_stay", "anon_stay", "anon_stay_2", "conv_stay"))
    assert mentioning(everything(warehouse, secure_store, lake), GONE + ("usr_stay", "anon_stay", "anon_stay_2")) == {}
    with duckdb.connect(warehouse.database, read_only=True) as con:
        assert con.execute(f"SELECT count(*), count(completed_at) FROM {ERASURE_TABLE}").fetchone() == (2, 2)


def test_a_requests_file_gives_one_request_a_line(tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_text('{"user_id": "u1"}\n\n{"user_id": ["u2"], "anonymous_id": ["a2", "a3"]}\n{"anonymous_id": "a4"}\n')
    assert load_requests(path) == [Request(("u1",)), Request(("u2",), ("a2", "a3")), Request((), ("a4",))]
    path.write_text("\n  \n")
    with pytest.raises(RequestsError, match="names nobody"):
        load_requests(path)


@pytest.mark.parametrize("line, message", [
    ("not json", "line 2: not JSON"),
    ('["u1"]', "line 2: expected an object with user_id, anonymous_id or both"),
    ("{}", "line 2: expected an object with user_id, anonymous_id or both"),
    ('{"email": "a@b.c"}', "line 2: expected an object with user_id, anonymous_id or both"),
    ('{"user_id": ""}', "line 2: user_id must be an id or a list of ids, each a non-empty string"),
    ('{"anonymous_id": []}', "line 2: anonymous_id must be an id or a list of ids, each a non-empty string"),
    ('{"user_id": 42}', "line 2: user_id must be an id or a list of ids, each a non-empty string"),
])
def test_a_requests_file_with_a_bad_line_is_refused_whole_naming_the_line(line, message, tmp_path, capsys, monkeypatch):
    path = tmp_path / "requests.jsonl"
    path.write_text('{"user_id": "u1"}\n' + line + "\n")
    with pytest.raises(RequestsError, match=re.escape(f"{path} {message}")):
        load_requests(path)
    monkeypatch.setenv("TELEMETRY_HOME", str(tmp_path / "home"))
    assert main(["erase", "--requests", str(path)]) == 2
    assert f"telemetry erase: {path} {message}" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_an_anonymous_id_alone_erases_only_what_was_sent_under_it(home, secure_store, lake, export_reads):
    warehouse, land = home
    land()
    before = everything(warehouse, secure_store, lake)
    export_reads.clear()

    report = erase(lake, warehouse, secure_store, [], ["anon_gone_2"])

    assert export_reads and set(export_reads.values()) == {1}  # no conversation found only in the exports

    after = everything(warehouse, secure_store, lake)
    assert mentioning(after, ["anon_gone_2", "conv_gone_b"]) == {}
    # the sign-in that linked it to usr_gone went, and the conversation held under it with the backend's
    # answer in it (which the secure store keeps under the backend's id only), and nothing else of usr_gone
    for place, rows in before.items():
        assert after.get(place, []) == [row for row in rows if not any(i in row for i in ("anon_gone_2", "conv_gone_b",
                                                                                          "anon_backend"))], place
    assert report.ids_suppressed == 1 and report.conversations_suppressed == 1
    assert report.rows_erased[IDENTITY_LINKS] == 1 and report.rows_erased["governed.ai_user_prompt_created"] == 1


def test_an_erasure_that_fails_part_way_keeps_the_person_out_and_finishes_when_run_again(
        home, secure_store, lake, monkeypatch):
    warehouse, land = home
    land()

    def disk_full(*args):
        raise OSError("disk full")

    monkeypatch.setattr(erasure, "erase_from_secure_store", disk_full)
    with pytest.raises(erasure.ErasureIncomplete, match=r"stopped part-way \(OSError: disk full\); the calls of everyone "
                                                         "it names are suppressed already, and running the same requests "
                                                         "again finishes it"):
        erase(lake, warehouse, secure_store, ["usr_gone"], [])
    with duckdb.connect(warehouse.database) as con:
        assert load_erased_ids(con) == 6  # the suppression holds: three ids, two conversations, one found in the exports
        [(first, completed)] = con.execute(f"SELECT request_id, completed_at FROM {ERASURE_TABLE}").fetchall()
        assert completed is None
    # the exports were written again before the secure store failed; the warehouse still holds them
    left = mentioning(everything(warehouse, secure_store, lake), GONE)
    assert "secure_store.raw_text" in left and "governed.ai_user_prompt_created" in left and "exports/product_analytics" not in left
    monkeypatch.undo()

    report = erase(lake, warehouse, secure_store, ["usr_gone"], [])

    assert report.request_id == first
    # conv_gone_c too, though no export names it any more: its ticket is found by the digest recorded
    assert mentioning(everything(warehouse, secure_store, lake), GONE + CONVERSATIONS) == {}
    with duckdb.connect(warehouse.database) as con:
        assert con.execute(f"SELECT count(*), count(completed_at) FROM {ERASURE_TABLE}").fetchone() == (1, 1)


def test_a_conversation_found_in_the_exports_is_erased_when_a_run_stopped_before_reading_them_again(
        home, secure_store, lake, monkeypatch):
    """The first run found conv_gone_c from the person's own row and wrote that row's file without it,
    then stopped before it read the files again for the backend's answer. The run after it cannot
    find the conversation again (no row of the person's names it now), so it erases it by the
    digest the first run recorded."""
    warehouse, land = home
    land()
    passes = []
    one_pass = erasure._erase_export_rows

    def stop_on_the_second_pass(*args):
        passes.append(1)
        if len(passes) == 2:
            raise OSError("connection reset")
        return one_pass(*args)

    monkeypatch.setattr(erasure, "_erase_export_rows", stop_on_the_second_pass)
    with pytest.raises(erasure.ErasureIncomplete, match="connection reset"):
        erase(lake, warehouse, secure_store, ["usr_gone"], [])
    left = mentioning(everything(warehouse, secure_store, lake), ["usr_gone", "conv_gone_c", "anon_server"])
    assert left["exports/ai_observability"] == 1  # the backend's answer alone: their own rows went
    assert left["sources.support_tickets"] == 2  # theirs, and the agent's on conv_gone_c
    with duckdb.connect(warehouse.database) as con:
        [(recorded,)] = con.execute(f"SELECT conversation_sha256s FROM {ERASURE_TABLE}").fetchall()
        assert id_digest("conv_gone_c") in recorded
    monkeypatch.undo()

    report = erase(lake, warehouse, secure_store, ["usr_gone"], [])

    after = everything(warehouse, secure_store, lake)
    assert mentioning(after, GONE + CONVERSATIONS) == {}
    assert not any("private answer" in row for rows in after.values() for row in rows)  # nor in the secure store
    assert report.conversations_suppressed == 3 and report.rows_erased["exports/ai_observability"] == 1


def test_the_erasure_audit_finds_a_person_brought_back_in_any_place_and_a_request_left_unfinished(
        home, secure_store, lake):
    warehouse, land = home
    land()
    with warehouse.get_connection() as con, secure_store.get_connection() as secure_con:
        assert erasure.audit_erasures(con, secure_con) == erasure.ErasureAudit(0, [], {})
    report = erase(lake, warehouse, secure_store, ["usr_gone"], [])
    with warehouse.get_connection() as con, secure_store.get_connection() as secure_con:
        assert erasure.audit_erasures(con, secure_con) == erasure.ErasureAudit(1, [], {})
        [(erased_event,)] = con.execute("SELECT message_id FROM audit.governance_log WHERE erased_at IS NOT NULL "
                                        "AND event = 'ai_llm_response_received' LIMIT 1").fetchall()
        # brought back, as a restored backup or a hand edit would: by user id, by an anonymous id
        # found linked (never named), by a conversation of theirs, by the message id of an erased
        # event, and in the secure store
        con.execute("INSERT INTO governed.ai_user_action SELECT * REPLACE ('usr_gone' AS user_id) "
                    "FROM governed.ai_user_action")
        con.execute(f"INSERT INTO {IDENTITY_LINKS} SELECT * REPLACE ('anon_gone_2' AS anonymous_id) FROM {IDENTITY_LINKS}")
        con.execute("INSERT INTO analytics.ai_responses SELECT * REPLACE (? AS message_id) FROM analytics.ai_responses",
                    [erased_event])
        con.execute("INSERT INTO sources.support_tickets SELECT * REPLACE ('conv_gone_a' AS conversation_id) "
                    "FROM sources.support_tickets")
        secure_con.execute("INSERT INTO raw_text SELECT * REPLACE ('anon_gone_1' AS anonymous_id) FROM raw_text LIMIT 2")
        con.execute(f"INSERT INTO {ERASURE_TABLE} (request_id, named_sha256s) VALUES ('r-unfinished', [])")

        audit = erasure.audit_erasures(con, secure_con)

    assert audit.requests == 2 and audit.unfinished == ["r-unfinished"] and not audit.passed
    assert audit.held == {"governed.ai_user_action": 1, IDENTITY_LINKS: 1, "analytics.ai_responses": 1,
                          "sources.support_tickets": 1, "secure_store.raw_text": 2}
    assert report.request_id not in audit.unfinished


def test_requests_recorded_before_conversations_were_still_suppress_their_ids():
    with duckdb.connect() as con:
        con.execute("CREATE SCHEMA audit")
        con.execute(f"CREATE TABLE {ERASURE_TABLE} (request_id VARCHAR, id_sha256s VARCHAR[])")
        con.execute(f"INSERT INTO {ERASURE_TABLE} VALUES ('r-old', [?, ?])", [id_digest("usr_old"), id_digest("anon_old")])
        assert load_erased_ids(con) == 2
        con.execute(f"ALTER TABLE {ERASURE_TABLE} ADD COLUMN conversation_sha256s VARCHAR[]")  # as `erase` extends it
        con.execute(f"INSERT INTO {ERASURE_TABLE} VALUES ('r-new', [?], [?])", [id_digest("usr_new"), id_digest("conv_new")])
        assert load_erased_ids(con) == 4


def test_an_id_that_json_escapes_is_found_in_the_exports(lake, plan, policy, secure_store, tmp_path):
    """The exports are searched as bytes, where DuckDB wrote the id JSON-escaped: a quote, a
    backslash and a non-ASCII letter must still be found, and nobody else's row taken with them.
    The call reaches only `ai_observability` and carries no text, so nothing else names it: only
    its user id can find it."""
    odd = 'usr_"ü\\ber'
    lake.put(f"raw/ai_events/dt={DAY}/part-0.jsonl.gz", gz(
        track("ai_user_prompt_created", odd, "anon_odd", "conv_odd", consent=segment_consent(analytics=False),
              drop=("prompt_text",)),
        track("ai_user_prompt_created", "usr_ber", "anon_ber", "conv_ber", consent=segment_consent(analytics=False))))
    warehouse = Warehouse(database=str(tmp_path / "warehouse.duckdb"))
    with warehouse.get_connection() as con:
        ingest_partition(lake, con, DAY, plan, policy, secure_store, today=DAY + timedelta(days=1))

    report = erase(lake, warehouse, secure_store, [odd], [])

    assert report.rows_erased == {"exports/ai_observability": 1}
    assert [json.loads(row)["user_id"] for row in everything(warehouse, secure_store, lake)["exports/ai_observability"]] \
        == ["usr_ber"]


@pytest.mark.parametrize("arguments, message", [
    (["erase"], "name the person with --user-id, --anonymous-id, or both (or many with --requests)"),
    (["erase", "--user-id", "  "], "an id cannot be empty"),
    (["erase", "--requests", "requests.jsonl", "--user-id", "u1"], "--requests names its people itself"),
    (["erase", "--requests", "no-such-file.jsonl"], "No such file or directory"),
])
def test_telemetry_erase_refuses_a_request_that_names_nobody(arguments, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TELEMETRY_HOME", str(tmp_path / "home"))
    try:
        status = main(arguments)
    except SystemExit as exit:  # argparse refuses an argument itself
        status = exit.code
    assert status == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "home").exists()  # nothing was opened, let alone written


def test_telemetry_erase_on_a_landed_day_prints_what_it_erased_and_the_checks_still_pass(tmp_path):
    """Through the command, on a generated day: the joins and metrics are computed again without
    the person, and `telemetry check` then passes every blocking check, the reconciliations included."""
    home = tmp_path / "home"
    generate(LocalObjectStore(root=str(home / "lake")), GeneratorConfig(days=1, users=20, events_per_day=150, seed=5, start=DAY))

    def succeeds(*arguments):
        done = telemetry(home, *arguments)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.splitlines()

    succeeds("run", "--start", str(DAY), "--end", str(DAY))
    warehouse = home / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        [(user,)] = con.execute("SELECT user_id FROM governed.ai_user_prompt_created WHERE user_id IS NOT NULL "
                                "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchall()
    assert user.encode() in warehouse.read_bytes()

    erased = succeeds("erase", "--user-id", user)

    assert re.fullmatch(r"erasure [0-9a-f-]{36}: \d+ ids and \d+ conversations, whose calls ingest drops from now on", erased[0])
    assert any(re.fullmatch(r"  governed\.ai_user_prompt_created +[1-9][\d,]* rows erased", line) for line in erased)
    assert erased[-3] == f"{DAY}  joins and metrics computed again"
    assert erased[-2].startswith("raw text      none held past retention (text kept from ")
    assert erased[-1] == "erasure       no erased person held anywhere (1 request, every one completed)"
    assert user.encode() not in warehouse.read_bytes()
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    reported = instance.get_latest_materialization_event(dg.AssetKey(["audit", "erasure_requests"])).asset_materialization
    assert reported.metadata["request_id"].value == erased[0].split()[1].rstrip(":")
    assert reported.metadata["rows_erased/governed.ai_user_prompt_created"].value > 0
    assert user not in str(reported.metadata)
    checked = succeeds("check", "--start", str(DAY), "--end", str(DAY))
    # all but the drift warning: a generated day plants more bad lines than its 1% band allows
    assert checked[0] == f"{DAY}  22 of 23 checks passed"
    assert [line.split()[:3] for line in checked[1:-2]] == [["WARNING", "metrics/safety_daily", "safety_drift:"]]
    assert checked[-2:] == erased[-2:]  # the checks that look at every day, once

    with duckdb.connect(str(warehouse)) as con:  # a restored backup brings one of their conversions back
        con.execute("INSERT INTO sources.conversions BY NAME SELECT 'c-restored' AS conversion_id, ? AS user_id, "
                    "dt, 'upgrade' AS type FROM sources.conversions LIMIT 1", [user])
    done = telemetry(home, "check", "--start", str(DAY), "--end", str(DAY))
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == (
        "erasure       FAILED (blocking) audit/erasure_requests no_erased_person_held: requests=1, requests_unfinished=0, "
        "unfinished_request_ids=none, rows_held/sources.conversions=1, rows_held=1")


def held(con, secure_con):
    return erasure.ErasureAudit(1, [], {"governed.ai_user_action": 2})


def unreadable(con, secure_con):
    raise OSError("secure.duckdb: Input/output error")


@pytest.mark.parametrize("audit, line", [
    (held, "erasure       FAILED (blocking) audit/erasure_requests no_erased_person_held: requests=1, "
           "requests_unfinished=0, unfinished_request_ids=none, rows_held/governed.ai_user_action=2, rows_held=2"),
    (unreadable, "erasure       no_erased_person_held DID NOT RUN: OSError: secure.duckdb: Input/output error (run "),
])
def test_telemetry_erase_whose_check_then_fails_exits_1_saying_why(audit, line, tmp_path, monkeypatch, capsys):
    """As a warehouse written by another process meanwhile would: the erasure itself is stubbed, the
    check runs through Dagster and finds rows, or cannot look. The code location was imported before
    the home was set, as in any process that calls `main` more than once: the check still looks at
    the home the command was given."""
    import telemetry_assets.definitions  # noqa: F401  (picks its resources now, from another home)

    monkeypatch.setenv("TELEMETRY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    (tmp_path / "home" / "lake").mkdir(parents=True)
    monkeypatch.setattr(erasure, "erase_people", lambda *args: [])
    checked = []

    def audited(con, secure_con):
        checked.append(con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()[0])
        return audit(con, secure_con)

    monkeypatch.setattr(asset_checks, "audit_erasures", audited)
    assert main(["erase", "--user-id", "u1"]) == 1
    assert checked == [str(tmp_path / "home" / "warehouse.duckdb")]
    *_, retention, erasure_line = capsys.readouterr().out.splitlines()
    assert retention.startswith("raw text      none held past retention (text kept from ")  # the other check ran
    assert erasure_line.startswith(line)
    # the run failed, as the nightly one would, so `run_failure_alert` sends it
    [run] = dg.DagsterInstance.from_config(str(tmp_path / "home" / "dagster")).get_runs(limit=1)
    assert (run.job_name, run.status) == ("privacy_checks", dg.DagsterRunStatus.FAILURE)


def test_telemetry_erase_that_stops_part_way_exits_1_saying_how_to_finish(tmp_path, monkeypatch, capsys):
    def stops(*args):
        raise erasure.ErasureIncomplete("erasure r-1 stopped part-way (OSError: disk full); ...")

    monkeypatch.setenv("TELEMETRY_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "lake").mkdir(parents=True)
    monkeypatch.setattr(erasure, "erase_people", stops)
    assert main(["erase", "--user-id", "u1"]) == 1
    assert capsys.readouterr().err == "telemetry erase: erasure r-1 stopped part-way (OSError: disk full); ...\n"
