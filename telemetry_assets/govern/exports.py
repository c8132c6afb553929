"""Read a day's export files back from the lake, for the checks that verify what was delivered."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import pandas as pd

from telemetry_assets.govern.flight import export_prefix


def read_exports(con, store, destination: str, day, columns: list[str]) -> pd.DataFrame:
    """The named columns (those present; the rest as NULL) of every export row of a destination's day."""
    keys = list(store.list_keys(export_prefix(destination, day)))
    if not keys:
        return pd.DataFrame(columns=columns)
    with tempfile.TemporaryDirectory() as workdir:
        files = []
        for number, key in enumerate(keys):
            path = Path(workdir) / f"{number:05d}.jsonl.gz"
            with contextlib.closing(store.open(key)) as stream:
                path.write_bytes(stream.read())
            files.append(str(path))
        # as text: auto-detection would type ids as UUID, and callers compare and scan text
        rows = con.execute(
            "SELECT COLUMNS(*)::VARCHAR FROM read_json(?, format = 'newline_delimited', union_by_name = true)", [files])
        frame = rows.df()
    return frame.reindex(columns=columns)
