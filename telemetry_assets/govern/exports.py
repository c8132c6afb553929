"""Read a day's export files back from the lake, for the checks that verify what was delivered."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from telemetry_assets.govern.flight import export_prefix


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
