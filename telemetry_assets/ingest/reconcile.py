"""Read back what partitions landed: row counts, line reconciliation and quarantine by type."""

from __future__ import annotations

from datetime import date

from telemetry_assets.ingest.layouts import partition_objects
from telemetry_assets.ingest.tables import EVENTS_ORIGIN, existing_tables
from telemetry_assets.sources.load import SOURCE_FILES, source_keys

LANDED_TABLES = (
    "governed.ai_user_prompt_created",
    "governed.ai_llm_response_received",
    "governed.ai_user_action",
    "audit.quarantine",
    "audit.governance_log",
    "audit.ingest_files",
)
RECONCILED_COLUMNS = ("lines_read", "valid_events", "quarantined", "duplicates", "non_ai_events", "blank_lines")


def landed_row_counts(con, day: date) -> dict[str, int]:
    """Rows per table for one partition (event rows only in the shared quarantine), and how many
    events the log says reached the warehouse."""
    counts = {table: con.execute(f"SELECT count(*) FROM {table} WHERE dt = ?", [day]).fetchone()[0] for table in LANDED_TABLES}
    (counts["audit.quarantine"],) = con.execute(
        "SELECT count(*) FROM audit.quarantine WHERE dt = ? AND origin = ?", [day, EVENTS_ORIGIN]).fetchone()
    (counts["delivered_to_warehouse"],) = con.execute(
        "SELECT count(*) FROM audit.governance_log WHERE dt = ? AND list_contains(delivered, 'warehouse')", [day]
    ).fetchone()
    return counts


def line_reconciliation(con, start: date, end: date) -> list[dict]:
    """Per partition: the line counts of `audit.ingest_files`, summed over the day's objects."""
    sums = ", ".join(f"sum({column})::BIGINT AS {column}" for column in RECONCILED_COLUMNS)
    rows = con.execute(
        f"SELECT dt, count(*) AS objects, {sums} FROM audit.ingest_files WHERE dt BETWEEN ? AND ? GROUP BY dt ORDER BY dt",
        [start, end],
    )
    names = [d[0] for d in rows.description]
    return [dict(zip(names, row)) for row in rows.fetchall()]


def unaccounted_lines(row: dict) -> int:
    """Lines of a `line_reconciliation` row that went nowhere (0 when the day reconciles)."""
    lines_read, *parts = RECONCILED_COLUMNS
    return row[lines_read] - sum(row[part] for part in parts)


def quarantined_by_type(con, start: date, end: date, origin: str = EVENTS_ORIGIN) -> dict[str, int]:
    """Quarantined lines of one origin per violation type (a line with two types counts under each)."""
    return dict(
        con.execute(
            """SELECT kind, count(*) FROM (
                   SELECT unnest(list_distinct(list_transform(violations, lambda v: v.type))) AS kind
                   FROM audit.quarantine WHERE dt BETWEEN ? AND ? AND origin = ?)
               GROUP BY 1 ORDER BY 1""",
            [start, end, origin],
        ).fetchall()
    )


def objects_arrived_since_landing(store, con, landed_days: list[date], sources: list) -> dict[date, list[str]]:
    """Per landed day, the objects the lake holds now that its last landing did not read: raw
    objects (the ledger of what each landing read is `audit.ingest_files`) and the files of the
    dated business `sources` (`audit.source_files`). A day that landed with none has no rows
    there, and a ledger a warehouse does not have yet has read nothing. An object gone from the
    lake is no reason to land a day again: that would drop rows that were read."""
    if not landed_days:
        return {}
    present = existing_tables(con)
    ledgers = [table for table in ("audit.ingest_files", SOURCE_FILES) if table in present]
    read = {}
    if ledgers:
        union = " UNION ALL ".join(f"SELECT dt, source_key FROM {table}" for table in ledgers)
        read = dict(con.execute(f"SELECT dt, list(source_key) FROM ({union}) WHERE dt BETWEEN ? AND ? GROUP BY dt",
                                [min(landed_days), max(landed_days)]).fetchall())
    arrived = {}
    for day in landed_days:
        in_lake = {obj.key for obj in partition_objects(store, day)}
        in_lake.update(key for spec in sources if spec.dated for key in source_keys(store, spec, day))
        new = sorted(in_lake - set(read.get(day, [])))
        if new:
            arrived[day] = new
    return arrived
