"""`telemetry bench`: speed and memory as measured facts, never as timed unit tests.

Generates two days of `events` AI events each into a temporary local lake, or copies a day of a lake
of yours there with the day before when the lake holds it (raw objects, those days' business sources
and the profile snapshots; your lake is only read). It lands the day before as the daily schedule
would (ingest, sources, joins, metrics, then the night's compaction), in a child process, so that the
day it times is a day of production: dedupe looks back on a day of message ids, the joins find the
day before's turns and links, and the warehouse file already holds a day (a first day costs less:
README, "Measured"). None of that is timed. Then it times, in this process and on the same files:
- the floor: DuckDB `read_json` of the day's raw objects, with an explicit schema, into a table,
  once before the pipeline and once after; `floor_seconds` is the mean of the two. The VM's pace
  drifts over the minutes the pipeline takes, and one floor of a few seconds catches it at one
  moment: on one VM, one run's floor took 7.2 s where five back to back took 9.1 to 9.6 s;
- the pipeline for that partition, stage by stage: ingest (list+read, parse, dedupe, validate,
  redact+classify, route+exports, land, as `ingest_partition` reports them; list+read is timed on
  the thread that reads ahead, beside the others), the business sources,
  joins, metrics, and every asset check (the `checks_only` job, Dagster overhead included; each
  check's own step, slowest first, is in `check_seconds`);
- then, not in the whole, what the nightly `compact_warehouse` does after such a day (`compaction`).
A stage's peak RSS is the highest the process's resident set was while that stage ran (sampled
every 50 ms, see `stage_clock.py`); the whole's is the kernel's high-water mark for the process, or
the highest sample where that is higher (the kernel's mark misses memory freed with `madvise`).
Ingest validates and governs two events of its chunks at once (chunks of `TELEMETRY_INGEST_CHUNK_MB`
each: the JSON's `ingest_chunk_mb`, and how many, `ingest_chunks`; its DuckDB capped at
`TELEMETRY_INGEST_MEMORY_MB`, `ingest_memory_mb`) while it reads the next chunk, so
its stage seconds add up every thread's time in the stage: they can sum to more than ingest's wall
time (`ingest_seconds`), and all stages to more than the whole, which is wall time. `cpu_seconds` is
the CPU time (user and system, every thread) the pipeline took: against the whole's seconds, it says
how many cores were kept busy.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb

from checks.sources import load_sources
from checks.tracking_plan import load_tracking_plan
from resources.duckdb_files import connect
from resources.object_store import LocalObjectStore, object_store_from_url
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import environment, settings
from telemetry_assets.analytics.alert_rules import load_alert_rules
from telemetry_assets.analytics.alerts import build_alerts
from telemetry_assets.analytics.business import build_business
from telemetry_assets.analytics.comparison import build_comparison
from telemetry_assets.analytics.joins import build_joins
from telemetry_assets.analytics.performance import build_performance
from telemetry_assets.compaction import Compaction, compact
from telemetry_assets.generate.traffic import GeneratorConfig, generate
from telemetry_assets.govern.policy import load_policy
from telemetry_assets.govern.safety import compute_safety, write_safety
from telemetry_assets.ingest.layouts import partition_objects
from telemetry_assets.ingest.partition import PartitionReport, ingest_partition
from telemetry_assets.ingest.tables import governed_table
from telemetry_assets.sources.load import load_source, source_objects
from telemetry_assets.stage_clock import StageClock, peak_rss_mb

BENCH_DAY = date(2026, 9, 1)
CGROUP_ROOT = Path("/sys/fs/cgroup")
STAGES = ("list+read", "parse", "dedupe", "validate", "redact+classify", "route+exports", "land", "sources", "joins",
          "metrics", "checks")

# The envelope every raw call shares, as the floor's explicit schema: nested objects stay JSON.
FLOOR_SCHEMA = {
    "type": "VARCHAR", "event": "VARCHAR", "messageId": "VARCHAR", "userId": "VARCHAR", "anonymousId": "VARCHAR",
    "timestamp": "VARCHAR", "originalTimestamp": "VARCHAR", "sentAt": "VARCHAR", "receivedAt": "VARCHAR",
    "context": "JSON", "properties": "JSON", "integrations": "JSON",
}


class NoRawObjects(ValueError):
    """The lake holds no raw event object for the day asked for."""


def run_bench(events: int, seed: int = 7) -> dict:
    """Generation, the day before and the floor run in a child process, so this process's peak RSS is
    the benched day's."""
    with tempfile.TemporaryDirectory() as home, _child_process() as child:
        lake = LocalObjectStore(root=str(Path(home) / "lake"))
        _say(f"generating two days of {events:,} AI events (not timed)")
        generated = child.submit(_generate, lake.root, events, seed).result()
        result = _measure(child, lake, Path(home), BENCH_DAY, events, day_before=BENCH_DAY - timedelta(days=1))
    return {**result, "generate_seconds": round(generated, 1)}


def run_bench_on_lake(lake_url: str, day: date) -> dict:
    """The same on one day of the lake at `lake_url`, and the day before when the lake holds it,
    copied first: the pipeline writes exports into the lake it reads, and a bench must not replace a
    real day's. `events` is then what ingest counted as AI-event lines (every line that is neither
    blank nor another kind of call)."""
    with tempfile.TemporaryDirectory() as home, _child_process() as child:
        lake = LocalObjectStore(root=str(Path(home) / "lake"))
        _say(f"copying {day} of {lake_url}, and the day before if it holds it (not timed)")
        objects, copied, day_before = child.submit(_copy_days, lake_url, lake.root, day).result()
        result = _measure(child, lake, Path(home), day, events=None, day_before=day_before)
    return {**result, "copied_from": lake_url, "copied_objects": objects, "copy_seconds": round(copied, 1)}


def _child_process() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(1, mp_context=get_context("spawn"))


def _say(what: str) -> None:
    """What the bench is doing now, on stderr (stdout is the result's alone): a large day takes
    minutes per stage, and a bench that says nothing for half an hour looks stuck."""
    print(f"bench {time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def _measure(child, lake: LocalObjectStore, home: Path, day: date, events: int | None,
             day_before: date | None) -> dict:
    if day_before is None:
        _say(f"no day before {day} to land: benching it as the warehouse's first day")
        landed_before = None
    else:
        _say(f"landing the day before, {day_before} (not timed)")
        landed_before = child.submit(_land_day_before, lake.root, str(home), day_before).result()
    _say("floor, before the pipeline")
    floor_before = child.submit(_floor, lake.root, str(home / "floor.duckdb"), day).result()
    clock, chunk_mb, memory_mb = StageClock(), settings.ingest_chunk_mb(), settings.ingest_memory_mb()
    with clock.sampling_rss():
        started, cpu_started = time.perf_counter(), time.process_time()
        report, ingest_seconds, check_seconds = _pipeline(lake, home, day, clock, chunk_mb)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    _say("compaction, as each night (not in the whole)")
    compaction = _compaction(home)
    _say("floor, after the pipeline")
    floor_after = child.submit(_floor, lake.root, str(home / "floor.duckdb"), day).result()
    floor = (floor_before + floor_after) / 2
    lines = report.total("lines_read")
    if events is None:
        events = lines - report.total("blank_lines") - report.total("non_ai_events")
    stages = {name: {"seconds": round(clock.seconds[name], 3),
                     "events_per_second": round(events / clock.seconds[name]) if clock.seconds[name] else None,
                     "peak_rss_mb": clock.peak_rss_mb[name]} for name in STAGES}
    return {
        "machine": machine(), "events": events, "lines": lines, "day": day.isoformat(), "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "events_per_second": round(events / seconds), "peak_rss_mb": max(peak_rss_mb(), *clock.peak_rss_mb.values()),
        "floor_seconds": round(floor, 3), "floor_runs_seconds": [round(floor_before, 3), round(floor_after, 3)],
        "ratio_to_floor": round(seconds / floor, 2), "ingest_seconds": round(ingest_seconds, 3),
        "ingest_chunk_mb": chunk_mb, "ingest_chunks": report.chunks, "ingest_memory_mb": memory_mb,
        "stages": stages, "check_seconds": check_seconds,
        "compaction": asdict(compaction),
        "day_before": day_before.isoformat() if day_before else None,
        "day_before_seconds": round(landed_before, 1) if landed_before is not None else None,
    }


def machine(cgroup_root: Path = CGROUP_ROOT) -> dict:
    """What the figures were measured on: seconds compare only on the same kind of machine. In a
    container, `cpus` and `memory_gib` are what its cgroup allows (a pod limited to 2 CPUs on a
    64-core node ran on 2), not what the host has."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    cpu_quota, memory_limit = cgroup_limits(cgroup_root)
    if cpu_quota is not None:
        cpus = min(cpus, max(1, math.ceil(cpu_quota)))
    if memory_limit is not None:
        memory = min(memory, memory_limit) if memory else memory_limit
    return {"cpu": _cpu_model(), "cpus": cpus, "memory_gib": round(memory / 2**30, 1),
            "python": platform.python_version(), "duckdb": duckdb.__version__, "dagster": dg.__version__}


def cgroup_limits(root: Path) -> tuple[float | None, int | None]:
    """(CPUs, bytes) the process's cgroup allows, None where it sets no limit: cgroup v2's `cpu.max`
    and `memory.max`, or v1's CFS quota and `memory.limit_in_bytes` (whose "no limit" is a number
    near 2**63). Read at the mount's root, which is the container's own group inside a container."""
    v2_cpu, v2_memory = _read(root / "cpu.max"), _read(root / "memory.max")
    if v2_cpu is not None or v2_memory is not None:
        quota, _, period = (v2_cpu or "max").partition(" ")
        cpus = int(quota) / int(period or 100_000) if quota != "max" else None
        memory = int(v2_memory) if v2_memory not in (None, "max") else None
        return cpus, memory
    quota, period = _read(root / "cpu" / "cpu.cfs_quota_us"), _read(root / "cpu" / "cpu.cfs_period_us")
    cpus = int(quota) / int(period) if quota not in (None, "-1") and period else None
    limit = _read(root / "memory" / "memory.limit_in_bytes")
    memory = int(limit) if limit is not None and int(limit) < 2**62 else None
    return cpus, memory


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine() or "unknown"


def _generate(root: str, events: int, seed: int) -> float:
    started = time.perf_counter()
    generate(LocalObjectStore(root=root), GeneratorConfig(days=2, users=max(50, events // 200), events_per_day=events,
                                                          seed=seed, start=BENCH_DAY - timedelta(days=1)))
    return time.perf_counter() - started


def _copy_days(lake_url: str, root: str, day: date) -> tuple[int, float, date | None]:
    """Copy the day's raw objects and the business sources its pipeline reads, and the day before's
    when the lake holds raw objects for it, streaming each object; returns how many objects, the
    seconds it took, and the day before, or None."""
    started = time.perf_counter()
    source = object_store_from_url(lake_url)
    source.check_readable()
    keys = _day_keys(source, day)
    if not keys:
        raise NoRawObjects(f"{source.describe()} holds no raw event objects for {day} "
                           "(looked under raw/ai_events/, rudder-logs/ and segment-logs/)")
    day_before = day - timedelta(days=1)
    keys_before = _day_keys(source, day_before)
    copied = list(dict.fromkeys(keys + keys_before))  # a profile snapshot can serve both days
    for key in copied:
        path = Path(root) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(source.open(key)) as stream, open(path, "wb") as copy:
            shutil.copyfileobj(stream, copy, 1 << 22)
    return len(copied), time.perf_counter() - started, day_before if keys_before else None


def _day_keys(source, day: date) -> list[str]:
    """The day's raw objects, then its business source files; none when it has no raw object."""
    keys = [obj.key for obj in partition_objects(source, day)]
    if not keys:
        return []
    return keys + [o.key for spec in load_sources(settings.sources_path()).values()
                   for o in source_objects(source, spec, day)]


def _land_day_before(root: str, home: str, day: date) -> float:
    """Land `day` as the daily run and the night's compaction leave it, untimed (in the child)."""
    started = time.perf_counter()
    lake, home_path = LocalObjectStore(root=root), Path(home)
    _ingest(lake, home_path, day, StageClock(), settings.ingest_chunk_mb())
    _join_and_measure(lake, home_path, day, StageClock())
    _compaction(home_path)
    return time.perf_counter() - started


def _floor(root: str, database: str, day: date) -> float:
    """A bare DuckDB scan of the day's raw objects with an explicit schema into a table: the least
    any pipeline reading these files must spend. The database is removed after, for the next floor."""
    files = [str(Path(root) / obj.key) for obj in partition_objects(LocalObjectStore(root=root), day)]
    with connect(database, 0) as con:
        started = time.perf_counter()
        con.execute("CREATE TABLE raw_calls AS SELECT * FROM read_json(?, format = 'newline_delimited', "
                    "columns = ?, ignore_errors = true)", [files, FLOOR_SCHEMA])
        seconds = time.perf_counter() - started
    Path(database).unlink()
    return seconds


def _pipeline(lake: LocalObjectStore, home: Path, day: date, clock: StageClock,
              chunk_mb: int) -> tuple[PartitionReport, float, dict[str, float]]:
    """One partition through every stage, in the order the jobs run them; returns ingest's report,
    its wall time (which its stages, adding up every thread's time, can exceed) and each check's
    seconds."""
    _say(f"ingest, in chunks of {chunk_mb} MB")
    started = time.perf_counter()
    report = _ingest(lake, home, day, clock, chunk_mb)
    ingest_seconds = time.perf_counter() - started
    _say("sources, joins and metrics")
    _join_and_measure(lake, home, day, clock)
    _say("checks")
    with clock.stage("checks"):
        check_seconds = _run_checks(lake, _warehouse(home), day)
    return report, ingest_seconds, check_seconds


def _ingest(lake: LocalObjectStore, home: Path, day: date, clock: StageClock, chunk_mb: int) -> PartitionReport:
    plan, policy = load_tracking_plan(settings.tracking_plan_path()), load_policy(settings.policy_path())
    warehouse = _warehouse(home)
    with warehouse.get_connection(memory_limit=warehouse.ingest_memory_limit) as con:
        # landed the morning after, as the daily schedule does: the day's raw text is archived,
        # whatever the policy's retention and however long ago the benched day was
        return ingest_partition(lake, con, day, plan, policy, _secure_store(home), clock=clock,
                                today=day + timedelta(days=1), chunk_bytes=chunk_mb << 20)


def _join_and_measure(lake: LocalObjectStore, home: Path, day: date, clock: StageClock) -> None:
    plan, policy = load_tracking_plan(settings.tracking_plan_path()), load_policy(settings.policy_path())
    with _warehouse(home).get_connection() as con:
        with clock.stage("sources"):
            for spec in load_sources(settings.sources_path()).values():
                load_source(lake, con, spec, day)
        with clock.stage("joins"):
            build_joins(con, day, policy)
        with clock.stage("metrics"), _secure_store(home).get_connection() as secure_con:
            write_safety(con, compute_safety(con, lake, secure_con, day, policy,
                                             [governed_table(name) for name in plan.events]))
            build_performance(con, day)
            build_business(con, day)
            build_comparison(con, day)
            build_alerts(con, day, load_alert_rules(settings.alert_rules_path()))


def _warehouse(home: Path) -> Warehouse:
    return environment.warehouse(home / "warehouse.duckdb")


def _secure_store(home: Path) -> SecureStore:
    return SecureStore(database=str(home / "secure.duckdb"))


def _compaction(home: Path) -> Compaction:
    """What `compact_warehouse` does the night after: the pipeline's own checkpoints leave it the row
    groups to merge (`compaction.py`). Timed on its own, since it runs apart from the day's runs."""
    with _warehouse(home).get_connection() as con:
        return compact(con)


def _run_checks(lake, warehouse, day: date) -> dict[str, float]:
    from telemetry_assets.cli import QUIET_CONSOLE
    from telemetry_assets.definitions import defs

    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("checks_only").execute_in_process(
        tags={"dagster/partition": day.isoformat()}, instance=instance,
        resources={"lake": lake, "warehouse": warehouse}, raise_on_error=False, run_config=QUIET_CONSOLE)
    seconds, failed = timed_steps(instance, result.run_id)
    if failed:
        print(f"note: checks failed on the benched day: {', '.join(failed)}", file=sys.stderr)
    return seconds


def timed_steps(instance: dg.DagsterInstance, run_id: str) -> tuple[dict[str, float], list[str]]:
    """Each step's wall seconds, from its start to its end in the run's event log, slowest first,
    and the steps that failed or whose check did not pass. A check's step is named as `asset:check`
    (one that raised before its check was evaluated keeps its step key). What the checks stage
    spends outside the steps is Dagster's own: loading the definitions and planning the run."""
    started, ended, names, failed = {}, {}, {}, []
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[event.step_key] = record.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            ended[event.step_key] = record.timestamp
            if event.event_type == dg.DagsterEventType.STEP_FAILURE:
                failed.append(event.step_key)
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            names[event.step_key] = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            if not evaluation.passed:
                failed.append(event.step_key)
    seconds = {names.get(step, step): round(ended[step] - started[step], 3) for step in started if step in ended}
    by_time = dict(sorted(seconds.items(), key=lambda item: -item[1]))
    return by_time, [names.get(step, step) for step in dict.fromkeys(failed)]


def print_table(result: dict) -> None:
    if "copied_from" in result:
        prepared = f"copied from {result['copied_from']} ({result['copied_objects']} objects) in {result['copy_seconds']} s"
    else:
        prepared = f"generated in {result['generate_seconds']} s"
    box = result["machine"]
    before = (f"landed after {result['day_before']} (in {result['day_before_seconds']} s, not counted)"
              if result["day_before"] else "the warehouse's first day (the lake holds no day before)")
    print(f"{result['events']:,} events ({result['lines']:,} lines), one partition ({result['day']}), "
          f"{prepared} (not counted), {before}")
    print(f"on {box['cpu']}, {box['cpus']} CPUs, {box['memory_gib']} GiB; Python {box['python']}, "
          f"DuckDB {box['duckdb']}, Dagster {box['dagster']}")
    print(f"{'stage':16} {'seconds':>9} {'events/s':>11} {'peak RSS MB':>12}")
    for name, stage in result["stages"].items():
        print(f"{name:16} {stage['seconds']:>9.2f} {stage['events_per_second'] or 0:>11,} {stage['peak_rss_mb']:>12,}")
    print(f"{'whole':16} {result['seconds']:>9.2f} {result['events_per_second']:>11,} {result['peak_rss_mb']:>12,}")
    print(f"{'of it, CPU':16} {result['cpu_seconds']:>9.2f}  ({result['cpu_seconds'] / result['seconds']:.2f} of "
          f"{box['cpus']} CPUs busy on average)")
    chunks = f"{result['ingest_chunks']} chunk{'' if result['ingest_chunks'] == 1 else 's'}"
    print(f"{'of it, ingest':16} {result['ingest_seconds']:>9.2f}  (wall time of list+read to land, in {chunks} "
          f"of about {result['ingest_chunk_mb']} MB, DuckDB capped at {result['ingest_memory_mb']} MB)")
    checks = result["check_seconds"]
    slowest = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in list(checks.items())[:3])
    print(f"{'check steps':16} {sum(checks.values()):>9.2f}  ({len(checks)} of them, of the checks' "
          f"{result['stages']['checks']['seconds']:.2f} s; the slowest: {slowest})")
    before, after = result["floor_runs_seconds"]
    print(f"{'floor (read_json)':16} {result['floor_seconds']:>9.2f}  (the mean of {before:.2f} s before the pipeline "
          f"and {after:.2f} s after)")
    compaction = result["compaction"]
    print(f"{'compaction':16} {compaction['seconds']:>9.2f}  (as each night, not in the whole: "
          f"{compaction['row_groups_before']:,} row groups to {compaction['row_groups_after']:,})")
    print(f"whole / floor = {result['ratio_to_floor']}")
    print("(ingest's stages count every thread's time, so they can sum to more than its wall time;")
    print(" a stage's peak RSS is the highest while it ran, shared by the stages running beside it)")
