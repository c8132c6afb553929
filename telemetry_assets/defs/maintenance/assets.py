"""Warehouse upkeep as an asset: `audit/warehouse_compactions` vacuums the warehouse file, which the
pipeline's own checkpoints leave to it (`telemetry_assets/compaction.py` says why).

Not partitioned: one run compacts whatever every day wrote since the last. It runs on
`warehouse_compaction_schedule` and after every `telemetry run`.
"""

import dagster as dg

from resources.warehouse import Warehouse
from telemetry_assets.compaction import compact
from telemetry_assets.defs.ingest.assets import OWNERS

WAREHOUSE_COMPACTIONS = dg.AssetKey(["audit", "warehouse_compactions"])


@dg.asset(key=WAREHOUSE_COMPACTIONS, group_name="maintenance", owners=OWNERS, kinds={"duckdb"}, pool="warehouse",
          description="One row per compaction of the warehouse file: when, and the row groups of its tables before "
                      "and after.")
def warehouse_compactions(warehouse: Warehouse) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        compaction = compact(con)
    return dg.MaterializeResult(metadata={
        "row_groups_before": compaction.row_groups_before, "row_groups_after": compaction.row_groups_after,
        "seconds": compaction.seconds,
    })
