"""The alert rules file: validated on load, the bad key named."""

from datetime import date, timedelta

import duckdb
import pytest
import yaml

from telemetry_assets.analytics.alert_rules import AlertRulesError, load_alert_rules
from telemetry_assets.analytics.alerts import build_alerts
from telemetry_assets.analytics.performance import PERFORMANCE, PERFORMANCE_TABLE
from telemetry_assets.govern.safety import SAFETY_COLUMNS, SAFETY_TABLE
from telemetry_assets.ingest.tables import create_or_extend
from telemetry_assets.settings import CONFIG_DIR

SHIPPED = yaml.safe_load((CONFIG_DIR / "alerts.yaml").read_text())


@pytest.mark.parametrize("change, named", [
    (lambda r: r["rules"][0].update(kind="vibes"), r"rules\[0\]\.kind: 'vibes' is not one of"),
    (lambda r: r["rules"][0].update(abvoe=1), r"rules\[0\] \(p95_latency_high\): unknown key 'abvoe'"),
    (lambda r: r["rules"][1].update(severity="page-everyone"), r"rules\[1\]\.severity: 'page-everyone'"),
    (lambda r: r["rules"][0].update(metric="vibes_ms"), r"rules\[0\]\.metric: 'vibes_ms' is not one of"),
    (lambda r: r["rules"][1].update(name="p95_latency_high"), r"rules\[1\]\.name: missing or repeated"),
    (lambda r: r["rules"][1].pop("name"), r"rules\[1\]\.name: missing or repeated"),
    # Options a rule cannot work without, or with which it could never fire: refused on load, not
    # found out when a day is measured (or never, as a silent rule).
    (lambda r: r["rules"][0].pop("above"), r"rules\[0\]\.above: missing \(a threshold rule needs above, metric\)"),
    (lambda r: r["rules"][0].update(above="6s"), r"rules\[0\]\.above: '6s' is not a number"),
    (lambda r: r["rules"][3].update(direction="upward"), r"rules\[3\]\.direction: 'upward' is not up or down"),
    (lambda r: r["rules"][3].update(baseline_days=0), r"rules\[3\]\.baseline_days: 0 is not a whole number of days"),
    (lambda r: r["rules"][3].update(min_baseline_days=8),
     r"rules\[3\]\.min_baseline_days: 8 is more than baseline_days \(7\): the rule could never fire"),
    (lambda r: r["rules"][5].update(max_q=5), r"rules\[5\]\.max_q: 5 is not a number above 0 and at most 1"),
    (lambda r: r["rules"][5].update(metrics=["p95_latency"]), r"rules\[5\]\.metrics: \['p95_latency'\] is not a list of"),
    (lambda r: r["rules"][5].update(metrics=[]), r"rules\[5\]\.metrics: \[\] is not a list of metrics"),
    (lambda r: r["rules"][6].update(dimension="model"), r"rules\[6\]\.dimension: 'model' is not one of model_version"),
    (lambda r: r["rules"][7].update(metric="blocked"), r"rules\[7\]\.metric: 'blocked' is not one of events_processed"),
    (lambda r: r["rules"][7].update(days=2.5), r"rules\[7\]\.days: 2.5 is not a whole number of days"),
    (lambda r: r.update(min_requests="many"), r"min_requests: 'many' is not a whole number, 0 or more"),
])
def test_a_bad_rule_fails_on_load_naming_it(tmp_path, change, named):
    raw = yaml.safe_load(yaml.safe_dump(SHIPPED))
    change(raw)
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(AlertRulesError, match=named):
        load_alert_rules(tmp_path / "alerts.yaml")


def test_the_shipped_rules_load():
    rules = load_alert_rules(CONFIG_DIR / "alerts.yaml")
    assert rules.min_requests == 100 and {r.kind for r in rules.rules} == {
        "threshold", "robust_change", "version_regression", "sustained_zero"}
    assert "no_consent_rate" in {r.get("metric") for r in rules.rules}


# --- the day-level rules, evaluated over a hand-built metrics.performance_daily ------------------

DAY = date(2026, 9, 8)
BUSY, QUIET = ("gpt-a", "v1", "control"), ("gpt-b", "v1", "control")
DAY_RULES = [
    {"name": "p95_high", "kind": "threshold", "metric": "p95_latency_ms", "above": 6000, "severity": "warning"},
    {"name": "errors_jump", "kind": "robust_change", "metric": "error_rate", "direction": "up", "min_score": 5,
     "baseline_days": 7, "min_baseline_days": 4, "severity": "critical"},
]


def day_rules(tmp_path, rules=DAY_RULES):
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump({"version": "1", "changes": [{"version": "1"}], "min_requests": 100,
                                    "rules": rules}))
    return load_alert_rules(path)


def performance(rows):
    """A warehouse holding only `metrics.performance_daily`: (days before DAY, group, requests,
    success rate, p95 latency) per row."""
    con = duckdb.connect()
    create_or_extend(con, PERFORMANCE_TABLE, "test", PERFORMANCE)
    for days_before, (model, prompt, flag), requests, success_rate, p95 in rows:
        con.execute(f"INSERT INTO {PERFORMANCE_TABLE} BY NAME SELECT ? AS dt, ? AS model_version, ? AS prompt_version, "
                    "? AS feature_flag_state, ? AS requests, ? AS success_rate, ? AS p95_latency_ms",
                    [DAY - timedelta(days=days_before), model, prompt, flag, requests, success_rate, p95])
    return con


def fired(con, tmp_path):
    build_alerts(con, DAY, day_rules(tmp_path))
    return con.execute("SELECT rule, group_key, value, baseline, dedupe_key FROM metrics.alerts ORDER BY ALL").fetchall()


def test_a_threshold_fires_for_a_busy_group_above_it_and_never_for_a_quiet_one(tmp_path):
    con = performance([(0, BUSY, 500, 0.98, 6500.0), (0, QUIET, 99, 0.98, 9000.0)])
    assert fired(con, tmp_path) == [
        ("p95_high", "gpt-a / v1 / control", 6500.0, 6000.0, "p95_high|gpt-a / v1 / control|2026-09-08")]


def test_a_threshold_does_not_fire_at_the_line(tmp_path):
    assert fired(performance([(0, BUSY, 500, 0.98, 6000.0)]), tmp_path) == []


def test_a_jump_against_the_groups_own_history_fires_with_its_median(tmp_path):
    history = [(d, BUSY, 500, rate, 1000.0) for d, rate in zip(range(1, 8), [0.98, 0.97, 0.98, 0.99, 0.98, 0.97, 0.98])]
    con = performance([*history, (0, BUSY, 500, 0.80, 1000.0)])
    ((rule, group, value, baseline, _),) = fired(con, tmp_path)
    assert (rule, group) == ("errors_jump", "gpt-a / v1 / control")
    assert value == pytest.approx(0.20) and baseline == pytest.approx(0.02)


def test_no_jump_is_called_without_enough_history_or_in_the_other_direction(tmp_path):
    short = [(d, BUSY, 500, 0.98, 1000.0) for d in range(1, 4)]  # 3 days, the rule needs 4
    assert fired(performance([*short, (0, BUSY, 500, 0.80, 1000.0)]), tmp_path) == []
    history = [(d, BUSY, 500, 0.90, 1000.0) for d in range(1, 8)]
    assert fired(performance([*history, (0, BUSY, 500, 1.0, 1000.0)]), tmp_path) == []  # errors fell


# --- safety rates, over a hand-built metrics.safety_daily ----------------------------------------

NO_CONSENT_HIGH = next(rule for rule in SHIPPED["rules"] if rule.get("metric") == "no_consent_rate")
NO_CONSENT_JUMP = {"name": "no_consent_jump", "kind": "robust_change", "metric": "no_consent_rate", "direction": "up",
                   "min_score": 8, "baseline_days": 7, "min_baseline_days": 4, "severity": "critical"}
USUAL_SHARES = [0.06, 0.05, 0.07, 0.06, 0.06, 0.05, 0.07]  # the users who never answer the consent banner


def safety(rows):
    """A warehouse holding `metrics.safety_daily` (and no performance rows): (days before DAY,
    events processed, no_consent_rate) per row."""
    con = duckdb.connect()
    create_or_extend(con, PERFORMANCE_TABLE, "test", PERFORMANCE)
    create_or_extend(con, SAFETY_TABLE, "test", SAFETY_COLUMNS)
    for days_before, processed, share in rows:
        con.execute(f"INSERT INTO {SAFETY_TABLE} BY NAME SELECT ? AS dt, ? AS events_processed, ? AS no_consent_rate",
                    [DAY - timedelta(days=days_before), processed, share])
    return con


def fired_on_safety(con, tmp_path, rule):
    build_alerts(con, DAY, day_rules(tmp_path, [rule]))
    return con.execute("SELECT rule, group_key, value, baseline, dedupe_key FROM metrics.alerts").fetchall()


def test_a_consent_manager_that_stops_sending_consent_pages(tmp_path):
    """The shipped rule: a share of events without consent far above the users who never answer."""
    assert fired_on_safety(safety([(0, 2000, 0.55)]), tmp_path, NO_CONSENT_HIGH) == [
        ("no_consent_high", "governance", 0.55, 0.25, "no_consent_high|governance|2026-09-08")]


def test_the_usual_share_without_consent_or_a_quiet_day_does_not_page(tmp_path):
    assert fired_on_safety(safety([(0, 2000, 0.094)]), tmp_path, NO_CONSENT_HIGH) == []  # the demo week's highest
    assert fired_on_safety(safety([(0, 60, 0.55)]), tmp_path, NO_CONSENT_HIGH) == []  # 60 events: below min_requests


def test_a_robust_change_can_watch_a_safety_rate_against_its_own_days(tmp_path):
    history = [(d, 2000, share) for d, share in zip(range(1, 8), USUAL_SHARES)]
    ((rule, group, value, baseline, key),) = fired_on_safety(safety([*history, (0, 2000, 0.55)]), tmp_path,
                                                             NO_CONSENT_JUMP)
    assert (rule, group, key) == ("no_consent_jump", "governance", "no_consent_jump|governance|2026-09-08")
    assert value == pytest.approx(0.55) and baseline == pytest.approx(0.06)
    assert fired_on_safety(safety([*history, (0, 2000, 0.08)]), tmp_path, NO_CONSENT_JUMP) == []
