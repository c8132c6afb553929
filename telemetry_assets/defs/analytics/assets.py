"""Joined tables: responses, turns and conversations linked to outcomes, per day.

Late events are handled by depending on later partitions (see `analytics/joins.py`): a day reads
governed events from the day before to the day after, and conversions and tickets up to two days
after. When those land, Dagster shows the day as stale and a re-materialisation picks them up.
"""

from datetime import date

import dagster as dg

from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.analytics.joins import (
    CONVERSATIONS_TABLE,
    GRAINS,
    RESPONSES_TABLE,
    TURNS_TABLE,
    build_joins,
)
from telemetry_assets.defs.ingest.assets import EVENT_TABLES, OWNERS
from telemetry_assets.defs.metadata import table_metadata
from telemetry_assets.defs.partitions import daily_partitions
from telemetry_assets.govern.policy import load_policy

EVENTS_WINDOW = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=1)
OUTCOMES_WINDOW = dg.TimeWindowPartitionMapping(start_offset=0, end_offset=2)
DEPS = [
    *(dg.AssetDep(["governed", name], partition_mapping=EVENTS_WINDOW) for name in (*EVENT_TABLES, "identity_links")),
    dg.AssetDep(["sources", "conversions"], partition_mapping=OUTCOMES_WINDOW),
    dg.AssetDep(["sources", "support_tickets"], partition_mapping=OUTCOMES_WINDOW),
    dg.AssetDep(["sources", "user_profiles"]),
]
JOINED_SPECS = [
    dg.AssetSpec(key=table.split("."), group_name="analytics", owners=OWNERS, kinds={"duckdb"},
                 description=GRAINS[table], deps=DEPS)
    for table in (RESPONSES_TABLE, TURNS_TABLE, CONVERSATIONS_TABLE)
]


@dg.multi_asset(
    name="join_outcomes", specs=JOINED_SPECS, partitions_def=daily_partitions, pool="warehouse", can_subset=False,
)
def join_outcomes(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """Build the day's responses (priced), turns and conversations (with conversions, tickets, cohort)."""
    day = date.fromisoformat(context.partition_key)
    with warehouse.get_connection() as con:
        build_joins(con, day, load_policy(settings.policy_path()))
        schemas = {".".join(s.key.path): table_metadata(con, ".".join(s.key.path), day) for s in JOINED_SPECS}
    for spec in JOINED_SPECS:
        yield dg.MaterializeResult(asset_key=spec.key, metadata=schemas[".".join(spec.key.path)])
