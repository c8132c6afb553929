"""pandera models for every table the pipeline writes, and the check that applies one to a day.

Where a table comes from a contract, its model is built from that contract, so a rule lives once:
governed tables from the tracking plan's field rules (the same range and enum checks that validated
the raw events), source tables from `sources.yaml`. Joined and metric tables state their own
invariants: rates within [0, 1], quantiles ordered, cost per outcome NULL exactly when there is no
outcome. Every model names its table's grain (`key`): one row per key per day. Failure metadata counts failures by check and lists a few failing rows by key.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pandera.pandas as pa

from checks.sources import SourceSpec
from checks.tracking_plan import EventPlan, value_column
from telemetry_assets.ingest.tables import IDENTITY_LINKS, existing_columns
from telemetry_assets.record_batches import BATCH_ROWS, record_batches

EXAMPLES = 5
UNIT_INTERVAL = pa.Check.in_range(0, 1)


@dataclass(frozen=True)
class TableModel:
    """A table's rules. The grain (`key` unique within the day) is checked in DuckDB over the whole
    day; the pandera schema checks the values a record batch at a time, so memory does not grow
    with the day."""

    table: str
    schema: pa.DataFrameSchema
    key: tuple[str, ...]
    where: str = ""  # rows the model applies to, beyond the day

    def check(self, con, day, batch_rows: int = BATCH_ROWS) -> tuple[bool, dict]:
        missing = self._missing_columns(con)
        if missing:
            return False, {"missing_columns": ", ".join(missing),
                           "problem": f"{self.table} lacks columns its model checks: it was written by an older "
                                      "version (or never). Re-materialise it for this day, then re-run the check."}
        failures: Counter = Counter()
        examples: list[str] = []
        rows = 0
        for batch in record_batches(con, f"SELECT {self._columns()} FROM {self.table} WHERE dt = ? {self.where}",
                                    [day], batch_rows):
            frame = batch.to_pandas()
            rows += len(frame)
            try:
                self.schema.validate(frame, lazy=True)
            except pa.errors.SchemaErrors as errors:
                failures.update(_failures_by_check(errors.failure_cases))
                examples += _failing_keys(errors.failure_cases, frame, self.key)[:EXAMPLES - len(examples)]
        repeated, repeated_examples = self._repeated_keys(con, day)
        if repeated:
            failures[f"{', '.join(self.key)}: unique"] = repeated
            examples += repeated_examples
        if not failures:
            return True, {"rows_checked": rows}
        return False, {"failures": sum(failures.values()),
                       **{f"failed/{check}": n for check, n in failures.most_common()},
                       "failing_rows": "; ".join(examples[:EXAMPLES]) or "schema-wide"}

    def _missing_columns(self, con) -> list[str]:
        """The key and model columns the table does not have. A table landed before a column was added
        gains it only when a day is re-materialised, so a check re-run on its own can meet it without."""
        present = existing_columns(con, self.table)
        return [c for c in dict.fromkeys([*self.key, *self.schema.columns]) if c not in present]

    def _columns(self) -> str:
        """What the schema reads: its columns and the key, or every column when a frame-wide check may
        read any (free text is never among them)."""
        if self.schema.checks:
            return "*"
        return ", ".join(f'"{c}"' for c in dict.fromkeys([*self.key, *self.schema.columns]))

    def _repeated_keys(self, con, day) -> tuple[int, list[str]]:
        """How many keys occur more than once in the day, and the first few of them: counted in
        DuckDB, so a day of repeats is never fetched whole."""
        key = ", ".join(f'"{c}"' for c in self.key)
        pairs = " || ', ' || ".join(f"""'{c}=' || coalesce("{c}"::VARCHAR, 'NULL')""" for c in self.key)
        rows = con.execute(
            f"SELECT count(*) OVER (), {pairs} AS example FROM {self.table} WHERE dt = ? {self.where} "
            f"GROUP BY {key} HAVING count(*) > 1 ORDER BY example LIMIT {EXAMPLES}", [day]).fetchall()
        return (rows[0][0] if rows else 0), [example for _, example in rows]


def governed_model(plan: EventPlan) -> TableModel:
    """The plan's rules over typed columns: required present, ranges and enums hold; one row per message_id.
    Forwarded rows carry their violations and are left out, as the plan allowed them in."""
    columns = {"message_id": pa.Column(nullable=False),
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
        columns[f.column] = pa.Column(nullable=not f.required, checks=column.checks)
    return TableModel(spec.table, pa.DataFrameSchema(columns, name=spec.table, strict=False), (spec.key,))


IDENTITY_LINKS_MODEL = TableModel(IDENTITY_LINKS, pa.DataFrameSchema({
    "anonymous_id": pa.Column(nullable=False),
    "user_id": pa.Column(nullable=False),
}, name=IDENTITY_LINKS, strict=False), ("source_key", "line_number"))

ANALYTICS_MODELS = {
    "analytics.ai_responses": TableModel("analytics.ai_responses", pa.DataFrameSchema({
        "message_id": pa.Column(nullable=False),
        "latency_ms": pa.Column(checks=pa.Check.ge(0), nullable=True),
        "cost_usd": pa.Column(checks=pa.Check.ge(0), nullable=True),
        "cost_source": pa.Column(checks=pa.Check.isin(["reported", "price_table"]), nullable=True),
    }, name="analytics.ai_responses", strict=False), ("message_id",)),
    "analytics.ai_turns": TableModel("analytics.ai_turns", pa.DataFrameSchema({
        "conversation_id": pa.Column(nullable=False),
        "prompt_number": pa.Column(checks=pa.Check.ge(1)),
        "responses": pa.Column(checks=pa.Check.ge(0)),
    }, name="analytics.ai_turns", strict=False),
        ("conversation_id", "prompt_number")),
    "analytics.ai_conversations": TableModel("analytics.ai_conversations", pa.DataFrameSchema({
        "conversation_id": pa.Column(nullable=False),
        "user_id_source": pa.Column(checks=pa.Check.isin(["sent", "stitched"]), nullable=True),
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
    ], name="metrics.performance_daily", strict=False), PERFORMANCE_KEY),
    "metrics.business_daily": TableModel("metrics.business_daily", pa.DataFrameSchema({
        rate: pa.Column(checks=UNIT_INTERVAL, nullable=True)
        for rate in ("conversion_rate", "multi_turn_share", "return_within_7d_rate", "d1_retention", "d7_retention",
                     "support_deflection_rate")
    }, name="metrics.business_daily", strict=False),
        (*PERFORMANCE_KEY, "cohort_dimension", "cohort")),
    "metrics.version_comparison": TableModel("metrics.version_comparison", pa.DataFrameSchema({
        "p_value": pa.Column(checks=UNIT_INTERVAL, nullable=True),
        "q_value": pa.Column(checks=UNIT_INTERVAL, nullable=True),
        "verdict": pa.Column(checks=pa.Check.isin(["regression", "improvement", "no significant change", "not enough data"])),
    }, name="metrics.version_comparison", strict=False), ("dimension", "arm", "metric", "cohort")),
    "metrics.alerts": TableModel("metrics.alerts", pa.DataFrameSchema({
        "rule": pa.Column(nullable=False), "dedupe_key": pa.Column(nullable=False),
        "severity": pa.Column(checks=pa.Check.isin(["warning", "critical"])),
    }, name="metrics.alerts", strict=False), ("rule", "group_key")),
    "metrics.safety_daily": TableModel("metrics.safety_daily", pa.DataFrameSchema({
        rate: pa.Column(checks=UNIT_INTERVAL, nullable=True)
        for rate in ("audit_completeness", "redaction_rate", "consent_enforcement_rate", "no_consent_rate")
    }, name="metrics.safety_daily", strict=False), ("dt",)),
}


def _failures_by_check(failures) -> Counter:
    checks = failures["column"].fillna("*").astype(str) + ": " + failures["check"].astype(str)
    return Counter(checks.value_counts().to_dict())


def _failing_keys(failures, frame, key: tuple[str, ...]) -> list[str]:
    rows = [int(i) for i in failures["index"].dropna().unique()[:EXAMPLES]]
    return [", ".join(f"{k}={frame.at[i, k]}" for k in key if k in frame.columns) for i in rows]
