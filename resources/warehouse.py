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

    `ingest_memory_limit` is DuckDB's cap while a partition is ingested. Ingest holds about 1 GB of
    its own beside DuckDB (the chunks of lines in flight, their frames, the secure store), and the
    one thing in DuckDB that grows with the partition is the set of message ids seen so far. Under
    the full limit that set grew the process past 2 GiB at 20M events; under this one it spills.
    """

    memory_limit: str = "1GB"
    ingest_memory_limit: str = "512MB"

    @contextmanager
    def get_connection(self, memory_limit: str | None = None):
        """`memory_limit` overrides the resource's for this connection (ingest passes `ingest_memory_limit`)."""
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with super().get_connection() as con:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(f"SET memory_limit = '{memory_limit or self.memory_limit}'")
            yield con
