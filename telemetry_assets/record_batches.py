"""Query results a record batch at a time, for the Python that reads a whole day (checks, safety):
what it holds is bounded by one batch, not by the size of the day."""

from __future__ import annotations

import pyarrow as pa

BATCH_ROWS = 262_144


def record_batches(con, sql: str, params=None, rows: int = BATCH_ROWS) -> pa.RecordBatchReader:
    return con.sql(sql, params=params).to_arrow_reader(rows)
