"""The alert rules file: validated on load, the bad key named."""

import pytest
import yaml

from telemetry_assets.analytics.alert_rules import AlertRulesError, load_alert_rules
from telemetry_assets.settings import CONFIG_DIR

SHIPPED = yaml.safe_load((CONFIG_DIR / "alerts.yaml").read_text())


@pytest.mark.parametrize("change, named", [
    (lambda r: r["rules"][0].update(kind="vibes"), r"rules\[0\]\.kind: 'vibes' is not one of"),
    (lambda r: r["rules"][0].update(abvoe=1), r"rules\[0\] \(p95_latency_high\): unknown key 'abvoe'"),
    (lambda r: r["rules"][1].update(severity="page-everyone"), r"rules\[1\]\.severity: 'page-everyone'"),
    (lambda r: r["rules"][0].update(metric="vibes_ms"), r"rules\[0\]\.metric: 'vibes_ms' is not one of"),
    (lambda r: r["rules"][1].update(name="p95_latency_high"), r"rules\[1\]\.name: missing or repeated"),
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
