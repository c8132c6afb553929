"""Generated traffic through Dagster: no planted PII leaks, and the safety metrics hold (and can fail)."""

import gzip
from datetime import date

import duckdb
import pytest

from checks.tracking_plan import load_tracking_plan
from resources.object_store import LocalObjectStore
from resources.secure_store import SecureStore
from telemetry_assets import settings
from telemetry_assets.generate.traffic import GeneratorConfig
from telemetry_assets.govern import flight
from telemetry_assets.govern.policy import load_policy
from telemetry_assets.govern.safety import compute_safety
from telemetry_assets.ingest.tables import ensure_tables, governed_table
from tests.builders import custom_policy
from tests.pipeline_runs import run_generated


def run_days(tmp_path, name, require_clean=True):
    config = GeneratorConfig(days=2, users=80, events_per_day=1_500, seed=21, start=date(2026, 9, 1))
    return run_generated(tmp_path, config, stages=["land_day"], warehouse_name=name, require_clean=require_clean)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """These September days are past the shipped policy's 30-day raw-text retention, and this suite
    looks at what the archive holds: the days land under the same policy without retention."""
    tmp_path = tmp_path_factory.mktemp("demo")
    keeps_text = custom_policy(tmp_path, lambda p: p.pop("raw_text_retention_days"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TELEMETRY_POLICY", str(tmp_path / "policy.yaml"))
        assert keeps_text.raw_text_retention_days is None
        lake, manifest, _ = run_days(tmp_path, "warehouse")
    return tmp_path, lake, manifest


def test_no_planted_pii_value_appears_in_the_warehouse_or_exports(demo):
    tmp_path, lake, manifest = demo
    planted = manifest["pii_values"]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        tables = [f"{s}.{t}" for s, t in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'warehouse'").fetchall()]
        con.execute("CREATE TEMP TABLE planted AS SELECT unnest(?::VARCHAR[]) AS value", [planted])
        leaks = {table: con.execute(
            f"SELECT DISTINCT value FROM (SELECT r::VARCHAR AS row_text FROM {table} r), planted WHERE contains(row_text, value)"
        ).fetchall() for table in tables}
    assert len(tables) >= 7 and {t: v for t, v in leaks.items() if v} == {}
    exports = {}
    for key in lake.list_keys("exports/"):
        with lake.open(key) as stream:
            exports[key] = gzip.decompress(stream.read()).decode()
    assert {k.split("/")[1] for k in exports} == {"product_analytics", "ai_observability"}
    assert [(key, v) for key, text in exports.items() for v in planted if v in text] == []
    warehouse_bytes = (tmp_path / "warehouse.duckdb").read_bytes()
    assert [v for v in planted if v.encode() in warehouse_bytes] == []
    with duckdb.connect(str(tmp_path / "warehouse-secure.duckdb"), read_only=True) as secure:
        archived = " ".join(r[0] for r in secure.execute("SELECT text FROM raw_text").fetchall())
    assert sum(v in archived for v in planted) > len(planted) // 2  # the scan finds PII where it is allowed


def test_safety_metrics_hold_on_the_demo(demo):
    tmp_path, _, manifest = demo
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            """SELECT dt::VARCHAR, audit_completeness, consent_enforcement_rate, redaction_rate,
                      sensitive_destinations_blocked, routing_decisions
               FROM metrics.safety_daily ORDER BY dt""").fetchall()
    assert [r[0] for r in rows] == manifest["days"]
    for _, completeness, enforcement, redaction, blocked, decisions in rows:
        assert completeness == 1.0 and enforcement == 1.0
        assert 0.2 < redaction < 0.9 and blocked > 0 and decisions > 1000


def test_broken_routing_drops_consent_enforcement(tmp_path, monkeypatch):
    real = flight.decision_sql
    monkeypatch.setattr(flight, "decision_sql",
                        lambda policy, destination: ("TRUE", "NULL") if destination == "warehouse" else real(policy, destination))
    _, _, failed = run_days(tmp_path, "broken", require_clean=False)
    with duckdb.connect(str(tmp_path / "broken.duckdb"), read_only=True) as con:
        rates = [r[0] for r in con.execute("SELECT consent_enforcement_rate FROM metrics.safety_daily").fetchall()]
    assert len(rates) == 2 and all(rate < 0.99 for rate in rates)
    assert failed == [("metrics/safety_daily", "safety_invariants")] * 2  # the blocking GE suite caught it each day


def test_a_day_with_nothing_routed_has_no_enforcement_rate(tmp_path):
    """No governed event, no export, nothing archived: no routing decision to agree with, so the
    rate is unknown (NULL), not 0 or 1."""
    plan, policy = load_tracking_plan(settings.tracking_plan_path()), load_policy(settings.policy_path())
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con, \
            SecureStore(database=str(tmp_path / "secure.duckdb")).get_connection() as secure_con:
        ensure_tables(con, plan)
        safety = compute_safety(con, LocalObjectStore(root=str(tmp_path / "lake")), secure_con, date(2026, 9, 1),
                                policy, [governed_table(name) for name in plan.events])
    assert (safety["routing_decisions"], safety["routing_agreements"], safety["consent_enforcement_rate"]) == (0, 0, None)
