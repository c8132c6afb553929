"""Load one business source for one day: read, map columns, validate, dedupe by key, land.

Files are CSV (first non-blank line is the header) or JSONL, gzip or not, read with the same line
reader as events, so truncation, invalid UTF-8 and over-long lines are quarantined per line. A
quoted CSV field may hold line breaks (RFC 4180: helpdesk exports put whole ticket descriptions in
one); the row is then numbered by its first line. CSV is read strictly, so a quote left open, or
closed mid-field, quarantines its row as `Malformed-Line` instead of swallowing the rows after it
into a field. Rows are mapped in Python, `BATCH_ROWS` at a time, into a DuckDB
table; typing and validation are the same DuckDB casts and pandera mapping as events use, also a
batch at a time. Sources grow with traffic (300k conversions on a day of 20M events), and holding
them whole in Python took the process to 1.3 GB.

Dated sources read `sources/<name>/dt=<day>/`. A snapshot source (`dated: false`) reads every file
under `sources/<name>/` whose `dt=` folder (if any) is not after the day, and keeps, per key, the
row of the latest file: the table's `dt` is the day the snapshot describes.
A row whose `user_id` belongs to a person who asked to be erased, or whose `conversation_id` is one
of theirs, is counted as `erased` and goes no further (`telemetry_assets/govern/erasure.py`).
Reconciliation per day: rows read = valid + quarantined + duplicates + erased (+ blank and header lines).
`audit.source_files` is the ledger of the files each load read, with the version it listed, as
`audit.ingest_files` is for raw events: a file that arrives after its day was loaded, or is written
again, is found by comparing the lake with it (see `late_objects_sensor`).

A CSV header is the file's schema. A header without a required mapped column, or naming a mapped
column twice, quarantines every row of its file with that reason (instead of each row failing for a
value it could never have had). An optional mapped column it lacks is NULL on every row, as a key
a JSON record leaves out is, and the report names it: an export that renamed `revenue` is seen,
not silently loaded without revenue.
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd

from checks.sources import SourceSpec, compile_source, raw_column
from checks.tracking_plan import FIELD_TYPES, finite_number_sql, violations_by_row
from telemetry_assets.govern.erasure import erased_sql, load_erased_ids
from telemetry_assets.ingest.lines import DEFAULT_MAX_LINE_BYTES, read_lines
from telemetry_assets.ingest.tables import VIOLATIONS_TYPE, create_or_extend, ensure_audit_tables, replacing_day
from telemetry_assets.record_batches import frame_batches

if TYPE_CHECKING:
    from resources.object_store import ListedObject

BATCH_ROWS = 50_000
SOURCE_FILES = "audit.source_files"

SOURCE_SUFFIXES = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".json", ".json.gz")
_DT_FOLDER = re.compile(r"/dt=(\d{4}-\d{2}-\d{2})/")
# A CSV field may be as long as a line may be (the csv module's default stops at 128 KiB, and a
# long ticket description is a real row); the limit is the module's, so it is raised, never lowered.
csv.field_size_limit(max(csv.field_size_limit(), DEFAULT_MAX_LINE_BYTES))


@dataclass(frozen=True)
class SourceReport:
    """Grain: one source, one day."""

    source: str
    day: date
    objects: int
    rows_read: int
    valid: int
    quarantined: int
    duplicates: int
    erased: int  # rows of a person who asked to be erased: dropped unvalidated
    columns_not_in_header: tuple[str, ...] = ()  # "<object key>: <column>", optional columns read as NULL

    @property
    def unaccounted(self) -> int:
        return self.rows_read - self.valid - self.quarantined - self.duplicates - self.erased


def source_objects(store, spec: SourceSpec, day: date) -> list[ListedObject]:
    """The files a load of `day` reads, in key order."""
    if spec.dated:
        listed = store.list_objects(f"sources/{spec.name}/dt={day.isoformat()}/")
        return [o for o in listed if o.key.endswith(SOURCE_SUFFIXES)]
    listed = [o for o in store.list_objects(f"sources/{spec.name}/") if o.key.endswith(SOURCE_SUFFIXES)]
    return [o for o in listed if not (m := _DT_FOLDER.search(o.key)) or date.fromisoformat(m[1]) <= day]


def load_source(store, con, spec: SourceSpec, day: date) -> SourceReport:
    """Replace the day's rows of `sources.<name>` (and its quarantine rows) with what the files say."""
    files = source_objects(store, spec, day)
    keys = [f.key for f in files]
    _ensure_tables(con, spec)
    rows, bad, not_in_header = _stage_rows(con, store, spec, keys)
    with replacing_day(con, day, [spec.table]):
        con.execute("DELETE FROM audit.quarantine WHERE dt = ? AND origin = ?", [day, spec.table])
        con.execute(f"DELETE FROM {SOURCE_FILES} WHERE dt = ? AND source = ?", [day, spec.table])
        _record_files(con, spec, day, files, bad)
        erased = _drop_erased(con, spec)
        valid, failing, duplicates = _validate_and_land(con, spec, day)
        _quarantine(con, spec, day, bad + failing)
    report = SourceReport(spec.table, day, len(keys), rows + len(bad), valid, len(bad) + len(failing), duplicates,
                          erased, tuple(not_in_header))
    if report.unaccounted:
        raise RuntimeError(f"{spec.table} {day}: {report.unaccounted} rows unaccounted for")
    return report


def _stage_rows(con, store, spec: SourceSpec, keys: list[str]) -> tuple[int, list, list[str]]:
    """Every readable row of the files, as text, into the temp table `source_rows`; returns how
    many, the refused lines as quarantine rows, and the optional columns CSV headers lacked."""
    columns = ["source_key", "line_number", *(raw_column(c) for c in spec.columns)]
    con.execute("CREATE OR REPLACE TEMP TABLE source_rows ("
                + ", ".join(f'"{c}" {"BIGINT" if c == "line_number" else "VARCHAR"}' for c in columns) + ")")
    staged, batch, bad, not_in_header = 0, [], [], []

    def stage(batch: list) -> int:
        con.register("source_batch", pd.DataFrame(batch, columns=columns).astype({c: "str" for c in columns[2:]}))
        con.execute("INSERT INTO source_rows SELECT * FROM source_batch")
        return len(batch)

    for key in keys:
        for line_number, record, violation in _records(store, key, spec, not_in_header):
            if violation:
                bad.append((key, line_number, [violation]))
                continue
            batch.append([key, line_number, *(_as_text(record.get(c.name)) for c in spec.columns)])
            if len(batch) == BATCH_ROWS:
                staged += stage(batch)
                batch = []
    if batch:
        staged += stage(batch)
    return staged, bad, not_in_header


def _records(store, key: str, spec: SourceSpec, not_in_header: list[str]):
    """(line number, record, violation) per row; blank lines and the CSV header are skipped. The
    optional columns a CSV header lacks are added to `not_in_header` as "<key>: <column>"."""
    with contextlib.closing(store.open(key)) as stream:
        lines = read_lines(stream)
        if key.endswith((".csv", ".csv.gz")):
            absent: list[str] = []
            yield from _csv_records(lines, spec, absent)
            not_in_header += [f"{key}: {column}" for column in absent]
        else:
            yield from _json_records(lines)


def _malformed(message: str) -> dict:
    return {"type": "Malformed-Line", "message": message}


def _json_records(lines):
    for line in lines:
        if line.read_error:
            yield line.line_number, None, _malformed(line.read_error)
        elif line.text.strip():
            yield line.line_number, *_json_record(line.text)


def _csv_records(lines, spec: SourceSpec, absent: list[str]):
    """The csv module reads the rows, pulling another line while a quoted field is open; a row it
    refuses is quarantined and reading goes on from the next line. The optional columns the header
    lacks are added to `absent`."""
    feed = _CsvFeed(lines)
    reader = csv.reader(feed, strict=True)
    header = refusal = None
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            span = f"lines {feed.row_start} to {feed.last_line}" if feed.last_line > feed.row_start else "line"
            yield feed.row_start, None, _malformed(f"not valid CSV on its {span}: {error}")
            values = []
        yield from feed.end_row()
        if not "".join(values).strip():  # a blank line, or a row refused above
            continue
        if header is None:
            header, refusal = values, _header_refusal(values, spec)
            absent += [c.name for c in spec.columns if not c.required and c.name not in header]
        elif refusal:
            yield feed.row_start, None, refusal
        elif len(values) != len(header):
            yield feed.row_start, None, _malformed(f"{len(values)} fields where the header has {len(header)}")
        else:
            yield feed.row_start, dict(zip(header, values)), None
    yield from feed.end_row()


def _header_refusal(header: list[str], spec: SourceSpec) -> dict | None:
    """Why every row under this header is refused, or None: a required column it lacks, or a
    mapped column it names twice (which of the two values is meant cannot be known)."""
    lacking = [c for c in spec.columns if c.required and c.name not in header]
    if lacking:
        mapped = ", ".join(f"{spec.name}.{c.column} from {c.name}" for c in lacking)
        return {"type": "Required-Missing",
                "message": f"the file's header lacks a required column (sources.yaml maps {mapped}); "
                           f"the header is: {', '.join(header)}"}
    twice = [c.name for c in spec.columns if header.count(c.name) > 1]
    if twice:
        return _malformed(f"the file's header names {', '.join(twice)} more than once")
    return None


class _CsvFeed:
    """An object's readable lines for `csv.reader`, line breaks kept (a quoted field may hold
    them). Lines that could not be read are set aside with their numbers, and `row_start` is the
    number of the first line of the row being read, `last_line` of the last line read."""

    def __init__(self, lines):
        self._lines = lines
        self._unreadable: list[tuple[int, None, dict]] = []
        self._row_done = True
        self.row_start = self.last_line = 0

    def __iter__(self):
        for line in self._lines:
            if line.read_error:
                self._unreadable.append((line.line_number, None, _malformed(line.read_error)))
                continue
            if self._row_done:
                self.row_start, self._row_done = line.line_number, False
            self.last_line = line.line_number
            yield line.text + "\n"

    def end_row(self) -> list[tuple[int, None, dict]]:
        """The next line read starts a row; returns the unreadable lines set aside meanwhile."""
        taken, self._unreadable, self._row_done = self._unreadable, [], True
        return taken


def _json_record(text: str):
    try:
        record = json.loads(text)
    except ValueError:
        return None, _malformed("not valid JSON (truncated or corrupt line)")
    if not isinstance(record, dict):
        return None, _malformed(f"a JSON {type(record).__name__} line, not an object")
    return record, None


def _as_text(value) -> str | None:
    """A raw value as text for casting: '' and null are missing; JSON booleans and numbers as JSON writes them."""
    if value is None or value == "":
        return None
    if isinstance(value, (bool, dict, list)):
        return json.dumps(value)
    return str(value)


def _typed(column) -> str:
    raw = f'"{raw_column(column)}"'
    return {
        "string": raw,
        "integer": f"TRY_CAST({raw} AS BIGINT)",
        "number": finite_number_sql(raw),
        "boolean": f"TRY_CAST({raw} AS BOOLEAN)",
        "timestamp": f"timezone('UTC', TRY_CAST({raw} AS TIMESTAMPTZ))",
    }[column.type]


def _drop_erased(con, spec: SourceSpec) -> int:
    """Delete the rows of erased people, or of their conversations, from `source_rows` before they
    are typed; returns how many. The ledger of files read has counted them already."""
    ids = [c for c in spec.columns if c.column in ("user_id", "conversation_id")]
    if not ids or not load_erased_ids(con):
        return 0
    erased = " OR ".join(erased_sql(f'"{raw_column(c)}"') for c in ids)
    return con.execute(f"DELETE FROM source_rows WHERE {erased}").fetchone()[0]


def _validate_and_land(con, spec: SourceSpec, day: date) -> tuple[int, list, int]:
    typed = ", ".join(f'{_typed(c)} AS "{c.column}"' for c in spec.columns)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE typed_source AS
        SELECT (row_number() OVER (ORDER BY source_key, line_number)) - 1 AS row_id, *, {typed} FROM source_rows""")
    compiled, failing, failing_ids = compile_source(spec), [], []
    for checked in frame_batches(con, "SELECT * FROM typed_source ORDER BY row_id", rows=BATCH_ROWS):
        checked = checked.set_index("row_id")
        found = violations_by_row(compiled, checked)
        failing += [(checked.at[i, "source_key"], int(checked.at[i, "line_number"]), v) for i, v in found.items()]
        failing_ids += list(found)
    con.register("failing_source_rows", pd.DataFrame({"row_id": failing_ids}, dtype="int64"))
    columns = ", ".join(f'"{c.column}"' for c in spec.columns)
    [(read,)] = con.execute("SELECT count(*) FROM typed_source WHERE row_id NOT IN (SELECT row_id FROM failing_source_rows)").fetchall()
    con.execute(
        f"""INSERT INTO {spec.table} BY NAME
        SELECT $day AS dt, {columns}, source_key, line_number FROM typed_source
        WHERE row_id NOT IN (SELECT row_id FROM failing_source_rows)
        QUALIFY row_number() OVER (PARTITION BY "{spec.key}" ORDER BY source_key DESC, line_number DESC) = 1""",
        {"day": day},
    )
    [(valid,)] = con.execute(f"SELECT count(*) FROM {spec.table} WHERE dt = ?", [day]).fetchall()
    return valid, failing, read - valid


def _quarantine(con, spec: SourceSpec, day: date, rows: list) -> None:
    if not rows:
        return
    frame = pd.DataFrame(rows, columns=["source_key", "line_number", "violations"])
    frame["violations"] = frame["violations"].map(json.dumps)
    con.register("source_quarantine", frame)
    con.execute(
        f"""INSERT INTO audit.quarantine BY NAME
        SELECT $day AS dt, $origin AS origin, source_key, line_number,
            from_json(violations, '[{{"type": "VARCHAR", "message": "VARCHAR"}}]')::{VIOLATIONS_TYPE} AS violations
        FROM source_quarantine""",
        {"day": day, "origin": spec.table},
    )


def _record_files(con, spec: SourceSpec, day: date, files: list[ListedObject], bad: list) -> None:
    """One ledger row per file the load read, with its version as listed and its rows (blank and
    header lines aside), a file without any row included."""
    rows = Counter(key for key, _, _ in bad)
    rows.update(dict(con.execute("SELECT source_key, count(*) FROM source_rows GROUP BY 1").fetchall()))
    read = pd.DataFrame({"source_key": pd.Series([f.key for f in files], dtype="str"),
                         "object_version": pd.Series([f.version for f in files], dtype="str"),
                         "rows_read": pd.Series([rows[f.key] for f in files], dtype="int64")})
    con.register("files_read", read)
    con.execute(f"INSERT INTO {SOURCE_FILES} BY NAME SELECT ? AS dt, ? AS source, * FROM files_read", [day, spec.table])


def _ensure_tables(con, spec: SourceSpec) -> None:
    ensure_audit_tables(con)
    create_or_extend(con, SOURCE_FILES, "One row per file a source load of dt read.",
                     {"dt": "DATE", "source": "VARCHAR", "source_key": "VARCHAR", "object_version": "VARCHAR",
                      "rows_read": "BIGINT"})
    columns = {"dt": "DATE", **{c.column: FIELD_TYPES[c.type][1] for c in spec.columns},
               "source_key": "VARCHAR", "line_number": "BIGINT"}
    grain = f"One row per {spec.key} received on dt." if spec.dated else f"One row per {spec.key} as of dt (latest file wins)."
    create_or_extend(con, spec.table, grain, columns)
