"""Every kind of bad input lands in quarantine with its type (or is counted), and the day succeeds."""

import gzip
import json

import pytest

from tests.builders import ai_call, gz, ndjson, page_call
from tests.conftest import quarantine_rows

KEY = "raw/ai_events/dt=2026-09-14/part-0.jsonl.gz"


def bad_call(**kwargs):
    return json.dumps(ai_call(**kwargs))


CASES = {
    "truncated JSON": ('{"type":"track","event":"ai_user_action","messageId":"m', "Malformed-Line"),
    "JSON array line": (json.dumps([ai_call()]), "Malformed-Line"),
    "a bare JSON string": ('"ai_user_action"', "Malformed-Line"),
    "invalid UTF-8": (b'{"type":"track","event":"ai_user_action","x":"\xff\xfe"}', "Malformed-Line"),
    "empty object": ("{}", "Required-Missing"),
    "latency as a string": (bad_call(latency_ms="fast"), "Datatype-Mismatch"),
    "prompt_number as a string": (bad_call(prompt_number="1"), "Datatype-Mismatch"),
    "conversion_flag as a string": (bad_call(event="ai_user_action", conversion_flag="true"), "Datatype-Mismatch"),
    "unparseable timestamp": (json.dumps({**ai_call(), "timestamp": "yesterday"}), "Datatype-Mismatch"),
    "properties not an object": (json.dumps({**ai_call(), "properties": "oops"}), "Datatype-Mismatch"),
    "missing conversation_id": (bad_call(drop=("conversation_id",)), "Required-Missing"),
    "missing messageId": (json.dumps({k: v for k, v in ai_call().items() if k != "messageId"}), "Required-Missing"),
    "no user identity": (json.dumps({**ai_call(), "userId": None, "anonymousId": None}), "Required-Missing"),
    "user identity as empty strings": (json.dumps({**ai_call(), "userId": "", "anonymousId": ""}), "Required-Missing"),
    "empty messageId": (json.dumps({**ai_call(), "messageId": ""}), "Required-Missing"),
    "error without error_type": (bad_call(response_status="error"), "Required-Missing"),
    "unknown response_status": (bad_call(response_status="partial"), "Advance-Rules-Violation"),
    "unknown action_type": (bad_call(event="ai_user_action", action_type="thumbs_up"), "Advance-Rules-Violation"),
    "negative latency": (bad_call(latency_ms=-5), "Advance-Rules-Violation"),
    "rating out of range": (bad_call(event="ai_user_action", rating=9), "Advance-Rules-Violation"),
    "unknown event name": (bad_call(event="ai_tool_called"), "Unplanned-Event"),
    "unplanned property": (bad_call(user_email="x@example.org"), "Additional-Properties"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_line_is_quarantined_with_its_type_and_the_day_succeeds(lake, warehouse, ingest, case):
    line, violation = CASES[case]
    lake.put(KEY, gz(ai_call(), line, ai_call()))
    report = ingest()
    assert report.summary()["valid_events"] == 2
    assert report.summary()["quarantined"] == 1
    ((line_number, _, _, types),) = quarantine_rows(warehouse)
    assert line_number == 2
    assert violation in types


@pytest.mark.parametrize("line, message", [
    ('{"type":"track","event":"ai_user_action","messageId":"m', "not valid JSON (truncated or corrupt line)"),
    (json.dumps(ai_call()) + " trailing", "not valid JSON (truncated or corrupt line)"),
    (json.dumps([ai_call()]), "a JSON array line, not an object"),
    ("  42", "a JSON ubigint line, not an object"),
])
def test_a_malformed_line_says_what_it_is(lake, warehouse, ingest, line, message):
    lake.put(KEY, gz(line))
    ingest()
    (messages,) = warehouse.execute("SELECT list_transform(violations, lambda v: v.message) FROM audit.quarantine").fetchone()
    assert messages == [message]


@pytest.mark.parametrize("latency", ["Infinity", "-Infinity", "NaN", "1e400"])
def test_a_number_that_is_not_finite_is_a_datatype_mismatch_not_a_poisoned_sum(lake, warehouse, ingest, latency):
    """Python's json writes NaN and Infinity, and DuckDB reads them (and 1e400 as infinity): one
    infinite latency or cost would make its group's p95 and sums infinite."""
    lake.put(KEY, gz(json.dumps(ai_call(message_id="odd")).replace('"latency_ms": 812.5', f'"latency_ms": {latency}')))
    ingest()
    assert warehouse.execute("SELECT message_id, list_transform(violations, lambda v: v.message) "
                             "FROM audit.quarantine").fetchall() == [("odd", ["latency_ms is not a valid number"])]


def test_empty_message_ids_are_no_ids_never_duplicates_of_each_other(lake, warehouse, ingest):
    """Every event with messageId "" was the same id: all but the first were dropped as re-sends."""
    lake.put(KEY, gz({**ai_call(), "messageId": ""}, {**ai_call(), "messageId": ""}, ai_call()))
    report = ingest()
    assert report.summary() == {"lines_read": 3, "valid_events": 1, "quarantined": 2, "duplicates": 0,
                                "non_ai_events": 0, "erased_events": 0, "blank_lines": 0}
    assert [messages for *_, messages in quarantine_rows(warehouse)] == [["Required-Missing"]] * 2


def test_an_empty_user_id_is_no_user(lake, warehouse, ingest):
    """RudderStack's SDKs send userId "" before a visitor signs in: that is an anonymous visitor,
    not a user called "" (whose conversations would all be one user's)."""
    lake.put(KEY, gz({**ai_call(message_id="anon"), "userId": ""}))
    ingest()
    assert warehouse.execute("SELECT message_id, user_id, anonymous_id FROM governed.ai_llm_response_received"
                             ).fetchall() == [("anon", None, "anon_1")]


def test_an_object_indented_with_whitespace_is_an_event_not_a_malformed_line(lake, warehouse, ingest):
    lake.put(KEY, gz(ai_call(), "  \t" + json.dumps(ai_call())))
    report = ingest()
    assert report.summary()["valid_events"] == 2 and report.summary()["quarantined"] == 0


def test_a_line_with_several_problems_lists_each(lake, warehouse, ingest):
    lake.put(KEY, gz(bad_call(latency_ms=-1, response_status="partial", drop=("model_version",))))
    ingest()
    ((_, _, _, types),) = quarantine_rows(warehouse)
    assert sorted(types) == ["Advance-Rules-Violation", "Advance-Rules-Violation", "Required-Missing"]


def test_messages_name_the_field_but_never_repeat_free_text(lake, warehouse, ingest):
    lake.put(KEY, gz(bad_call(event="ai_user_action", action_type="call me at +44 20 7946 0958")))
    ingest()
    (messages,) = warehouse.execute("SELECT list_transform(violations, lambda v: v.message) FROM audit.quarantine").fetchone()
    assert messages == ["action_type is not one of: accepted, dismissed, escalated, copied, edited, regenerated"]


def test_five_megabyte_line_is_quarantined_and_its_neighbours_land(lake, warehouse, ingest):
    huge = bad_call(event="ai_user_prompt_created", prompt_text="x" * (5 * 1024 * 1024))
    lake.put(KEY, gz(ai_call(), huge, ai_call()))
    report = ingest()
    assert report.summary() == {"lines_read": 3, "valid_events": 2, "quarantined": 1, "duplicates": 0,
                                "non_ai_events": 0, "erased_events": 0, "blank_lines": 0}
    ((_, message_id, _, types),) = quarantine_rows(warehouse)
    assert types == ["Malformed-Line"] and message_id is None


def test_truncated_gzip_member_quarantines_the_cut_line_and_keeps_the_rest(lake, warehouse, ingest):
    whole = gzip.compress(ndjson(*[ai_call() for _ in range(3000)]))
    lake.put(KEY, gz(ai_call()) + whole[: len(whole) // 2])
    report = ingest()
    assert report.total("quarantined") == 1
    assert report.total("valid_events") == report.total("lines_read") - 1
    ((line_number, _, _, types),) = quarantine_rows(warehouse)
    assert types == ["Malformed-Line"] and line_number == report.total("lines_read")


def test_non_ai_calls_and_blank_lines_are_counted_never_quarantined(lake, warehouse, ingest):
    order = {"type": "track", "event": "Order Completed", "messageId": "o1", "properties": {"revenue": 9}}
    identify = {"type": "identify", "messageId": "i1", "traits": {"email": "a@b.c"}}
    lake.put(KEY, gz(page_call(), order, "", "   ", identify, ai_call()))
    report = ingest()
    assert report.summary() == {"lines_read": 6, "valid_events": 1, "quarantined": 0, "duplicates": 0,
                                "non_ai_events": 3, "erased_events": 0, "blank_lines": 2}


def test_quarantine_and_warehouse_hold_no_raw_text(lake, warehouse, ingest, tmp_path):
    secret = "jane.doe+billing@example.org"
    lake.put(KEY, gz(
        bad_call(event="ai_user_prompt_created", prompt_text=f"mail {secret}", prompt_number=0),
        bad_call(event="ai_user_prompt_created", prompt_text=f"mail {secret}"),
    ))
    ingest()
    warehouse.execute("CHECKPOINT")
    assert secret.encode() not in (tmp_path / "warehouse.duckdb").read_bytes()
    assert warehouse.execute("SELECT prompt_text FROM governed.ai_user_prompt_created").fetchall() == [("mail <EMAIL>",)]


def test_valid_rows_are_typed_and_stamped_with_the_plan_version(lake, warehouse, ingest, plan):
    lake.put(KEY, gz(ai_call(message_id="m1", latency_ms=1234)))
    ingest()
    row = warehouse.execute(
        """SELECT message_id, latency_ms, input_tokens, event_ts, received_at, tracking_plan_version, plan_violations
           FROM governed.ai_llm_response_received"""
    ).fetchone()
    assert row[:3] == ("m1", 1234.0, 420)
    assert (str(row[3]), str(row[4])) == ("2026-09-14 08:00:00", "2026-09-14 08:00:00.900000")
    assert row[5] == plan.version and row[6] == []


def test_every_processed_event_has_one_governance_log_row(lake, warehouse, ingest):
    lake.put(KEY, gz(ai_call(), ai_call(), "not json", bad_call(latency_ms=-1), page_call()))
    ingest()
    outcomes = warehouse.execute("SELECT outcome, count(*) FROM audit.governance_log GROUP BY 1 ORDER BY 1").fetchall()
    assert outcomes == [("quarantined", 2), ("valid", 2)]


def test_a_day_with_no_objects_succeeds_empty(ingest):
    report = ingest()
    assert report.files == () and report.summary()["lines_read"] == 0
