"""Query results for Python, read through Arrow.

`record_batches` (or `frame_batches`, as pandas) is for the Python that reads a whole day (checks,
safety, business sources): what it holds is bounded by one batch, not by the size of the day.
`text_frame` is for a chunk's rows of text as pandas.
"""

from __future__ import annotations

from typing import Iterator

import pandas as pd
import pyarrow as pa

BATCH_ROWS = 262_144
# The dtypes DuckDB's `.df()` gives a column with NULLs, for every column: checks and messages then
# see an integer as an integer (`-1`, not `-1.0`) whether or not its column has gaps.
_NULLABLE = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype(), pa.bool_(): pd.BooleanDtype()}


def record_batches(con, sql: str, params=None, rows: int = BATCH_ROWS) -> pa.RecordBatchReader:
    return con.sql(sql, params=params).to_arrow_reader(rows)


def frame_batches(con, sql: str, params=None, rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """A query's rows as pandas frames of `rows` each, typed as `text_frame` types them."""
    for batch in record_batches(con, sql, params, rows):
        yield batch.to_pandas(types_mapper=_NULLABLE.get)


def text_frame(con, sql: str, params=None) -> pd.DataFrame:
    """A query's rows as pandas, through Arrow. DuckDB's own `.df()` builds a Python string per
    value that pandas 3 then turns back into Arrow: 0.60 s against 0.14 s for the validation frame
    of 43k response events, about 5 s of a 1M-event ingest."""
    return con.sql(sql, params=params).to_arrow_table().to_pandas(types_mapper=_NULLABLE.get)
