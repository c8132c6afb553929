"""Opening the pipeline's DuckDB files: waiting out another process's lock, drawing no progress bar.

DuckDB lets one process at a time open a database file to write, and none other to read while it
does. Runs take the warehouse one at a time (the `warehouse` pool), but other processes open it
too: the sensors for a moment each tick, a `duckdb` shell or a notebook for as long as someone
works in it. So a connection waits a while for such a lock, then fails naming the process that
holds it. dagster-duckdb's own retry waited 102 s per step without a word, then failed with
DuckDB's message deep in a stack trace, and it retried every other error the same way (a file that
is not a database was tried ten times).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import duckdb

LOCK_CONFLICT = "Could not set lock on file"
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")
_LONGEST_PAUSE = 1.0  # seconds between attempts, at most: a released lock is taken within a second


class DatabaseLockedError(TimeoutError):
    """Another process held a DuckDB file for longer than the connection would wait."""


def connect(database: str, lock_wait_seconds: float, **options) -> duckdb.DuckDBPyConnection:
    """`duckdb.connect(database, **options)`, waiting up to `lock_wait_seconds` while another
    process holds the file; any other error is raised at once.

    The connection draws no progress bar. On a database file DuckDB draws one on stdout for any
    query that runs over two seconds, whatever stdout is: it came before the JSON of
    `telemetry bench --json`, and filled run logs."""
    deadline = time.monotonic() + lock_wait_seconds
    pause = 0.05
    while True:
        try:
            con = duckdb.connect(database, **options)
            con.execute("SET enable_progress_bar = false")
            return con
        except duckdb.IOException as error:
            if LOCK_CONFLICT not in str(error):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise DatabaseLockedError(_held(database, str(error), lock_wait_seconds)) from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, _LONGEST_PAUSE)


def rewrite_database(database: str, lock_wait_seconds: float) -> None:
    """Copy a database into a fresh file and put it in the old one's place. DuckDB leaves values
    it deleted or overwrote in its file's free blocks, so expired or erased text is gone from disk
    only once the file is rewritten. The old file stays open (and locked) until the new one is in
    place, so no other process writes to it meanwhile."""
    path = Path(database)
    fresh = path.with_name(path.name + ".rewrite")
    fresh.unlink(missing_ok=True)
    con = connect(str(path), lock_wait_seconds)
    try:
        (current,) = con.execute("SELECT current_database()").fetchone()
        con.execute(f"ATTACH '{fresh}' AS rewritten")
        con.execute(f'COPY FROM DATABASE "{current}" TO rewritten')
        con.execute("DETACH rewritten")
        os.replace(fresh, path)
    finally:
        con.close()
        fresh.unlink(missing_ok=True)


def _held(database: str, message: str, waited: float) -> str:
    holder = _HOLDER.search(message)
    who = f"PID {holder['pid']} ({holder['program']})" if holder else f"another process ({message})"
    waiting = f" (waited {waited:g} s; TELEMETRY_LOCK_WAIT_SECONDS sets how long)" if waited else ""
    return (f"{database} is held by {who}, and DuckDB lets one process at a time open a database file "
            f"to write: close that process or let it finish, then run again{waiting}")
