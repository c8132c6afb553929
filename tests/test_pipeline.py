"""The Dagster layer and the CLI, on generated traffic: what was planted is what lands."""

import json
import os
import random
import re
import shutil
import subprocess
from collections import Counter
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from checks.asset_checks import all_asset_checks
from resources.object_store import LocalObjectStore
from resources.secrets import GovernanceSecrets
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.cli import main
from telemetry_assets.defs.ingest.assets import ingest_ai_events
from telemetry_assets.generate.traffic import BAD_LINE_KINDS, GeneratorConfig, _LineSpool, generate
from telemetry_assets.report import not_measured
from tests.builders import PRICES_HEADER
from tests.pipeline_runs import telemetry

START = date(2026, 9, 1)


def expected_quarantine(per_day: dict) -> Counter:
    by_type = Counter()
    for kind, count in per_day["bad_lines"].items():
        by_type[BAD_LINE_KINDS[kind]] += count
    return by_type


def test_generator_is_deterministic_for_a_seed(tmp_path):
    config = GeneratorConfig(days=2, users=30, events_per_day=300, seed=3, start=START)
    first, second = LocalObjectStore(root=str(tmp_path / "a")), LocalObjectStore(root=str(tmp_path / "b"))
    assert generate(first, config) == generate(second, config)
    key = "raw/ai_events/dt=2026-09-02/part-00000.jsonl.gz"
    assert (tmp_path / "a" / key).read_bytes() == (tmp_path / "b" / key).read_bytes()


def test_spooled_lines_are_picked_as_a_list_of_them_would_be():
    """Bad lines are copies of random lines of the day: spooling the day to disk must not change
    which lines a seed picks, or the generator's output would change with it."""
    lines = [f'{{"n": {i}, "text": "{"é" * (i % 5)}"}}' for i in range(2_000)]
    with _LineSpool() as spool:
        for line in lines:
            spool.append(line)
        assert len(spool) == len(lines)
        from_spool, from_list = random.Random(5), random.Random(5)
        assert [from_spool.choice(spool) for _ in range(300)] == [from_list.choice(lines) for _ in range(300)]
        spool.append("appended after reading")
        assert (spool[0], spool[len(lines)]) == (lines[0], "appended after reading")


def test_materialising_a_generated_day_lands_what_was_planted(tmp_path, monkeypatch):
    lake = LocalObjectStore(root=str(tmp_path / "lake"))
    manifest = generate(lake, GeneratorConfig(days=2, users=50, events_per_day=2500, seed=11, start=START))
    monkeypatch.setenv("TELEMETRY_INGEST_CHUNK_MB", "1")  # each day's 2.6 MB of lines read in more than one chunk
    warehouse = Warehouse(database=str(tmp_path / "warehouse.duckdb"))
    instance = dg.DagsterInstance.ephemeral()
    ingest_checks = [c for c in all_asset_checks() if {k.asset_key for k in c.check_keys} <= ingest_ai_events.keys]
    for day in manifest["days"]:
        result = dg.materialize([ingest_ai_events, *ingest_checks], partition_key=day, instance=instance,
                                resources={"lake": lake, "warehouse": warehouse, "secrets": GovernanceSecrets(),
                                           "secure_store": SecureStore(database=str(tmp_path / "secure.duckdb"))})
        assert result.success
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert set(checks) == {"lines_reconcile", "no_pii_leak", "no_pii_in_exports", "valid_rows"}
        assert all(c.passed for c in result.get_asset_check_evaluations()), [c.metadata for c in checks.values()]
        planted = manifest["per_day"][day]
        meta = {m.asset_key.to_user_string(): m.metadata
                for m in result.asset_materializations_for_node("ingest_ai_events")}
        files = meta["audit/ingest_files"]
        schema = {c.name for c in meta["governed/ai_llm_response_received"]["dagster/column_schema"].value.columns}
        assert {"message_id", "latency_ms", "policy_version"} <= schema
        assert files["valid_events"].value == planted["ai_events"]
        assert files["seconds/validate"].value > 0 and files["seconds/route+exports"].value > 0
        assert files["chunk_mb"].value == 1 and files["chunks"].value > 1
        assert files["duplicates"].value == planted["resent"]
        assert files["non_ai_events"].value == planted["non_ai_events"]
        assert files["blank_lines"].value == planted["blank_lines"]
        quarantined = {k.removeprefix("quarantined/"): v.value for k, v in meta["audit/quarantine"].items()
                       if k.startswith("quarantined/")}
        assert quarantined == expected_quarantine(planted)
        links = meta["governed/identity_links"]
        kept_out = {k.removeprefix("kept_out/"): v.value for k, v in links.items() if k.startswith("kept_out/")}
        assert links["kept_out_by_consent"].value == sum(kept_out.values()) > 0  # the generator's refusals
        assert set(kept_out) <= {"consent denied: analytics", "consent unknown: analytics"}
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        variants = con.execute(
            """SELECT DISTINCT dt::VARCHAR, feature_flag_state, model_version
               FROM governed.ai_llm_response_received ORDER BY ALL""").fetchall()
    upgrade = next(i for i in manifest["incidents"] if i["name"] == "variant_model_upgrade")
    assert ("2026-09-02", "variant_b", upgrade["model_version"]) in variants
    assert ("2026-09-01", "variant_b", upgrade["model_version"]) not in variants


def test_ingest_uses_the_single_writer_pool():
    assert ingest_ai_events.op.pool == "warehouse"


def test_launched_runs_execute_every_step_in_one_process():
    """What a schedule, sensor or UI launch runs: without an executor of their own, Dagster would
    start a process per step, each importing the whole stack again (187 s, not 50, for a 1M-event day)."""
    from telemetry_assets.definitions import defs

    jobs = [defs.resolve_job_def(name) for name in ("daily_pipeline", "land_day", "join_day", "measure_day", "checks_only")]
    jobs.append(defs.resolve_implicit_global_asset_job_def())  # what "Materialize" in the UI launches
    assert {job.executor_def.name for job in jobs} == {"in_process"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`telemetry demo` over two days, run once for the tests that read it; a test that changes
    the home works on its own copy (`copied_demo_home`)."""
    home = tmp_path_factory.mktemp("demo") / "home"
    done = telemetry(home, "demo", "--days", "2", "--events-per-day", "400", "--users", "40", "--start", "2026-09-01")
    assert done.returncode == 0, done.stderr
    return home, done


@pytest.fixture
def copied_demo_home(demo, tmp_path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(demo[0], home)
    return home


def test_cli_demo_prints_a_reconciled_line_per_partition_and_a_summary(demo):
    home, done = demo
    lines = done.stdout.splitlines()
    assert [line[:10] for line in lines if line.endswith("[reconciled]")] == ["2026-09-01", "2026-09-02"]
    assert any(line.startswith("quarantined") and "Malformed-Line" in line for line in lines)
    runs = list((home / "dagster" / "storage").iterdir())
    assert len(runs) >= 2  # the runs were recorded on the persistent instance the UI reads
    manifest = json.loads((home / "lake" / "generator" / "manifest.json").read_text())
    valid = sum(day["ai_events"] for day in manifest["per_day"].values())
    assert any(line.split()[:3] == ["valid", "events", f"{valid:,}"] for line in lines)
    assert any("consent enforcement 100.0%" in line and "audit completeness 100.0%" in line for line in lines)
    assert (home / "secure.duckdb").stat().st_mode & 0o077 == 0
    # September is past the shipped 30-day retention: those days were archived without their text
    assert any(line.startswith("raw text      kept from ") and line.endswith("(30 days): none older left to expire")
               for line in lines)
    (compacted,) = [line for line in lines if line.startswith("warehouse     compacted: ")]
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        [(before, after)] = con.execute("SELECT row_groups_before, row_groups_after FROM audit.warehouse_compactions").fetchall()
    assert compacted.startswith(f"warehouse     compacted: {before:,} row groups to {after:,} in ") and after < before


@pytest.mark.parametrize("command", ["run", "check"])
def test_cli_rejects_an_inverted_range(tmp_path, command):
    done = telemetry(tmp_path / "home", command, "--start", "2026-09-02", "--end", "2026-09-01")
    assert done.returncode == 2 and "before --start" in done.stderr


@pytest.mark.parametrize("arguments", [
    ["generate", "--days", "0"], ["generate", "--users", "-3"], ["demo", "--events-per-day", "many"],
    ["bench", "--events", "0"],
])
def test_cli_refuses_a_count_below_one_before_writing_anything(tmp_path, monkeypatch, capsys, arguments):
    monkeypatch.setenv("TELEMETRY_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit) as refused:
        main(arguments)
    assert refused.value.code == 2
    assert f"argument {arguments[1]}: '{arguments[2]}' is not a whole number of at least 1" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_a_day_without_events_is_measured_as_empty_and_reported(tmp_path):
    def cli(*arguments):
        return telemetry(tmp_path / "home", *arguments)

    too_early = cli("report", "--date", "2026-09-01")
    assert too_early.returncode == 2 and "no warehouse at" in too_early.stderr
    assert not (tmp_path / "home" / "warehouse.duckdb").exists()
    with duckdb.connect(str(tmp_path / "landed_only.duckdb")) as con:
        assert not_measured(con, date(2026, 9, 1)).startswith("no metric tables yet (metrics.performance_daily,")

    run = cli("run", "--start", "2026-09-01", "--end", "2026-09-01")
    assert run.returncode == 0, run.stderr  # the alerts of a day without performance rows are none
    assert "2026-09-01  no raw objects" in run.stdout and "2026-09-01  metrics computed" in run.stdout
    report = cli("report", "--date", "2026-09-01")
    assert report.returncode == 0 and "Performance\n  (no rows)" in report.stdout and "Alerts (0)" in report.stdout
    assert "Ingest\n  (no raw objects)" in report.stdout
    unmeasured = cli("report", "--date", "2026-09-02")
    assert unmeasured.returncode == 2 and "2026-09-02 has not been measured" in unmeasured.stderr


def test_a_secure_store_that_cannot_be_opened_stops_the_run_before_any_day(tmp_path):
    home = tmp_path / "home"
    (home / "secure.duckdb").mkdir(parents=True)
    done = telemetry(home, "run", "--start", "2026-09-01", "--end", "2026-09-01")
    assert done.returncode == 2
    assert done.stderr.startswith("telemetry run: TELEMETRY_HOME: IO Error: ")
    assert f'{home / "secure.duckdb"}": Is a directory' in done.stderr
    assert done.stdout == "" and not (home / "dagster").exists()  # no day was run


def run_a_day_where(tmp_path, module: str, function: str, error: str) -> subprocess.CompletedProcess:
    """`telemetry run` over one generated day, in a process where `module.function` raises OSError(error)."""
    home = tmp_path / "home"
    generate(LocalObjectStore(root=str(home / "lake")), GeneratorConfig(days=1, users=20, events_per_day=50, seed=1, start=START))
    script = (f"import sys\nimport {module} as patched\n"
              f"def fails(*args, **kwargs):\n    raise OSError({error!r})\n"
              f"patched.{function} = fails\n"
              "from telemetry_assets.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    return telemetry(home, "run", "--start", "2026-09-01", "--end", "2026-09-01", script=script)


def test_a_run_whose_days_all_fail_says_where_and_why_and_exits_1_without_a_traceback(tmp_path):
    """A fresh home where nothing lands: the alerts and the summary have no tables to read."""
    done = run_a_day_where(tmp_path, "telemetry_assets.defs.ingest.assets", "ingest_partition", "the lake went away")
    assert done.returncode == 1
    assert done.stdout.startswith("2026-09-01  land_day FAILED in ingest_ai_events: OSError: the lake went away (run ")
    assert done.stderr.rstrip().endswith("1 of 1 days failed: 2026-09-01")
    assert "Traceback" not in done.stderr


def test_a_run_whose_raw_text_expiry_fails_says_so_and_exits_1_after_landing_every_day(tmp_path):
    done = run_a_day_where(tmp_path, "telemetry_assets.defs.retention.assets", "expire_raw_text",
                           "the secure store went away")
    assert done.returncode == 1
    assert "2026-09-01  metrics computed" in done.stdout
    assert "raw text      expiry FAILED in audit__raw_text_expiry: OSError: the secure store went away (run " in done.stdout
    assert "Traceback" not in done.stderr


def test_a_run_whose_compaction_fails_says_so_and_exits_1_after_landing_every_day(tmp_path):
    done = run_a_day_where(tmp_path, "telemetry_assets.defs.maintenance.assets", "compact", "the disk is full")
    assert done.returncode == 1
    assert "2026-09-01  metrics computed" in done.stdout
    assert "warehouse     compaction FAILED in audit__warehouse_compactions: OSError: the disk is full (run " in done.stdout
    assert "Traceback" not in done.stderr


def test_a_run_where_one_day_fails_sums_up_only_the_days_it_landed(copied_demo_home):
    """The failed day landed in an earlier run (the demo); its old rows are not this run's to
    report. This run lands through a wrapper that makes the second day's ingest fail."""
    manifest = json.loads((copied_demo_home / "lake" / "generator" / "manifest.json").read_text())
    failing_second_day = """
import sys
from datetime import date
from telemetry_assets.defs.ingest import assets
landing = assets.ingest_partition
def fails_on_the_second_day(store, con, day, *args, **kwargs):
    if day == date(2026, 9, 2):
        raise OSError("the lake went away")
    return landing(store, con, day, *args, **kwargs)
assets.ingest_partition = fails_on_the_second_day
from telemetry_assets.cli import main
sys.exit(main(sys.argv[1:]))
"""
    second = telemetry(copied_demo_home, "run", "--start", "2026-09-01", "--end", "2026-09-02", script=failing_second_day)
    assert second.returncode == 1
    assert "2026-09-02  land_day FAILED in ingest_ai_events: OSError: the lake went away" in second.stdout
    day = manifest["per_day"]["2026-09-01"]
    lines = sum(day[k] for k in ("ai_events", "non_ai_events", "resent", "blank_lines")) + sum(day["bad_lines"].values())
    assert re.search(r"^events read +([\d,]+) +lines over 1 partition$", second.stdout, re.M)[1] == f"{lines:,}"
    assert second.stderr.rstrip().endswith("1 of 2 days failed: 2026-09-02")


@pytest.mark.parametrize("value", ["yesterday", "20260901"])
def test_cli_names_a_partitions_start_it_cannot_use(tmp_path, value):
    done = telemetry(tmp_path / "home", "run", "--start", "2026-09-01", "--end", "2026-09-01",
                     TELEMETRY_PARTITIONS_START=value)
    assert done.returncode == 2
    assert f"telemetry run: TELEMETRY_PARTITIONS_START='{value}' is not a date (YYYY-MM-DD)" in done.stderr


@pytest.mark.parametrize("value", ["-2", "two", "1.5", "²"])
def test_a_dedupe_lookback_that_is_not_a_count_of_days_is_refused(monkeypatch, value):
    monkeypatch.setenv("TELEMETRY_DEDUPE_LOOKBACK_DAYS", value)
    with pytest.raises(settings.SettingsError, match=f"TELEMETRY_DEDUPE_LOOKBACK_DAYS='{value}' is not a whole number"):
        settings.dedupe_lookback_days()
    monkeypatch.setenv("TELEMETRY_DEDUPE_LOOKBACK_DAYS", "0")  # no look-back at all is a choice
    assert settings.dedupe_lookback_days() == 0


# Each ingest size setting: its variable, how it is read, what a refusal says, the edge it takes, its default.
INGEST_SIZES = {
    "chunk": ("TELEMETRY_INGEST_CHUNK_MB", settings.ingest_chunk_mb, "is not a whole number of MB from 1 to 1024",
              "1024", 64),
    "memory cap": ("TELEMETRY_INGEST_MEMORY_MB", settings.ingest_memory_mb, "is not a whole number of MB, 128 or more",
                   "128", 512),
}


@pytest.mark.parametrize("size", INGEST_SIZES)
def test_run_refuses_an_ingest_size_it_cannot_use_before_any_day(tmp_path, size):
    variable, _, complaint, _, _ = INGEST_SIZES[size]
    done = telemetry(tmp_path / "home", "run", "--start", "2026-09-01", "--end", "2026-09-01", **{variable: "64MB"})
    assert done.returncode == 2 and "2026-09-01" not in done.stdout
    assert f"telemetry run: {variable}='64MB' {complaint}" in done.stderr


@pytest.mark.parametrize("size, value", [
    *(("chunk", value) for value in ["0", "-8", "64MB", "1.5", "²", "1025"]),
    *(("memory cap", value) for value in ["0", "127", "-512", "512MB", "1.5", "²"]),
])
def test_an_ingest_size_that_is_not_a_whole_number_of_mb_it_can_take_is_refused(monkeypatch, size, value):
    variable, read, complaint, edge, default = INGEST_SIZES[size]
    monkeypatch.setenv(variable, value)
    with pytest.raises(settings.SettingsError, match=re.escape(f"{variable}='{value}' {complaint}")):
        read()
    monkeypatch.setenv(variable, edge)
    assert read() == int(edge)
    monkeypatch.delenv(variable)
    assert read() == default


@pytest.mark.parametrize("url, complaint", [
    ("s3://", "names no bucket"), ("s3a://lake/events", "not s3a://"), ("S3://lake/events", "not S3://"),
    ("file:///srv/lake", "not file://"),
])
def test_a_lake_url_that_is_neither_a_folder_nor_s3_is_refused(tmp_path, monkeypatch, capsys, url, complaint):
    monkeypatch.chdir(tmp_path)  # where a folder named after the URL would have appeared
    monkeypatch.setenv("TELEMETRY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TELEMETRY_LAKE_URL", url)
    assert main(["generate", "--days", "1"]) == 2
    error = capsys.readouterr().err
    assert f"telemetry generate: TELEMETRY_LAKE_URL='{url}'" in error and complaint in error
    monkeypatch.delenv("TELEMETRY_LAKE_URL")
    assert main(["bench", "--lake", url, "--date", "2026-09-01"]) == 2
    error = capsys.readouterr().err
    assert f"telemetry bench: --lake='{url}'" in error and complaint in error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("variable, read", [
    ("TELEMETRY_TRACKING_PLAN", settings.tracking_plan_path), ("TELEMETRY_POLICY", settings.policy_path),
    ("TELEMETRY_SOURCES", settings.sources_path), ("TELEMETRY_MODEL_PRICES", settings.model_prices_path),
    ("TELEMETRY_ALERT_RULES", settings.alert_rules_path), ("TELEMETRY_INTENTS", settings.intents_path),
])
def test_a_config_variable_naming_no_file_is_refused_naming_the_variable(tmp_path, monkeypatch, variable, read):
    monkeypatch.delenv(variable, raising=False)
    assert read().is_file()  # the shipped file
    for nowhere in (tmp_path / "missing.yaml", tmp_path):
        monkeypatch.setenv(variable, str(nowhere))
        with pytest.raises(settings.SettingsError, match=re.escape(f"{variable}='{nowhere}' is not a file")):
            read()


@pytest.mark.parametrize("variable, file_name, content, named", [
    ("TELEMETRY_ALERT_RULES", "alerts.yaml", "version: 1\n",
     "TELEMETRY_ALERT_RULES: alerts: missing required key 'changes'"),
    ("TELEMETRY_MODEL_PRICES", "prices.csv", PRICES_HEADER + "m1,2026-01-01,-1,0,0\n", "a price is negative"),
    ("TELEMETRY_MODEL_PRICES", "prices.csv", PRICES_HEADER + "m1,2026-01-01,0.15 USD,0,0\n",  # DuckDB's own error
     'TELEMETRY_MODEL_PRICES: Conversion Error: CSV Error on Line: 2'),
    ("TELEMETRY_POLICY", "policy.yaml",  # checked against the tracking plan, not only on its own
     (settings.CONFIG_DIR / "policy.yaml").read_text().replace("success_actions: [accepted]", "success_actions: [accept]"),
     "TELEMETRY_POLICY: outcomes.success_actions: 'accept' is not an action_type"),
    ("TELEMETRY_INTENTS", "intents.yaml",
     re.sub(r"billing: \[.*\]", "billing: refund", (settings.CONFIG_DIR / "intents.yaml").read_text()),
     "TELEMETRY_INTENTS: intents.billing: 'refund' is not a list of keywords"),
], ids=["alert-rules", "negative-price", "price-not-a-number", "policy-against-plan", "intents"])
def test_run_checks_every_config_file_before_the_first_day_lands(tmp_path, monkeypatch, capsys, variable, file_name,
                                                                 content, named):
    config = tmp_path / file_name
    config.write_text(content)
    monkeypatch.setenv("TELEMETRY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(variable, str(config))
    assert main(["run", "--start", "2026-09-01", "--end", "2026-09-30"]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "home").exists()  # no run started, no day landed


def test_run_on_a_lake_path_that_is_not_a_folder_stops_before_any_day(tmp_path, monkeypatch, capsys):
    """A lake URL pointing at a file (a raw object, say) would otherwise land every day of the range
    empty; a folder not made yet is an empty lake (see the test of a day without events)."""
    not_a_folder = tmp_path / "part-00000.jsonl.gz"
    not_a_folder.write_bytes(b"")
    monkeypatch.setenv("TELEMETRY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TELEMETRY_LAKE_URL", str(not_a_folder))
    assert main(["run", "--start", "2026-09-01", "--end", "2026-09-30"]) == 2
    assert f"TELEMETRY_LAKE_URL: {not_a_folder}: not a folder this user can read" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_run_on_a_lake_folder_this_user_cannot_read_stops_before_any_day(tmp_path, monkeypatch, capsys):
    """Tests run as root, whom no mode keeps out, so the refusal is the operating system's answer."""
    import resources.object_store

    lake = tmp_path / "lake"
    lake.mkdir()
    real_access = os.access
    monkeypatch.setattr(resources.object_store.os, "access",
                        lambda path, mode: False if Path(path) == lake else real_access(path, mode))
    monkeypatch.setenv("TELEMETRY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TELEMETRY_LAKE_URL", str(lake))
    assert main(["run", "--start", "2026-09-01", "--end", "2026-09-30"]) == 2
    assert f"TELEMETRY_LAKE_URL: {lake}: not a folder this user can read" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_cli_check_reruns_every_check_and_exits_1_only_on_a_failed_error_or_a_check_that_could_not_run(
        copied_demo_home):
    """At 400 events a day the quarantined share is over the drift suite's 1%: a warning, printed,
    that does not fail the command. A planted leak and a table dropped by hand do."""
    clean = telemetry(copied_demo_home, "check", "--start", "2026-09-01", "--end", "2026-09-03")
    assert clean.returncode == 0, clean.stderr
    lines = clean.stdout.splitlines()
    every = int(lines[0].split()[3])
    assert every >= 20 and lines[0] == f"2026-09-01  {every - 1} of {every} checks passed"
    assert lines[1].startswith("  WARNING metrics/safety_daily safety_drift: ") and "quarantine_share=failed" in lines[1]
    assert f"2026-09-03  {every} of {every} checks passed (no raw objects landed for this day)" in lines
    assert "Traceback" not in clean.stderr

    with duckdb.connect(str(copied_demo_home / "warehouse.duckdb")) as con:
        con.execute("UPDATE governed.ai_user_action SET feedback = 'mail me at jo@example.com' "
                    "WHERE dt = '2026-09-02' AND feedback IS NOT NULL")
        con.execute("DROP TABLE analytics.ai_turns")
    broken = telemetry(copied_demo_home, "check", "--start", "2026-09-02", "--end", "2026-09-02")
    assert broken.returncode == 1
    lines = broken.stdout.splitlines()
    assert any(line.startswith("  FAILED (blocking) governed/ai_user_action no_pii_leak: ") and "leaks/email=" in line
               for line in lines)
    assert any(line.startswith("  FAILED analytics/ai_turns valid_rows: missing_columns=conversation_id, prompt_number")
               for line in lines)
    assert any(line.startswith("  DID NOT RUN analytics__ai_turns_turns_belong_to_conversations: ") for line in lines)
    assert "jo@example.com" not in broken.stdout
    assert broken.stderr.rstrip() == "1 of 1 days failed a check: 2026-09-02"
