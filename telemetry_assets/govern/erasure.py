"""Erasure: deleting what the pipeline holds about one person when they ask, and keeping it deleted.

A request names a user id, anonymous ids, or both (`telemetry erase`). `erase_people` then, for
each request:

1. Finds what is theirs: the anonymous ids their user id was seen with (identity links, governed
   events, the secure store), and every conversation any of their ids held, so that the turns of a
   conversation begun before sign-in go too. Conversations are found in the warehouse; one whose
   calls never reached it (no analytics consent) is found in step 3, in the exports.
2. Records the request in `audit.erasure_requests` with SHA-256 digests of those ids and of their
   conversations' ids, never the ids. From then on ingest drops every call that carries one
   (counted per raw object as `erased_events`) and the source loads drop every row (`erased`), so
   a re-landed day, a late object or a backfill never brings the person back: not even an event of
   their conversation sent under another id (a backend's own), or a ticket an agent filed on it.
   The request is recorded before anything is deleted: a failure part-way leaves the suppression
   on, and the same request run again resumes it (the same `request_id`) and finishes.
3. Deletes their rows: from every export file in the lake that holds one, which is written again
   without them (the exports are read once for all the requests of one run, twice when a
   conversation is found there); from the secure store, by their ids or by the message ids of their
   events (rows archived before the store kept `anonymous_id`, and a backend's answer in their
   conversation, are found that way); and, in one transaction, from every table of the `governed`,
   `analytics` and `sources` schemas that has a `user_id`, `anonymous_id` or `conversation_id`
   column. A run that resumes a request also erases the conversations the run before it recorded,
   even where the rows that revealed them are gone: the exports are matched by digest, and the
   warehouse looks such a digest's id up.
4. Rewrites the warehouse and secure store files (`rewrite_database`, once per run), since DuckDB
   leaves deleted values in its files' free blocks.
5. Completes the request's row with the rows erased from each place.

What stays: `audit.governance_log` and `audit.quarantine` hold message ids, counts and violation
types, never a value or a user id: the record that events were processed and how. The log's rows of
the person's events are stamped `erased_at`, so that the checks and the consent-enforcement metric
no longer expect those events where they were delivered. The metric tables hold aggregates;
`telemetry erase` computes the joins and metrics of every day it erased from again, so they no
longer count the person. The raw dumps in the lake are the user's own, under their own bucket
lifecycle, as for retention.

`audit_erasures` is what the `no_erased_person_held` check looks for afterwards, on every day: a
request left unfinished, or a row of an erased person back in a table or the secure store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone

import pandas as pd
from isal import igzip

from telemetry_assets.govern.flight import gzip_member
from telemetry_assets.ingest.tables import (
    IDENTITY_LINKS,
    create_or_extend,
    ensure_audit_tables,
    existing_columns,
    existing_tables,
)

ERASURE_TABLE = "audit.erasure_requests"
ERASURE_COLUMNS = {
    "dt": "DATE",  # the UTC day the request was made
    "request_id": "VARCHAR",
    "requested_at": "TIMESTAMPTZ",
    "named_sha256s": "VARCHAR[]",  # the ids the request named, as digests: the same request run again resumes it
    "id_sha256s": "VARCHAR[]",  # the ids named and found linked, as digests: what ingest and the source loads drop
    "conversation_sha256s": "VARCHAR[]",  # the conversations held under those ids, as digests: dropped too
    "completed_at": "TIMESTAMPTZ",  # NULL until every place was erased
    # place -> rows the run that completed it erased: governed.ai_user_action, secure_store.raw_text, exports/...
    "rows_erased": "MAP(VARCHAR, BIGINT)",
    "export_files_rewritten": "BIGINT",
    "log_rows_marked": "BIGINT",  # governance-log rows of the person's events, stamped erased_at (not deleted)
}
ERASED_SCHEMAS = ("governed", "analytics", "sources")  # the schemas holding rows about people
# the id columns a row is someone's by, and the temp table of the person's ids each is matched against
ID_LISTS = {"user_id": "erase_user_ids", "anonymous_id": "erase_anonymous_ids", "conversation_id": "erase_conversation_ids"}
SECURE_PLACE = "secure_store.raw_text"
EXPORTS_PREFIX = "exports/"


@dataclass(frozen=True)
class Person:
    """Every id that is one person's: those the request named, those found linked to them, their
    conversations, and the message ids of their events that the warehouse or the secure store holds."""

    user_ids: frozenset[str]
    anonymous_ids: frozenset[str]
    conversation_ids: frozenset[str]
    message_ids: frozenset[str]

    def digests(self) -> list[str]:
        """The digests of the person's own ids, which ingest and the source loads match calls and
        rows against, with `conversation_digests`. A message id names one event, already erased."""
        return digests(self.user_ids | self.anonymous_ids)

    def conversation_digests(self) -> list[str]:
        return digests(self.conversation_ids)


@dataclass(frozen=True)
class ErasureReport:
    request_id: str
    ids_suppressed: int
    conversations_suppressed: int
    rows_erased: dict[str, int]  # place -> rows, places with none left out
    export_files_rewritten: int  # files that held a row of theirs, each counted once
    log_rows_marked: int  # governance-log rows of the person's events, stamped `erased_at`
    days: list[date]  # days of warehouse rows erased: their joins and metrics are computed again


def id_digest(value: str) -> str:
    """The SHA-256 of an id as lowercase hex: what DuckDB's `sha256` gives, so SQL can match it."""
    return hashlib.sha256(value.encode()).hexdigest()


def digests(ids) -> list[str]:
    """The ids' digests, each once, sorted: how a request's are stored and compared."""
    return sorted({id_digest(value) for value in ids})


def load_erased_ids(con) -> int:
    """The digests of every erased id, user, anonymous and conversation alike, into the temp table
    `erased_ids`; returns how many. (One list: an id of one kind spelt as an erased id of another
    would be dropped too, which ids made as user, device and conversation ids never are.)"""
    con.execute("CREATE OR REPLACE TEMP TABLE erased_ids (id_sha256 VARCHAR)")
    if ERASURE_TABLE in existing_tables(con):
        # a request recorded before conversations were has none
        lists = [c for c in ("id_sha256s", "conversation_sha256s") if c in existing_columns(con, ERASURE_TABLE)]
        con.execute(f"INSERT INTO erased_ids SELECT DISTINCT unnest(flatten([{', '.join(f'coalesce({c}, [])' for c in lists)}])) "
                    f"FROM {ERASURE_TABLE}")
    return con.execute("SELECT count(*) FROM erased_ids").fetchone()[0]


def erased_sql(column: str) -> str:
    """True when the id in `column` is an erased one (`load_erased_ids` made the table)."""
    return f"sha256({column}) IN (SELECT id_sha256 FROM erased_ids)"


class ErasureIncomplete(RuntimeError):
    """Recorded requests stopped part-way: their people are suppressed, not yet erased everywhere."""


@dataclass(frozen=True)
class Request:
    """One person to erase, as a request names them: user ids, anonymous ids, or both."""

    user_ids: tuple[str, ...] = ()
    anonymous_ids: tuple[str, ...] = ()

    def named_digests(self) -> list[str]:
        return digests((*self.user_ids, *self.anonymous_ids))


class RequestsError(ValueError):
    """A requests file that cannot be read as requests; the message names the file and the line."""


REQUEST_KEYS = {"user_id": "user_ids", "anonymous_id": "anonymous_ids"}


def load_requests(path) -> list[Request]:
    """A JSON-lines file of requests, one person per line: `{"user_id": "u1"}`,
    `{"user_id": "u1", "anonymous_id": ["a1", "a2"]}`, or anonymous ids alone; each value an id or
    a list of ids, every id a non-empty string. Blank lines are skipped; anything else is refused
    whole, naming the line, before anything is erased."""
    with open(path, encoding="utf-8") as lines:
        requests = [_request(line, f"{path} line {number}") for number, line in enumerate(lines, 1) if line.strip()]
    if not requests:
        raise RequestsError(f"{path} names nobody")
    return requests


def _request(line: str, where: str) -> Request:
    try:
        named = json.loads(line)
    except ValueError:
        raise RequestsError(f"{where}: not JSON") from None
    if not isinstance(named, dict) or not named or set(named) - set(REQUEST_KEYS):
        raise RequestsError(f"{where}: expected an object with user_id, anonymous_id or both")
    ids = {}
    for key, value in named.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise RequestsError(f"{where}: {key} must be an id or a list of ids, each a non-empty string")
        ids[REQUEST_KEYS[key]] = tuple(values)
    return Request(**ids)


def erase_people(store, warehouse, secure_store, requests: list[Request]) -> list[ErasureReport]:
    """Erase each request's person from the warehouse, the secure store and the lake's exports
    (steps above). The exports, most of the work, are read once for every request together."""
    with warehouse.get_connection() as con, secure_store.get_connection() as secure_con:
        ensure_audit_tables(con)  # a warehouse landed by an older version gains the columns erasure stamps
        people = [find_person(con, secure_con, list(r.user_ids), list(r.anonymous_ids)) for r in requests]
        request_ids = [record_request(con, r.named_digests(), person) for r, person in zip(requests, people)]
        # a resumed request also erases the conversations its earlier run recorded
        recorded = [recorded_conversations(con, request_id) for request_id in request_ids]
    try:
        return _erase(request_ids, people, recorded, store, warehouse, secure_store)
    except Exception as error:
        raise ErasureIncomplete(
            f"erasure {', '.join(request_ids)} stopped part-way ({type(error).__name__}: {error}); the calls of "
            "everyone it names are suppressed already, and running the same requests again finishes it") from error


@dataclass
class _Erased:
    """What has been erased of one person so far."""

    rows: dict[str, int] = field(default_factory=dict)  # place -> rows
    export_files: set[str] = field(default_factory=set)  # keys of the files written again without their rows
    exported_message_ids: set[str] = field(default_factory=set)
    conversation_ids: set[str] = field(default_factory=set)  # theirs, with those of their rows in the exports
    conversation_sha256s: set[str] = field(default_factory=set)  # recorded theirs, with those found in the exports
    log_rows_marked: int = 0
    days: list[date] = field(default_factory=list)


def _erase(request_ids: list[str], people: list[Person], recorded: list[list[str]], store, warehouse,
           secure_store) -> list[ErasureReport]:
    def record_conversations(whose: int, conversation_sha256s: set[str]) -> None:
        with warehouse.get_connection() as con:
            add_conversations(con, request_ids[whose], conversation_sha256s)

    erased = erase_from_exports(store, people, recorded, record_conversations)
    with warehouse.get_connection() as con, secure_store.get_connection() as secure_con:
        people = [_with_found_conversations(con, person, done) for person, done in zip(people, erased)]
        for person, done in zip(people, erased):
            message_ids = person.message_ids | done.exported_message_ids
            done.rows[SECURE_PLACE] = erase_from_secure_store(secure_con, person, message_ids)
            warehouse_rows, done.days, done.log_rows_marked = erase_from_warehouse(con, person, message_ids)
            done.rows.update(warehouse_rows)
    warehouse.rewrite()
    secure_store.rewrite()
    reports = [ErasureReport(request_id, len(person.digests()), len(done.conversation_sha256s),
                             {place: n for place, n in done.rows.items() if n},
                             len(done.export_files), done.log_rows_marked, done.days)
               for request_id, person, done in zip(request_ids, people, erased)]
    with warehouse.get_connection() as con:
        for report in reports:
            complete_request(con, report.request_id, report.rows_erased, report.export_files_rewritten,
                             report.log_rows_marked)
    return reports


def _with_found_conversations(con, person: Person, done: _Erased) -> Person:
    """The person with the conversations the exports showed theirs. A recorded conversation whose id
    neither the warehouse nor the exports gave (the run that found it stopped after erasing its
    rows from the exports) is looked up by digest in the warehouse: rarely needed, and the only
    place a conversation's every id is hashed."""
    known = set(done.conversation_ids)
    unknown = done.conversation_sha256s - set(digests(known))
    if unknown:
        _register_ids(con, "erase_conversation_sha256s", unknown)
        for table, columns in _person_tables(con):
            if "conversation_id" in columns:
                known |= _values(con, f"SELECT DISTINCT v FROM (SELECT DISTINCT conversation_id AS v FROM {table}) "
                                      "WHERE sha256(v) IN (SELECT id FROM erase_conversation_sha256s)")
    return replace(person, conversation_ids=frozenset(known))


def find_person(con, secure_con, user_ids: list[str], anonymous_ids: list[str]) -> Person:
    """The ids named, the anonymous ids seen with the user ids, every conversation held under any
    of them, and the message ids of their events in the warehouse and the secure store. Found before
    anything is deleted, and erased in the order exports, secure store, warehouse: the warehouse is
    where most of this is found, so a request that failed part-way finds it again when run again."""
    _register_ids(con, "erase_user_ids", user_ids)
    _register_ids(secure_con, "erase_user_ids", user_ids)
    anonymous = set(anonymous_ids)
    tables = _person_tables(con)
    for table, columns in tables:
        if {"user_id", "anonymous_id"} <= columns:
            anonymous |= _values(con, f"SELECT anonymous_id FROM {table} WHERE user_id IN (SELECT id FROM erase_user_ids)")
    anonymous |= _values(secure_con, "SELECT anonymous_id FROM raw_text WHERE user_id IN (SELECT id FROM erase_user_ids)")
    _register_ids(con, "erase_anonymous_ids", anonymous)
    _register_ids(con, "erase_conversation_ids", [])  # none is known theirs yet: found by their ids alone
    conversations = set()
    for table, columns in tables:
        if "conversation_id" in columns:
            conversations |= _values(con, f"SELECT conversation_id FROM {table} WHERE {_owned_sql(columns)}")
    _register_ids(con, "erase_conversation_ids", conversations)
    _register_ids(secure_con, "erase_anonymous_ids", anonymous)
    message_ids = _values(secure_con, "SELECT message_id FROM raw_text WHERE user_id IN (SELECT id FROM erase_user_ids) "
                                      "OR anonymous_id IN (SELECT id FROM erase_anonymous_ids)")
    for table, columns in tables:
        if "message_id" in columns:
            message_ids |= _values(con, f"SELECT message_id FROM {table} WHERE {_owned_sql(columns)}")
    return Person(frozenset(user_ids), frozenset(anonymous), frozenset(conversations), frozenset(message_ids))


def record_request(con, named: list[str], person: Person) -> str:
    """Record the request, uncompleted, with the digests that suppress the person from now on; an
    uncompleted request that named the same ids (one that failed part-way) is resumed instead, its
    digests joined by any found this time."""
    create_or_extend(con, ERASURE_TABLE, "One row per erasure request: the digests of the ids it erased "
                     "(suppressed at ingest from then on), and the rows it erased from each place.", ERASURE_COLUMNS)
    unfinished = con.execute(f"SELECT request_id FROM {ERASURE_TABLE} WHERE completed_at IS NULL AND named_sha256s = ?",
                             [named]).fetchall()
    if unfinished:
        [(request_id,)] = unfinished
        con.execute(f"""UPDATE {ERASURE_TABLE} SET id_sha256s = {_joined("id_sha256s")},
                        conversation_sha256s = {_joined("conversation_sha256s")} WHERE request_id = $request_id""",
                    {"id_sha256s": person.digests(), "conversation_sha256s": person.conversation_digests(),
                     "request_id": request_id})
        return request_id
    request_id, now = str(uuid.uuid4()), datetime.now(timezone.utc)
    con.execute(f"INSERT INTO {ERASURE_TABLE} (dt, request_id, requested_at, named_sha256s, id_sha256s, "
                "conversation_sha256s) VALUES (?, ?, ?, ?, ?, ?)",
                [now.date(), request_id, now, named, person.digests(), person.conversation_digests()])
    return request_id


def recorded_conversations(con, request_id: str) -> list[str]:
    """The conversation digests the request has recorded so far."""
    [(recorded,)] = con.execute(f"SELECT coalesce(conversation_sha256s, []) FROM {ERASURE_TABLE} WHERE request_id = ?",
                                [request_id]).fetchall()
    return recorded


def add_conversations(con, request_id: str, conversation_sha256s) -> None:
    """Record more conversations as the request's person's: suppressed from now on, like the rest."""
    con.execute(f"UPDATE {ERASURE_TABLE} SET conversation_sha256s = {_joined('conversation_sha256s')} "
                "WHERE request_id = $request_id",
                {"conversation_sha256s": sorted(conversation_sha256s), "request_id": request_id})


def _joined(column: str) -> str:
    """The recorded digests of `column` with those of the parameter of the same name, each once, sorted."""
    return f"list_sort(list_distinct(list_concat(coalesce({column}, []), ${column})))"


def erase_from_warehouse(con, person: Person, message_ids: set[str]) -> tuple[dict[str, int], list[date], int]:
    """In one transaction: delete the person's rows from every table of the erased schemas, and
    stamp `erased_at` on the governance-log rows of `message_ids` (their events wherever they
    arrived). Returns the rows deleted per table, the days they were on, and the log rows stamped.

    The ledgers keep reconciling: the log's deliveries to the warehouse count only events not
    erased, and each raw object's `audit.ingest_files` row counts the identity links it gave that
    were erased since (`identity_links_erased`). Both start again from nothing when the day is
    landed again, since ingest then drops the person's calls itself."""
    _register_person(con, person, message_ids)
    rows, days = {}, set()
    con.execute("BEGIN TRANSACTION")
    try:
        marked = _mark_logged_events(con)
        _count_erased_links(con)
        for table, columns in _person_tables(con):
            owned = _owned_sql(columns)
            days |= _values(con, f"SELECT dt FROM {table} WHERE {owned}") if "dt" in columns else set()
            rows[table] = con.execute(f"DELETE FROM {table} WHERE {owned}").fetchone()[0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return rows, sorted(days), marked


def _mark_logged_events(con) -> int:
    return con.execute("UPDATE audit.governance_log SET erased_at = now() "
                       "WHERE message_id IN (SELECT id FROM erase_message_ids) AND erased_at IS NULL").fetchone()[0]


def _count_erased_links(con) -> None:
    if IDENTITY_LINKS not in existing_tables(con):
        return
    con.execute(
        f"""UPDATE audit.ingest_files f SET identity_links_erased = coalesce(f.identity_links_erased, 0) + e.links
        FROM (SELECT dt, source_key, count(*) AS links FROM {IDENTITY_LINKS}
              WHERE {_owned_sql(existing_columns(con, IDENTITY_LINKS))} GROUP BY ALL) e
        WHERE f.dt = e.dt AND f.source_key = e.source_key""")


def erase_from_secure_store(secure_con, person: Person, message_ids: set[str]) -> int:
    """Delete the person's archived text: by their ids, or by the message ids of their events
    (rows archived before the store kept `anonymous_id`, or without the user id, or a backend's
    answer in their conversation, are found so)."""
    _register_person(secure_con, person, message_ids)
    return secure_con.execute(
        """DELETE FROM raw_text WHERE user_id IN (SELECT id FROM erase_user_ids)
           OR anonymous_id IN (SELECT id FROM erase_anonymous_ids) OR message_id IN (SELECT id FROM erase_message_ids)"""
    ).fetchone()[0]


def erase_from_exports(store, people: list[Person], recorded: list[list[str]], record_conversations) -> list[_Erased]:
    """Write every export file that holds a row of one of `people` again without it; returns, per
    person, the rows erased per destination (`exports/<destination>`), the files written that held
    theirs, the message ids of their rows, and their conversations: `person.conversation_ids`, those
    `recorded` for them before, and those found here.

    A conversation whose calls never reached the warehouse (no analytics consent) is found here,
    from the conversation id of a row under the person's own ids. Before a file losing such a row is
    written, `record_conversations(whose, digests)` records the conversation as theirs, and once
    every file has been read, they are all read again for its rows sent under other ids (a
    backend's answer). A request run again after a failure still finds those rows though no row of
    the person's names the conversation any more: a recorded conversation whose id is not known is
    matched by digest (only then is every conversation id hashed).

    A day of 1M events has 1.36 GB of exports, so rows are not parsed to be looked at: one regex
    pass finds the id fields (`"user_id":"..."`) whose value is one of theirs (3 s for that day,
    where parsing every row took 45 s), only those rows are parsed, to decide exactly whose they
    are, and a file none of whose rows is anyone's is left as it is."""
    spellings = {column: _json_spellings(value for person in people for value in getattr(person, ids))
                 for column, ids in (("user_id", "user_ids"), ("anonymous_id", "anonymous_ids"),
                                     ("conversation_id", "conversation_ids"))}
    erased = [_Erased(conversation_ids=set(person.conversation_ids),
                      conversation_sha256s={*person.conversation_digests(), *earlier})
              for person, earlier in zip(people, recorded)]
    unknown = set().union(*(set(earlier) - set(person.conversation_digests()) for person, earlier in zip(people, recorded)))
    while _erase_export_rows(store, people, spellings, unknown, erased, record_conversations):
        pass
    return erased


def _erase_export_rows(store, people: list[Person], spellings, unknown: set[str], erased: list[_Erased],
                       record_conversations) -> bool:
    """One pass over the export files; True when it found a conversation of someone's it did not know."""
    found_new = False
    for obj in store.list_objects(EXPORTS_PREFIX):
        if not obj.key.endswith(".jsonl.gz"):
            continue
        with contextlib.closing(store.open(obj.key)) as stream:
            lines = igzip.decompress(stream.read())
        owned = []  # (start, end, whose, row)
        for start, end in _lines_naming(lines, spellings, unknown):
            row = json.loads(lines[start:end])
            whose = next((i for i, person in enumerate(people) if _owns(person, erased[i], row)), None)
            if whose is not None:
                owned.append((start, end, whose, row))
        if not owned:
            continue
        for whose, found in _new_conversations(owned, erased).items():
            found_sha256s = digests(found)
            record_conversations(whose, found_sha256s)
            erased[whose].conversation_sha256s.update(found_sha256s)
            spellings["conversation_id"] |= _json_spellings(found)
            found_new = True
        store.put(obj.key, gzip_member(_without(lines, [(start, end) for start, end, *_ in owned])))
        place = EXPORTS_PREFIX + obj.key.removeprefix(EXPORTS_PREFIX).split("/")[0]
        for _, _, whose, row in owned:
            done = erased[whose]
            done.export_files.add(obj.key)
            done.rows[place] = done.rows.get(place, 0) + 1
            if row.get("message_id") is not None:
                done.exported_message_ids.add(row["message_id"])
            if isinstance(row.get("conversation_id"), str):
                done.conversation_ids.add(row["conversation_id"])
    return found_new


def _owns(person: Person, done: _Erased, row: dict) -> bool:
    """The row names one of the person's ids, or one of their conversations (every one known has
    its digest in `done.conversation_sha256s`, those known by digest alone too)."""
    return (row.get("user_id") in person.user_ids or row.get("anonymous_id") in person.anonymous_ids
            or _conversation_digest(row) in done.conversation_sha256s)


def _new_conversations(owned, erased: list[_Erased]) -> dict[int, set[str]]:
    """Per person, the ids of the conversations of their rows that are not yet known theirs."""
    found: dict[int, set[str]] = {}
    for _, _, whose, row in owned:
        digest = _conversation_digest(row)
        if digest is not None and digest not in erased[whose].conversation_sha256s:
            found.setdefault(whose, set()).add(row["conversation_id"])
    return found


def _conversation_digest(row: dict) -> str | None:
    """The digest of the row's conversation id; None when it has none (absent, null, not a string)."""
    conversation = row.get("conversation_id")
    return id_digest(conversation) if isinstance(conversation, str) else None


# an id field and its string value, escapes included (the loop unrolled: twice as fast as `(?:[^"\\]|\\.)*`)
_ID_FIELD = re.compile(rb'"(user_id|anonymous_id|conversation_id)"\s*:\s*"([^"\\]*(?:\\.[^"\\]*)*)"')


def _json_spellings(ids) -> set[bytes]:
    """An id as a JSON string's inside may spell it: as it is, or with non-ASCII escaped."""
    return {json.dumps(value, ensure_ascii=ascii)[1:-1].encode() for value in ids for ascii in (True, False)}


def _lines_naming(lines: bytes, spellings: dict[str, set[bytes]], unknown: set[str]) -> list[tuple[int, int]]:
    """(start, end) of each line with an id field whose value is one of `spellings` of that field,
    or a conversation id whose digest is one of `unknown`."""
    found = {}
    for match in _ID_FIELD.finditer(lines):
        field_name, value = match[1].decode(), match[2]
        if value in spellings[field_name] or (unknown and field_name == "conversation_id"
                                              and _json_string_digest(value) in unknown):
            start = lines.rfind(b"\n", 0, match.start()) + 1
            end = lines.find(b"\n", match.end())
            found[start] = len(lines) if end < 0 else end + 1
    return sorted(found.items())


def _json_string_digest(inside: bytes) -> str:
    """The digest of the id a JSON string's inside spells (escapes decoded)."""
    return id_digest(json.loads(b'"' + inside + b'"') if b"\\" in inside else inside.decode())


def _without(lines: bytes, spans: list[tuple[int, int]]):
    """The bytes of `lines` outside the sorted `spans`, as views (no copy of a day's exports)."""
    view, previous = memoryview(lines), 0
    for start, end in spans:
        yield view[previous:start]
        previous = end
    yield view[previous:]


def complete_request(con, request_id: str, rows_erased: dict[str, int], files: int, log_rows_marked: int) -> None:
    con.execute(
        f"""UPDATE {ERASURE_TABLE} SET completed_at = now(), export_files_rewritten = ?, log_rows_marked = ?,
            rows_erased = MAP(?::VARCHAR[], ?::BIGINT[]) WHERE request_id = ?""",
        [files, log_rows_marked, list(rows_erased), list(rows_erased.values()), request_id])


@dataclass(frozen=True)
class ErasureAudit:
    """What the `no_erased_person_held` check finds: requests that stopped part-way, and rows of
    erased people still held, per place (counts only: the check knows people by digests)."""

    requests: int
    unfinished: list[str]  # request ids not completed: their people are suppressed, not yet erased everywhere
    held: dict[str, int]  # place -> rows still held that an erased id or an erased event's message id names

    @property
    def passed(self) -> bool:
        return not self.unfinished and not self.held


def audit_erasures(con, secure_con) -> ErasureAudit:
    """Look for what every erasure request should have taken out, over every day: rows of the erased
    schemas and of the secure store whose user, anonymous or conversation id digests to one a request
    suppresses, or whose message id is one of an event the governance log stamped `erased_at`. That catches a
    table restored from a backup, a hand edit, or a load that did not drop the person, as well as a
    request left unfinished. Ids are hashed once each, not once per row."""
    if ERASURE_TABLE not in existing_tables(con):
        return ErasureAudit(0, [], {})
    requests, unfinished = con.execute(
        f"SELECT count(*), coalesce(list(request_id ORDER BY requested_at) FILTER (completed_at IS NULL), []) "
        f"FROM {ERASURE_TABLE}").fetchone()
    load_erased_ids(con)
    erased_events = _values(con, "SELECT message_id FROM audit.governance_log WHERE erased_at IS NOT NULL") \
        if "erased_at" in existing_columns(con, "audit.governance_log") else set()
    _register_ids(con, "erase_message_ids", erased_events)
    held = {}
    for table, columns in _tables_with(con, {*ID_LISTS, "message_id"}):
        held[table] = con.execute(f"SELECT count(*) FROM {table} WHERE {_erased_row_sql(table, columns)}").fetchone()[0]
    secure_con.register("erased_ids", con.execute("SELECT id_sha256 FROM erased_ids").fetchdf())
    _register_ids(secure_con, "erase_message_ids", erased_events)
    held[SECURE_PLACE] = secure_con.execute(
        f"SELECT count(*) FROM raw_text WHERE {_erased_row_sql('raw_text', {'user_id', 'anonymous_id', 'message_id'})}"
    ).fetchone()[0]
    return ErasureAudit(requests, unfinished, {place: rows for place, rows in held.items() if rows})


def _erased_row_sql(table: str, columns: set[str]) -> str:
    """A row an erasure should have taken: an erased id in an id column (each distinct value hashed
    once), or the message id of an erased event (`erase_message_ids`)."""
    matches = [f'"{column}" IN (SELECT v FROM (SELECT DISTINCT "{column}" AS v FROM {table}) WHERE {erased_sql("v")})'
               for column in ID_LISTS if column in columns]
    if "message_id" in columns:
        matches.append('"message_id" IN (SELECT id FROM erase_message_ids)')
    return " OR ".join(matches)


def _person_tables(con) -> list[tuple[str, set[str]]]:
    """The tables of the erased schemas with an id column, each with its columns."""
    return _tables_with(con, set(ID_LISTS))


def _tables_with(con, id_columns: set[str]) -> list[tuple[str, set[str]]]:
    """The tables of the erased schemas with one of `id_columns`, each with all its columns."""
    tables = sorted(t for t in existing_tables(con) if t.split(".")[0] in ERASED_SCHEMAS)
    with_columns = [(table, existing_columns(con, table)) for table in tables]
    return [(table, columns) for table, columns in with_columns if columns & id_columns]


def _owned_sql(columns: set[str]) -> str:
    """A row is the person's when any id column it has holds one of their ids."""
    return " OR ".join(f'"{column}" IN (SELECT id FROM {ids})' for column, ids in ID_LISTS.items() if column in columns)


def _register_person(con, person: Person, message_ids) -> None:
    """The person's ids as the temp tables `ID_LISTS` names, and `message_ids` as `erase_message_ids`."""
    for column, ids in (("user_id", person.user_ids), ("anonymous_id", person.anonymous_ids),
                        ("conversation_id", person.conversation_ids)):
        _register_ids(con, ID_LISTS[column], ids)
    _register_ids(con, "erase_message_ids", message_ids)


def _register_ids(con, name: str, ids) -> None:
    con.register(name, pd.DataFrame({"id": pd.Series(sorted(ids), dtype="str")}))


def _values(con, sql: str) -> set:
    """The query's single column as a set, NULL left out."""
    return {value for (value,) in con.execute(sql).fetchall() if value is not None}
