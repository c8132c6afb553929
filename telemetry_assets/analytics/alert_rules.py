"""Alert rules as code: the versioned `alerts.yaml`, validated on load with the bad key named."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from telemetry_assets.config_files import load_versioned_yaml, reject_unknown

KINDS = {
    "threshold": {"metric", "above", "severity"},
    "robust_change": {"metric", "direction", "min_score", "baseline_days", "min_baseline_days", "severity"},
    "version_regression": {"metrics", "dimension", "max_q", "severity"},
    "sustained_zero": {"metric", "days", "severity"},
}
SEVERITIES = ("warning", "critical")
PERFORMANCE_METRICS = ("p95_latency_ms", "error_rate", "cost_per_successful_outcome", "success_rate",
                       "conversation_completion_rate")


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
    rules, names = [], set()
    for position, spec in enumerate(raw["rules"]):
        where = f"rules[{position}]"
        if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
            raise AlertRulesError(f"{where}.kind: {spec.get('kind') if isinstance(spec, dict) else spec!r} "
                                  f"is not one of {', '.join(KINDS)}")
        reject_unknown(spec, {"name", "kind", *KINDS[spec["kind"]]}, f"{where} ({spec.get('name')})", AlertRulesError)
        if spec.get("severity") not in SEVERITIES:
            raise AlertRulesError(f"{where}.severity: {spec.get('severity')!r} is not one of {', '.join(SEVERITIES)}")
        if spec["kind"] in ("threshold", "robust_change") and spec.get("metric") not in PERFORMANCE_METRICS:
            raise AlertRulesError(f"{where}.metric: {spec.get('metric')!r} is not one of {', '.join(PERFORMANCE_METRICS)}")
        if not spec.get("name") or spec["name"] in names:
            raise AlertRulesError(f"{where}.name: missing or repeated")
        names.add(spec["name"])
        options = {k: v for k, v in spec.items() if k not in ("name", "kind", "severity")}
        rules.append(Rule(spec["name"], spec["kind"], spec["severity"], options))
    return AlertRules(str(raw["version"]), int(raw.get("min_requests", 100)), tuple(rules))
