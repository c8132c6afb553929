"""A week of generated traffic through Dagster: the incidents show where a product team would look."""

from datetime import date

import duckdb
import pytest

from telemetry_assets.analytics.stats import rate_difference
from telemetry_assets.generate.traffic import GeneratorConfig
from telemetry_assets.report import REPORTED_TABLES, render_report
from tests.pipeline_runs import run_generated


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    home = tmp_path_factory.mktemp("week")
    _, manifest, _ = run_generated(home, GeneratorConfig(days=7, users=150, events_per_day=1_500, seed=7, start=date(2026, 9, 1)))
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    yield con, manifest
    con.close()


def incident(manifest, name):
    return next(i for i in manifest["incidents"] if i["name"] == name)


def test_the_cheaper_faster_model_hides_a_conversion_drop_for_free_users(week):
    con, manifest = week
    swap = incident(manifest, "control_model_swap")
    before, after = con.execute(
        """SELECT avg(conversion_rate) FILTER (WHERE dt < $swap), avg(conversion_rate) FILTER (WHERE dt >= $swap AND dt < DATE '2026-09-07')
           FROM metrics.business_daily
           WHERE feature_flag_state = 'control' AND cohort_dimension = 'plan' AND cohort = 'free'""",
        {"swap": date.fromisoformat(swap["first_day"])}).fetchall()[0]
    assert after < before / 2
    verdicts = dict(con.execute(
        """SELECT metric || ':' || cohort, verdict FROM metrics.version_comparison
           WHERE dt = DATE '2026-09-07' AND dimension = 'model_version' AND arm = 'control'
             AND candidate = ? AND metric IN ('conversion_rate', 'p95_latency_ms')""", [swap["model_version"]]).fetchall())
    assert verdicts["p95_latency_ms:all"] == "improvement"
    assert verdicts["conversion_rate:free"] == "regression"
    (p_value,) = con.execute(
        """SELECT p_value FROM metrics.version_comparison WHERE dt = DATE '2026-09-07' AND arm = 'control'
             AND dimension = 'model_version' AND metric = 'conversion_rate' AND cohort = 'free'""").fetchall()[0]
    assert p_value < 0.01


def test_the_bigger_model_shows_as_a_latency_and_cost_regression(week):
    con, manifest = week
    upgrade = incident(manifest, "variant_model_upgrade")
    verdicts = dict(con.execute(
        """SELECT metric, verdict FROM metrics.version_comparison
           WHERE dt = DATE '2026-09-07' AND dimension = 'model_version' AND arm = 'variant_b' AND candidate = ?
             AND cohort = 'all'""", [upgrade["model_version"]]).fetchall())
    assert verdicts["p95_latency_ms"] == "regression" and verdicts["cost_per_successful_outcome"] == "regression"


def test_conversations_held_before_sign_in_are_stitched_to_their_visitor(week):
    """The generator holds 5% of conversations signed out (an anonymousId, no userId). Their
    visitors identify themselves and use the assistant signed in on the days around them, so nearly
    all are stitched, each to the user the generator gave that anonymousId."""
    con, manifest = week
    owners = manifest["anonymous_ids"]
    sources = dict(con.execute("SELECT user_id_source, count(*) FROM analytics.ai_conversations GROUP BY 1").fetchall())
    signed_out = sources.get("stitched", 0) + sources.get(None, 0)
    assert 0.03 < signed_out / sum(sources.values()) < 0.07
    assert sources["stitched"] >= 0.9 * signed_out
    stitched = con.execute("SELECT anonymous_id, user_id FROM analytics.ai_conversations WHERE user_id_source = 'stitched'").fetchall()
    assert all(user == owners[anonymous] for anonymous, user in stitched)
    sent = con.execute("SELECT anonymous_id, user_id FROM analytics.ai_conversations WHERE user_id_source = 'sent'").fetchall()
    assert all(user == owners[anonymous] for anonymous, user in sent)


def test_retention_is_null_until_the_day_it_looks_at_has_landed(week):
    con, _ = week
    rows = dict(con.execute(
        """SELECT dt::VARCHAR, max(d1_retention) FROM metrics.business_daily WHERE cohort_dimension = 'all' GROUP BY 1""").fetchall())
    assert rows["2026-09-07"] is None and all(rows[d] is not None for d in rows if d < "2026-09-07")
    assert con.execute("SELECT count(*) FROM metrics.business_daily WHERE d7_retention IS NOT NULL").fetchall() == [(0,)]


def test_small_groups_say_not_enough_data(week):
    con, _ = week
    rows = con.execute(
        """SELECT n_baseline, n_candidate, message FROM metrics.version_comparison
           WHERE verdict = 'not enough data' LIMIT 5""").fetchall()
    assert rows and all(min(b, c) < 100 and "need 100 on each side" in m for b, c, m in rows)


def test_the_report_shows_each_table_and_the_regressions(week):
    con, manifest = week
    text = render_report(con, date(2026, 9, 7))
    for title in ("Performance", "Business (all users, and by plan; conversion, D1 and deflection are over the "
                  "signed-in conversations)", "Safety", "Version comparison"):
        assert title in text
    business_header = text.split("Business (")[1].splitlines()[1]
    assert business_header.split()[-7:] == ["conversations", "signed", "in", "conversion", "multi-turn", "D1",
                                            "deflection"]
    assert "conversion_rate for plan=free regression" in text
    assert "↑" in text or "↓" in text
    counts = dict(con.execute("SELECT verdict, count(*) FROM metrics.version_comparison WHERE dt = '2026-09-07' GROUP BY 1").fetchall())
    assert counts["regression"] and counts["not enough data"]
    assert f"Version comparison ({sum(counts.values())} tests: " in text
    assert f"{counts['regression']} regression" in text.split("Version comparison")[1].splitlines()[0]


def test_the_report_opens_with_the_days_line_reconciliation_and_quarantine(week, tmp_path):
    con, manifest = week
    day = date(2026, 9, 7)
    sums = con.execute("""SELECT count(*), sum(lines_read), sum(valid_events), sum(quarantined), sum(duplicates),
                                 sum(non_ai_events), sum(erased_events), sum(blank_lines)
                          FROM audit.ingest_files WHERE dt = ?""", [day]).fetchone()
    ingest = render_report(con, day).split("\n\n")[1].splitlines()
    assert ingest[0] == "Ingest" and ingest[3].split() == [f"{n:,}" for n in sums] + ["yes"]
    planted = manifest["per_day"]["2026-09-07"]
    assert sums[2] == planted["ai_events"] and sums[3] > 0
    assert ingest[4].startswith("  quarantined events by type: ") and "Malformed-Line" in ingest[4]
    kept, blocked = con.execute("SELECT sum(identity_links), sum(identity_links_blocked) FROM audit.ingest_files "
                                "WHERE dt = ?", [day]).fetchone()
    assert kept > 0 and blocked > 0  # the generator's sign-ins, some without analytics consent
    links = f"  identity links (sign-ins naming both ids): {kept:,} kept, {blocked:,} kept out by consent"
    assert ingest[-1].startswith(links + " (") and ingest[-1].endswith(")")
    reasons = dict(reason.rsplit(" ", 1) for reason in ingest[-1][len(links) + 2:-1].split(", "))
    assert all(reason.startswith("consent ") for reason in reasons)
    assert sum(int(n.replace(",", "")) for n in reasons.values()) == blocked

    edited = duckdb.connect(str(tmp_path / "edited.duckdb"))  # a ledger edited by hand no longer reconciles
    [(week_file,)] = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    edited.execute(f"ATTACH '{week_file}' AS week (READ_ONLY)")
    for schema in ("audit", "metrics"):
        edited.execute(f"CREATE SCHEMA {schema}")
    for table in ("audit.ingest_files", "audit.quarantine", *REPORTED_TABLES):
        edited.execute(f"CREATE TABLE {table} AS FROM week.{table}")
    edited.execute("UPDATE audit.ingest_files SET lines_read = lines_read + 2 WHERE dt = ? AND rowid = "
                   "(SELECT min(rowid) FROM audit.ingest_files WHERE dt = ?)", [day, day])
    edited.execute("INSERT INTO audit.quarantine (dt, origin, source_key, line_number) VALUES "
                   "(?, 'sources.conversions', 'sources/conversions/x.csv', 2)", [day])
    edited.execute("ALTER TABLE audit.ingest_files DROP COLUMN identity_links_blocked_by")  # landed before reasons were counted
    edited.execute("ALTER TABLE metrics.safety_daily DROP COLUMN no_consent_rate")  # measured before the share was
    sections = render_report(edited, day).split("\n\n")
    assert sections[1].splitlines()[-1] == links
    assert sections[4].splitlines()[3].split()[3] == "-"  # the share without consent, unknown
    edited.execute("UPDATE audit.ingest_files SET identity_links = NULL, identity_links_blocked = NULL")  # landed before links were counted
    ingest = render_report(edited, day).split("\n\n")[1].splitlines()
    assert ingest[3].endswith("no, +2 lines") and ingest[-1] == "  quarantined source rows: sources.conversions 1"


def test_the_table_compares_exactly_the_metrics_and_dimensions_alert_rules_are_checked_against(week):
    from telemetry_assets.analytics.comparison import COMPARED_DIMENSIONS, COMPARED_METRICS

    con, _ = week
    metrics, dimensions = con.execute(
        "SELECT list(DISTINCT metric), list(DISTINCT dimension) FROM metrics.version_comparison").fetchone()
    assert set(metrics) == set(COMPARED_METRICS) and set(dimensions) == set(COMPARED_DIMENSIONS)


def test_rate_difference_matches_a_hand_computed_z_test():
    d = rate_difference(36, 480, 9, 360)
    assert d.difference == pytest.approx(-0.05) and d.p_value == pytest.approx(0.001448, abs=1e-5)
    assert d.low < -0.05 < d.high < 0


def test_rebuilding_a_day_of_comparisons_gives_identical_rows(week, tmp_path):
    con, _ = week
    (path,) = [row[0] for row in con.execute("SELECT path FROM duckdb_databases() WHERE database_name = 'warehouse'").fetchall()]
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(open(path, "rb").read())
    from telemetry_assets.analytics.comparison import build_comparison

    with duckdb.connect(str(copy)) as writable:
        writable.execute("SET TimeZone = 'UTC'")
        query = "SELECT * FROM metrics.version_comparison WHERE dt = DATE '2026-09-07' ORDER BY ALL"
        before = writable.execute(query).fetchall()
        build_comparison(writable, date(2026, 9, 7))
        assert writable.execute(query).fetchall() == before and len(before) > 20


def test_benjamini_hochberg_matches_a_worked_example():
    from telemetry_assets.analytics.stats import benjamini_hochberg

    q = benjamini_hochberg([0.01, None, 0.04, 0.03, 0.005])
    assert q == [pytest.approx(0.02), None, pytest.approx(0.04), pytest.approx(0.04), pytest.approx(0.02)]


def test_the_planted_incidents_alert_on_their_first_day_and_nothing_else_fires(week):
    con, manifest = week
    upgrade, swap = incident(manifest, "variant_model_upgrade"), incident(manifest, "control_model_swap")
    outage = incident(manifest, "consent_manager_outage")
    firsts = dict(con.execute("SELECT dedupe_key, min(dt)::VARCHAR FROM metrics.alerts GROUP BY 1").fetchall())
    assert firsts, "no alert at all"
    consent = {key: day for key, day in firsts.items() if key.startswith("no_consent_high|")}
    assert consent == {f"no_consent_high|governance|{outage['first_day']}": outage["first_day"]}  # that day only
    for key, first_day in firsts.items():
        caused_by_upgrade = "variant_b" in key and (upgrade["model_version"] in key or "feature_flag_state" in key)
        caused_by_swap = swap["model_version"] in key
        assert caused_by_upgrade or caused_by_swap or key in consent, f"false alarm: {key}"
        if key not in consent:
            assert first_day >= (upgrade if caused_by_upgrade else swap)["first_day"], key
    p95 = [k for k in firsts if k.startswith("version_regression|variant_b|model_version") and "p95_latency_ms" in k]
    assert len(p95) == 1 and firsts[p95[0]] == upgrade["first_day"]
    conversion = [k for k in firsts if k.startswith("conversion_drop_after_model_change|control") and "plan=free" in k]
    assert len(conversion) == 1 and firsts[conversion[0]] >= swap["first_day"]


def test_the_sensor_delivers_each_alert_once_and_reevaluating_sends_nothing(week, tmp_path, monkeypatch):
    import dagster as dg

    from resources.alert_sinks import AlertRouter
    from resources.warehouse import Warehouse
    from telemetry_assets.defs.schedules import alert_sensor

    con, _ = week
    (path,) = [r[0] for r in con.execute("SELECT path FROM duckdb_databases() WHERE database_name = 'warehouse'").fetchall()]
    copy = tmp_path / "warehouse.duckdb"
    copy.write_bytes(open(path, "rb").read())
    monkeypatch.setenv("TELEMETRY_HOME", str(tmp_path))
    monkeypatch.setattr("telemetry_assets.defs.schedules.datetime", _FrozenClock)
    outbox = tmp_path / "alerts.jsonl"
    resources = {"warehouse": Warehouse(database=str(copy)), "alert_router": AlertRouter(file_path=str(outbox))}
    first = alert_sensor(dg.build_sensor_context(resources=resources))
    delivered = outbox.read_text().splitlines()
    keys = {r[0] for r in con.execute("SELECT DISTINCT dedupe_key FROM metrics.alerts").fetchall()}
    assert len(delivered) == len(keys) and f"delivered {len(keys)} new" in first.skip_message
    second = alert_sensor(dg.build_sensor_context(resources=resources))
    assert "delivered 0 new" in second.skip_message and len(outbox.read_text().splitlines()) == len(keys)


class _FrozenClock:
    """The sensor looks back two weeks from now; the week under test is in September 2026."""

    @staticmethod
    def now(tz=None):
        from datetime import datetime

        return datetime(2026, 9, 8, tzinfo=tz)


def test_the_reports_safety_section_says_why_deliveries_were_blocked_at_each_destination(week):
    con, _ = week
    day = date(2026, 9, 7)
    safety = render_report(con, day).split("\n\n")[4].splitlines()
    assert safety[0] == "Safety" and safety[4] == "  deliveries blocked, by destination and reason:"
    blocked, no_consent = con.execute("SELECT sensitive_destinations_blocked, no_consent_rate FROM metrics.safety_daily "
                                      "WHERE dt = ?", [day]).fetchone()
    assert safety[1].split()[-4:] == ["without", "consent", "deliveries", "blocked"]
    assert safety[3].split()[-2:] == [f"{no_consent:.1%}", f"{blocked:,}"] and 0 < no_consent < 0.25
    listed = {}
    for line in safety[5:]:
        destination, reasons = line.strip().split(maxsplit=1)
        listed[destination] = {reason.rsplit(" ", 1)[0]: int(reason.rsplit(" ", 1)[1].replace(",", ""))
                               for reason in reasons.split(", ")}
    assert set(listed) == {"warehouse", "product_analytics", "ai_observability", "secure_archive"}
    assert sum(sum(reasons.values()) for reasons in listed.values()) == blocked
    assert {"consent denied: analytics", "consent unknown: analytics", "quarantined"} <= set(listed["warehouse"])
    assert set(listed["secure_archive"]) == {"quarantined"}  # it needs no consent
    counts = list(listed["warehouse"].values())
    assert counts == sorted(counts, reverse=True)


def test_the_report_lists_the_days_alerts(week):
    con, _ = week
    text = render_report(con, date(2026, 9, 7))
    assert "Alerts (" in text and "conversion_drop_after_model_change" in text
