"""`telemetry ui` serves the code location: every asset, check, schedule and sensor is there, over GraphQL."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from telemetry_assets.definitions import defs

WORKSPACE = """{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
  __typename ... on PythonError { message }
  ... on RepositoryLocation { repositories { schedules { name } sensors { name } jobs { name } } } } } } } }"""
ASSETS = """{ assetNodes { assetKey { path } groupName description
  assetChecksOrError { ... on AssetChecks { checks { name } } } } }"""


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


def wait_for_location(port: int, process, deadline_seconds: int = 240) -> dict:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "telemetry ui exited early"
        try:
            (entry,) = graphql(port, WORKSPACE)["workspaceOrError"]["locationEntries"]
            if entry["locationOrLoadError"] and entry["locationOrLoadError"]["__typename"] == "RepositoryLocation":
                return entry["locationOrLoadError"]
            assert entry["locationOrLoadError"] is None or "message" not in entry["locationOrLoadError"], entry
        except (OSError, KeyError, TypeError, ValueError):
            pass
        time.sleep(2)
    raise AssertionError("the code location did not load in time")


def stop(process) -> None:
    """Kill the whole process group outright. The test checks what is served, not how Dagster stops:
    on a loaded machine `dagster dev` twice never returned from SIGTERM (its webserver, daemon and
    code servers were still running hours later), and a SIGKILL leaves nothing behind."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def test_the_ui_serves_every_asset_check_schedule_and_sensor(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TELEMETRY_HOME": str(tmp_path)}
    env.pop("DAGSTER_HOME", None)
    process = subprocess.Popen([sys.executable, "-m", "telemetry_assets.cli", "ui", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        location = wait_for_location(port, process)
        (repository,) = location["repositories"]
        assert {s["name"] for s in repository["schedules"]} == {"daily_pipeline_schedule", "checks_only_schedule",
                                                                 "raw_text_expiry_schedule", "privacy_checks_schedule",
                                                                 "warehouse_compaction_schedule"}
        assert {s["name"] for s in repository["sensors"]} == {"alert_sensor", "late_objects_sensor", "run_failure_alert"}
        assert {"daily_pipeline", "land_day", "join_day", "measure_day", "checks_only", "expire_raw_text",
            "privacy_checks", "compact_warehouse"} \
            <= {j["name"] for j in repository["jobs"]}
        nodes = graphql(port, ASSETS)["assetNodes"]
        served = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        graph = defs.resolve_asset_graph()
        assert set(served) == {k.to_user_string() for k in graph.get_all_asset_keys()}
        assert all(n["groupName"] in {"ingest", "governed", "sources", "analytics", "metrics", "retention", "erasure",
                                         "maintenance"} and n["description"]
                   for n in nodes)
        checks = {(key, c["name"]) for key, n in served.items() for c in n["assetChecksOrError"]["checks"]}
        assert checks == {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    finally:
        stop(process)
    assert (tmp_path / "dagster" / "dagster.yaml").exists()
