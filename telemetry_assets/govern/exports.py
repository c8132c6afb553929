"""Read a day's export files back from the lake, for the checks that verify what was delivered."""

from __future__ import annotations

import contextlib

import pandas as pd
import pyarrow as pa

from telemetry_assets.govern.flight import export_prefix
from telemetry_assets.ingest.lines import read_line_batches


def read_exports(con, store, destination: str, day, columns: list[str]) -> pd.DataFrame:
    """The named fields (NULL where a row lacks one) of every export row of a destination's day, as text.

    Lines are read with the ingest line reader and only the named fields extracted, which is several
    times faster than letting `read_json` detect and type every field of every file."""
    batches = []
    for key in store.list_keys(export_prefix(destination, day)):
        with contextlib.closing(store.open(key)) as stream:
            batches.extend(batch.lines for batch in read_line_batches(stream))
    con.register("export_lines", pa.table({"line": pa.chunked_array(batches, pa.string())}))
    fields = ", ".join(f"json_extract_string(line, '$.\"{column}\"') AS \"{column}\"" for column in columns)
    return con.execute(f"SELECT {fields} FROM export_lines WHERE line <> ''").df()
