"""Compacting the warehouse file once a night, off the daily pipeline's path.

A checkpoint writes what changed into the file, and by default DuckDB then vacuums: it merges row
groups that writes left part-filled (every parallel insert leaves some, and every day's last one is)
and rewrites those holding deleted rows (a day landed again deletes the rows it replaces). On a
1M-event day landed after another, that merging took 3.4 s of the day (`telemetry bench`: 37.4-37.6
s against 34.0-35.1 s without it), in ingest's checkpoint and in the one as the joins' and metrics'
connection closes. Done here instead, it takes about as long (3.1-3.2 s for that day), but at night,
so the day's metrics come that much sooner.

So the warehouse's connections checkpoint without vacuuming (`Warehouse.get_connection`), and this
vacuums once for everything written since: the `audit/warehouse_compactions` asset, nightly and at
the end of every `telemetry run`. A week of 300k-event days, landed day by day, left the warehouse
with 147 row groups that way, against 69 when every checkpoint vacuumed; one compaction took it to
66 in 3.8 s. A row group whose rows were all deleted is dropped by every checkpoint, vacuum or not.

One compaction merges a few neighbouring row groups at a time (DuckDB's vacuum merges up to four
into three), so a table with many part-filled ones may merge further the next night. DuckDB
checkpoints only a database with something to write; when it does, it vacuums every table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from telemetry_assets.ingest.tables import create_or_extend

COMPACTIONS_TABLE = "audit.warehouse_compactions"
COMPACTION_COLUMNS = {
    "compacted_at": "TIMESTAMPTZ",
    "row_groups_before": "BIGINT",
    "row_groups_after": "BIGINT",
    "seconds": "DOUBLE",
}


@dataclass(frozen=True)
class Compaction:
    row_groups_before: int
    row_groups_after: int
    seconds: float


def compact(con) -> Compaction:
    """Vacuum the warehouse on `con`, a connection of its own, and record it in the ledger."""
    con.execute("RESET max_vacuum_tasks")
    # DuckDB checkpoints only a database with something to write: the ledger's comment, set again, is that
    create_or_extend(con, COMPACTIONS_TABLE, "One row per compaction of the warehouse file: when, and the "
                     "row groups of its tables before and after.", COMPACTION_COLUMNS)
    before, started = row_groups(con), time.perf_counter()
    con.execute("CHECKPOINT")
    compaction = Compaction(before, row_groups(con), round(time.perf_counter() - started, 3))
    con.execute("SET max_vacuum_tasks = 0")  # so that writing the ledger's row merges nothing the row does not count
    con.execute(f"INSERT INTO {COMPACTIONS_TABLE} VALUES (now(), ?, ?, ?)",
                [compaction.row_groups_before, compaction.row_groups_after, compaction.seconds])
    return compaction


def row_groups(con) -> int:
    """Row groups in every table of the connection's database (not its temporary tables)."""
    tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                         "WHERE database_name = current_database() AND NOT temporary").fetchall()
    counts = [f"SELECT count(DISTINCT row_group_id) AS n FROM pragma_storage_info('\"{schema}\".\"{table}\"')"
              for schema, table in tables]
    [(total,)] = con.execute(f"SELECT coalesce(sum(n), 0)::BIGINT FROM ({' UNION ALL '.join(counts)})"
                             if counts else "SELECT 0").fetchall()
    return total
