"""The warehouse: a DuckDB file behind dagster-duckdb's resource. Asset code never sees its path."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from dagster_duckdb import DuckDBResource


class Warehouse(DuckDBResource):
    """DuckDB has one writer: runs that write it are serialised by the `warehouse` pool (limit 1).

    Connections are set to UTC so timestamps in the raw calls land as UTC whatever the host says.
    `memory_limit` caps DuckDB's buffer memory (it spills to disk beyond it), so a partition of any
    size fits a small machine; by default DuckDB would take 80% of RAM.
    """

    memory_limit: str = "1GB"

    @contextmanager
    def get_connection(self):
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with super().get_connection() as con:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(f"SET memory_limit = '{self.memory_limit}'")
            yield con
