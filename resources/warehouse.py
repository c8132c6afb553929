"""The warehouse: a DuckDB file behind dagster-duckdb's resource. Asset code never sees its path."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field, field_validator

from resources.duckdb_files import connect, rewrite_database


def duckdb_memory_size(value: str) -> str:
    """`value` when DuckDB takes it as a memory size (`512MB`, `1GB`, `2GiB`), else a ValueError that
    names it: checked when the resource is configured, not when the first step opens a connection.
    A `dg.EnvVar` is checked once Dagster has read it, when a run builds its resources; what is not
    text is left to pydantic to refuse."""
    if not isinstance(value, str) or isinstance(value, dg.EnvVar):
        return value
    quoted = value.replace("'", "''")
    try:
        with duckdb.connect() as con:
            con.execute(f"SET memory_limit = '{quoted}'")
    except duckdb.Error as error:
        raise ValueError(f"{value!r} is not a memory size DuckDB accepts (for example 512MB or 1GB): {error}") from None
    return value


class Warehouse(DuckDBResource):
    """DuckDB has one writer: runs that write it are serialised by the `warehouse` pool (limit 1).
    A connection waits up to `lock_wait_seconds` while another process holds the file (a sensor's
    tick, a `duckdb` shell), then fails naming it (`duckdb_files.py`).

    Connections are set to UTC so timestamps in the raw calls land as UTC whatever the host says.
    `memory_limit` caps DuckDB's buffer memory (it spills to disk beyond it), so a partition of any
    size fits a small machine; by default DuckDB would take 80% of RAM.

    `ingest_memory_limit` is DuckDB's cap while a partition is ingested. Ingest holds about 1 GB of
    its own beside DuckDB (the chunks of lines in flight, their frames, the secure store), and the
    one thing in DuckDB that grows with the partition is the set of message ids seen so far. Under
    the full limit that set grew the process past 2 GiB at 20M events; under this one it spills.

    Checkpoints do not vacuum (`max_vacuum_tasks = 0`): merging the row groups the day's inserts left
    part-filled is done once a night by `telemetry_assets/compaction.py`, not on the daily path.
    """

    memory_limit: str = "1GB"
    ingest_memory_limit: str = "512MB"
    lock_wait_seconds: float = Field(default=60.0, ge=0)

    _memory_sizes = field_validator("memory_limit", "ingest_memory_limit", mode="before")(duckdb_memory_size)

    @contextmanager
    def get_connection(self, memory_limit: str | None = None):
        """`memory_limit` overrides the resource's for this connection (ingest passes `ingest_memory_limit`)."""
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        con = connect(self.database, self.lock_wait_seconds,
                      config={"custom_user_agent": "dagster", **self.connection_config})
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(f"SET memory_limit = '{memory_limit or self.memory_limit}'")
            con.execute("SET max_vacuum_tasks = 0")
            yield con
        finally:
            con.close()

    def rewrite(self) -> None:
        """Take erased rows off the disk (`rewrite_database`)."""
        rewrite_database(self.database, self.lock_wait_seconds)
