"""`telemetry bench`: speed and memory as measured facts, never as timed unit tests.

Generates one day of `events` AI events into a temporary local lake (not timed), then times, in
this process and on the same files:
- the floor: DuckDB `read_json` of the day's raw objects, with an explicit schema, into a table;
- the pipeline for that partition, stage by stage: ingest (list+read, parse, dedupe, validate,
  redact+classify, route+exports, land, as `ingest_partition` reports them), the business sources,
  joins, metrics, and every asset check (the `checks_only` job, Dagster overhead included).
Peak RSS per stage is the process's high-water mark when the stage last ended, so it only grows.
Ingest validates and governs two chunks at once, so its stage seconds add up both threads' time in
the stage: they can sum to more than ingest's wall time (`ingest_seconds`), and all stages to more
than the whole, which is wall time.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from datetime import date
from pathlib import Path

import dagster as dg

from checks.sources import load_sources
from checks.tracking_plan import load_tracking_plan
from resources.object_store import LocalObjectStore
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.analytics.alert_rules import load_alert_rules
from telemetry_assets.analytics.alerts import build_alerts
from telemetry_assets.analytics.business import build_business
from telemetry_assets.analytics.comparison import build_comparison
from telemetry_assets.analytics.joins import build_joins
from telemetry_assets.analytics.performance import build_performance
from telemetry_assets.generate.traffic import GeneratorConfig, generate
from telemetry_assets.govern.policy import load_policy
from telemetry_assets.govern.safety import compute_safety, write_safety
from telemetry_assets.ingest.layouts import partition_objects
from telemetry_assets.ingest.partition import ingest_partition
from telemetry_assets.ingest.tables import governed_table
from telemetry_assets.sources.load import load_source
from telemetry_assets.stage_clock import StageClock

BENCH_DAY = date(2026, 9, 1)
STAGES = ("list+read", "parse", "dedupe", "validate", "redact+classify", "route+exports", "land", "sources", "joins",
          "metrics", "checks")

# The envelope every raw call shares, as the floor's explicit schema: nested objects stay JSON.
FLOOR_SCHEMA = {
    "type": "VARCHAR", "event": "VARCHAR", "messageId": "VARCHAR", "userId": "VARCHAR", "anonymousId": "VARCHAR",
    "timestamp": "VARCHAR", "originalTimestamp": "VARCHAR", "sentAt": "VARCHAR", "receivedAt": "VARCHAR",
    "context": "JSON", "properties": "JSON", "integrations": "JSON",
}


def run_bench(events: int, seed: int = 7) -> dict:
    """Generation and the floor run in a child process, so this process's peak RSS is the pipeline's."""
    with tempfile.TemporaryDirectory() as home, ProcessPoolExecutor(1, mp_context=get_context("spawn")) as child:
        lake = LocalObjectStore(root=str(Path(home) / "lake"))
        generated = child.submit(_generate, lake.root, events, seed).result()
        floor = child.submit(_floor, lake.root, str(Path(home) / "floor.duckdb")).result()
        clock = StageClock()
        started = time.perf_counter()
        lines, ingest_seconds = _pipeline(lake, Path(home), clock)
        seconds = time.perf_counter() - started
    stages = {name: {"seconds": round(clock.seconds[name], 3), "events_per_second": round(events / clock.seconds[name]),
                     "peak_rss_mb": clock.peak_rss_mb[name]} for name in STAGES}
    return {
        "events": events, "lines": lines, "seconds": round(seconds, 3), "events_per_second": round(events / seconds),
        "peak_rss_mb": _peak_rss_mb(), "floor_seconds": round(floor, 3), "ratio_to_floor": round(seconds / floor, 2),
        "ingest_seconds": round(ingest_seconds, 3), "generate_seconds": round(generated, 1), "stages": stages,
    }


def _generate(root: str, events: int, seed: int) -> float:
    started = time.perf_counter()
    generate(LocalObjectStore(root=root), GeneratorConfig(days=1, users=max(50, events // 200), events_per_day=events,
                                                          seed=seed, start=BENCH_DAY))
    return time.perf_counter() - started


def _floor(root: str, database: str) -> float:
    """A bare DuckDB scan of the day's raw objects with an explicit schema into a table: the least
    any pipeline reading these files must spend."""
    import duckdb

    files = [str(Path(root) / obj.key) for obj in partition_objects(LocalObjectStore(root=root), BENCH_DAY)]
    with duckdb.connect(database) as con:
        started = time.perf_counter()
        con.execute("CREATE TABLE raw_calls AS SELECT * FROM read_json(?, format = 'newline_delimited', "
                    "columns = ?, ignore_errors = true)", [files, FLOOR_SCHEMA])
        return time.perf_counter() - started


def _pipeline(lake: LocalObjectStore, home: Path, clock: StageClock) -> tuple[int, float]:
    """One partition through every stage, in the order the jobs run them; returns the lines read
    and ingest's wall time (which its stages, adding up both chunk threads, can exceed)."""
    plan, policy = load_tracking_plan(settings.tracking_plan_path()), load_policy(settings.policy_path())
    warehouse = Warehouse(database=str(home / "warehouse.duckdb"))
    secure = SecureStore(database=str(home / "secure.duckdb"))
    with warehouse.get_connection() as con:
        started = time.perf_counter()
        report = ingest_partition(lake, con, BENCH_DAY, plan, policy, secure, clock=clock)
        ingest_seconds = time.perf_counter() - started
        with clock.stage("sources"):
            for spec in load_sources(settings.sources_path()).values():
                load_source(lake, con, spec, BENCH_DAY)
        with clock.stage("joins"):
            build_joins(con, BENCH_DAY, policy)
        with clock.stage("metrics"), secure.get_connection() as secure_con:
            write_safety(con, compute_safety(con, lake, secure_con, BENCH_DAY, policy,
                                             [governed_table(name) for name in plan.events]))
            build_performance(con, BENCH_DAY)
            build_business(con, BENCH_DAY)
            build_comparison(con, BENCH_DAY)
            build_alerts(con, BENCH_DAY, load_alert_rules(settings.alert_rules_path()))
    with clock.stage("checks"):
        _run_checks(lake, warehouse)
    return report.total("lines_read"), ingest_seconds


def _run_checks(lake, warehouse) -> None:
    from telemetry_assets.cli import QUIET_CONSOLE
    from telemetry_assets.definitions import defs

    result = defs.resolve_job_def("checks_only").execute_in_process(
        tags={"dagster/partition": BENCH_DAY.isoformat()}, instance=dg.DagsterInstance.ephemeral(),
        resources={"lake": lake, "warehouse": warehouse}, raise_on_error=False, run_config=QUIET_CONSOLE)
    failed = [f"{c.asset_key.to_user_string()}:{c.check_name}" for c in result.get_asset_check_evaluations() if not c.passed]
    if failed:
        print(f"note: checks failed on the bench day: {', '.join(failed)}", file=sys.stderr)


def _peak_rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def print_table(result: dict) -> None:
    print(f"{result['events']:,} events ({result['lines']:,} lines), one partition, "
          f"generated in {result['generate_seconds']} s (not counted)")
    print(f"{'stage':16} {'seconds':>9} {'events/s':>11} {'peak RSS MB':>12}")
    for name, stage in result["stages"].items():
        print(f"{name:16} {stage['seconds']:>9.2f} {stage['events_per_second'] or 0:>11,} {stage['peak_rss_mb']:>12,}")
    print(f"{'whole':16} {result['seconds']:>9.2f} {result['events_per_second']:>11,} {result['peak_rss_mb']:>12,}")
    print(f"{'of it, ingest':16} {result['ingest_seconds']:>9.2f}  (wall time of list+read to land)")
    print(f"{'floor (read_json)':16} {result['floor_seconds']:>9.2f}")
    print(f"whole / floor = {result['ratio_to_floor']}")
    print("(ingest's stages count both chunk threads' time, so they can sum to more than its wall time)")
