"""`metrics.version_comparison`: each new version or variant against its baseline, with a verdict.

Comparisons made on each dt:
- a `model_version` change within a feature-flag arm: the version the arm runs on dt (candidate, its
  days in the last 7) against the version it replaced (baseline, its days in the 14 before the
  candidate first appeared), pooling prompt versions;
- a `prompt_version` change the same way, but within one arm *and* model version: prompts change
  more often than models, and a prompt comparison must not absorb a model swap's effect;
- each feature-flag variant against `control`, over the last 7 days.

Metrics: success rate (responses), conversion, completion and support deflection (conversations;
overall and by plan, since a change can help one cohort and hurt another), p95 latency (responses)
and cost per successful outcome (turns). Rates get a Newcombe interval and a two-proportion z-test,
which treat conversations as independent: outcomes matched per user (a ticket or a conversion
counts for each of the user's conversations in the window) are clustered, so their p-values are
optimistic when users hold many conversations. A day runs dozens of tests, so the verdict uses the
Benjamini-Hochberg q-value over the day's tests (false discoveries held at 5% of flags), not p;
p95 gets a seeded bootstrap, cost per outcome the delta method (`stats.py`). Outcome rates use only
conversations whose attribution window has closed (they began before the latest landed
conversions' day), so recent days are not read as regressions for lack of time. Below `MIN_SAMPLE`
units on either side the verdict is "not enough data".

Grain: one row per (dt, dimension, arm, baseline, candidate, metric, cohort_dimension, cohort).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from telemetry_assets.analytics.joins import CONVERSATIONS_TABLE, RESPONSES_TABLE, TURNS_TABLE
from telemetry_assets.analytics.stats import (
    Difference,
    benjamini_hochberg,
    quantile_difference,
    rate_difference,
    ratio_difference,
)
from telemetry_assets.ingest.tables import create_or_extend, replacing_day

COMPARISON_TABLE = "metrics.version_comparison"
WINDOW_DAYS = 7
BASELINE_LOOKBACK_DAYS = 14
MIN_SAMPLE = 100
SIGNIFICANCE = 0.05
CONTROL = "control"
HIGHER_IS_BETTER = {"success_rate": True, "conversion_rate": True, "completion_rate": True,
                    "support_deflection_rate": True, "p95_latency_ms": False, "cost_per_successful_outcome": False}
# What the table holds: every comparison reports each of these metrics, and attributes a change to
# one of these dimensions (alert rules naming others are refused on load).
COMPARED_METRICS = tuple(HIGHER_IS_BETTER)
COMPARED_DIMENSIONS = ("model_version", "prompt_version", "feature_flag_state")
COMPARISON = {
    "dt": "DATE", "dimension": "VARCHAR", "arm": "VARCHAR", "baseline": "VARCHAR", "candidate": "VARCHAR",
    "metric": "VARCHAR", "cohort_dimension": "VARCHAR", "cohort": "VARCHAR",
    "n_baseline": "BIGINT", "n_candidate": "BIGINT", "baseline_value": "DOUBLE", "candidate_value": "DOUBLE",
    "difference": "DOUBLE", "ci_low": "DOUBLE", "ci_high": "DOUBLE", "p_value": "DOUBLE", "q_value": "DOUBLE",
    "verdict": "VARCHAR", "message": "VARCHAR",
}


@dataclass(frozen=True)
class Comparison:
    dimension: str
    arm: str
    baseline: str
    candidate: str
    baseline_filter: str  # SQL over an analytics table: which rows are the baseline
    candidate_filter: str


def build_comparison(con, day: date) -> int:
    create_or_extend(con, COMPARISON_TABLE, "One row per dt, comparison, metric and cohort.", COMPARISON)
    results = [result for comparison in _comparisons(con, day) for result in _compare(con, day, comparison)]
    q_values = benjamini_hochberg([r.difference.p_value if r.enough else None for r in results])
    frame = pd.DataFrame([r.row(q) for r, q in zip(results, q_values)], columns=list(COMPARISON))
    con.register("comparison_rows", frame)
    with replacing_day(con, day, [COMPARISON_TABLE]):
        con.execute(f"INSERT INTO {COMPARISON_TABLE} BY NAME SELECT * FROM comparison_rows")
    return len(frame)


def _comparisons(con, day: date) -> list[Comparison]:
    start = day - timedelta(days=WINDOW_DAYS - 1)
    found = []
    for dimension, context in (("model_version", ["feature_flag_state"]),
                               ("prompt_version", ["feature_flag_state", "model_version"])):
        history = con.execute(
            f"""SELECT {", ".join(context)}, {dimension}, min(dt) AS first_day, max(dt) AS last_day
                FROM {RESPONSES_TABLE} WHERE dt BETWEEN ? AND ? GROUP BY ALL ORDER BY ALL""",
            [day - timedelta(days=WINDOW_DAYS + BASELINE_LOOKBACK_DAYS), day]).fetchall()
        by_context: dict[tuple, list] = {}
        for *held, version, first_day, last_day in history:
            by_context.setdefault(tuple(held), []).append((version, first_day, last_day))
        for held, versions in by_context.items():
            versions.sort(key=lambda v: v[1])
            current = [v for v in versions if v[2] == day]
            if len(versions) < 2 or not current:
                continue
            candidate, candidate_first, _ = current[-1]
            earlier = [v for v in versions if v[1] < candidate_first and v[0] != candidate]
            if not earlier:
                continue
            baseline = earlier[-1][0]
            fixed = " AND ".join(f"{column} = '{value}'" for column, value in zip(context, held))
            found.append(Comparison(
                dimension, " on ".join(held), baseline, candidate,
                f"{fixed} AND {dimension} = '{baseline}' AND dt < DATE '{candidate_first}'",
                f"{fixed} AND {dimension} = '{candidate}' AND dt >= DATE '{max(candidate_first, start)}'",
            ))
    arms = [r[0] for r in con.execute(
        f"SELECT DISTINCT feature_flag_state FROM {RESPONSES_TABLE} WHERE dt BETWEEN ? AND ? ORDER BY 1", [start, day]).fetchall()]
    window = f"dt BETWEEN DATE '{start}' AND DATE '{day}'"
    for arm in arms:
        if arm != CONTROL and CONTROL in arms:
            found.append(Comparison("feature_flag_state", arm, CONTROL, arm,
                                    f"feature_flag_state = '{CONTROL}' AND {window}", f"feature_flag_state = '{arm}' AND {window}"))
    return found


def _sides(con, day: date, c: Comparison, select: str) -> dict[str, pd.DataFrame]:
    """`select ... FROM table WHERE {rows}` run for the baseline's and the candidate's rows up to day."""
    return {side: con.execute(select.format(rows=f"({rows}) AND dt <= DATE '{day}'")).df()
            for side, rows in (("baseline", c.baseline_filter), ("candidate", c.candidate_filter))}


def _compare(con, day: date, c: Comparison) -> list["_Result"]:
    responses = _sides(con, day, c, f"SELECT response_status = 'success' AS ok, latency_ms FROM {RESPONSES_TABLE} WHERE {{rows}}")
    n = {side: len(frame) for side, frame in responses.items()}
    ok = {side: int(frame["ok"].sum()) for side, frame in responses.items()}
    latencies = {side: frame["latency_ms"].dropna().to_numpy() for side, frame in responses.items()}
    turns = {side: frame.to_numpy(dtype=float) for side, frame in _sides(
        con, day, c, f"SELECT coalesce(cost_usd, 0) AS cost, successful_outcome::DOUBLE AS success FROM {TURNS_TABLE} WHERE {{rows}}"
    ).items()}
    return [
        _Result(day, c, "success_rate", "all", "all", n["baseline"], n["candidate"],
                rate_difference(ok["baseline"], n["baseline"], ok["candidate"], n["candidate"])),
        _Result(day, c, "p95_latency_ms", "all", "all", len(latencies["baseline"]), len(latencies["candidate"]),
                quantile_difference(latencies["baseline"], latencies["candidate"], 0.95)),
        _Result(day, c, "cost_per_successful_outcome", "all", "all", len(turns["baseline"]), len(turns["candidate"]),
                ratio_difference(turns["baseline"], turns["candidate"])),
        *_outcome_rows(con, day, c),
    ]


def _outcome_rows(con, day: date, c: Comparison) -> list["_Result"]:
    """Conversation rates, overall and by plan, over conversations whose attribution window closed.
    Conversion and deflection are matched by user, so they count only conversations with a userId
    (as `business_daily` does); completion counts every conversation."""
    frames = _sides(con, day, c, f"""SELECT coalesce(plan, 'unknown') AS plan, converted, completed, deflected,
            user_id IS NOT NULL AS identified
        FROM {CONVERSATIONS_TABLE} WHERE {{rows}} AND dt < (SELECT max(dt) FROM sources.conversions)""")
    rows = []
    cohorts = [("all", "all")] + [("plan", p) for p in sorted(set(frames["baseline"]["plan"]) | set(frames["candidate"]["plan"]))]
    for dimension, cohort in cohorts:
        picked = {side: frame if dimension == "all" else frame[frame["plan"] == cohort] for side, frame in frames.items()}
        for metric, column, by_user in (("conversion_rate", "converted", True),
                                        ("completion_rate", "completed", False),
                                        ("support_deflection_rate", "deflected", True)):
            counted = {side: frame[frame["identified"]] if by_user else frame for side, frame in picked.items()}
            n = {side: len(frame) for side, frame in counted.items()}
            k = {side: int(frame[column].sum()) for side, frame in counted.items()}
            rows.append(_Result(day, c, metric, dimension, cohort, n["baseline"], n["candidate"],
                                rate_difference(k["baseline"], n["baseline"], k["candidate"], n["candidate"])))
    return rows


@dataclass(frozen=True)
class _Result:
    day: date
    comparison: Comparison
    metric: str
    cohort_dimension: str
    cohort: str
    n_baseline: int
    n_candidate: int
    difference: Difference

    @property
    def enough(self) -> bool:
        return min(self.n_baseline, self.n_candidate) >= MIN_SAMPLE and self.difference.p_value is not None

    def row(self, q_value: float | None) -> list:
        c, d = self.comparison, self.difference
        verdict, message = self._verdict(q_value)
        return [self.day, c.dimension, c.arm, c.baseline, c.candidate, self.metric, self.cohort_dimension, self.cohort,
                self.n_baseline, self.n_candidate, d.baseline, d.candidate, d.difference, d.low, d.high, d.p_value,
                q_value, verdict, message]

    def _verdict(self, q_value: float | None) -> tuple[str, str]:
        metric, d = self.metric, self.difference
        scope = "" if self.cohort == "all" else f" for plan={self.cohort}"
        if not self.enough:
            return "not enough data", f"{metric}{scope}: {self.n_baseline} vs {self.n_candidate}, need {MIN_SAMPLE} on each side"
        change = f"{_fmt(metric, d.baseline)} -> {_fmt(metric, d.candidate)}"
        interval = (f"95% CI {_fmt(metric, d.low, signed=True)} to {_fmt(metric, d.high, signed=True)}, "
                    f"p{_probability(d.p_value)}, q{_probability(q_value)}")
        if q_value >= SIGNIFICANCE:
            return "no significant change", f"{metric}{scope}: {change} ({interval})"
        verdict = "improvement" if (d.difference > 0) == HIGHER_IS_BETTER[metric] else "regression"
        return verdict, f"{metric}{scope} {verdict}: {change} ({interval})"


def _probability(value: float) -> str:
    """'=0.0123', or '<0.001' where a bootstrap of 1,000 resamples cannot resolve smaller values."""
    return "<0.001" if value < 0.001 else f"={value:.3g}"


def _fmt(metric: str, value: float | None, signed: bool = False) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    sign = "-" if value < 0 else "+" if signed and value > 0 else ""
    if metric.endswith("_rate"):
        return f"{sign}{abs(value) * 100:.1f}{' pts' if signed else '%'}"
    if metric == "p95_latency_ms":
        return f"{sign}{abs(value):,.0f} ms"
    return f"{sign}${abs(value):.5f}"
