"""The bench runs and reports its fields; speed itself is never asserted in tests."""

import gzip
import json
import re
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from resources.object_store import LocalObjectStore
from telemetry_assets import bench
from telemetry_assets.bench import cgroup_limits, machine, print_table
from telemetry_assets.cli import main
from telemetry_assets.definitions import defs
from telemetry_assets.defs.jobs import checks_only
from telemetry_assets.generate.traffic import GeneratorConfig, generate
from telemetry_assets.ingest import partition
from telemetry_assets.ingest.layouts import partition_objects
from tests.pipeline_runs import telemetry

STAGES = {"list+read", "parse", "dedupe", "validate", "redact+classify", "route+exports", "land", "sources", "joins",
          "metrics", "checks"}
AFTER_INGEST = ("sources", "joins", "metrics", "checks")


PROGRESS = ["floor, before the pipeline", "ingest, in chunks of 64 MB", "sources, joins and metrics", "checks",
            "compaction, as each night (not in the whole)", "floor, after the pipeline"]


def bench_json(home, *arguments):
    done = telemetry(home, "bench", *arguments, "--json")
    assert done.returncode == 0, done.stderr
    # what it is doing goes to stderr as it goes, each line with the time it began
    said = [line.split(" ", 2) for line in done.stderr.splitlines() if line.startswith("bench ")]
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d", clock) for _, clock, _ in said)
    preparing, day_before, *stages = [what for *_, what in said]
    assert preparing.startswith(("generating ", "copying ")) and preparing.endswith(" (not timed)")
    assert re.fullmatch(r"landing the day before, \d{4}-\d\d-\d\d \(not timed\)|no day before \S+ to land: "
                        r"benching it as the warehouse's first day", day_before)
    assert stages == PROGRESS
    return json.loads(done.stdout)  # nothing else on stdout: no progress bar, no note


def test_bench_reports_every_stage_and_the_floor_as_json(tmp_path, capsys):
    result = bench_json(tmp_path, "--events", "20000")
    assert {"events", "seconds", "events_per_second", "peak_rss_mb", "floor_seconds", "ratio_to_floor",
            "ingest_seconds", "stages"} <= set(result)
    assert result["events"] == 20000 and result["lines"] > 20000  # plus non-AI, bad and re-sent lines
    assert result["day"] == "2026-09-01" and result["day_before"] == "2026-08-31" and result["day_before_seconds"] > 0
    assert set(result["stages"]) == STAGES
    for stage in result["stages"].values():
        assert stage["seconds"] > 0 and stage["peak_rss_mb"] > 0
    after_ingest = sum(result["stages"][name]["seconds"] for name in AFTER_INGEST)
    assert 0 < result["ingest_seconds"] and result["ingest_seconds"] + after_ingest <= result["seconds"]
    # the one chunk's events are governed two at a time, so ingest's stages add up two threads' time
    ingest_stages = sum(stage["seconds"] for name, stage in result["stages"].items() if name not in AFTER_INGEST)
    assert ingest_stages <= partition.WORKERS * result["ingest_seconds"]
    assert result["ingest_chunk_mb"] == 64 and result["ingest_chunks"] == 1  # the day's 20 MB of lines fit one
    assert result["ingest_memory_mb"] == 512
    checks = result["check_seconds"]  # each check's own step, named as the UI names it, slowest first
    daily_checks = checks_only.selection.resolve_checks(defs.resolve_asset_graph())
    assert set(checks) == {f"{key.asset_key.to_user_string()}:{key.name}" for key in daily_checks}
    assert "audit/governance_log:no_pii_in_exports" in checks and len(checks) > 20
    assert all(seconds > 0 for seconds in checks.values()) and list(checks.values()) == sorted(checks.values(), reverse=True)
    assert sum(checks.values()) <= result["stages"]["checks"]["seconds"]
    compaction = result["compaction"]  # timed apart (a day this small fills no row group: nothing to merge)
    assert compaction["seconds"] > 0 and compaction["row_groups_before"] >= compaction["row_groups_after"] > 0
    before, after = result["floor_runs_seconds"]  # the floor is timed on each side of the pipeline
    assert before > 0 and after > 0 and result["floor_seconds"] == pytest.approx((before + after) / 2, abs=0.002)
    assert result["ratio_to_floor"] == pytest.approx(result["seconds"] / result["floor_seconds"], rel=0.02)
    machine = result["machine"]
    assert machine["cpu"] and machine["cpus"] >= 1 and machine["memory_gib"] > 0
    assert 0 < result["cpu_seconds"] <= result["seconds"] * machine["cpus"] * 1.05  # CPU time, not the floor's child
    assert machine["duckdb"] == duckdb.__version__ and machine["dagster"] == dg.__version__
    print_table(result)  # the table `bench` prints without --json
    table = capsys.readouterr().out.splitlines()
    assert table[1].startswith(f"on {machine['cpu']}, {machine['cpus']} CPUs, {machine['memory_gib']} GiB; Python ")
    assert [line.split()[0] for line in table[3:3 + len(STAGES)]] == list(result["stages"])
    assert f"whole / floor = {result['ratio_to_floor']}" in table
    floor = next(line for line in table if line.startswith("floor (read_json)"))
    assert f"the mean of {before:.2f} s before the pipeline and {after:.2f} s after" in floor
    ingest = next(line for line in table if line.startswith("of it, ingest"))
    assert ingest.endswith("in 1 chunk of about 64 MB, DuckDB capped at 512 MB)")
    steps = next(line for line in table if line.startswith("check steps"))
    assert f"({len(checks)} of them, of the checks' " in steps and f"; the slowest: {next(iter(checks))} " in steps
    busy = next(line for line in table if line.startswith("of it, CPU"))
    assert busy.split()[3] == f"{result['cpu_seconds']:.2f}" and f"of {machine['cpus']} CPUs busy" in busy


@dg.asset
def landed():
    return 1


@dg.asset_check(asset=landed)
def holds():
    return dg.AssetCheckResult(passed=True)


@dg.asset_check(asset=landed)
def finds_a_gap():
    return dg.AssetCheckResult(passed=False)


@dg.asset_check(asset=landed)
def cannot_look():
    raise OSError("warehouse.duckdb: Input/output error")


def test_check_steps_are_timed_and_named_and_the_failed_ones_said_even_when_they_raised():
    job = dg.define_asset_job("landed_and_checked", selection=dg.AssetSelection.assets(landed)
                              | dg.AssetSelection.all_asset_checks())
    checked = dg.Definitions(assets=[landed], asset_checks=[holds, finds_a_gap, cannot_look], jobs=[job])
    instance = dg.DagsterInstance.ephemeral()
    run = checked.resolve_job_def(job.name).execute_in_process(instance=instance, raise_on_error=False)
    seconds, failed = bench.timed_steps(instance, run.run_id)
    # an evaluated check is named as the UI names it; one that raised keeps its step's key
    assert set(seconds) == {"landed", "landed:holds", "landed:finds_a_gap", "landed_cannot_look"}
    assert all(s >= 0 for s in seconds.values()) and list(seconds.values()) == sorted(seconds.values(), reverse=True)
    assert sorted(failed) == ["landed:finds_a_gap", "landed_cannot_look"]


def cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    return root


@pytest.mark.parametrize("files, limits", [
    ({"cpu.max": "150000 100000", "memory.max": str(3 * 2**30)}, (1.5, 3 * 2**30)),  # cgroup v2, limited
    ({"cpu.max": "max 100000", "memory.max": "max"}, (None, None)),  # v2, no limit
    ({"cpu/cpu.cfs_quota_us": "200000", "cpu/cpu.cfs_period_us": "100000",
      "memory/memory.limit_in_bytes": str(2**31)}, (2.0, 2**31)),  # v1, limited
    ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000",
      "memory/memory.limit_in_bytes": "9223372036854771712"}, (None, None)),  # v1, no limit
    ({}, (None, None)),  # no cgroup file system (macOS, a bare host)
])
def test_cgroup_limits_read_either_cgroup_version(tmp_path, files, limits):
    assert cgroup_limits(cgroup(tmp_path, files)) == limits


def test_the_bench_names_the_cpus_and_memory_its_container_allows_not_the_hosts(tmp_path):
    host = machine(tmp_path / "no-cgroup")
    limited = machine(cgroup(tmp_path / "pod", {"cpu.max": "50000 100000", "memory.max": str(2**30)}))
    assert limited["cpus"] == 1 and limited["memory_gib"] == min(1.0, host["memory_gib"])  # half a CPU is still one
    generous = machine(cgroup(tmp_path / "big", {"cpu.max": "6400000 100000", "memory.max": str(2**50)}))
    assert (generous["cpus"], generous["memory_gib"]) == (host["cpus"], host["memory_gib"])  # a limit above the host's


def lake_files(root):
    return {path: path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}


def ai_event_lines(lake: LocalObjectStore, day: date) -> tuple[int, int]:
    """(lines, lines that are neither blank nor a parsed call other than an AI event), counted here
    without the pipeline."""
    lines = events = 0
    for obj in partition_objects(lake, day):
        data = (Path(lake.root) / obj.key).read_bytes()
        for line in (gzip.decompress(data) if obj.key.endswith(".gz") else data).splitlines():
            lines += 1
            if not line.strip():
                continue
            try:
                call = json.loads(line)
            except ValueError:
                events += 1  # a malformed line is quarantined: counted as an event, not as other traffic
                continue
            is_other_call = isinstance(call, dict) and "type" in call and not (
                call["type"] == "track" and str(call.get("event", "")).startswith("ai_"))
            events += not is_other_call
    return lines, events


def test_bench_on_a_day_of_your_own_lake_copies_it_and_leaves_the_lake_alone(tmp_path):
    day = date(2026, 10, 3)
    lake = LocalObjectStore(root=str(tmp_path / "mine"))
    generate(lake, GeneratorConfig(days=2, users=40, events_per_day=1_500, seed=4, start=day))
    before = lake_files(tmp_path / "mine")
    result = bench_json(tmp_path / "home", "--lake", lake.root, "--date", day.isoformat())
    assert lake_files(tmp_path / "mine") == before  # nothing written, replaced or touched
    assert result["copied_from"] == lake.root and result["day"] == "2026-10-03" and result["copy_seconds"] >= 0
    # the day's raw object, its tickets and conversions, and the profile snapshot; none of the next day's
    assert result["copied_objects"] == 4
    assert (result["lines"], result["events"]) == ai_event_lines(lake, day)
    assert set(result["stages"]) == STAGES and result["stages"]["sources"]["seconds"] > 0
    assert result["day_before"] is None and result["day_before_seconds"] is None  # the lake's first day


def test_bench_on_a_later_day_of_your_own_lake_lands_the_day_before_first(tmp_path, capsys):
    day = date(2026, 10, 4)
    lake = LocalObjectStore(root=str(tmp_path / "mine"))
    generate(lake, GeneratorConfig(days=3, users=40, events_per_day=1_500, seed=4, start=day - timedelta(days=1)))
    before = lake_files(tmp_path / "mine")
    result = bench_json(tmp_path / "home", "--lake", lake.root, "--date", day.isoformat())
    assert lake_files(tmp_path / "mine") == before
    assert result["day_before"] == "2026-10-03" and result["day_before_seconds"] > 0
    # each day's raw object, tickets and conversions, and the one profile snapshot both days read
    assert result["copied_objects"] == 3 + 3 + 1
    assert (result["lines"], result["events"]) == ai_event_lines(lake, day)  # only the benched day is counted
    print_table(result)
    assert capsys.readouterr().out.splitlines()[0].endswith(
        f"(not counted), landed after 2026-10-03 (in {result['day_before_seconds']} s, not counted)")


@pytest.mark.parametrize("variable, complaint", [
    ("TELEMETRY_INGEST_CHUNK_MB", "is not a whole number of MB from 1 to 1024"),
    ("TELEMETRY_INGEST_MEMORY_MB", "is not a whole number of MB, 128 or more"),
])
def test_bench_refuses_an_ingest_size_it_cannot_use_before_generating_a_day(monkeypatch, capsys, variable, complaint):
    monkeypatch.setenv(variable, "0")
    monkeypatch.setattr(bench, "run_bench", lambda events: pytest.fail("generated a day it could not ingest"))
    assert main(["bench", "--events", "1000000"]) == 2
    assert f"telemetry bench: {variable}='0' {complaint}" in capsys.readouterr().err


def test_bench_says_clearly_when_the_lake_has_no_such_day(tmp_path, capsys):
    lake = LocalObjectStore(root=str(tmp_path / "mine"))
    generate(lake, GeneratorConfig(days=1, users=20, events_per_day=100, seed=4, start=date(2026, 10, 3)))
    before = lake_files(tmp_path / "mine")
    assert main(["bench", "--lake", lake.root, "--date", "2026-10-04"]) == 2
    assert "holds no raw event objects for 2026-10-04" in capsys.readouterr().err
    assert main(["bench", "--lake", lake.root]) == 2
    assert "--lake and --date go together" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # a day of a lake has the events it has
        main(["bench", "--lake", lake.root, "--date", "2026-10-03", "--events", "500"])
    assert refused.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert lake_files(tmp_path / "mine") == before
