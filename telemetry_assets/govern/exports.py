"""Read a day's export files back from the lake, for the checks that verify what was delivered."""

from __future__ import annotations

import contextlib

import pandas as pd
import pyarrow as pa

from telemetry_assets.govern.flight import export_prefix
from telemetry_assets.ingest.lines import read_line_batches


def read_exports(con, store, destination: str, day, columns: list[str]) -> pd.DataFrame:
    """The named fields (NULL where a row lacks one) of every export row of a destination's day, as text.

    Lines are read with the ingest line reader, one batch at a time, and only the named fields
    extracted: several times faster than letting `read_json` detect and type every field of every
    file, and only the fields asked for are ever held for the whole day."""
    fields = ", ".join(f"json_extract_string(line, '$.\"{column}\"') AS \"{column}\"" for column in columns)
    frames = [pd.DataFrame({column: pd.Series(dtype="str") for column in columns})]
    for key in store.list_keys(export_prefix(destination, day)):
        with contextlib.closing(store.open(key)) as stream:
            for batch in read_line_batches(stream):
                con.register("export_lines", pa.table({"line": batch.lines}))
                frames.append(con.execute(f"SELECT {fields} FROM export_lines WHERE line <> ''").df())
    return pd.concat(frames, ignore_index=True)
