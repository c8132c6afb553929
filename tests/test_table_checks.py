"""Each table model passes on the pipeline's own rows and fails on planted bad rows, naming them."""

from datetime import date

import duckdb
import pytest

from checks.sources import load_sources
from checks.table_models import ANALYTICS_MODELS, IDENTITY_LINKS_MODEL, METRIC_MODELS, governed_model, source_model
from checks.tracking_plan import load_tracking_plan
from telemetry_assets.analytics.joins import orphan_turns
from telemetry_assets.generate.traffic import GeneratorConfig
from telemetry_assets.settings import CONFIG_DIR
from tests.pipeline_runs import run_generated

DAY = date(2026, 9, 2)
PLAN = load_tracking_plan(CONFIG_DIR / "tracking_plan.yaml")
SPECS = load_sources(CONFIG_DIR / "sources.yaml")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("checks")
    # 1,000 events a day: the generator plants at least one bad line of each kind, which at smaller
    # volumes is over the 1% quarantine share the drift suite allows
    run_generated(home, GeneratorConfig(days=3, users=60, events_per_day=1_000, seed=5, start=date(2026, 9, 1)))
    return home / "warehouse.duckdb"


@pytest.fixture
def con(built, tmp_path):
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(built.read_bytes())
    with duckdb.connect(str(copy)) as connection:
        yield connection


def models():
    return ([governed_model(p) for p in PLAN.events.values()] + [IDENTITY_LINKS_MODEL]
            + [source_model(s) for s in SPECS.values()]
            + list(ANALYTICS_MODELS.values()) + list(METRIC_MODELS.values()))


@pytest.mark.parametrize("model", models(), ids=lambda m: m.table)
def test_every_model_passes_on_the_pipelines_rows(con, model):
    passed, metadata = model.check(con, DAY)
    assert passed and metadata["rows_checked"] > 0, metadata


PLANTED = {
    "governed.ai_llm_response_received": ("UPDATE governed.ai_llm_response_received SET latency_ms = -1 "
                                          "WHERE message_id = (SELECT min(message_id) FROM governed.ai_llm_response_received WHERE dt = $day)",
                                          "latency_ms"),
    "governed.ai_user_action": ("INSERT INTO governed.ai_user_action SELECT * FROM governed.ai_user_action "
                                "WHERE dt = $day LIMIT 1", "message_id"),
    "governed.identity_links": ("INSERT INTO governed.identity_links SELECT * FROM governed.identity_links "
                                "WHERE dt = $day LIMIT 1", "source_key, line_number"),
    "sources.conversions": ("UPDATE sources.conversions SET revenue = -5 WHERE dt = $day", "revenue"),
    "analytics.ai_conversations": ("UPDATE analytics.ai_conversations SET completed = true, successful_outcomes = 0 "
                                   "WHERE conversation_id = (SELECT min(conversation_id) FROM analytics.ai_conversations WHERE dt = $day)",
                                   "completed_needs_an_outcome"),
    "metrics.performance_daily": ("UPDATE metrics.performance_daily SET p50_latency_ms = p99_latency_ms + 1 WHERE dt = $day",
                                  "quantiles_ordered"),
    "metrics.safety_daily": ("UPDATE metrics.safety_daily SET consent_enforcement_rate = 1.5 WHERE dt = $day",
                             "consent_enforcement_rate"),
}


@pytest.mark.parametrize("table", list(PLANTED))
def test_a_planted_bad_row_fails_its_model_and_is_named(con, table):
    sql, named = PLANTED[table]
    con.execute(sql, {"day": DAY})
    model = next(m for m in models() if m.table == table)
    passed, metadata = model.check(con, DAY)
    assert not passed and metadata["failures"] >= 1
    assert any(named in key for key in metadata), metadata
    assert metadata["failing_rows"]


def test_a_turn_without_its_conversation_is_an_orphan(con):
    assert orphan_turns(con, DAY) == []
    con.execute("""DELETE FROM analytics.ai_conversations WHERE conversation_id =
                   (SELECT min(conversation_id) FROM analytics.ai_turns WHERE dt = $day)""", {"day": DAY})
    assert len(orphan_turns(con, DAY)) >= 1


TEXT_COLUMNS = {"governed.ai_user_prompt_created": ["prompt_text"], "governed.ai_llm_response_received": ["response_text"],
                "governed.ai_user_action": ["feedback"]}


def test_the_safety_suites_pass_on_the_pipelines_rows(con):
    from checks.safety_suites import drift, invariants

    passed, metadata = invariants(con, DAY, TEXT_COLUMNS)
    assert passed and "texts=" in metadata["rows"], metadata
    assert drift(con, DAY)[0]


@pytest.mark.parametrize("planted, failing", [
    ("UPDATE metrics.safety_daily SET consent_enforcement_rate = 0.97 WHERE dt = $day", "consent_enforcement_rate"),
    ("UPDATE metrics.safety_daily SET audit_completeness = 0.99 WHERE dt = $day", "audit_completeness"),
    ("UPDATE governed.ai_user_action SET feedback = 'ssn 123-45-6789' WHERE dt = $day AND feedback IS NOT NULL", "text"),
])
def test_the_invariants_suite_fails_on_planted_breaches_without_showing_values(con, planted, failing):
    from checks.safety_suites import invariants

    con.execute(planted, {"day": DAY})
    passed, metadata = invariants(con, DAY, TEXT_COLUMNS)
    assert not passed
    assert [k.split(":")[1] for k, v in metadata.items() if v.startswith("failed")] == [failing]
    assert "123-45-6789" not in str(metadata)


def test_the_drift_suite_flags_a_quarantine_surge_and_a_redaction_rate_out_of_band(con):
    from checks.safety_suites import drift

    con.execute("UPDATE audit.ingest_files SET quarantined = lines_read // 10 WHERE dt = $day", {"day": DAY})
    passed, metadata = drift(con, DAY)
    assert not passed and metadata["expect_column_values_to_be_between:quarantine_share"].startswith("failed")
    assert metadata["redaction_band"] == "not enough history"  # two earlier days are not a band yet


def test_blocking_that_stays_at_zero_while_prompts_flow_raises_the_sustained_zero_alert(con):
    from telemetry_assets.analytics.alert_rules import load_alert_rules
    from telemetry_assets.analytics.alerts import build_alerts

    rules = load_alert_rules(CONFIG_DIR / "alerts.yaml")
    con.execute("SET TimeZone = 'UTC'")
    assert con.execute("SELECT min(sensitive_destinations_blocked) FROM metrics.safety_daily").fetchone()[0] > 0
    build_alerts(con, date(2026, 9, 3), rules)
    assert con.execute("SELECT count(*) FROM metrics.alerts WHERE rule = 'blocked_destinations_sustained_zero'").fetchone() == (0,)
    con.execute("UPDATE metrics.safety_daily SET sensitive_destinations_blocked = 0")
    build_alerts(con, date(2026, 9, 3), rules)
    ((key, message),) = con.execute(
        "SELECT dedupe_key, message FROM metrics.alerts WHERE rule = 'blocked_destinations_sustained_zero'").fetchall()
    assert key == "blocked_destinations_sustained_zero|since 2026-09-01" and "rules may not be firing" in message


def run_checks_only(built, database):
    import dagster as dg

    from resources.object_store import LocalObjectStore
    from resources.warehouse import Warehouse
    from telemetry_assets.definitions import defs

    resources = {"lake": LocalObjectStore(root=str(built.parent / "lake")), "warehouse": Warehouse(database=str(database))}
    result = defs.resolve_job_def("checks_only").execute_in_process(
        tags={"dagster/partition": DAY.isoformat()}, instance=dg.DagsterInstance.ephemeral(), resources=resources,
        raise_on_error=False)
    evaluations = {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}
    return result, evaluations


def test_the_check_only_job_reruns_every_check_on_a_landed_day_and_rewrites_nothing(built, tmp_path):
    from telemetry_assets.definitions import defs

    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(built.read_bytes())
    with duckdb.connect(str(copy)) as con:  # as a day landed before identity links were counted
        con.execute("UPDATE audit.ingest_files SET identity_links = NULL, identity_links_blocked = NULL")
    result, evaluations = run_checks_only(built, copy)
    every_check = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    # these look at every day at once: they run in `privacy_checks` (and the retention one with the expiry), not by day
    every_check -= {("audit/raw_text_expiry", "no_raw_text_past_retention"), ("audit/erasure_requests", "no_erased_person_held")}
    assert result.success and set(evaluations) == every_check and len(every_check) >= 20
    assert all(c.passed for c in evaluations.values())
    assert {c.partition for c in evaluations.values()} == {DAY.isoformat()}
    assert result.get_asset_materialization_events() == []

    copy.write_bytes(built.read_bytes())
    with duckdb.connect(str(copy)) as con:
        con.execute("UPDATE audit.ingest_files SET valid_events = valid_events - 1 WHERE dt = $day", {"day": DAY})
        con.execute("UPDATE governed.ai_user_action SET feedback = 'mail me at jo@example.com' "
                    "WHERE dt = $day AND feedback IS NOT NULL", {"day": DAY})
        # a governed row and a quarantine row deleted by hand: the ledger no longer matches the tables
        for table, where in (("governed.ai_llm_response_received", ""), ("audit.quarantine", "AND origin = 'ai_events'"),
                             ("governed.identity_links", "")):
            con.execute(f"DELETE FROM {table} WHERE rowid = (SELECT min(rowid) FROM {table} WHERE dt = $day {where})",
                        {"day": DAY})
        (log_delivered,) = con.execute("SELECT count(*) FROM audit.governance_log WHERE dt = $day "
                                       "AND list_contains(delivered, 'warehouse')", {"day": DAY}).fetchone()
    result, evaluations = run_checks_only(built, copy)
    failed = {key for key, c in evaluations.items() if not c.passed}
    assert not result.success
    assert failed == {("audit/ingest_files", "lines_reconcile"), ("governed/ai_user_action", "no_pii_leak"),
                      ("metrics/safety_daily", "safety_invariants")}
    problems = evaluations[("audit/ingest_files", "lines_reconcile")].metadata["problems"].value.split("; ")
    metadata = evaluations[("audit/ingest_files", "lines_reconcile")].metadata
    quarantined, links = metadata["quarantined"].value, metadata["identity_links"].value
    assert links > 0 and "identity_links_blocked" in metadata
    assert problems == [f"raw/ai_events/dt={DAY}/part-00000.jsonl.gz: +1 lines",
                        f"governed tables hold {log_delivered - 1} rows, the log delivered {log_delivered}",
                        f"quarantine holds {quarantined - 1} rows, the objects count {quarantined}",
                        f"identity_links holds {links - 1} rows, the objects count {links}"]


def test_batches_miss_neither_a_bad_value_in_a_later_batch_nor_a_key_repeated_across_batches(con):
    """Values are checked a batch at a time and the grain over the whole day: neither depends on
    where the batches happen to split."""
    table = "governed.ai_llm_response_received"
    model = next(m for m in models() if m.table == table)
    ids = [r[0] for r in con.execute(f"SELECT message_id FROM {table} WHERE dt = ? ORDER BY message_id", [DAY]).fetchall()]
    assert len(ids) > 10
    con.execute(f"UPDATE {table} SET latency_ms = -1 WHERE message_id = ?", [ids[-1]])
    con.execute(f"INSERT INTO {table} SELECT * FROM {table} WHERE message_id = ?", [ids[0]])
    passed, metadata = model.check(con, DAY, batch_rows=2)
    assert not passed
    assert metadata["failed/latency_ms: greater_than_or_equal_to(0)"] == 1
    assert metadata["failed/message_id: unique"] == 1
    assert f"message_id={ids[0]}" in metadata["failing_rows"] and f"message_id={ids[-1]}" in metadata["failing_rows"]


def test_a_day_of_repeated_keys_is_counted_in_full_and_named_by_a_few(con):
    table = "governed.ai_user_action"
    model = next(m for m in models() if m.table == table)
    (keys,) = con.execute(f"SELECT count(*) FROM {table} WHERE dt = ? {model.where}", [DAY]).fetchone()
    con.execute(f"INSERT INTO {table} SELECT * FROM {table} WHERE dt = ?", [DAY])
    passed, metadata = model.check(con, DAY)
    assert not passed and metadata["failed/message_id: unique"] == keys > 5
    assert len(metadata["failing_rows"].split("; ")) == 5


def test_a_table_landed_before_a_column_existed_fails_its_check_by_name_instead_of_erroring(built, tmp_path):
    """An upgrade adds columns to a table only when a day is re-materialised: `checks_only` re-run
    on the old table says which columns it lacks and what to do, and every other check still runs."""
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(built.read_bytes())
    with duckdb.connect(str(copy)) as con:
        con.execute("ALTER TABLE metrics.safety_daily DROP COLUMN no_consent_rate")
    result, evaluations = run_checks_only(built, copy)
    failed = {key: c for key, c in evaluations.items() if not c.passed}
    assert result.success and list(failed) == [("metrics/safety_daily", "valid_rows")]
    metadata = failed[("metrics/safety_daily", "valid_rows")].metadata
    assert metadata["missing_columns"].value == "no_consent_rate"
    assert "Re-materialise" in metadata["problem"].value


def test_a_table_that_was_never_landed_fails_its_check_naming_every_column(con):
    con.execute("DROP TABLE metrics.version_comparison")
    passed, metadata = METRIC_MODELS["metrics.version_comparison"].check(con, DAY)
    assert not passed
    assert metadata["missing_columns"] == "dimension, arm, metric, cohort, p_value, q_value, verdict"
