"""Metric assets. Each is daily partitioned and replaces its own day's rows."""

from datetime import date

import dagster as dg

from resources.object_store import ObjectStore
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.defs.ingest.assets import EVENT_TABLES, OWNERS
from telemetry_assets.defs.partitions import daily_partitions
from telemetry_assets.govern.policy import load_policy
from telemetry_assets.govern.safety import compute_safety, write_safety


@dg.asset(
    key=["metrics", "safety_daily"],
    group_name="metrics",
    owners=OWNERS,
    kinds={"duckdb"},
    partitions_def=daily_partitions,
    pool="warehouse",
    deps=[["audit", "governance_log"], ["audit", "ingest_files"], *(["governed", name] for name in EVENT_TABLES)],
)
def safety_daily(context: dg.AssetExecutionContext, lake: ObjectStore, warehouse: Warehouse, secure_store: SecureStore):
    """One row per dt: redaction rate, deliveries blocked by destination and reason, consent
    enforcement measured against what each destination actually received, audit completeness."""
    day = date.fromisoformat(context.partition_key)
    policy = load_policy(settings.policy_path())
    tables = [f"governed.{name}" for name in EVENT_TABLES]
    with warehouse.get_connection() as con, secure_store.get_connection() as secure_con:
        row = compute_safety(con, lake, secure_con, day, policy, tables)
        write_safety(con, row)
    scalars = {k: v for k, v in row.items() if isinstance(v, (int, float)) and v is not None}
    return dg.MaterializeResult(metadata={**scalars, "policy_version": policy.version, "dagster/row_count": 1})
