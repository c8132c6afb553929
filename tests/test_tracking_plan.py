"""The plan file: validated on load with errors that name the key, and its modes honoured."""

import re

import pytest
import yaml

from checks.tracking_plan import TrackingPlanError, load_tracking_plan
from telemetry_assets.config_files import parse_yaml
from telemetry_assets.ingest.partition import ingest_partition
from telemetry_assets.settings import CONFIG_DIR
from tests.builders import ai_call, gz
from tests.conftest import DAY

SHIPPED = yaml.safe_load((CONFIG_DIR / "tracking_plan.yaml").read_text())


def response(plan):
    return plan["events"]["ai_llm_response_received"]["properties"]


def write_plan(tmp_path, plan):
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def edited(change):
    plan = yaml.safe_load(yaml.safe_dump(SHIPPED))
    change(plan)
    return plan


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda p: p["events"]["ai_user_action"]["properties"]["rating"].update(maximun=5), "events.ai_user_action.properties.rating: unknown key 'maximun'"),
        (lambda p: p["events"]["ai_user_action"]["properties"]["rating"].update(type="int"), "events.ai_user_action.properties.rating.type"),
        (lambda p: p["events"]["ai_user_action"].update(mode="drop"), "events.ai_user_action.mode"),
        (lambda p: p.update(version="9.9.9"), "changes: the newest entry must describe version 9.9.9"),
        (lambda p: p["events"]["ai_llm_response_received"]["properties"]["error_type"].update(required_when={"status": "error"}), "required_when: unknown property 'status'"),
        (lambda p: p["events"].update(chat_started={"properties": {}}), "events.chat_started: name does not start with namespace"),
        (lambda p: p.update(colour="blue"), "plan: unknown key 'colour'"),
        (lambda p: p.pop("events"), "plan: missing required key 'events'"),
        (lambda p: p.update(require_one_of=["user_id", "device_id"]), "require_one_of: 'device_id' is not an envelope field"),
        (lambda p: p["events"].update(ai_user_action="yes"), "events.ai_user_action: must be a mapping"),
        (lambda p: p["events"]["ai_user_action"]["properties"].update(rating="integer"),
         "events.ai_user_action.properties.rating: must be a mapping"),
        (lambda p: p["envelope"]["user_id"].pop("path"), "envelope.user_id.path: missing"),
        (lambda p: response(p)["error_type"].update(required_when=["response_status"]),
         "events.ai_llm_response_received.properties.error_type.required_when: must map a property to a value"),
        # Conditions that can never hold: the field would never be required, and nothing would say so.
        (lambda p: response(p)["error_type"].update(required_when={"response_status": "eror"}),
         "error_type.required_when: response_status = 'eror' can never hold: response_status is one of success, error"),
        (lambda p: response(p)["error_type"].update(required_when={"latency_ms": "high"}),
         "error_type.required_when: latency_ms = 'high' can never hold: latency_ms is of type number"),
        (lambda p: p["events"]["ai_user_action"]["properties"]["feedback"].update(required_when={"conversion_flag": "true"}),
         "feedback.required_when: conversion_flag = 'true' can never hold: conversion_flag is of type boolean"),
        (lambda p: p["events"]["ai_user_action"]["properties"]["feedback"].update(required_when={"rating": True}),
         "feedback.required_when: rating = True can never hold: rating is of type integer"),
        # Options of the wrong kind: each would fail every event at ingest, or quietly mean another thing.
        (lambda p: response(p)["cost"].update(required="no"),
         "events.ai_llm_response_received.properties.cost.required: must be true or false, not 'no'"),
        (lambda p: p["events"]["ai_user_action"].update(additional_properties="false"),
         "events.ai_user_action.additional_properties: must be true or false, not 'false'"),
        (lambda p: p["events"]["ai_user_action"]["properties"]["rating"].update(minimum="1"),
         "events.ai_user_action.properties.rating.minimum: must be a number, not '1'"),
        (lambda p: p["events"]["ai_user_action"]["properties"]["rating"].update(minimum=9),
         "events.ai_user_action.properties.rating.minimum: 9 is above the maximum 5"),
        (lambda p: response(p)["error_type"].update(minimum=3),
         "events.ai_llm_response_received.properties.error_type.minimum: only an integer or number field has bounds"),
        (lambda p: response(p).update(done_at={"type": "timestamp", "maximum": 3}),
         "events.ai_llm_response_received.properties.done_at.maximum: only an integer or number field has bounds"),
        (lambda p: response(p)["input_tokens"].update(enum=["a"]),
         "events.ai_llm_response_received.properties.input_tokens.enum: only a string field has an enum"),
        (lambda p: response(p)["response_status"].update(enum=["success", False]),
         "events.ai_llm_response_received.properties.response_status.enum: must be a non-empty list of strings"),
        # Names that would collide with another column: DuckDB's names ignore case.
        (lambda p: response(p).update(User_Id={"type": "string"}),
         "events.ai_llm_response_received.properties.User_Id: 'User_Id' is already an envelope field"),
        (lambda p: response(p).update(outcome={"type": "string"}),
         "events.ai_llm_response_received.properties.outcome: 'outcome' is a name the pipeline keeps"),
        (lambda p: response(p).update(cost__json_type={"type": "string"}),
         "events.ai_llm_response_received.properties.cost__json_type: 'cost__json_type' is a name the pipeline keeps"),
        (lambda p: p["envelope"].update(dt={"path": "dt", "type": "string"}), "envelope.dt: 'dt' is a name the pipeline keeps"),
    ],
)
def test_a_bad_plan_fails_on_load_naming_the_key(tmp_path, change, named):
    with pytest.raises(TrackingPlanError, match=re.escape(named)):
        load_tracking_plan(write_plan(tmp_path, edited(change)))


def test_a_plan_that_is_not_yaml_fails_on_load_naming_the_file_and_line(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(SHIPPED).replace("events:", "events: [", 1))
    with pytest.raises(TrackingPlanError, match=rf"(?s){re.escape(str(path))}: not valid YAML: .*line \d+"):
        load_tracking_plan(path)


@pytest.mark.parametrize("name", sorted(path.name for path in CONFIG_DIR.glob("*.yaml")))
def test_every_shipped_config_reads_as_pyyamls_own_safe_loader_reads_it(name):
    """Configs are parsed by LibYAML (`parse_yaml`, for speed): the documents must be the same."""
    assert parse_yaml(CONFIG_DIR / name) == yaml.safe_load((CONFIG_DIR / name).read_text())


def test_shipped_plan_has_a_version_and_history():
    plan = load_tracking_plan(CONFIG_DIR / "tracking_plan.yaml")
    assert plan.version == plan.changes[0]["version"]
    assert set(plan.events) == {"ai_user_prompt_created", "ai_llm_response_received", "ai_user_action"}


def test_forward_mode_keeps_the_event_and_records_its_violations(tmp_path, lake, warehouse, policy, secure_store):
    plan = load_tracking_plan(write_plan(tmp_path, edited(
        lambda p: p["events"]["ai_llm_response_received"].update(mode="forward"))))
    lake.put("raw/ai_events/dt=2026-09-14/p.jsonl.gz", gz(ai_call(message_id="odd", latency_ms=-3)))
    ingest_partition(lake, warehouse, DAY, plan, policy, secure_store)
    row = warehouse.execute(
        "SELECT message_id, latency_ms, plan_violations FROM governed.ai_llm_response_received").fetchone()
    assert row == ("odd", -3.0, [{"type": "Advance-Rules-Violation", "message": "latency_ms = -3.0 is below the minimum 0"}])
    assert warehouse.execute("SELECT outcome FROM audit.governance_log").fetchall() == [("forwarded",)]
    assert warehouse.execute("SELECT count(*) FROM audit.quarantine").fetchone() == (0,)


def test_a_new_plan_property_becomes_a_column_without_migration(tmp_path, lake, warehouse, plan, policy, secure_store):
    lake.put("raw/ai_events/dt=2026-09-14/p.jsonl.gz", gz(ai_call(message_id="one")))
    ingest_partition(lake, warehouse, DAY, plan, policy, secure_store)
    grown = load_tracking_plan(write_plan(tmp_path, edited(lambda p: (
        p["events"]["ai_llm_response_received"]["properties"].update(region={"type": "string"}),
        p.update(version="1.2.0"),
        p["changes"].insert(0, {"version": "1.2.0", "date": "2026-11-27", "change": "region"}),
    ))))
    lake.put("raw/ai_events/dt=2026-09-15/p.jsonl.gz", gz(ai_call(message_id="two", region="eu")))
    from datetime import date
    ingest_partition(lake, warehouse, date(2026, 9, 15), grown, policy, secure_store)
    rows = warehouse.execute(
        "SELECT message_id, region, tracking_plan_version FROM governed.ai_llm_response_received ORDER BY 1").fetchall()
    assert rows == [("one", None, "1.1.0"), ("two", "eu", "1.2.0")]
