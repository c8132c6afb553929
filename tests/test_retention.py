"""Raw-text retention: a day's raw text leaves the secure store (and its file) once the day is past
the policy's `raw_text_retention_days`; the ids of what was archived stay, so consent enforcement
still checks the archive."""

import re
import stat
from datetime import date, timedelta

import dagster as dg
import duckdb
import pytest

from checks.asset_checks import no_raw_text_past_retention
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets.cli import main
from telemetry_assets.govern.policy import PolicyError
from telemetry_assets.govern.retention import expire_raw_text, retention_cutoff, text_expired, utc_today
from telemetry_assets.govern.safety import compute_safety
from telemetry_assets.ingest.tables import governed_table
from tests.builders import ai_call, custom_policy, gz

MARKER = "zebra-quartz-7731"  # a word no compression table would share with anything else


def land(lake, ingest, day, today, marker=MARKER):
    lake.put(f"raw/ai_events/dt={day}/part-0.jsonl.gz", gz(
        ai_call("ai_user_prompt_created", message_id=f"p-{day}", prompt_text=f"{marker} {day} call me"),
        ai_call("ai_user_action", message_id=f"a-{day}", feedback=f"{marker} {day} thanks"),
    ))
    ingest(day=day, today=today)


def secure_rows(secure_store):
    with secure_store.get_connection() as con:
        return con.execute("SELECT dt, message_id, field, user_id, text, expired_at IS NOT NULL FROM raw_text "
                           "ORDER BY ALL").fetchall()


def test_the_shipped_policy_keeps_raw_text_30_days(policy):
    assert policy.raw_text_retention_days == 30
    assert retention_cutoff(policy, date(2026, 11, 29)) == date(2026, 10, 30)
    assert not text_expired(policy, date(2026, 10, 30), date(2026, 11, 29))
    assert text_expired(policy, date(2026, 10, 29), date(2026, 11, 29))


def test_without_retention_raw_text_never_expires(tmp_path):
    forever = custom_policy(tmp_path, lambda p: p.update(raw_text_retention_days=None))
    assert forever.raw_text_retention_days is None and retention_cutoff(forever, date(2026, 11, 29)) is None
    assert not text_expired(forever, date(2000, 1, 1), date(2026, 11, 29))


@pytest.mark.parametrize("value", [0, -3, 3651, "30", True, 1.5])
def test_a_retention_that_is_not_a_whole_number_of_days_is_refused_naming_the_key(tmp_path, value):
    with pytest.raises(PolicyError, match=re.escape(f"raw_text_retention_days: {value!r} is not a whole number of days")):
        custom_policy(tmp_path, lambda p: p.update(raw_text_retention_days=value))


def test_a_day_landed_past_retention_archives_which_texts_arrived_but_not_the_texts(
        lake, warehouse, ingest, secure_store, policy, plan):
    day = date(2026, 9, 14)
    land(lake, ingest, day, today=day + timedelta(days=1))
    kept = secure_rows(secure_store)
    assert [(r[2], r[3], r[5]) for r in kept] == [("feedback", "usr_1", False), ("prompt_text", "usr_1", False)]
    assert all(MARKER in r[4] for r in kept)
    governed = warehouse.execute(f"SELECT * FROM {governed_table('ai_user_prompt_created')}").fetchall()

    land(lake, ingest, day, today=day + timedelta(days=31))  # the same day re-landed a month later
    expired = secure_rows(secure_store)
    assert [r[:3] for r in expired] == [r[:3] for r in kept]
    assert [r[3:] for r in expired] == [(None, None, True)] * 2
    assert warehouse.execute(f"SELECT * FROM {governed_table('ai_user_prompt_created')}").fetchall() == governed
    with secure_store.get_connection() as secure_con:
        safety = compute_safety(warehouse, lake, secure_con, day, policy, [governed_table(n) for n in plan.events])
    assert safety["consent_enforcement_rate"] == 1.0 and safety["routing_decisions"] > 0


def test_expiry_clears_only_days_before_the_cutoff_and_the_rewrite_takes_them_off_the_disk(
        lake, ingest, secure_store, tmp_path):
    old, recent = date(2026, 9, 1), date(2026, 9, 20)
    for day in (old, recent):
        land(lake, ingest, day, today=day + timedelta(days=1), marker=f"{MARKER}-{day.day:02d}")
    path = tmp_path / "secure.duckdb"
    assert f"{MARKER}-01".encode() in path.read_bytes()

    with secure_store.get_connection() as con:
        assert expire_raw_text(con, cutoff=date(2026, 9, 10)) == {old: 2}
        assert expire_raw_text(con, cutoff=date(2026, 9, 10)) == {}  # what expired stays expired, once
    rows = {(r[0], r[2]): r[3:] for r in secure_rows(secure_store)}
    assert rows[(old, "prompt_text")] == (None, None, True)
    assert rows[(recent, "prompt_text")][0] == "usr_1" and rows[(recent, "prompt_text")][2] is False
    assert f"{MARKER}-01".encode() in path.read_bytes()  # DuckDB left the old value in a free block

    secure_store.rewrite()
    assert f"{MARKER}-01".encode() not in path.read_bytes()
    assert f"{MARKER}-20".encode() in path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and not (tmp_path / "secure.duckdb.rewrite").exists()
    assert {(r[0], r[2]): r[3:] for r in secure_rows(secure_store)} == rows


@pytest.fixture
def landed_days(lake, ingest, tmp_path):
    """A day 40 days old and one 2 days old, each landed the morning after (text archived)."""
    days = [utc_today() - timedelta(days=40), utc_today() - timedelta(days=2)]
    for day in days:
        land(lake, ingest, day, today=day + timedelta(days=1))
    resources = {"warehouse": Warehouse(database=str(tmp_path / "warehouse.duckdb")),
                 "secure_store": SecureStore(database=str(tmp_path / "secure.duckdb"))}
    return days, resources


def expire(resources):
    from telemetry_assets.definitions import defs

    result = defs.resolve_job_def("expire_raw_text").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), resources=resources, raise_on_error=False)
    (materialization,) = result.asset_materializations_for_node("audit__raw_text_expiry")
    (check,) = result.get_asset_check_evaluations()
    return result, {k: v.value for k, v in materialization.metadata.items()}, check


def test_the_expiry_job_clears_what_aged_past_retention_records_it_and_checks_nothing_is_left(
        landed_days, warehouse, secure_store):
    (old, recent), resources = landed_days
    warehouse.close()  # the job opens the warehouse itself
    result, metadata, check = expire(resources)
    assert result.success and check.passed and check.metadata["rows_past_retention"].value == 0
    assert (metadata["days_expired"], metadata["rows_expired"], metadata["expired_days"]) == (1, 2, old.isoformat())
    assert metadata["kept_from"] == (utc_today() - timedelta(days=30)).isoformat()
    assert {r[0]: r[5] for r in secure_rows(secure_store)} == {old: True, recent: False}

    result, metadata, _ = expire(resources)  # nothing more to do the next time
    assert result.success and metadata["rows_expired"] == 0 and metadata["expiries_recorded"] == 0
    with duckdb.connect(resources["warehouse"].database) as con:
        assert con.execute("SELECT dt, rows_expired, retention_days, policy_version FROM audit.raw_text_expiry").fetchall() \
            == [(old, 2, 30, "1.2.0")]


def test_the_ledger_records_expiry_at_ingest_and_what_a_failed_run_left_unrecorded(
        landed_days, lake, ingest, warehouse, secure_store):
    (old, recent), resources = landed_days
    land(lake, ingest, old, today=utc_today())  # re-landed when already past retention
    warehouse.close()
    _, metadata, _ = expire(resources)
    assert (metadata["rows_expired"], metadata["expiries_recorded"]) == (0, 1)  # ingest expired it, not this run

    with secure_store.get_connection() as con:
        (at_ingest,) = con.execute("SELECT DISTINCT expired_at FROM raw_text WHERE dt = ?", [old]).fetchone()
        con.execute("UPDATE raw_text SET expired_at = NULL WHERE dt = ?", [recent])  # as if text had been
        expire_raw_text(con, cutoff=utc_today())  # cleared by a run that then failed to write its ledger rows
    _, metadata, _ = expire(resources)
    assert (metadata["rows_expired"], metadata["expiries_recorded"]) == (0, 1)
    with duckdb.connect(resources["warehouse"].database) as con:
        ledger = con.execute("SELECT dt, expired_at, rows_expired FROM audit.raw_text_expiry ORDER BY dt").fetchall()
    assert [(day, rows) for day, _, rows in ledger] == [(old, 2), (recent, 2)] and ledger[0][1] == at_ingest


def test_the_expiry_job_on_a_store_with_nothing_to_expire_records_nothing(tmp_path):
    resources = {"warehouse": Warehouse(database=str(tmp_path / "warehouse.duckdb")),
                 "secure_store": SecureStore(database=str(tmp_path / "secure.duckdb"))}
    result, metadata, check = expire(resources)
    assert result.success and check.passed
    assert (metadata["rows_expired"], metadata["expiries_recorded"]) == (0, 0)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        assert con.execute("SELECT count(*) FROM audit.raw_text_expiry").fetchone() == (0,)


def test_the_check_fails_naming_the_days_whose_text_outlived_retention(landed_days, secure_store):
    (old, _), _ = landed_days
    result = no_raw_text_past_retention(secure_store=secure_store)
    assert not result.passed
    assert (result.metadata["rows_past_retention"].value, result.metadata["days_past_retention"].value) == (2, old.isoformat())


def test_a_policy_without_retention_expires_nothing(landed_days, secure_store, warehouse, tmp_path, monkeypatch):
    _, resources = landed_days
    warehouse.close()
    custom_policy(tmp_path, lambda p: p.pop("raw_text_retention_days"))
    monkeypatch.setenv("TELEMETRY_POLICY", str(tmp_path / "policy.yaml"))
    before = secure_rows(secure_store)
    result, metadata, check = expire(resources)
    assert result.success and check.passed
    assert metadata["retention"].startswith("none") and secure_rows(secure_store) == before


def test_a_policy_without_retention_is_said_so_by_the_privacy_checks_of_a_command(tmp_path, monkeypatch, capsys):
    custom_policy(tmp_path, lambda p: p.pop("raw_text_retention_days"))
    monkeypatch.setenv("TELEMETRY_POLICY", str(tmp_path / "policy.yaml"))
    monkeypatch.setenv("TELEMETRY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    (tmp_path / "home" / "lake").mkdir(parents=True)
    main(["check", "--start", "2026-09-01", "--end", "2026-09-01"])  # a day never landed: its own checks cannot run
    *_, retention, erasure = capsys.readouterr().out.splitlines()
    assert retention == "raw text      kept until deleted by hand (the policy sets no raw_text_retention_days)"
    assert erasure == "erasure       no erased person held anywhere (0 requests, every one completed)"
