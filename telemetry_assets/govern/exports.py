"""A day's export files: where they live, their lines as governance writes them, and the same
read back for the checks that verify what was delivered."""

from __future__ import annotations

import json
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from typing import Iterator

import numpy as np
import pyarrow as pa


def export_prefix(destination: str, day: date) -> str:
    return f"exports/{destination}/dt={day.isoformat()}/"


def json_lines(rows) -> pa.ChunkedArray:
    """Each row of the relation `rows` as one line of JSON: the bytes DuckDB's JSON writer writes,
    since every value goes through DuckDB's `to_json`. Built in one `concat` and handed over as
    Arrow, with no file between DuckDB and the gzip: 1.65 s for 300k response rows against 2.26 s
    for `COPY ... (FORMAT json)`, and the 1M day's ingest took 48-53 s against 54-56 s."""
    parts = []
    for position, column in enumerate(rows.columns):
        parts.append(_quoted(("{" if position == 0 else ",") + json.dumps(column) + ":"))
        parts.append(f'coalesce(to_json("{column}")::VARCHAR, \'null\')')
    lines = rows.project(f"concat({', '.join(parts)}, '}}' || chr(10))").to_arrow_table().column(0)
    return lines.cast(pa.string())  # what DuckDB gives by default; `back_to_back` reads its 32-bit offsets


def back_to_back(lines: pa.ChunkedArray) -> Iterator[memoryview]:
    """The text of every line, without a copy: Arrow keeps a string array's values back to back in
    one buffer, delimited by its offsets."""
    for chunk in lines.chunks:
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32, count=len(chunk) + 1, offset=4 * chunk.offset)
        yield memoryview(chunk.buffers()[2])[offsets[0]:offsets[-1]]


class PartUploads:
    """Export parts uploaded on a thread of their own while governance goes on. At most `ahead`
    parts wait for the uploader; past that, `put` waits for the oldest to be uploaded. A slow
    object store then holds governance back instead of gzipped parts piling up in memory, which
    would grow with the day (the 1M day's exports are 165 MB gzipped)."""

    def __init__(self, store, ahead: int = 4):
        self._store, self._ahead = store, ahead
        self._uploader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload")
        self._pending: deque[Future] = deque()
        self._lock = threading.Lock()  # parts are put from both chunk workers

    def put(self, key: str, body: bytes) -> None:
        """Queue one part; raises here a failed upload it waited for."""
        with self._lock:
            self._pending.append(self._uploader.submit(self._store.put, key, body))
            oldest = self._pending.popleft() if len(self._pending) > self._ahead else None
        if oldest is not None:
            oldest.result()

    def finish(self) -> None:
        """Waits for every upload; raises the first failure."""
        while self._pending:
            self._pending.popleft().result()
        self._uploader.shutdown()

    def abort(self) -> None:
        self._uploader.shutdown(cancel_futures=True)


@contextmanager
def export_rows(store, destination: str, day, columns: list[str]) -> Iterator[str]:
    """A table expression (what follows FROM) over a destination's day of export rows: the named
    fields as text, NULL where a row lacks one. Valid inside the `with` block.

    DuckDB reads the gzip files itself, with the columns given so it types nothing else: at 1M
    events (1.7M export rows) 4.3 s on two cores, against 7.3 s for the Python line reader feeding
    DuckDB's JSON functions. `records = true` is said outright: left to detect it with one column
    (`message_id`), DuckDB took six times as long."""
    keys = list(store.list_keys(export_prefix(destination, day)))
    if not keys:
        yield "(SELECT " + ", ".join(f'NULL::VARCHAR AS "{column}"' for column in columns) + " WHERE false)"
        return
    schema = ", ".join(f"{_quoted(column)}: 'VARCHAR'" for column in columns)
    with store.local_files(keys) as paths:
        yield (f"read_json([{', '.join(_quoted(path) for path in paths)}], format = 'newline_delimited', "
               f"records = true, compression = 'gzip', columns = {{{schema}}})")


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
