"""pandera models for every table the pipeline writes, and the check that applies one to a day.

Where a table comes from a contract, its model is built from that contract, so a rule lives once:
governed tables from the tracking plan's field rules (the same range and enum checks that validated
the raw events), source tables from `sources.yaml`. Joined and metric tables state their own
invariants: keys unique, rates within [0, 1], quantiles ordered, cost per outcome NULL exactly when
there is no outcome. Failure metadata counts failures by check and lists a few failing rows by key.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandera.pandas as pa

from checks.sources import SourceSpec
from checks.tracking_plan import EventPlan, value_column

EXAMPLES = 5
UNIT_INTERVAL = pa.Check.in_range(0, 1)


@dataclass(frozen=True)
class TableModel:
    table: str
    schema: pa.DataFrameSchema
    key: tuple[str, ...]
    where: str = ""  # rows the model applies to, beyond the day

    def check(self, con, day) -> tuple[bool, dict]:
        frame = con.execute(f"SELECT * FROM {self.table} WHERE dt = ? {self.where}", [day]).df()
        try:
            self.schema.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as errors:
            return False, _failure_metadata(errors.failure_cases, frame, self.key)
        return True, {"rows_checked": len(frame)}


def governed_model(plan: EventPlan) -> TableModel:
    """The plan's rules over typed columns: required present, ranges and enums hold, ids unique.
    Forwarded rows carry their violations and are left out, as the plan allowed them in."""
    columns = {"message_id": pa.Column(nullable=False, unique=True),
               "tracking_plan_version": pa.Column(nullable=False), "policy_version": pa.Column(nullable=False)}
    for f in plan.fields:
        if f.has_value_column and f.column != "message_id":
            column, _ = value_column(f)
            columns[f.column] = pa.Column(nullable=not f.required, checks=column.checks)
    if any(f.column == "intent_label" for f in plan.fields):
        columns["intent_source"] = pa.Column(checks=pa.Check.isin(["provided", "classified", "not_sampled"]))
    schema = pa.DataFrameSchema(columns, name=f"governed.{plan.name}", strict=False)
    return TableModel(f"governed.{plan.name}", schema, ("message_id",), "AND len(plan_violations) = 0")


def source_model(spec: SourceSpec) -> TableModel:
    columns = {}
    for f in spec.columns:
        column, _ = value_column(f)
        columns[f.column] = pa.Column(nullable=not f.required, checks=column.checks, unique=f.column == spec.key)
    return TableModel(spec.table, pa.DataFrameSchema(columns, name=spec.table, strict=False), (spec.key,))


ANALYTICS_MODELS = {
    "analytics.ai_responses": TableModel("analytics.ai_responses", pa.DataFrameSchema({
        "message_id": pa.Column(nullable=False, unique=True),
        "latency_ms": pa.Column(checks=pa.Check.ge(0), nullable=True),
        "cost_usd": pa.Column(checks=pa.Check.ge(0), nullable=True),
        "cost_source": pa.Column(checks=pa.Check.isin(["reported", "price_table"]), nullable=True),
    }, name="analytics.ai_responses", strict=False), ("message_id",)),
    "analytics.ai_turns": TableModel("analytics.ai_turns", pa.DataFrameSchema({
        "conversation_id": pa.Column(nullable=False),
        "prompt_number": pa.Column(checks=pa.Check.ge(1)),
        "responses": pa.Column(checks=pa.Check.ge(0)),
    }, unique=["conversation_id", "prompt_number"], name="analytics.ai_turns", strict=False),
        ("conversation_id", "prompt_number")),
    "analytics.ai_conversations": TableModel("analytics.ai_conversations", pa.DataFrameSchema({
        "conversation_id": pa.Column(nullable=False, unique=True),
        "turns": pa.Column(checks=pa.Check.ge(1)),
        "successful_outcomes": pa.Column(checks=pa.Check.ge(0)),
    }, checks=[
        pa.Check(lambda df: ~df["completed"] | (df["successful_outcomes"] > 0), name="completed_needs_an_outcome"),
        pa.Check(lambda df: df["deflected"] != df["ticket_within_window"], name="deflected_is_no_ticket"),
    ], name="analytics.ai_conversations", strict=False), ("conversation_id",)),
}

PERFORMANCE_KEY = ("model_version", "prompt_version", "feature_flag_state")
METRIC_MODELS = {
    "metrics.performance_daily": TableModel("metrics.performance_daily", pa.DataFrameSchema({
        "requests": pa.Column(checks=pa.Check.ge(0)),
        "success_rate": pa.Column(checks=UNIT_INTERVAL, nullable=True),
        "conversation_completion_rate": pa.Column(checks=UNIT_INTERVAL, nullable=True),
        "total_cost_usd": pa.Column(checks=pa.Check.ge(0)),
    }, checks=[
        pa.Check(lambda df: (df["p50_latency_ms"] <= df["p95_latency_ms"]).where(df["p95_latency_ms"].notna(), True)
                 & (df["p95_latency_ms"] <= df["p99_latency_ms"]).where(df["p99_latency_ms"].notna(), True),
                 name="quantiles_ordered"),
        pa.Check(lambda df: df["cost_per_successful_outcome"].isna() == (df["successful_outcomes"] == 0),
                 name="cost_per_outcome_null_exactly_without_outcomes"),
    ], unique=list(PERFORMANCE_KEY), name="metrics.performance_daily", strict=False), PERFORMANCE_KEY),
    "metrics.business_daily": TableModel("metrics.business_daily", pa.DataFrameSchema({
        rate: pa.Column(checks=UNIT_INTERVAL, nullable=True)
        for rate in ("conversion_rate", "multi_turn_share", "return_within_7d_rate", "d1_retention", "d7_retention",
                     "support_deflection_rate")
    }, unique=[*PERFORMANCE_KEY, "cohort_dimension", "cohort"], name="metrics.business_daily", strict=False),
        (*PERFORMANCE_KEY, "cohort_dimension", "cohort")),
    "metrics.version_comparison": TableModel("metrics.version_comparison", pa.DataFrameSchema({
        "p_value": pa.Column(checks=UNIT_INTERVAL, nullable=True),
        "q_value": pa.Column(checks=UNIT_INTERVAL, nullable=True),
        "verdict": pa.Column(checks=pa.Check.isin(["regression", "improvement", "no significant change", "not enough data"])),
    }, name="metrics.version_comparison", strict=False), ("dimension", "arm", "metric", "cohort")),
    "metrics.alerts": TableModel("metrics.alerts", pa.DataFrameSchema({
        "rule": pa.Column(nullable=False), "dedupe_key": pa.Column(nullable=False),
        "severity": pa.Column(checks=pa.Check.isin(["warning", "critical"])),
    }, unique=["rule", "group_key"], name="metrics.alerts", strict=False), ("rule", "group_key")),
    "metrics.safety_daily": TableModel("metrics.safety_daily", pa.DataFrameSchema({
        rate: pa.Column(checks=UNIT_INTERVAL, nullable=True)
        for rate in ("audit_completeness", "redaction_rate", "consent_enforcement_rate")
    }, unique=["dt"], name="metrics.safety_daily", strict=False), ("dt",)),
}


def _failure_metadata(failures, frame, key: tuple[str, ...]) -> dict:
    counts = failures.assign(check=failures["column"].fillna("*").astype(str) + ": " + failures["check"].astype(str))
    by_check = counts.groupby("check").size().sort_values(ascending=False)
    rows = [int(i) for i in failures["index"].dropna().unique()[:EXAMPLES]]
    examples = [", ".join(f"{k}={frame.at[i, k]}" for k in key if k in frame.columns) for i in rows]
    return {"failures": int(len(failures)), **{f"failed/{check}": int(n) for check, n in by_check.items()},
            "failing_rows": "; ".join(examples) or "schema-wide"}
