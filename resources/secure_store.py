"""The secure store: raw text, in its own DuckDB file that only its owner can read or write.

The file (and its write-ahead log) is created while the process umask is 077, then set to 0600 on
every open and close, so raw text is never readable by another user even for a moment. Nothing but
the `secure_archive` destination writes here. Nothing selects text: the safety metric counts the
message ids that arrived, and erasure looks up a person's ids and message ids. Raw text expires
after the policy's retention (`telemetry_assets/govern/retention.py`), and a person's text is
deleted when they ask (`telemetry_assets/govern/erasure.py`); `rewrite` then takes it off the disk.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from pydantic import Field, field_validator

from resources.duckdb_files import connect, rewrite_database
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
                        expired_at TIMESTAMPTZ, anonymous_id VARCHAR)"""
                )
                # a store made before raw text could expire, or be erased by anonymous id, gains the columns
                con.execute(f"ALTER TABLE {SECURE_TABLE} ADD COLUMN IF NOT EXISTS expired_at TIMESTAMPTZ")
                con.execute(f"ALTER TABLE {SECURE_TABLE} ADD COLUMN IF NOT EXISTS anonymous_id VARCHAR")
                con.execute(f"COMMENT ON TABLE {SECURE_TABLE} IS 'One row per raw free-text field of an archived "
                            "event; text, user_id and anonymous_id NULL once expired_at is set.'")
                yield con
                con.execute("CHECKPOINT")
            finally:
                con.close()
                os.chmod(path, 0o600)
        finally:
            os.umask(previous)

    def rewrite(self) -> None:
        """Take expired or erased text off the disk (`rewrite_database`); the new file is owner-only too."""
        previous = os.umask(0o077)
        try:
            rewrite_database(self.database, self.lock_wait_seconds)
        finally:
            os.chmod(self.database, 0o600)
            os.umask(previous)
