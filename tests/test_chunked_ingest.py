"""A day cut into many chunks, validated and governed two at a time, lands exactly what one chunk does."""

import gzip
import threading

import pytest

from telemetry_assets.ingest import partition
from tests.builders import ai_call, gz, page_call, segment_consent
from tests.conftest import DAY

TABLES = ("governed.ai_user_prompt_created", "governed.ai_llm_response_received", "governed.ai_user_action",
          "audit.quarantine", "audit.governance_log", "audit.ingest_files")


def busy_day(lake):
    """Every kind of line, spread over 19 objects, with copies of a message id in objects far apart:
    with a small chunk size each object is a chunk of its own."""
    events = []
    for n in range(60):
        events.append(ai_call("ai_user_prompt_created", message_id=f"p{n}", prompt_text=f"call me on +1 415 555 01{n:02d}",
                              consent=segment_consent(analytics=n % 3 != 0)))
        events.append(ai_call(message_id=f"r{n}", latency_ms=100 + n))
        events.append(ai_call("ai_user_action", message_id=f"a{n}", feedback=f"mail me at user{n}@example.com"))
    lines = [*events[:90], page_call(), "{broken", ai_call(message_id="bad", latency_ms=-5), "", *events[90:],
             ai_call(message_id="r0", latency_ms=999), ai_call("ai_unplanned_thing", message_id="u1"), events[5]]
    for part, start in enumerate(range(0, len(lines), 10)):
        lake.put(f"raw/ai_events/dt={DAY}/part-{part:02d}.jsonl.gz", gz(*lines[start:start + 10]))


def landed(warehouse, lake, secure_store):
    tables = {t: warehouse.execute(f"SELECT * FROM {t} WHERE dt = ? ORDER BY ALL", [DAY]).fetchall() for t in TABLES}
    exports = sorted(line for key in lake.list_keys("exports/") for line in gzip.decompress(lake.open(key).read()).splitlines())
    with secure_store.get_connection() as con:
        archived = con.execute("SELECT * FROM raw_text ORDER BY ALL").fetchall()
    return tables, exports, archived


def test_many_chunks_two_at_a_time_land_exactly_what_one_chunk_lands(lake, warehouse, ingest, secure_store, monkeypatch):
    busy_day(lake)
    whole = ingest()
    one_chunk = landed(warehouse, lake, secure_store)

    tasks = []  # (chunk number, thread), one per event of each chunk
    real = partition._validate_and_govern
    monkeypatch.setattr(partition, "_validate_and_govern", lambda con, chunk, *rest: (
        tasks.append((chunk.number, threading.current_thread().name)), real(con, chunk, *rest)))
    chunked = ingest(chunk_bytes=4_096)  # each object a chunk of its own

    assert whole.chunks == 1 and chunked.chunks == 19 and len(tasks) == 19 * 3  # three planned events
    assert sorted(number for number, _ in tasks) == sorted([*range(1, 20)] * 3)
    assert len({thread for _, thread in tasks}) == partition.WORKERS
    assert landed(warehouse, lake, secure_store) == one_chunk
    assert chunked.summary() == whole.summary()
    assert whole.summary()["duplicates"] == 2 and whole.summary()["quarantined"] == 3
    assert len(one_chunk[0]["governed.ai_llm_response_received"]) == 60 and one_chunk[1]


def test_a_chunk_failing_beside_another_fails_the_day_and_nothing_lands(lake, warehouse, ingest, monkeypatch):
    busy_day(lake)
    ingest()
    before = warehouse.execute("SELECT count(*) FROM audit.governance_log WHERE dt = ?", [DAY]).fetchall()
    calls, lock = [], threading.Lock()
    real = partition._validate_and_govern

    def fails_on_the_fifth(con, *args):
        with lock:
            calls.append(1)
            fifth = len(calls) == 5
        if fifth:
            raise RuntimeError("disk full while governing")
        real(con, *args)

    monkeypatch.setattr(partition, "_validate_and_govern", fails_on_the_fifth)
    with pytest.raises(RuntimeError, match="disk full while governing"):
        ingest(chunk_bytes=4_096)
    assert 5 <= len(calls) <= 5 + partition.WORKERS  # it stopped at its next task, not at the end of the day
    assert warehouse.execute("SELECT count(*) FROM audit.governance_log WHERE dt = ?", [DAY]).fetchall() == before
    assert {name for name in (t.name for t in threading.enumerate()) if name.startswith("chunk")} == set()


def test_a_rerun_in_many_chunks_writes_the_same_export_parts(lake, ingest):
    """Each event of each chunk is its own export part, named after both, whichever thread got there
    first: a re-run replaces the day's parts with parts of the same names and lines."""
    busy_day(lake)

    def parts():
        return {key: gzip.decompress(lake.open(key).read()) for key in lake.list_keys("exports/")}

    ingest(chunk_bytes=4_096)
    first = parts()
    ingest(chunk_bytes=4_096)
    assert parts() == first
    assert {key.rsplit("-", 1)[1] for key in first} <= {f"{number:05d}.jsonl.gz" for number in range(1, 20)}
    assert "exports/ai_observability/dt=2026-09-14/ai_llm_response_received-00019.jsonl.gz" in first
