"""Asset checks that run in the step that wrote the table, for the day it wrote (checks beside what
they guard). `check_specs` declares them on an asset; `results` evaluates them after the write."""

from __future__ import annotations

import dagster as dg

from checks.table_models import TableModel

VALID_ROWS = "valid_rows"


def valid_rows_spec(table: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name=VALID_ROWS, asset=table.split("."),
        description=f"The day's rows of {table} satisfy its pandera model (types, ranges, allowed values, keys).",
    )


def valid_rows_result(con, model: TableModel, day) -> dg.AssetCheckResult:
    passed, metadata = model.check(con, day)
    return dg.AssetCheckResult(check_name=VALID_ROWS, asset_key=model.table.split("."), passed=passed, metadata=metadata)


def table_metadata(con, table: str, day) -> dict:
    """Column schema (with the grain as the table's description) and the day's row count, for the UI."""
    columns = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
        table.split(".")).fetchall()
    (rows,) = con.execute(f"SELECT count(*) FROM {table} WHERE dt = ?", [day]).fetchone()
    return {"dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns]),
            "dagster/row_count": rows}
