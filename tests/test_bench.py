"""The bench runs and reports its fields; speed itself is never asserted in tests."""

import json
import os
import subprocess
import sys


def test_bench_reports_every_stage_as_json(tmp_path):
    env = {**os.environ, "TELEMETRY_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "telemetry_assets.cli", "bench", "--events", "2000", "--texts", "3000", "--json"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result["stages"]) == {"redact", "classify", "ingest"}
    assert result["stages"]["redact"]["texts"] == 3000 and result["stages"]["ingest"]["events"] == 2000
    assert result["stages"]["ingest"]["lines"] > 2000  # AI events plus non-AI, bad and re-sent lines
    for stage in result["stages"].values():
        assert stage["seconds"] > 0 and stage["peak_rss_mb"] > 0
