"""`metrics.alerts`: the alert rules evaluated for a day, and their delivery, each alert once.

Grain: one row per (dt, rule, group_key). Rule kinds (`config/alerts.yaml`):
- `threshold`: a performance metric of a group above a fixed line;
- `robust_change`: a group against its own previous days, robust z = (value - median) / (1.4826 *
  MAD), the MAD floored at 5% of the median so a near-constant history does not turn noise into a
  large score; needs `min_baseline_days` of history, so a group new on the day (a version change)
  is left to the next kind;
- `version_regression`: regressions `metrics.version_comparison` attributes to a model, prompt or
  flag change (optionally one dimension), with a q-value at most `max_q`;
- `sustained_zero`: deliveries blocked stay at zero for N days while prompts with text flow.
A threshold or robust change may watch a safety rate (`metrics.safety_daily`) instead: the day is
then one group, `governance`, its volume the events processed. Groups with fewer than
`min_requests` requests (or events) on the day never page.

Dedupe keys: a day-level breach is keyed by its day (a new day is a new alert); a version regression
by the change itself, so it is sent once however many days it persists; a sustained zero by the day
the streak began. `deliver` sends rows whose key is not in the ledger and records each key only
after every sink took it, so a failed delivery is retried, a delivered one never repeated.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from telemetry_assets.analytics.alert_rules import SAFETY_RATES, AlertRules, Rule
from telemetry_assets.ingest.tables import create_or_extend, existing_tables, replacing_day

ALERTS_TABLE = "metrics.alerts"
ALERTS = {
    "dt": "DATE", "rule": "VARCHAR", "severity": "VARCHAR", "group_key": "VARCHAR", "value": "DOUBLE",
    "baseline": "DOUBLE", "message": "VARCHAR", "dedupe_key": "VARCHAR", "rules_version": "VARCHAR",
}
KEY = ("model_version", "prompt_version", "feature_flag_state")
MAD_FLOOR = 0.05


def build_alerts(con, day: date, rules: AlertRules) -> int:
    create_or_extend(con, ALERTS_TABLE, "One row per dt, rule and group that breached it.", ALERTS)
    longest = max([r.get("baseline_days", 0) for r in rules.rules] + [r.get("days", 0) for r in rules.rules] + [1])
    performance = _performance_series(con, day - timedelta(days=longest), day)
    watches_safety = any(r.get("metric") in SAFETY_RATES for r in rules.rules)
    safety = _safety_series(con, day - timedelta(days=longest), day) if watches_safety else None
    rows = []
    for rule in rules.rules:
        series = safety if rule.get("metric") in SAFETY_RATES else performance
        if rule.kind == "threshold":
            rows += _threshold(rule, series, day, rules.min_requests)
        elif rule.kind == "robust_change":
            rows += _robust_change(rule, series, day, rules.min_requests)
        elif rule.kind == "version_regression":
            rows += _version_regressions(con, rule, day)
        else:
            rows += _sustained_zero(con, rule, day)
    frame = pd.DataFrame([{**row, "dt": day, "rules_version": rules.version} for row in rows], columns=list(ALERTS))
    con.register("alert_rows", frame)
    with replacing_day(con, day, [ALERTS_TABLE]):
        con.execute(f"INSERT INTO {ALERTS_TABLE} BY NAME SELECT * FROM alert_rows")
    return len(frame)


def _performance_series(con, start: date, end: date) -> pd.DataFrame:
    """One row per dt and group (`group_key`: model / prompt / flag), `requests` its volume."""
    performance = con.execute(
        """SELECT *, 1 - success_rate AS error_rate FROM metrics.performance_daily WHERE dt BETWEEN ? AND ?""",
        [start, end]).df()
    first, *others = KEY
    performance["group_key"] = performance[first].astype(str).str.cat(performance[others].astype(str), sep=" / ")
    return performance


def _safety_series(con, start: date, end: date) -> pd.DataFrame:
    """One row per dt, the day as one group, `governance`, with the events processed as its volume."""
    return con.execute(
        f"""SELECT dt, 'governance' AS group_key, events_processed AS requests, {", ".join(SAFETY_RATES)}
            FROM metrics.safety_daily WHERE dt BETWEEN ? AND ?""", [start, end]).df()


def _today(series: pd.DataFrame, day: date, min_requests: int) -> pd.DataFrame:
    return series[(series["dt"] == pd.Timestamp(day)) & (series["requests"] >= min_requests)]


def _threshold(rule: Rule, series, day, min_requests) -> list[dict]:
    rows = []
    for _, group in _today(series, day, min_requests).iterrows():
        value = group[rule["metric"]]
        if pd.notna(value) and value > rule["above"]:
            rows.append(_alert(rule, group["group_key"], value, rule["above"],
                               f"{rule['metric']} = {value:.4g} is above {rule['above']} for {group['group_key']}",
                               f"{rule.name}|{group['group_key']}|{day}"))
    return rows


def _robust_change(rule: Rule, series, day, min_requests) -> list[dict]:
    rows = []
    history = series[(series["dt"] < pd.Timestamp(day))
                     & (series["dt"] >= pd.Timestamp(day - timedelta(days=rule["baseline_days"])))
                     & (series["requests"] >= min_requests)]
    for _, group in _today(series, day, min_requests).iterrows():
        past = history.loc[history["group_key"] == group["group_key"], rule["metric"]].dropna()
        value = group[rule["metric"]]
        if len(past) < rule["min_baseline_days"] or pd.isna(value):
            continue
        median = past.median()
        mad = max((past - median).abs().median(), MAD_FLOOR * abs(median), 1e-12)
        score = (value - median) / (1.4826 * mad)
        if (score if rule["direction"] == "up" else -score) >= rule["min_score"]:
            rows.append(_alert(rule, group["group_key"], value, median,
                               f"{rule['metric']} = {value:.4g} against a {len(past)}-day median of {median:.4g} "
                               f"(robust z = {score:.1f}) for {group['group_key']}",
                               f"{rule.name}|{group['group_key']}|{day}"))
    return rows


def _version_regressions(con, rule: Rule, day) -> list[dict]:
    metrics = ", ".join(f"'{m}'" for m in rule["metrics"])
    dimension = f"AND dimension = '{rule['dimension']}'" if rule.get("dimension") else ""
    found = con.execute(
        f"""SELECT dimension, arm, baseline, candidate, metric, cohort_dimension, cohort, candidate_value,
                   baseline_value, message
            FROM metrics.version_comparison
            WHERE dt = ? AND verdict = 'regression' AND q_value <= ? AND metric IN ({metrics}) {dimension}
            ORDER BY ALL""", [day, rule.get("max_q", 0.05)]).fetchall()
    rows = []
    for dim, arm, baseline, candidate, metric, cohort_dim, cohort, value, base_value, message in found:
        scope = "" if cohort_dim == "all" else f" [{cohort_dim}={cohort}]"
        group = f"{arm}: {dim} {baseline} -> {candidate}: {metric}{scope}"
        rows.append(_alert(rule, group, value, base_value, message,
                           f"{rule.name}|{arm}|{dim}|{baseline}->{candidate}|{metric}|{cohort_dim}={cohort}"))
    return rows


def _sustained_zero(con, rule: Rule, day) -> list[dict]:
    recent = con.execute(
        f"""SELECT dt, {rule['metric']} AS value, prompts_with_text FROM metrics.safety_daily
            WHERE dt <= ? ORDER BY dt DESC""", [day]).fetchall()
    streak = []
    for dt, value, flowing in recent:
        if value != 0 or not flowing:
            break
        streak.append(dt)
    if len(streak) < rule["days"] or streak[0] != day:
        return []
    return [_alert(rule, "governance", 0, None,
                   f"{rule['metric']} has been 0 for {len(streak)} days while prompts with text flowed: "
                   "consent or routing rules may not be firing", f"{rule.name}|since {streak[-1]}")]


def _alert(rule: Rule, group_key: str, value, baseline, message: str, dedupe_key: str) -> dict:
    return {"rule": rule.name, "severity": rule.severity, "group_key": group_key,
            "value": None if value is None else float(value), "baseline": None if baseline is None else float(baseline),
            "message": message, "dedupe_key": dedupe_key}


class AlertLedger:
    """Dedupe keys already delivered, one per line in a file beside the warehouse."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def sent(self) -> set[str]:
        return set(self.path.read_text().splitlines()) if self.path.exists() else set()

    def record(self, key: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(key + "\n")


def deliver(con, sinks: list, ledger: AlertLedger, start: date, end: date) -> list[dict]:
    """Send each alert of the range whose dedupe key was never delivered; returns what was sent
    (nothing where no day was ever measured, so the alerts table does not exist yet)."""
    if ALERTS_TABLE not in existing_tables(con):
        return []
    rows = con.execute(f"SELECT * FROM {ALERTS_TABLE} WHERE dt BETWEEN ? AND ? ORDER BY dt, rule, group_key",
                       [start, end]).df()
    already = ledger.sent()
    sent = []
    for alert in json.loads(rows.to_json(orient="records", date_format="iso")):
        if alert["dedupe_key"] in already:
            continue
        alert["dt"] = alert["dt"][:10]
        for sink in sinks:
            sink.send(alert)
        ledger.record(alert["dedupe_key"])
        already.add(alert["dedupe_key"])
        sent.append(alert)
    return sent
