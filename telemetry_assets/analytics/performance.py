"""`metrics.performance_daily`: one row per (dt, model_version, prompt_version, feature_flag_state).

Definitions (DESIGN.md's metric dictionary), over the turns that began on dt:
- `requests`: LLM responses; `success_rate`: share with `response_status = 'success'`;
  `errors_by_type`: error responses per `error_type`;
- `p50/p95/p99_latency_ms`: `quantile_cont` (linear interpolation) over every response's latency;
- `total_cost_usd`: sum of the responses' cost (reported, or priced from the table), added up
  smallest first: floats summed in the order DuckDB's threads read them can differ in their last
  bits from run to run, and a re-run must give the same table;
- `successful_outcomes`: turns with a success action or a conversion flag;
  `cost_per_successful_outcome`: total cost over them, NULL when there are none;
- `conversation_completion_rate`: conversations with a successful outcome and no escalation, over
  conversations (a conversation's key is its first turn's).
A response, turn or conversation is grouped by its own versions, so a group may have turns and no
responses (their answers were quarantined), or the reverse.
"""

from __future__ import annotations

from datetime import date

from telemetry_assets.analytics.joins import CONVERSATIONS_TABLE, RESPONSES_TABLE, TURNS_TABLE
from telemetry_assets.ingest.tables import create_or_extend, replacing_day

PERFORMANCE_TABLE = "metrics.performance_daily"
PERFORMANCE = {
    "dt": "DATE", "model_version": "VARCHAR", "prompt_version": "VARCHAR", "feature_flag_state": "VARCHAR",
    "requests": "BIGINT", "success_rate": "DOUBLE", "errors": "BIGINT", "errors_by_type": "MAP(VARCHAR, BIGINT)",
    "p50_latency_ms": "DOUBLE", "p95_latency_ms": "DOUBLE", "p99_latency_ms": "DOUBLE",
    "total_cost_usd": "DOUBLE", "turns": "BIGINT", "successful_outcomes": "BIGINT",
    "cost_per_successful_outcome": "DOUBLE", "conversations": "BIGINT", "conversation_completion_rate": "DOUBLE",
}


def build_performance(con, day: date) -> int:
    create_or_extend(con, PERFORMANCE_TABLE, "One row per dt and model_version, prompt_version, feature_flag_state.",
                     PERFORMANCE)
    with replacing_day(con, day, [PERFORMANCE_TABLE]):
        con.execute(_PERFORMANCE, {"day": day})
    return con.execute(f"SELECT count(*) FROM {PERFORMANCE_TABLE} WHERE dt = ?", [day]).fetchall()[0][0]


_PERFORMANCE = f"""
INSERT INTO {PERFORMANCE_TABLE} BY NAME
WITH responses AS (
    SELECT model_version, prompt_version, feature_flag_state, count(*) AS requests,
        avg(CASE WHEN response_status = 'success' THEN 1.0 ELSE 0.0 END) AS success_rate,
        count(*) FILTER (WHERE response_status = 'error') AS errors,
        quantile_cont(latency_ms, 0.50) AS p50_latency_ms, quantile_cont(latency_ms, 0.95) AS p95_latency_ms,
        quantile_cont(latency_ms, 0.99) AS p99_latency_ms, sum(cost_usd ORDER BY cost_usd) AS total_cost_usd
    FROM {RESPONSES_TABLE} WHERE dt = $day GROUP BY ALL
), errors AS (
    SELECT model_version, prompt_version, feature_flag_state,
        map(list(error_type ORDER BY error_type), list(n ORDER BY error_type)) AS errors_by_type
    FROM (SELECT model_version, prompt_version, feature_flag_state, coalesce(error_type, 'unknown') AS error_type,
                 count(*) AS n
          FROM {RESPONSES_TABLE} WHERE dt = $day AND response_status = 'error' GROUP BY ALL)
    GROUP BY ALL
), turns AS (
    SELECT model_version, prompt_version, feature_flag_state, count(*) AS turns,
        count(*) FILTER (WHERE successful_outcome) AS successful_outcomes
    FROM {TURNS_TABLE} WHERE dt = $day GROUP BY ALL
), conversations AS (
    SELECT model_version, prompt_version, feature_flag_state, count(*) AS conversations,
        avg(CASE WHEN completed THEN 1.0 ELSE 0.0 END) AS conversation_completion_rate
    FROM {CONVERSATIONS_TABLE} WHERE dt = $day GROUP BY ALL
)
SELECT $day AS dt, model_version, prompt_version, feature_flag_state,
    coalesce(requests, 0) AS requests, success_rate, coalesce(errors, 0) AS errors,
    coalesce(errors_by_type, MAP {{}}) AS errors_by_type, p50_latency_ms, p95_latency_ms, p99_latency_ms,
    coalesce(total_cost_usd, 0) AS total_cost_usd, coalesce(turns, 0) AS turns,
    coalesce(successful_outcomes, 0) AS successful_outcomes,
    total_cost_usd / nullif(successful_outcomes, 0) AS cost_per_successful_outcome,
    coalesce(conversations, 0) AS conversations, conversation_completion_rate
FROM responses
FULL JOIN errors USING (model_version, prompt_version, feature_flag_state)
FULL JOIN turns USING (model_version, prompt_version, feature_flag_state)
FULL JOIN conversations USING (model_version, prompt_version, feature_flag_state)
"""
