"""Read back what partitions landed: row counts, line reconciliation and quarantine by type."""

from __future__ import annotations

from datetime import date

from telemetry_assets.ingest.layouts import partition_objects
from telemetry_assets.ingest.tables import EVENTS_ORIGIN, IDENTITY_LINKS, existing_columns, existing_tables
from telemetry_assets.sources.load import SOURCE_FILES, source_objects

LANDED_TABLES = (
    "governed.ai_user_prompt_created",
    "governed.ai_llm_response_received",
    "governed.ai_user_action",
    IDENTITY_LINKS,
    "audit.quarantine",
    "audit.governance_log",
    "audit.ingest_files",
)
RECONCILED_COLUMNS = ("lines_read", "valid_events", "quarantined", "duplicates", "non_ai_events", "erased_events",
                      "blank_lines")


def landed_row_counts(con, day: date) -> dict[str, int]:
    """Rows per table for one partition (event rows only in the shared quarantine), and how many
    events the log says reached the warehouse and were not erased since."""
    counts = {table: con.execute(f"SELECT count(*) FROM {table} WHERE dt = ?", [day]).fetchone()[0] for table in LANDED_TABLES}
    (counts["audit.quarantine"],) = con.execute(
        "SELECT count(*) FROM audit.quarantine WHERE dt = ? AND origin = ?", [day, EVENTS_ORIGIN]).fetchone()
    (counts["delivered_to_warehouse"],) = con.execute(
        "SELECT count(*) FROM audit.governance_log WHERE dt = ? AND list_contains(delivered, 'warehouse') "
        "AND erased_at IS NULL", [day]
    ).fetchone()
    return counts


def line_reconciliation(con, start: date, end: date) -> list[dict]:
    """Per partition: the line counts of `audit.ingest_files`, summed over the day's objects."""
    sums = ", ".join(f"coalesce(sum({column}), 0)::BIGINT AS {column}" for column in RECONCILED_COLUMNS)
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


def objects_changed_since_landing(store, con, landed_days: list[date], sources: list) -> dict[date, list]:
    """Per landed day, the objects (each with its `key` and `version`, in key order) the lake holds
    now that its last landing did not read as they are: objects it never read, and objects written
    again since (their listed version differs).
    What each landing read is in its ledgers: `audit.ingest_files` for raw objects, and
    `audit.source_files` for the files of the dated business `sources`. A day that landed with none
    has no rows there, and a ledger a warehouse does not have yet has read nothing. A ledger row
    without a version (written before versions were recorded) is taken as read as it is. An object
    gone from the lake is no reason to land a day again: that would drop rows that were read."""
    if not landed_days:
        return {}
    read = _versions_read(con, min(landed_days), max(landed_days))
    changed = {}
    for day in landed_days:
        in_lake = partition_objects(store, day) + [
            listed for spec in sources if spec.dated for listed in source_objects(store, spec, day)]
        versions = read.get(day, {})
        unread = [obj for obj in in_lake if obj.key not in versions or versions[obj.key] not in (None, obj.version)]
        if unread:
            changed[day] = sorted(unread, key=lambda obj: obj.key)
    return changed


def _versions_read(con, start: date, end: date) -> dict[date, dict[str, str | None]]:
    """Per day, each object its ledgers say was read, with the version read (None when unrecorded:
    a ledger from before versions were, which a read-only connection cannot extend)."""
    ledgers = [table for table in ("audit.ingest_files", SOURCE_FILES) if table in existing_tables(con)]
    if not ledgers:
        return {}
    union = " UNION ALL ".join(
        f"SELECT dt, source_key, {'object_version' if 'object_version' in existing_columns(con, table) else 'NULL'} "
        f"AS object_version FROM {table}" for table in ledgers)
    read: dict[date, dict[str, str | None]] = {}
    for day, key, version in con.execute(f"SELECT * FROM ({union}) WHERE dt BETWEEN ? AND ?", [start, end]).fetchall():
        read.setdefault(day, {})[key] = version
    return read
