"""Alert rules as code: the versioned `alerts.yaml`, validated on load with the bad key named.

Every option is checked when the file loads, not when a day is measured: a rule that could never
fire (a metric misspelt, a direction other than up or down, more days of history required than
it looks back over) is an alert that silently never comes, so it is refused with its key named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from telemetry_assets.analytics.comparison import COMPARED_DIMENSIONS, COMPARED_METRICS
from telemetry_assets.config_files import is_number, is_whole_number, load_versioned_yaml, reject_unknown
from telemetry_assets.govern.safety import SAFETY_COLUMNS

KINDS = {  # kind: (required options, optional options)
    "threshold": ({"metric", "above"}, set()),
    "robust_change": ({"metric", "direction", "min_score", "baseline_days", "min_baseline_days"}, set()),
    "version_regression": ({"metrics"}, {"dimension", "max_q"}),
    "sustained_zero": ({"metric", "days"}, set()),
}
SEVERITIES = ("warning", "critical")
PERFORMANCE_METRICS = ("p95_latency_ms", "error_rate", "cost_per_successful_outcome", "success_rate",
                       "conversation_completion_rate")
SAFETY_COUNTS = tuple(column for column, sql_type in SAFETY_COLUMNS.items() if sql_type == "BIGINT")
SAFETY_RATES = tuple(column for column, sql_type in SAFETY_COLUMNS.items() if sql_type == "DOUBLE")
METRICS = {"threshold": PERFORMANCE_METRICS + SAFETY_RATES, "robust_change": PERFORMANCE_METRICS + SAFETY_RATES,
           "sustained_zero": SAFETY_COUNTS}


def _is_days(value: Any) -> bool:
    return is_whole_number(value) and value >= 1


OPTIONS: dict[str, tuple[Callable[[Any], bool], str]] = {  # option: (is it valid, what it must be)
    "above": (is_number, "a number"),
    "direction": (lambda v: v in ("up", "down"), "up or down"),
    "min_score": (lambda v: is_number(v) and v > 0, "a number above 0"),
    "baseline_days": (_is_days, "a whole number of days, 1 or more"),
    "min_baseline_days": (_is_days, "a whole number of days, 1 or more"),
    "days": (_is_days, "a whole number of days, 1 or more"),
    "max_q": (lambda v: is_number(v) and 0 < v <= 1, "a number above 0 and at most 1"),
    "dimension": (lambda v: v in COMPARED_DIMENSIONS, f"one of {', '.join(COMPARED_DIMENSIONS)}"),
    "metrics": (lambda v: isinstance(v, list) and bool(v) and all(m in COMPARED_METRICS for m in v),
                f"a list of metrics from {', '.join(COMPARED_METRICS)}"),
}


class AlertRulesError(ValueError):
    """The alert rules file is not valid; the message names the offending key."""


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    severity: str
    options: dict = field(default_factory=dict)

    def __getitem__(self, key):
        return self.options[key]

    def get(self, key, default=None):
        return self.options.get(key, default)


@dataclass(frozen=True)
class AlertRules:
    version: str
    min_requests: int
    rules: tuple[Rule, ...]


def load_alert_rules(path: Path) -> AlertRules:
    raw = load_versioned_yaml(path, AlertRulesError, {"version", "changes", "min_requests", "rules"}, {"rules"})
    min_requests = raw.get("min_requests", 100)
    if not is_whole_number(min_requests) or min_requests < 0:
        raise AlertRulesError(f"min_requests: {min_requests!r} is not a whole number, 0 or more")
    rules, names = [], set()
    for position, spec in enumerate(raw["rules"]):
        rule = _rule(f"rules[{position}]", spec)
        if rule.name in names:
            raise AlertRulesError(f"rules[{position}].name: missing or repeated")
        names.add(rule.name)
        rules.append(rule)
    return AlertRules(str(raw["version"]), min_requests, tuple(rules))


def _rule(where: str, spec: Any) -> Rule:
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise AlertRulesError(f"{where}.kind: {spec.get('kind') if isinstance(spec, dict) else spec!r} "
                              f"is not one of {', '.join(KINDS)}")
    required, optional = KINDS[spec["kind"]]
    reject_unknown(spec, {"name", "kind", "severity", *required, *optional}, f"{where} ({spec.get('name')})",
                   AlertRulesError)
    if not spec.get("name"):
        raise AlertRulesError(f"{where}.name: missing or repeated")
    if spec.get("severity") not in SEVERITIES:
        raise AlertRulesError(f"{where}.severity: {spec.get('severity')!r} is not one of {', '.join(SEVERITIES)}")
    missing = sorted(required - set(spec))
    if missing:
        raise AlertRulesError(
            f"{where}.{missing[0]}: missing (a {spec['kind']} rule needs {', '.join(sorted(required))})")
    options = {k: v for k, v in spec.items() if k not in ("name", "kind", "severity")}
    for option, value in options.items():
        _check_option(f"{where}.{option}", spec["kind"], option, value)
    if spec["kind"] == "robust_change" and spec["min_baseline_days"] > spec["baseline_days"]:
        raise AlertRulesError(f"{where}.min_baseline_days: {spec['min_baseline_days']} is more than baseline_days "
                              f"({spec['baseline_days']}): the rule could never fire")
    return Rule(spec["name"], spec["kind"], spec["severity"], options)


def _check_option(where: str, kind: str, option: str, value: Any) -> None:
    if option == "metric":  # which metrics a rule may watch depends on its kind
        is_valid, must_be = value in METRICS[kind], f"one of {', '.join(METRICS[kind])}"
    else:
        check, must_be = OPTIONS[option]
        is_valid = check(value)
    if not is_valid:
        raise AlertRulesError(f"{where}: {value!r} is not {must_be}")
