"""`telemetry bench`: speed and memory as measured facts, never as timed unit tests.

Generates traffic into a temporary lake and times, in this process:
- `redact`: redaction of `texts` generated free texts (prompts, responses, feedback, with PII);
- `classify`: intent classification of the same texts;
- `ingest`: one partition of `events` events end to end (list, read, parse, validate, dedupe,
  govern, land), through the same code the Dagster asset runs.
Peak RSS is the process's high-water mark after each stage.
"""

from __future__ import annotations

import random
import resource
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd

from checks.tracking_plan import load_tracking_plan
from resources.object_store import LocalObjectStore
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.generate.content import FEEDBACK, INTENT_PROMPTS, RESPONSES, PiiPools
from telemetry_assets.generate.traffic import GeneratorConfig, generate
from telemetry_assets.govern.intent import IntentRules, classify
from telemetry_assets.govern.policy import load_policy
from telemetry_assets.govern.redact import Redactor
from telemetry_assets.ingest.partition import ingest_partition

BENCH_DAY = date(2026, 9, 1)


def run_bench(events: int, texts: int, seed: int = 7) -> dict:
    policy = load_policy(settings.policy_path())
    stages = _text_stages(texts, seed, policy)
    with tempfile.TemporaryDirectory() as home:
        lake = LocalObjectStore(root=str(Path(home) / "lake"))
        generate(lake, GeneratorConfig(days=1, users=max(50, events // 200), events_per_day=events, seed=seed, start=BENCH_DAY))
        warehouse = Warehouse(database=str(Path(home) / "warehouse.duckdb"))
        secure = SecureStore(database=str(Path(home) / "secure.duckdb"))
        plan = load_tracking_plan(settings.tracking_plan_path())

        def ingest():
            with warehouse.get_connection() as con:
                return ingest_partition(lake, con, BENCH_DAY, plan, policy, secure)

        report = {}
        stages["ingest"] = _timed(lambda: report.update(lines=ingest().total("lines_read")), events, "events")
        stages["ingest"]["lines"] = report["lines"]
    return {"events": events, "texts": texts, "stages": stages, "peak_rss_mb": _peak_rss_mb()}


def _text_stages(count: int, seed: int, policy) -> dict:
    """Redaction and classification of `count` generated texts (freed when this returns)."""
    sample = _texts(count, seed)
    redactor = Redactor(policy.entities, policy.replacement, policy.phone_region)
    return {
        "redact": _timed(lambda: redactor.redact(sample), len(sample), "texts"),
        "classify": _timed(lambda: classify(sample, IntentRules.load()), len(sample), "texts"),
    }


def _timed(work, count: int, unit: str) -> dict:
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 3), unit: count, f"{unit}_per_second": round(count / seconds), "peak_rss_mb": _peak_rss_mb()}


def _texts(count: int, seed: int) -> pd.Series:
    rng = random.Random(seed)
    pools = PiiPools.build(rng)
    templates = [t for group in INTENT_PROMPTS.values() for t in group] + RESPONSES + FEEDBACK
    return pd.Series([pools.fill(rng, rng.choice(templates)) for _ in range(count)], dtype="str")


def _peak_rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def print_table(result: dict) -> None:
    print(f"{'stage':10} {'seconds':>9} {'items':>11} {'items/s':>11} {'peak RSS MB':>12}")
    for name, stage in result["stages"].items():
        unit = "texts" if "texts" in stage else "events"
        print(f"{name:10} {stage['seconds']:>9.2f} {stage[unit]:>11,} {stage[f'{unit}_per_second']:>11,} {stage['peak_rss_mb']:>12,}")
