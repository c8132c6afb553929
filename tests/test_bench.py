"""The bench runs and reports its fields; speed itself is never asserted in tests."""

import json
import os
import subprocess
import sys

import pytest

STAGES = {"list+read", "parse", "dedupe", "validate", "redact+classify", "route+exports", "land", "sources", "joins",
          "metrics", "checks"}


def test_bench_reports_every_stage_and_the_floor_as_json(tmp_path):
    env = {**os.environ, "TELEMETRY_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "telemetry_assets.cli", "bench", "--events", "20000", "--json"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert {"events", "seconds", "events_per_second", "peak_rss_mb", "floor_seconds", "ratio_to_floor",
            "ingest_seconds", "stages"} <= set(result)
    assert result["events"] == 20000 and result["lines"] > 20000  # plus non-AI, bad and re-sent lines
    assert set(result["stages"]) == STAGES
    for stage in result["stages"].values():
        assert stage["seconds"] > 0 and stage["peak_rss_mb"] > 0
    assert sum(s["seconds"] for s in result["stages"].values()) <= result["seconds"]
    after_ingest = sum(result["stages"][name]["seconds"] for name in ("sources", "joins", "metrics", "checks"))
    assert 0 < result["ingest_seconds"] and result["ingest_seconds"] + after_ingest <= result["seconds"]
    assert result["ratio_to_floor"] == pytest.approx(result["seconds"] / result["floor_seconds"], rel=0.02)
