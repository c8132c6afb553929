"""Metric assets. Each is daily partitioned and replaces its own day's rows."""

from datetime import date

import dagster as dg

from resources.object_store import ObjectStore
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.analytics.alert_rules import load_alert_rules
from telemetry_assets.analytics.alerts import ALERTS_TABLE, build_alerts
from telemetry_assets.analytics.business import BUSINESS_TABLE, build_business
from telemetry_assets.analytics.comparison import BASELINE_LOOKBACK_DAYS, COMPARISON_TABLE, WINDOW_DAYS, build_comparison
from telemetry_assets.analytics.performance import PERFORMANCE_TABLE, build_performance
from telemetry_assets.defs.ingest.assets import EVENT_TABLES, OWNERS
from telemetry_assets.defs.metadata import table_metadata
from telemetry_assets.defs.partitions import daily_partitions
from telemetry_assets.govern.policy import load_policy
from telemetry_assets.govern.safety import compute_safety, write_safety

# What every metric asset shares: its group, owner, storage, daily partitions and the single writer.
METRIC = {"group_name": "metrics", "owners": OWNERS, "kinds": {"duckdb"}, "partitions_def": daily_partitions,
          "pool": "warehouse"}


@dg.asset(
    key=["metrics", "safety_daily"],
    **METRIC,
    deps=[["audit", "governance_log"], ["audit", "ingest_files"], *(["governed", name] for name in EVENT_TABLES)],
)
def safety_daily(context: dg.AssetExecutionContext, lake: ObjectStore, warehouse: Warehouse, secure_store: SecureStore):
    """One row per dt: redaction rate, deliveries blocked by destination and reason, consent
    enforcement measured against what each destination actually received, audit completeness, and
    the share of events that carried no consent."""
    day = date.fromisoformat(context.partition_key)
    policy = load_policy(settings.policy_path())
    tables = [f"governed.{name}" for name in EVENT_TABLES]
    with warehouse.get_connection() as con, secure_store.get_connection() as secure_con:
        row = compute_safety(con, lake, secure_con, day, policy, tables)
        write_safety(con, row)
        schema = table_metadata(con, "metrics.safety_daily", day)
    scalars = {k: v for k, v in row.items() if isinstance(v, (int, float)) and v is not None}
    return dg.MaterializeResult(metadata={**scalars, "policy_version": policy.version, **schema})


@dg.asset(
    key=["metrics", "performance_daily"],
    **METRIC,
    deps=[["analytics", "ai_responses"], ["analytics", "ai_turns"], ["analytics", "ai_conversations"]],
)
def performance_daily(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """One row per dt, model_version, prompt_version and feature_flag_state: requests, success rate,
    errors by type, p50/p95/p99 latency, cost, successful outcomes, cost per outcome, completion."""
    day = date.fromisoformat(context.partition_key)
    with warehouse.get_connection() as con:
        build_performance(con, day)
        schema = table_metadata(con, PERFORMANCE_TABLE, day)
        totals = con.execute(
            f"""SELECT sum(requests), sum(total_cost_usd), sum(successful_outcomes), max(p95_latency_ms)
                FROM {PERFORMANCE_TABLE} WHERE dt = ?""", [day]).fetchall()[0]
    requests, cost, outcomes, worst_p95 = totals
    return dg.MaterializeResult(metadata={
        **schema, "requests": int(requests or 0), "total_cost_usd": float(cost or 0),
        "successful_outcomes": int(outcomes or 0), "worst_group_p95_latency_ms": float(worst_p95 or 0),
    })


@dg.asset(
    key=["metrics", "business_daily"],
    **METRIC,
    deps=[dg.AssetDep(["analytics", "ai_conversations"], partition_mapping=dg.TimeWindowPartitionMapping(0, 7))],
)
def business_daily(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """One row per dt, version key and cohort (all, or plan): conversion, multi-turn share, return
    within 7 days, D1/D7 retention, support deflection. Reads the next 7 days' conversations for
    returns and retention, which stay NULL until those days land."""
    day = date.fromisoformat(context.partition_key)
    with warehouse.get_connection() as con:
        build_business(con, day)
        schema = table_metadata(con, BUSINESS_TABLE, day)
        (conversion, deflection) = con.execute(
            f"""SELECT sum(conversions) / sum(conversations), sum(support_deflection_rate * conversations) / sum(conversations)
                FROM {BUSINESS_TABLE} WHERE dt = ? AND cohort_dimension = 'all'""", [day]).fetchall()[0]
    return dg.MaterializeResult(metadata={**schema, "conversion_rate": float(conversion or 0),
                                         "support_deflection_rate": float(deflection or 0)})


@dg.asset(
    key=["metrics", "version_comparison"],
    **METRIC,
    deps=[dg.AssetDep(["analytics", name], partition_mapping=dg.TimeWindowPartitionMapping(
        -(WINDOW_DAYS + BASELINE_LOOKBACK_DAYS), 0)) for name in ("ai_responses", "ai_turns", "ai_conversations")],
)
def version_comparison(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """Each new model or prompt version against the one it replaced in its arm, and each variant
    against control: rate differences with intervals, a bootstrap interval for p95 latency, a
    delta-method interval for cost per outcome, p-values and a plain-language verdict."""
    day = date.fromisoformat(context.partition_key)
    with warehouse.get_connection() as con:
        build_comparison(con, day)
        schema = table_metadata(con, COMPARISON_TABLE, day)
        verdicts = dict(con.execute(
            f"SELECT verdict, count(*) FROM {COMPARISON_TABLE} WHERE dt = ? GROUP BY 1", [day]).fetchall())
    return dg.MaterializeResult(metadata={**schema, "regressions": verdicts.get("regression", 0),
                                         "improvements": verdicts.get("improvement", 0)})


@dg.asset(
    key=["metrics", "alerts"],
    **METRIC,
    deps=[["metrics", "performance_daily"], ["metrics", "version_comparison"], ["metrics", "safety_daily"]],
)
def alerts(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """One row per dt, rule and group that breached it (rules in config/alerts.yaml), with the dedupe
    key under which it is delivered once by the alert sensor."""
    day = date.fromisoformat(context.partition_key)
    with warehouse.get_connection() as con:
        build_alerts(con, day, load_alert_rules(settings.alert_rules_path()))
        schema = table_metadata(con, ALERTS_TABLE, day)
        by_severity = dict(con.execute(f"SELECT severity, count(*) FROM {ALERTS_TABLE} WHERE dt = ? GROUP BY 1", [day]).fetchall())
    return dg.MaterializeResult(metadata={**schema, **{f"alerts/{k}": v for k, v in by_severity.items()}})
