"""The secure store: raw text, in its own DuckDB file that only its owner can read or write.

The file (and its write-ahead log) is created while the process umask is 077, then set to 0600 on
every open and close, so raw text is never readable by another user even for a moment. Nothing but
the `secure_archive` destination writes here; the only reader is the safety metric, which counts
message ids that arrived and never selects text. Raw text expires after the policy's retention
(`telemetry_assets/govern/retention.py`); `rewrite` then takes it off the disk.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from pydantic import Field, field_validator

from resources.duckdb_files import connect
from resources.warehouse import duckdb_memory_size

SECURE_TABLE = "raw_text"


class SecureStore(dg.ConfigurableResource):
    """`memory_limit` caps the store's own DuckDB buffer: it only stages and counts, and uncapped
    it kept a growing share of a large day's archived text in memory (80% of RAM is the default).
    `lock_wait_seconds` is how long a connection waits while another process holds the file."""

    database: str
    memory_limit: str = "256MB"
    lock_wait_seconds: float = Field(default=60.0, ge=0)

    _memory_size = field_validator("memory_limit", mode="before")(duckdb_memory_size)

    @contextmanager
    def get_connection(self):
        path = Path(self.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        previous = os.umask(0o077)
        try:
            con = connect(str(path), self.lock_wait_seconds)
            try:
                os.chmod(path, 0o600)
                con.execute(f"SET memory_limit = '{self.memory_limit}'")
                con.execute(
                    f"""CREATE TABLE IF NOT EXISTS {SECURE_TABLE} (
                        dt DATE, message_id VARCHAR, event VARCHAR, user_id VARCHAR, field VARCHAR, text VARCHAR,
                        expired_at TIMESTAMPTZ)"""
                )
                # a store made before raw text could expire gains the column
                con.execute(f"ALTER TABLE {SECURE_TABLE} ADD COLUMN IF NOT EXISTS expired_at TIMESTAMPTZ")
                con.execute(f"COMMENT ON TABLE {SECURE_TABLE} IS 'One row per raw free-text field of an archived "
                            "event; text and user_id NULL once expired_at is set.'")
                yield con
                con.execute("CHECKPOINT")
            finally:
                con.close()
                os.chmod(path, 0o600)
        finally:
            os.umask(previous)

    def rewrite(self) -> None:
        """Copy the store into a fresh file and put it in the old one's place. DuckDB leaves values it
        deleted or overwrote in the file's free blocks, so expired text is gone from disk only once
        the file is rewritten. The old file stays open (and locked) until the new one is in place."""
        path = Path(self.database)
        fresh = path.with_name(path.name + ".rewrite")
        previous = os.umask(0o077)
        try:
            fresh.unlink(missing_ok=True)
            con = connect(str(path), self.lock_wait_seconds)
            try:
                (current,) = con.execute("SELECT current_database()").fetchone()
                con.execute(f"ATTACH '{fresh}' AS rewritten")
                con.execute(f"COPY FROM DATABASE \"{current}\" TO rewritten")
                con.execute("DETACH rewritten")
                os.replace(fresh, path)
            finally:
                con.close()
                fresh.unlink(missing_ok=True)
                os.chmod(path, 0o600)
        finally:
            os.umask(previous)
