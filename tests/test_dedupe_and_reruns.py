"""At-least-once re-sends never double-count; re-running a day replaces exactly that day."""

from datetime import timedelta

import duckdb
import pytest

from telemetry_assets.ingest.partition import _dedupe, _load_seen_message_ids
from telemetry_assets.ingest.tables import replacing_day
from tests.builders import ai_call, gz
from tests.conftest import DAY


def day_key(day, name="part-0"):
    return f"raw/ai_events/dt={day.isoformat()}/{name}.jsonl.gz"


def governed_ids(con, day=None):
    where = "WHERE dt = ?" if day else ""
    return [r[0] for r in con.execute(
        f"SELECT message_id FROM governed.ai_llm_response_received {where} ORDER BY 1", [day] if day else []
    ).fetchall()]


def test_duplicates_within_a_file_and_across_files_keep_the_first_copy(lake, warehouse, ingest):
    first = ai_call(message_id="dup", latency_ms=100)
    lake.put(day_key(DAY, "part-0"), gz(first, ai_call(message_id="a"), first))
    lake.put(day_key(DAY, "part-1"), gz(ai_call(message_id="dup", latency_ms=999), ai_call(message_id="b")))
    report = ingest()
    assert report.summary()["duplicates"] == 2
    assert governed_ids(warehouse) == ["a", "b", "dup"]
    kept = warehouse.execute("SELECT latency_ms, source_key FROM governed.ai_llm_response_received WHERE message_id = 'dup'").fetchall()
    assert kept == [(100.0, day_key(DAY, "part-0"))]


@pytest.mark.parametrize("late", ["late", "6b4cc0da-f380-1be1-e807-b7b981f40970"], ids=["text", "uuid"])
def test_a_resend_received_the_next_day_is_a_duplicate_there(lake, warehouse, ingest, late):
    lake.put(day_key(DAY), gz(ai_call(message_id=late)))
    lake.put(day_key(DAY + timedelta(days=1)), gz(ai_call(message_id=late), ai_call(message_id="new")))
    ingest(DAY)
    report = ingest(DAY + timedelta(days=1))
    assert report.summary()["duplicates"] == 1
    assert governed_ids(warehouse, DAY + timedelta(days=1)) == ["new"]


def test_the_lookback_window_bounds_how_far_back_resends_are_matched(lake, warehouse, ingest):
    two_days_later = DAY + timedelta(days=2)
    lake.put(day_key(DAY), gz(ai_call(message_id="old")))
    lake.put(day_key(two_days_later), gz(ai_call(message_id="old")))
    ingest(DAY)
    assert ingest(two_days_later, lookback_days=1).summary()["duplicates"] == 0
    assert ingest(two_days_later, lookback_days=2).summary()["duplicates"] == 1


def test_a_resent_invalid_event_is_counted_once_as_quarantined(lake, warehouse, ingest):
    bad = ai_call(message_id="bad", latency_ms=-1)
    lake.put(day_key(DAY), gz(bad, bad))
    assert ingest().summary()["quarantined"] == 1
    assert ingest().summary()["duplicates"] == 1


def test_rerunning_a_partition_twice_gives_identical_rows(lake, warehouse, ingest):
    lake.put(day_key(DAY), gz(*[ai_call() for _ in range(50)], ai_call(message_id="x"), ai_call(message_id="x"), "{bad"))
    lake.put(day_key(DAY + timedelta(days=1)), gz(ai_call(message_id="next-day")))
    ingest(DAY + timedelta(days=1))

    def snapshot():
        return {
            table: warehouse.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            for table in ("governed.ai_llm_response_received", "audit.quarantine", "audit.governance_log", "audit.ingest_files")
        }

    first_report = ingest(DAY)
    first = snapshot()
    second_report = ingest(DAY)
    assert snapshot() == first
    assert first_report.summary() == second_report.summary()
    (dupes,) = warehouse.execute(
        "SELECT count(*) - count(DISTINCT message_id) FROM governed.ai_llm_response_received"
    ).fetchone()
    assert dupes == 0
    assert governed_ids(warehouse, DAY + timedelta(days=1)) == ["next-day"]


def test_a_failed_run_leaves_the_previous_rows_untouched(lake, warehouse, ingest, plan, monkeypatch):
    lake.put(day_key(DAY), gz(ai_call(message_id="kept")))
    ingest()
    lake.put(day_key(DAY, "part-1"), gz(ai_call(message_id="new")))

    def broken_open(key):
        raise ConnectionError("lake unreachable")

    monkeypatch.setattr(type(lake), "open", lambda self, key: broken_open(key))
    try:
        ingest()
    except ConnectionError:
        pass
    else:
        raise AssertionError("the run should have failed")
    assert governed_ids(warehouse) == ["kept"]


def test_lines_that_land_nowhere_abort_the_day(lake, warehouse, ingest, monkeypatch):
    from telemetry_assets.ingest import partition

    lake.put(day_key(DAY), gz(ai_call(message_id="kept")))
    ingest()
    lake.put(day_key(DAY, "part-1"), gz(ai_call(message_id="new"), {"type": "page", "messageId": "p"}))
    real_count = partition._count
    monkeypatch.setattr(partition, "_count", lambda con, tallies, sql, attribute:
                        None if attribute == "non_ai_events" else real_count(con, tallies, sql, attribute))
    with pytest.raises(partition.ReconciliationError, match=r"part-1.jsonl.gz: \+1 lines"):
        ingest()
    assert governed_ids(warehouse) == ["kept"]


def seen_the_day_before(con, message_ids):
    """`_load_seen_message_ids` after a day whose governance log holds these ids."""
    con.execute("CREATE SCHEMA audit")
    con.execute("CREATE TABLE audit.governance_log (dt DATE, message_id VARCHAR)")
    con.execute("INSERT INTO audit.governance_log SELECT $day, unnest($ids::VARCHAR[])",
                {"day": DAY - timedelta(days=1), "ids": message_ids})
    _load_seen_message_ids(con, DAY, lookback_days=1)


def dedupe_chunk(con, message_ids):
    """`_dedupe` over a chunk of AI events with these ids, in line order: each line's is_duplicate."""
    con.execute("CREATE OR REPLACE TEMP TABLE chunk AS SELECT line_id, 'k' AS source_key, line_id AS line_number, "
                "'ai_user_action' AS event, message_id, 'ai' AS kind FROM (SELECT unnest(range(len($ids)))::BIGINT "
                "AS line_id, unnest($ids) AS message_id)", {"ids": message_ids})
    _dedupe(con)
    return [flag for (flag,) in con.execute("SELECT is_duplicate FROM chunk_ai ORDER BY line_id").fetchall()]


def test_an_id_whose_hash_matches_a_seen_id_is_not_a_duplicate_unless_the_ids_are_equal():
    """Seen ids are matched by hash first; a (forged) collision must not drop a new event."""
    con = duckdb.connect()
    seen_the_day_before(con, ["old"])
    con.execute("INSERT INTO seen_other_ids SELECT hash('new'), 'other'")
    assert dedupe_chunk(con, ["new", "old", "new"]) == [False, True, True]
    assert sorted(con.execute("SELECT message_id FROM seen_other_ids").fetchall()) == [("new",), ("old",), ("other",)]


def test_an_id_written_as_a_uuid_is_matched_as_exactly_as_any_other_text():
    """Canonical UUIDs are held as 16 bytes; the same UUID written another way is another id, as
    it would be compared as text."""
    seen, other, new = ("6b4cc0da-f380-1be1-e807-b7b981f40970", "1448bfd0-5a1a-45cd-b207-13e791a1a638",
                        "c3ebd6d6-2c63-ae64-4937-7e274d464b44")
    con = duckdb.connect()
    seen_the_day_before(con, [seen, other.upper()])
    chunk = [seen, seen.upper(), "{" + seen + "}", other, other.upper(), new, new.upper(), new, new.upper(), None]
    assert dedupe_chunk(con, chunk) == [True, False, False, False, True, False, False, True, True, False]
    assert sorted(str(u) for (u,) in con.execute("SELECT id_uuid FROM seen_uuids").fetchall()) == sorted([seen, other, new])
    assert sorted(i for (i,) in con.execute("SELECT message_id FROM seen_other_ids").fetchall()) == sorted(
        [other.upper(), seen.upper(), "{" + seen + "}", new.upper()])


def test_a_day_whose_new_rows_fail_keeps_its_old_rows_and_other_days_are_untouched():
    """What every join and metric relies on to replace a day: the delete and the insert commit together."""
    con = duckdb.connect()
    con.execute("CREATE TABLE t (dt DATE, v INTEGER)")
    con.execute("INSERT INTO t VALUES (?, 1), (?, 2), (?, 3)", [DAY, DAY, DAY + timedelta(days=1)])
    with pytest.raises(duckdb.ConversionException):
        with replacing_day(con, DAY, ["t"]):
            con.execute("INSERT INTO t VALUES (?, 4)", [DAY])
            con.execute("INSERT INTO t VALUES (?, 'five')", [DAY])
    assert con.execute("SELECT v FROM t ORDER BY v").fetchall() == [(1,), (2,), (3,)]
    with replacing_day(con, DAY, ["t"]):
        con.execute("INSERT INTO t VALUES (?, 4)", [DAY])
    assert con.execute("SELECT v FROM t ORDER BY v").fetchall() == [(3,), (4,)]
