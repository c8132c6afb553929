"""Chunks governed two tasks at a time, each task on its own DuckDB cursor.

Why: a chunk's per-event queries are smaller than one DuckDB row group (122,880 rows), so DuckDB runs
each on one core. Run one chunk at a time, ingest kept 1.3 of 2 cores busy at 1M events (and was no
faster with DuckDB on two threads than on one). DuckDB releases the GIL while a query runs, as do
pyarrow's kernels and ISA-L's gzip, so two tasks at once keep both cores busy.

A task is one event of one chunk, not the whole chunk: the last chunk's events then run on both
cores, where a whole chunk per task left one core idle while the last chunk was governed alone
(about 1 s at 1M events).

While the workers run, DuckDB runs each query on one thread: the tasks are the parallelism, and
DuckDB's own threads on top, on queries this small, made ingest a little slower (63-66 s against
60-62 s at 1M events). The caller's setting is restored when the workers are done.

Each task's cursor is its own DuckDB session (`cursors.py`): two tasks never see each other's
scratch tables.
"""

from __future__ import annotations

import queue
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from telemetry_assets.cursors import cursor_like


class ChunkWorkers:
    def __init__(self, con, workers: int):
        [(self._threads,)] = con.execute("SELECT current_setting('threads')").fetchall()
        con.execute("SET threads = 1")
        self._con, self._workers = con, workers
        self._cursors: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(workers):
            self._cursors.put(cursor_like(con))
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="chunk")
        self._running: set[Future] = set()

    def submit(self, task, *args) -> None:
        """Run `task(cursor, *args)` on a free worker. Waits while every worker is busy, so the
        running tasks hold no more than `workers` chunks beside the one being read, and raises a
        finished task's error here, so a failing partition stops at its next task."""
        if len(self._running) >= self._workers:
            finished, self._running = wait(self._running, return_when=FIRST_COMPLETED)
            for future in finished:
                future.result()
        self._running.add(self._pool.submit(self._run, task, args))

    def _run(self, task, args) -> None:
        cursor = self._cursors.get()
        try:
            task(cursor, *args)
        finally:
            self._cursors.put(cursor)

    def __enter__(self) -> ChunkWorkers:
        return self

    def __exit__(self, error_type, *_) -> None:
        """Waits for every task (none is left using a cursor), then raises the first task error,
        unless the caller is already failing."""
        if error_type is not None:
            for future in self._running:
                future.cancel()
        self._pool.shutdown(wait=True)
        while not self._cursors.empty():
            self._cursors.get().close()
        self._con.execute(f"SET threads = {self._threads}")
        if error_type is None:
            for future in self._running:
                future.result()
