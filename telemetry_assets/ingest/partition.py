"""Ingest one daily partition: the day's raw objects into governed, quarantine and audit rows.

Per chunk of lines (memory is bounded by the chunk, never by the partition), while the next
chunk is read on a background thread:

1. classify each line in DuckDB: blank, malformed (not a JSON object), untyped (no `type`), a
   call from a person who asked to be erased (counted, read no further: `govern/erasure.py`), a
   non-AI call (page, identify, `Order Completed`: counted, never quarantined) or an AI event;
2. dedupe AI events by `messageId`, first copy in key order wins, against this partition's earlier
   lines and the look-back window of earlier partitions (at-least-once delivery re-sends);
3. validate first copies against their event's pandera model (unknown `ai_*` names are
   `Unplanned-Event`);
4. quarantine the failures; hand the rest to the governor (`govern/flight.py`), which decides
   consent, redacts, classifies and delivers them; one governance-log row per processed event.

Identify calls are counted as non-AI events like any other call, but the anonymousId-userId link
each one makes is kept in `governed.identity_links` when the call has the warehouse destination's
consent: the joins use it to give a conversation held before sign-in its user. How many links each
object gave, and how many consent kept out, is in its `audit.ingest_files` row.

Steps 1 and 2 run chunk after chunk on the caller's connection, since each chunk's dedupe needs the
ids of the chunks before it (unplanned events are quarantined there too). Steps 3 and 4 need only
one event's first copies in one chunk, so two such tasks run at once, each on its own cursor
(`workers.py`).

The rows each chunk produces are staged (`staging.py`) and published in one transaction that
first deletes the day's rows, so a re-run replaces exactly that partition. Before committing, every
object's lines are reconciled against what landed: lines read = valid + quarantined + duplicates +
non-AI events + erased + blank lines. A gap aborts the run and nothing lands.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from checks.tracking_plan import (
    ADDITIONAL_PROPERTIES_COLUMN,
    CompiledEvent,
    Field,
    TrackingPlan,
    compile_event,
    finite_number_sql,
    type_column,
    violations_by_row,
)
from telemetry_assets.govern.consent import CONSENT_PATHS, decision_sql, with_consent_sql
from telemetry_assets.govern.erasure import erased_sql, load_erased_ids
from telemetry_assets.govern.flight import LAND, WAREHOUSE, Governor
from telemetry_assets.govern.intent import IntentRules
from telemetry_assets.govern.policy import Policy, check_against_plan
from telemetry_assets.govern.redact import Redactor
from telemetry_assets.govern.retention import text_expired, utc_today
from telemetry_assets.ingest.layouts import RawObject, partition_objects
from telemetry_assets.ingest.lines import DEFAULT_MAX_LINE_BYTES, prefetched, read_line_batches
from telemetry_assets.ingest.reconcile import RECONCILED_COLUMNS, quarantined_by_type
from telemetry_assets.ingest.staging import Staging
from telemetry_assets.ingest.tables import (
    AUDIT_TABLES,
    EVENTS_ORIGIN,
    IDENTITY_LINKS,
    VIOLATIONS_TYPE,
    ensure_tables,
    governed_table,
)
from telemetry_assets.ingest.workers import ChunkWorkers
from telemetry_assets.record_batches import text_frame
from telemetry_assets.settings import DEFAULT_INGEST_CHUNK_MB
from telemetry_assets.stage_clock import StageClock

CHUNK_BYTES = DEFAULT_INGEST_CHUNK_MB << 20  # of decompressed lines: about 65k events (`settings.ingest_chunk_mb`)
WORKERS = 2  # chunks validated and governed at once: one per core of the machines this targets
# A message id written as a canonical UUID (lower-case and hyphenated, as it reads back) as that
# UUID, else NULL: `_dedupe` holds such ids in 16 bytes instead of about 50.
_UUID_OF_ID = "CASE WHEN TRY_CAST(message_id AS UUID)::VARCHAR = message_id THEN TRY_CAST(message_id AS UUID) END"


# Stages a partition's time is reported under (see `telemetry bench`).
READ, PARSE, DEDUPE, VALIDATE = "list+read", "parse", "dedupe", "validate"


class ReconciliationError(RuntimeError):
    """Lines were read that did not land anywhere: the partition is not committed."""


@dataclass(frozen=True)
class FileReport:
    """How one raw object's lines were accounted for. Grain: one raw object in one partition."""

    source_key: str
    layout: str
    source_id: str | None
    object_version: str
    lines_read: int
    blank_lines: int
    valid_events: int
    quarantined: int
    duplicates: int
    non_ai_events: int
    erased_events: int  # calls carrying an erased user or anonymous id (audit.erasure_requests), read no further
    identity_links: int  # identify calls naming both ids, kept for the warehouse (also counted as non-AI events)
    identity_links_blocked: int  # the same, that the warehouse destination's consent kept out
    identity_links_blocked_by: dict[str, int]  # those by reason, as the governance log words it

    @property
    def unaccounted(self) -> int:
        accounted = (self.blank_lines + self.valid_events + self.quarantined + self.duplicates + self.non_ai_events
                     + self.erased_events)
        return self.lines_read - accounted


@dataclass(frozen=True)
class PartitionReport:
    day: date
    tracking_plan_version: str
    policy_version: str
    files: tuple[FileReport, ...]
    quarantined_by_type: dict[str, int]
    chunks: int  # how many chunks of lines the day was read in

    def total(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.files)

    def summary(self) -> dict[str, int]:
        return {name: self.total(name) for name in RECONCILED_COLUMNS}

    def identity_links_blocked_by(self) -> dict[str, int]:
        """The identity links consent kept out, by reason, over every object."""
        return dict(sum((Counter(f.identity_links_blocked_by) for f in self.files), Counter()))


@dataclass
class _Tally:
    obj: RawObject
    lines_read: int = 0
    blank_lines: int = 0
    duplicates: int = 0
    non_ai_events: int = 0
    erased_events: int = 0
    identity_links: int = 0
    identity_links_blocked_by: Counter = field(default_factory=Counter)


def ingest_partition(
    store,
    con,
    day: date,
    tracking_plan: TrackingPlan,
    policy: Policy,
    secure_store,
    redaction_salt: str = "",
    lookback_days: int = 1,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    clock: StageClock | None = None,
    today: date | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> PartitionReport:
    """Replace `day`'s rows in the ingest tables, exports and secure store with what its raw objects
    say. `clock` (a fresh one by default) collects the seconds spent per stage; `today` (UTC by
    default) is what the policy's raw-text retention is counted back from; `chunk_bytes` is how much
    decompressed text a chunk holds (ingest's memory grows with it: `settings.ingest_chunk_mb`)."""
    check_against_plan(policy, tracking_plan)
    clock = clock or StageClock()
    with clock.stage(READ):
        objects = partition_objects(store, day)
    compiled = {name: compile_event(plan) for name, plan in tracking_plan.events.items()}
    redactor = Redactor(policy.entities, policy.replacement, policy.phone_region, redaction_salt)
    ensure_tables(con, tracking_plan)
    with secure_store.get_connection() as secure_con, tempfile.TemporaryDirectory() as workdir:
        staging = Staging(Path(workdir) / "staged")
        expired = text_expired(policy, day, today or utc_today())
        governor = Governor(policy, redactor, IntentRules.load(), store, secure_con, day, clock, staging,
                            text_expired_at=datetime.now(timezone.utc) if expired else None)
        governor.start()
        try:
            with clock.stage(DEDUPE):
                _load_seen_message_ids(con, day, lookback_days)
            tallies = {obj.key: _Tally(obj) for obj in objects}
            stamps = _Stamps(day, tracking_plan.version, policy, clock, staging, screen_erased=load_erased_ids(con) > 0)
            chunk_count = 0
            # read on a thread of its own while the chunk before is worked on, and timed on that thread
            line_chunks = clock.timed(READ, _line_chunks(store, objects, tallies, max_line_bytes, chunk_bytes))
            with ChunkWorkers(con, WORKERS) as workers, contextlib.closing(prefetched(line_chunks)) as chunks:
                for frame in chunks:
                    chunk_count += 1
                    chunk = _Chunk(chunk_count, frame, _classify_and_dedupe(con, frame, stamps, tracking_plan, tallies))
                    for event in compiled.values():
                        workers.submit(_validate_and_govern, chunk, stamps, event, governor)
            with clock.stage(LAND), ThreadPoolExecutor(1, thread_name_prefix="checkpoint") as beside:
                report = _publish(con, stamps, tracking_plan, tallies, chunk_count)
                # The warehouse writes the committed day into its file (about 1 s on one core at 1M
                # events; DuckDB would do it as the connection closes) while the secure store
                # publishes the day's raw text on the other core.
                checkpointed = beside.submit(con.execute, "CHECKPOINT")
                governor.finish()
                checkpointed.result()
        except BaseException:
            governor.abort()
            raise
    return report


@dataclass(frozen=True)
class _Chunk:
    """One chunk of the day's lines, as its events' tasks get it."""

    number: int  # 1, 2, ... in reading order
    lines: pa.Table  # line_id, source_key, line_number, line, read_error
    first_copies: pa.Table  # the first copy of each AI event (`_classify_and_dedupe`)


@dataclass(frozen=True)
class _Stamps:
    """What every row of the partition is stamped with."""

    day: date
    plan_version: str
    policy: Policy
    clock: StageClock
    staging: Staging
    screen_erased: bool  # someone asked to be erased: each call's ids are matched against theirs

    def params(self) -> dict:
        return {"day": self.day, "plan_version": self.plan_version, "policy_version": self.policy.version}

    def blocked_as_quarantined(self) -> str:
        entries = ", ".join(f"{{'destination': '{name}', 'reason': 'quarantined'}}" for name in self.policy.destinations)
        return f"[{entries}]::STRUCT(destination VARCHAR, reason VARCHAR)[]"


def _delete_partition(con, day: date, tracking_plan: TrackingPlan) -> None:
    """The day's rows of every table ingest writes; in the shared quarantine, only its own rows."""
    tables = [*(t for t in AUDIT_TABLES if t != "audit.quarantine"), *map(governed_table, tracking_plan.events),
              IDENTITY_LINKS]
    for table in tables:
        con.execute(f"DELETE FROM {table} WHERE dt = ?", [day])
    con.execute("DELETE FROM audit.quarantine WHERE dt = ? AND origin = ?", [day, EVENTS_ORIGIN])


def _load_seen_message_ids(con, day: date, lookback_days: int) -> None:
    """The ids of the look-back window's governed events, held as `_dedupe` matches them."""
    con.execute("CREATE OR REPLACE TEMP TABLE seen_uuids (id_uuid UUID)")
    con.execute("CREATE OR REPLACE TEMP TABLE seen_other_ids (id_hash UBIGINT, message_id VARCHAR)")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE window_ids AS
           SELECT DISTINCT {_UUID_OF_ID} AS id_uuid, message_id FROM audit.governance_log
           WHERE dt >= ? AND dt < ? AND message_id IS NOT NULL""",
        [day - timedelta(days=lookback_days), day],
    )
    _hold_as_seen(con, "window_ids")
    con.execute("DROP TABLE window_ids")


def _hold_as_seen(con, ids: str) -> None:
    """Add `ids` (a relation of `id_uuid` and a non-NULL `message_id`) to the ids seen: a canonical
    UUID as its 16 bytes, any other id as its text and hash (`_dedupe`)."""
    con.execute(f"INSERT INTO seen_uuids SELECT id_uuid FROM {ids} WHERE id_uuid IS NOT NULL")
    con.execute(f"INSERT INTO seen_other_ids SELECT hash(message_id), message_id FROM {ids} WHERE id_uuid IS NULL")


def _line_chunks(store, objects, tallies, max_line_bytes: int, chunk_bytes: int) -> Iterator[pa.Table]:
    """Tables of (line_id, source_key, line_number, line, read_error), bounded in bytes; `line_id`
    numbers the partition's lines in reading order. Small objects share a chunk, so a day of many
    small files is not a day of many tiny queries."""
    pending, size, next_line_id = [], 0, 0
    for obj in objects:
        with contextlib.closing(store.open(obj.key)) as stream:
            for batch in read_line_batches(stream, max_line_bytes, chunk_bytes):
                tallies[obj.key].lines_read += len(batch)
                pending.append(pa.table({
                    "line_id": np.arange(next_line_id, next_line_id + len(batch), dtype=np.int64),
                    "source_key": pa.repeat(pa.scalar(obj.key, pa.string()), len(batch)),
                    "line_number": batch.line_numbers(),
                    "line": batch.lines,
                    "read_error": batch.read_errors(),
                }))
                next_line_id += len(batch)
                size += batch.lines.nbytes
                if size >= chunk_bytes:
                    yield pa.concat_tables(pending)
                    pending, size = [], 0
    if pending:
        yield pa.concat_tables(pending)


def _classify_and_dedupe(con, frame: pa.Table, stamps: _Stamps, tracking_plan: TrackingPlan, tallies) -> pa.Table:
    """Count and quarantine what is not an AI event, mark duplicates, quarantine the first copies of
    events the plan does not name; the chunk's first copies of AI events (line_id, source_key,
    line_number, event, message_id) are returned for validation, one planned event at a time."""
    clock = stamps.clock
    with clock.stage(PARSE):
        con.register("chunk_lines", frame)  # registering again replaces the previous chunk
        _classify(con, tracking_plan.namespace, stamps.screen_erased)
        _count(con, tallies, "SELECT source_key, count(*) FROM chunk WHERE kind = 'blank' GROUP BY 1", "blank_lines")
        _count(con, tallies, "SELECT source_key, count(*) FROM chunk WHERE kind = 'non_ai' GROUP BY 1", "non_ai_events")
        _count(con, tallies, "SELECT source_key, count(*) FROM chunk WHERE kind = 'erased' GROUP BY 1", "erased_events")
        _quarantine_unreadable(con, stamps)
        _stage_identity_links(con, stamps)
        _count(con, tallies, "SELECT source_key, count(*) FROM chunk_identity_links WHERE kept GROUP BY 1", "identity_links")
        for key, reason, count in con.execute("SELECT source_key, blocked_reason, count(*) FROM chunk_identity_links "
                                              "WHERE NOT kept GROUP BY ALL").fetchall():
            tallies[key].identity_links_blocked_by[reason] += count
    with clock.stage(DEDUPE):
        _dedupe(con)
        _count(con, tallies, "SELECT source_key, count(*) FROM chunk_ai WHERE is_duplicate GROUP BY 1", "duplicates")
        firsts = con.sql("SELECT * EXCLUDE (is_duplicate, id_uuid) FROM chunk_ai "
                         "WHERE NOT is_duplicate").to_arrow_table()
    with clock.stage(VALIDATE):
        con.register("first_copies", firsts)
        _quarantine_unplanned(con, stamps, tracking_plan)
    return firsts


def _classify(con, namespace: str, screen_erased: bool) -> None:
    """One parse per line for the envelope; `try` makes an unparseable line's fields NULL instead of
    failing the chunk. Only malformed lines are parsed again, to say what they are. An empty
    messageId is no id: dedupe never takes two such events for copies of one (validation
    quarantines them as Required-Missing). A call of any type whose userId, anonymousId or
    conversation_id was erased is `erased`; the ids are read and hashed only when someone was."""
    erasable = ["$.userId", "$.anonymousId", "$.properties.conversation_id"] if screen_erased else []
    paths = ["$.type", "$.event", "$.messageId", *erasable]
    erased = ("WHEN " + " OR ".join(erased_sql(f"fields[{position}]") for position in range(4, 4 + len(erasable)))
              + " THEN 'erased'") if screen_erased else ""
    con.execute(
        rf"""CREATE OR REPLACE TEMP TABLE chunk AS
        WITH envelope AS (
            SELECT line_id, source_key, line_number, line, read_error,
                   CASE WHEN read_error IS NULL THEN try(json_extract_string(line, {paths})) END AS fields
            FROM chunk_lines
        ), classified AS (
            SELECT *, CASE
                WHEN read_error IS NULL AND regexp_full_match(line, '\s*') THEN 'blank'
                WHEN fields IS NULL OR NOT regexp_matches(line, '^\s*\{{') THEN 'malformed'
                WHEN fields[1] IS NULL THEN 'untyped'
                {erased}
                WHEN fields[1] = 'track' AND starts_with(fields[2], $namespace) THEN 'ai'
                ELSE 'non_ai'
            END AS kind
            FROM envelope
        )
        SELECT line_id, source_key, line_number, fields[1] AS call_type, fields[2] AS event,
            nullif(fields[3], '') AS message_id, kind,
            CASE WHEN kind = 'malformed' THEN CASE
                WHEN read_error IS NOT NULL THEN read_error
                WHEN fields IS NULL THEN 'not valid JSON (truncated or corrupt line)'
                ELSE 'a JSON ' || lower(json_type(line)) || ' line, not an object'
            END END AS malformed_reason
        FROM classified""",
        {"namespace": namespace},
    )


def _count(con, tallies, sql: str, attribute: str) -> None:
    """Add the count `sql` gives per source_key to each object's tally."""
    for key, count in con.execute(sql).fetchall():
        tally = tallies[key]
        setattr(tally, attribute, getattr(tally, attribute) + count)


def _quarantine_unreadable(con, stamps: _Stamps) -> None:
    stamps.staging.insert(
        con, "audit.quarantine",
        f"""SELECT $day AS dt, '{EVENTS_ORIGIN}' AS origin, source_key, line_number,
            CASE kind
                WHEN 'malformed' THEN [{{'type': 'Malformed-Line', 'message': malformed_reason}}]
                ELSE [{{'type': 'Required-Missing', 'message': 'type is required on every call'}}]
            END::{VIOLATIONS_TYPE} AS violations,
            $plan_version AS tracking_plan_version
        FROM chunk WHERE kind IN ('malformed', 'untyped')""",
        {"day": stamps.day, "plan_version": stamps.plan_version},
    )
    _log_quarantined(con, stamps, "SELECT NULL AS message_id, NULL AS event, source_key, line_number "
                     "FROM chunk WHERE kind IN ('malformed', 'untyped')")


def _stage_identity_links(con, stamps: _Stamps) -> None:
    """The chunk's identify calls that name both ids (`chunk_identity_links`), each `kept` when the
    call's consent lets the warehouse have it (the same decision an AI event gets; none is kept
    when the policy has no warehouse destination), else with its `blocked_reason` in the governance
    log's words (`consent denied: analytics`); the kept ones are staged. Only identify lines
    are parsed again: each CASE names the chunk's own column, so DuckDB cannot move the parse below
    the join, onto every line (malformed ones too)."""
    policy = stamps.policy
    deliver, reason = (decision_sql(policy, WAREHOUSE) if WAREHOUSE in policy.destinations
                       else ("FALSE", "'the policy has no warehouse destination'"))
    paths = ", ".join(f"'{path}'" for path in CONSENT_PATHS)
    identify_calls = f"""SELECT c.source_key, c.line_number,
            CASE WHEN c.call_type = 'identify'
                THEN json_extract_string(l.line, ['$.userId', '$.anonymousId', '$.receivedAt']) END AS ids,
            CASE WHEN c.call_type = 'identify' THEN json_extract(l.line, [{paths}]) END AS consent_fragments
        FROM chunk c JOIN chunk_lines l USING (line_id)
        WHERE c.kind = 'non_ai' AND c.call_type = 'identify'"""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE chunk_identity_links AS
        SELECT nullif(ids[2], '') AS anonymous_id, nullif(ids[1], '') AS user_id,
            timezone('UTC', TRY_CAST(ids[3] AS TIMESTAMPTZ)) AS linked_at, source_key, line_number,
            coalesce({deliver}, false) AS kept,
            CASE WHEN NOT kept THEN coalesce({reason}, 'undecided') END AS blocked_reason
        FROM ({with_consent_sql(policy, identify_calls)})
        WHERE anonymous_id IS NOT NULL AND user_id IS NOT NULL"""
    )
    stamps.staging.insert(con, IDENTITY_LINKS, "SELECT $day AS dt, * EXCLUDE (kept, blocked_reason) "
                          "FROM chunk_identity_links WHERE kept", {"day": stamps.day})


def _dedupe(con) -> None:
    """The first copy of a message id wins: the lowest `line_id`, since objects are read in key
    order and lines in order. No raw line is carried here (validation reads lines from the chunk
    itself).

    The ids seen before grow with the partition and are scanned once per chunk, so they must be
    small and cheap to compare. An id written as a canonical UUID (as most SDKs write them) is held
    as its 16 bytes, `seen_uuids`, and compared as such. Any other id is held with its 64-bit hash,
    `seen_other_ids`: the hashes are matched first and only the ids whose hash the chunk holds are
    read back and compared exactly (a hash collision is never taken for a duplicate). Held as text
    and hash, every id took about 50 bytes, and two days of 5M events spilled under ingest's memory
    cap; comparing the texts themselves meant decompressing every seen id each chunk: 4.6 s of
    dedupe at 1M events and 48 s at 5M."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE chunk_ai AS
        WITH ai AS (SELECT line_id, source_key, line_number, event, message_id, {_UUID_OF_ID} AS id_uuid
                    FROM chunk WHERE kind = 'ai'),
        other_ids AS (SELECT DISTINCT message_id, hash(message_id) AS id_hash FROM ai
                      WHERE id_uuid IS NULL AND message_id IS NOT NULL),
        firsts AS (SELECT min(line_id) AS line_id FROM ai WHERE message_id IS NOT NULL GROUP BY message_id),
        seen_uuid AS (SELECT id_uuid FROM seen_uuids WHERE id_uuid IN (SELECT id_uuid FROM ai)),
        same_hash AS (SELECT rowid FROM seen_other_ids WHERE id_hash IN (SELECT id_hash FROM other_ids)),
        seen AS (SELECT message_id FROM ai WHERE id_uuid IN (SELECT id_uuid FROM seen_uuid)
                 UNION
                 SELECT message_id FROM seen_other_ids
                 WHERE rowid IN (SELECT rowid FROM same_hash) AND message_id IN (SELECT message_id FROM other_ids))
        SELECT ai.*, ai.message_id IS NOT NULL AND (
                ai.line_id NOT IN (SELECT line_id FROM firsts) OR ai.message_id IN (SELECT message_id FROM seen)
            ) AS is_duplicate
        FROM ai"""
    )
    _hold_as_seen(con, "(SELECT id_uuid, message_id FROM chunk_ai WHERE message_id IS NOT NULL AND NOT is_duplicate)")


def _quarantine_unplanned(con, stamps: _Stamps, tracking_plan: TrackingPlan) -> None:
    unplanned = "event NOT IN (SELECT unnest($planned))"
    planned = {"planned": list(tracking_plan.events)}
    stamps.staging.insert(
        con, "audit.quarantine",
        f"""SELECT $day AS dt, '{EVENTS_ORIGIN}' AS origin, source_key, line_number, message_id, event,
            [{{'type': 'Unplanned-Event',
               'message': 'event ' || event || ' is not in tracking plan ' || $plan_version}}]::{VIOLATIONS_TYPE}
               AS violations,
            $plan_version AS tracking_plan_version
        FROM first_copies WHERE {unplanned}""",
        {"day": stamps.day, "plan_version": stamps.plan_version, **planned},
    )
    _log_quarantined(con, stamps, f"SELECT message_id, event, source_key, line_number FROM first_copies WHERE {unplanned}", planned)


def _validate_and_govern(con, chunk: _Chunk, stamps: _Stamps, event: CompiledEvent, governor: Governor) -> None:
    """On a worker's cursor, one event of one chunk: validate the event's first copies; quarantine
    failures, govern the rest (valid or forwarded)."""
    con.register("chunk_lines", chunk.lines)
    con.register("first_copies", chunk.first_copies)
    with stamps.clock.stage(VALIDATE):
        kept = _validate(con, stamps, event)
    if kept:
        governor.govern(con, event.plan, stamps.plan_version, chunk.number)


def _validate(con, stamps: _Stamps, event: CompiledEvent) -> bool:
    """Kept rows (valid, or forwarded with their violations) into `kept_rows`; False when none."""
    plan = event.plan
    # Every planned path, and the consent objects governance reads, in two parses of the raw call:
    # one for each value's JSON type, one for its text (unescaped; an object's or array's JSON).
    # Extracting JSON fragments instead meant parsing every fragment again for its type and value.
    # The raw call itself goes no further.
    paths = ", ".join(f"'{path}'" for path in [*(f.json_path for f in plan.fields), *CONSENT_PATHS])
    selects = ", ".join(expr for position, f in enumerate(plan.fields, 1) for expr in _field_expressions(f, position))
    properties = next(position for position, f in enumerate(plan.fields, 1) if f.column == "properties")
    consent = ", ".join(_object_text(len(plan.fields) + i) for i in range(1, len(CONSENT_PATHS) + 1))
    known = ", ".join(f"'{name}'" for name in plan.property_names)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE event_rows AS
        SELECT line_id AS row_id, source_key, line_number, {selects},
            array_to_string(list_filter(json_keys({_object_text(properties)}), lambda k: k NOT IN ({known})), ', ')
                AS {ADDITIONAL_PROPERTIES_COLUMN},
            [{consent}] AS consent_fragments
        FROM (SELECT a.line_id, a.source_key, a.line_number,
                     json_type(l.line, [{paths}]) AS types, json_extract_string(l.line, [{paths}]) AS texts
              FROM first_copies a JOIN chunk_lines l USING (line_id) WHERE a.event = $event)""",
        {"event": plan.name},
    )
    unread = ", ".join(["consent_fragments", *(f'"{f.column}"' for f in plan.fields if _is_sensitive_text(f))])
    # In no order: violations are matched back by row_id (sorting this frame and governance's raw
    # text cost about 5% of ingest's CPU)
    frame = text_frame(con, f"SELECT * EXCLUDE ({unread}) FROM event_rows").set_index("row_id")
    if frame.empty:
        return False
    found = violations_by_row(event, frame)
    failing = pd.DataFrame(
        {"row_id": list(found), "violations": [json.dumps(v) for v in found.values()]},
        columns=["row_id", "violations"],
    ).astype({"row_id": "int64", "violations": "str"})
    con.register("failing_rows", failing)
    _quarantine_failing(con, stamps, plan)
    # A view, not a copy: the kept rows carry the raw text, and each governance step reads them once.
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW kept_rows AS
        SELECT event_rows.*, coalesce({_VIOLATIONS}, [])::{VIOLATIONS_TYPE} AS plan_violations,
               CASE WHEN failing_rows.row_id IS NULL THEN 'valid' ELSE 'forwarded' END AS outcome
        FROM event_rows LEFT JOIN failing_rows USING (row_id)
        {"" if plan.mode == "forward" else "WHERE failing_rows.row_id IS NULL"}"""
    )
    return True


_VIOLATIONS = "from_json(failing_rows.violations, '[{\"type\": \"VARCHAR\", \"message\": \"VARCHAR\"}]')"


def _quarantine_failing(con, stamps: _Stamps, plan) -> None:
    if plan.mode == "forward":
        return
    stamps.staging.insert(
        con, "audit.quarantine",
        f"""SELECT $day AS dt, '{EVENTS_ORIGIN}' AS origin, source_key, line_number, message_id, $event AS event,
            {_VIOLATIONS}::{VIOLATIONS_TYPE} AS violations, $plan_version AS tracking_plan_version
        FROM event_rows JOIN failing_rows USING (row_id)""",
        {"day": stamps.day, "plan_version": stamps.plan_version, "event": plan.name},
    )
    _log_quarantined(con, stamps, "SELECT message_id, $event AS event, source_key, line_number "
                     "FROM event_rows JOIN failing_rows USING (row_id)", {"event": plan.name})


def _field_expressions(f: Field, position: int) -> list[str]:
    exprs = [f'{_json_type(f, position)} AS "{type_column(f)}"']
    if f.has_value_column or _is_sensitive_text(f):
        exprs.append(f'{_typed_value(f, position)} AS "{f.column}"')
    return exprs


def _json_type(f: Field, position: int) -> str:
    """The JSON type the sender used; NULL when the field is absent, null, or empty where an empty
    string is missing (the envelope's ids)."""
    json_type = f"nullif(types[{position}], 'NULL')"
    return f"CASE WHEN texts[{position}] <> '' THEN {json_type} END" if f.empty_is_missing else json_type


def _object_text(position: int) -> str:
    """The JSON of the value at `position` when it is an object, else NULL (a string's text is not JSON)."""
    return f"CASE WHEN types[{position}] = 'OBJECT' THEN texts[{position}] END"


def _is_sensitive_text(f: Field) -> bool:
    """Raw free text: extracted for governance to redact, never read into the validation frame."""
    return f.sensitive and f.type == "string"


def _typed_value(f: Field, position: int) -> str:
    """The field cast to its plan type, only when the sender used an allowed JSON type."""
    allowed = ", ".join(f"'{t}'" for t in f.allowed_json_types)
    text = f"texts[{position}]"
    value = {
        "string": text,
        "integer": f"TRY_CAST({text} AS BIGINT)",
        "number": finite_number_sql(text),
        "boolean": f"{text} = 'true'",
        "timestamp": f"timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ))",
    }[f.type]
    return f"CASE WHEN {_json_type(f, position)} IN ({allowed}) THEN {value} END"


def _log_quarantined(con, stamps: _Stamps, select_sql: str, params: dict | None = None) -> None:
    """Quarantined lines are logged too: delivered nowhere, every destination blocked as quarantined."""
    stamps.staging.insert(
        con, "audit.governance_log",
        f"""SELECT $day AS dt, 'quarantined' AS outcome, $plan_version AS tracking_plan_version,
            $policy_version AS policy_version, []::VARCHAR[] AS delivered,
            {stamps.blocked_as_quarantined()} AS blocked, logged.*
        FROM ({select_sql}) AS logged""",
        {**stamps.params(), **(params or {})},
    )


def _publish(con, stamps: _Stamps, tracking_plan: TrackingPlan, tallies: dict[str, _Tally],
             chunks: int) -> PartitionReport:
    """In one transaction: delete the day, insert what was staged, reconcile every object's lines
    against what landed, record the objects. A gap rolls it all back."""
    con.execute("BEGIN TRANSACTION")
    try:
        _delete_partition(con, stamps.day, tracking_plan)
        stamps.staging.publish(con)
        report = _reconcile(con, stamps, tallies, chunks)
        _write_file_rows(con, stamps.day, report)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return report


def _reconcile(con, stamps: _Stamps, tallies: dict[str, _Tally], chunks: int) -> PartitionReport:
    day = stamps.day
    landed = dict.fromkeys(tallies, (0, 0))
    for key, valid, quarantined in con.execute(
        """SELECT source_key,
                  count(*) FILTER (WHERE outcome IN ('valid', 'forwarded')),
                  count(*) FILTER (WHERE outcome = 'quarantined')
           FROM audit.governance_log WHERE dt = ? GROUP BY 1""",
        [day],
    ).fetchall():
        landed[key] = (valid, quarantined)
    files = tuple(
        FileReport(
            source_key=key,
            layout=t.obj.layout,
            source_id=t.obj.source_id,
            object_version=t.obj.version,
            lines_read=t.lines_read,
            blank_lines=t.blank_lines,
            valid_events=landed[key][0],
            quarantined=landed[key][1],
            duplicates=t.duplicates,
            non_ai_events=t.non_ai_events,
            erased_events=t.erased_events,
            identity_links=t.identity_links,
            identity_links_blocked=sum(t.identity_links_blocked_by.values()),
            identity_links_blocked_by=dict(t.identity_links_blocked_by),
        )
        for key, t in tallies.items()
    )
    gaps = [f"{f.source_key}: {f.unaccounted:+d} lines" for f in files if f.unaccounted]
    if gaps:
        raise ReconciliationError(f"{day}: lines read do not reconcile: {'; '.join(gaps)}")
    return PartitionReport(day, stamps.plan_version, stamps.policy.version, files,
                           quarantined_by_type(con, day, day, EVENTS_ORIGIN), chunks)


def _write_file_rows(con, day: date, report: PartitionReport) -> None:
    names = [f.name for f in fields(FileReport)]
    frame = pd.DataFrame([[getattr(f, n) for n in names] for f in report.files], columns=names)
    frame["identity_links_blocked_by"] = frame["identity_links_blocked_by"].map(json.dumps)
    con.register("file_reports", frame)
    con.execute("INSERT INTO audit.ingest_files BY NAME SELECT ? AS dt, * REPLACE ("
                "identity_links_blocked_by::JSON::MAP(VARCHAR, BIGINT) AS identity_links_blocked_by) "
                "FROM file_reports", [day])
