"""Read a day's export files back from the lake, for the checks that verify what was delivered."""

from __future__ import annotations

import contextlib
from typing import Iterator

import pandas as pd
import pyarrow as pa

from telemetry_assets.govern.flight import export_prefix
from telemetry_assets.ingest.lines import read_line_batches


def export_batches(con, store, destination: str, day, columns: list[str]) -> Iterator[pd.DataFrame]:
    """The named fields (NULL where a row lacks one) of a destination's day of export rows, as text,
    one line batch at a time, so a caller holds at most one batch however large the day is.

    Lines are read with the ingest line reader and each is parsed once for all the named fields:
    several times faster than letting `read_json` detect and type every field of every file."""
    paths = ", ".join(f"'$.\"{column}\"'" for column in columns)
    fields = ", ".join(f'fields[{position}] AS "{column}"' for position, column in enumerate(columns, 1))
    for key in store.list_keys(export_prefix(destination, day)):
        with contextlib.closing(store.open(key)) as stream:
            for batch in read_line_batches(stream):
                con.register("export_lines", pa.table({"line": batch.lines}))
                yield con.execute(f"""SELECT {fields} FROM (
                    SELECT json_extract_string(line, [{paths}]) AS fields FROM export_lines WHERE line <> '')""").df()
