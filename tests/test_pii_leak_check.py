"""The PII-leak check fails on planted leaks, says where, and blocks the day's metrics."""

import gzip
import json
import re

import dagster as dg
import duckdb
import pytest
import yaml

from checks.pii_leak import scan_exports
from resources.secrets import GovernanceSecrets
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets.definitions import defs
from telemetry_assets.settings import CONFIG_DIR
from tests.builders import ai_call, gz
from tests.conftest import DAY

PHONE = "+44 20 7946 0958"


def run_day(tmp_path, lake):
    resources = {"lake": lake, "warehouse": Warehouse(database=str(tmp_path / "warehouse.duckdb")),
                 "secure_store": SecureStore(database=str(tmp_path / "secure.duckdb")), "secrets": GovernanceSecrets()}
    return defs.resolve_job_def("daily_pipeline").execute_in_process(
        partition_key=DAY.isoformat(), instance=dg.DagsterInstance.ephemeral(), resources=resources, raise_on_error=False)


def test_a_policy_that_stops_redacting_phones_fails_the_check_and_blocks_the_metrics(tmp_path, lake, monkeypatch):
    policy = yaml.safe_load((CONFIG_DIR / "policy.yaml").read_text())
    policy["redaction"]["entities"] = ["email"]
    (tmp_path / "weak.yaml").write_text(yaml.safe_dump(policy))
    monkeypatch.setenv("TELEMETRY_POLICY", str(tmp_path / "weak.yaml"))
    lake.put("raw/ai_events/dt=2026-09-14/p.jsonl.gz", gz(
        ai_call("ai_user_prompt_created", message_id="leaky", prompt_text=f"call me on {PHONE}"),
        ai_call("ai_user_prompt_created", message_id="fine", prompt_text="mail a@b.co"),
    ))
    result = run_day(tmp_path, lake)
    assert not result.success
    failed = {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations() if not c.passed}
    # the unredacted phone reached the warehouse and the ai_observability export
    assert set(failed) == {("governed/ai_user_prompt_created", "no_pii_leak"), ("audit/governance_log", "no_pii_in_exports")}
    metadata = {k: v.value for k, v in failed[("governed/ai_user_prompt_created", "no_pii_leak")].metadata.items()}
    assert metadata["leaks/phone"] == 1 and "prompt_text of leaky: phone" in metadata["examples"]
    assert PHONE not in json.dumps(metadata)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "governed/ai_user_prompt_created" in materialized
    assert not {"metrics/performance_daily", "analytics/ai_turns", "metrics/business_daily"} & materialized
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'analytics'").fetchone() == (0,)


def test_a_raw_value_in_an_export_fails_the_export_scan(tmp_path, lake, warehouse):
    rows = [{"message_id": "ok", "prompt_text": "hello <EMAIL>"}, {"message_id": "bad", "feedback": f"ring {PHONE}"}]
    lake.put("exports/ai_observability/dt=2026-09-14/part.jsonl.gz",
             gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    scan = scan_exports(warehouse, lake, "ai_observability", DAY, ["prompt_text", "response_text", "feedback"])
    assert not scan.passed and scan.texts_scanned == 2
    assert scan.leaks.to_dict("records") == [{"message_id": "bad", "column": "feedback", "entities": "phone"}]
    clean = scan_exports(warehouse, lake, "product_analytics", DAY, ["prompt_text"])
    assert clean.passed and clean.texts_scanned == 0


@pytest.mark.parametrize("damage, error", [
    (lambda data: data[: len(data) // 2], "Unexpected end of GZIP stream"),
    (lambda data: gzip.compress(gzip.decompress(data)[:-20]), "Malformed JSON"),
])
def test_a_damaged_export_fails_the_scan_naming_the_file(lake, warehouse, damage, error):
    rows = [{"message_id": f"m{n}", "prompt_text": "hello " * 40} for n in range(500)]
    key = "exports/ai_observability/dt=2026-09-14/part.jsonl.gz"
    lake.put(key, damage(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())))
    with pytest.raises((duckdb.Error, OSError), match=f"{error}.*{re.escape(key)}"):  # via Arrow, DuckDB errors arrive as OSError
        scan_exports(warehouse, lake, "ai_observability", DAY, ["prompt_text"])
