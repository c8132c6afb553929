"""Metric assets. Each is daily partitioned and replaces its own day's rows."""

from datetime import date

import dagster as dg

from resources.object_store import ObjectStore
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.analytics.performance import PERFORMANCE_TABLE, build_performance
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


@dg.asset(
    key=["metrics", "performance_daily"],
    group_name="metrics",
    owners=OWNERS,
    kinds={"duckdb"},
    partitions_def=daily_partitions,
    pool="warehouse",
    deps=[["analytics", "ai_responses"], ["analytics", "ai_turns"], ["analytics", "ai_conversations"]],
)
def performance_daily(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """One row per dt, model_version, prompt_version and feature_flag_state: requests, success rate,
    errors by type, p50/p95/p99 latency, cost, successful outcomes, cost per outcome, completion."""
    day = date.fromisoformat(context.partition_key)
    with warehouse.get_connection() as con:
        rows = build_performance(con, day)
        totals = con.execute(
            f"""SELECT sum(requests), sum(total_cost_usd), sum(successful_outcomes), max(p95_latency_ms)
                FROM {PERFORMANCE_TABLE} WHERE dt = ?""", [day]).fetchall()[0]
    requests, cost, outcomes, worst_p95 = totals
    return dg.MaterializeResult(metadata={
        "dagster/row_count": rows, "requests": int(requests or 0), "total_cost_usd": float(cost or 0),
        "successful_outcomes": int(outcomes or 0), "worst_group_p95_latency_ms": float(worst_p95 or 0),
    })
