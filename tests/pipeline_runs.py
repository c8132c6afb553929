"""Generated days run through the real Dagster jobs, for tests that need a whole pipeline's output,
and the CLI run in its own process, as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from resources.object_store import LocalObjectStore
from resources.secrets import GovernanceSecrets
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets.defs.jobs import STAGES
from telemetry_assets.definitions import defs
from telemetry_assets.generate.traffic import GeneratorConfig, generate


def run_generated(home, config: GeneratorConfig, stages=STAGES, warehouse_name: str = "warehouse",
                  require_clean: bool = True) -> tuple:
    """Generate into `home/lake`, then run each stage over every day in turn. With `require_clean`,
    asserts that every run and asset check passes; returns (lake, manifest, failed (asset, check) pairs)."""
    lake = LocalObjectStore(root=str(home / "lake"))
    manifest = generate(lake, config)
    resources = {"lake": lake, "warehouse": Warehouse(database=str(home / f"{warehouse_name}.duckdb")),
                 "secure_store": SecureStore(database=str(home / f"{warehouse_name}-secure.duckdb")),
                 "secrets": GovernanceSecrets()}
    instance = dg.DagsterInstance.ephemeral()
    failures = []
    for stage in stages:
        for day in manifest["days"]:
            result = defs.resolve_job_def(stage).execute_in_process(
                partition_key=day, instance=instance, resources=resources, raise_on_error=False)
            failed = [(c.asset_key.to_user_string(), c.check_name) for c in result.get_asset_check_evaluations() if not c.passed]
            if require_clean:
                assert result.success and failed == [], failed
            failures.extend(failed)
    return lake, manifest, failures


def telemetry(home: Path, *arguments: str, script: str | None = None, **environment: str) -> subprocess.CompletedProcess:
    """`telemetry ...` in its own process on `home` (on a Dagster instance under it, whatever
    DAGSTER_HOME says); `script` stands in for the module, to patch something first."""
    env = {**os.environ, "TELEMETRY_HOME": str(home), **environment}
    env.pop("DAGSTER_HOME", None)
    program = ["-c", script] if script else ["-m", "telemetry_assets.cli"]
    return subprocess.run([sys.executable, *program, *arguments], env=env, capture_output=True, text=True, timeout=600)
