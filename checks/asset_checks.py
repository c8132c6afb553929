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
