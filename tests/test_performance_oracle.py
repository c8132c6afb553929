"""An independent oracle: the performance metrics recomputed from the raw lake in plain Python.

Nothing here imports the pipeline's logic or uses DuckDB to compute: the oracle parses the raw gzip
files itself, applies DESIGN.md's rules (validity, dedupe, consent to analytics, turn attribution,
dated prices with cached tokens, interpolated quantiles) and must match the metric table cell by
cell: counts exactly, rates, costs and quantiles within 1e-9.
"""

import csv
import gzip
import json
import math
from collections import defaultdict
from datetime import date

import duckdb
import pytest

from telemetry_assets.generate.traffic import GeneratorConfig
from telemetry_assets.settings import CONFIG_DIR
from tests.pipeline_runs import run_generated

EVENTS = ("ai_user_prompt_created", "ai_llm_response_received", "ai_user_action")
ACTIONS = {"accepted", "dismissed", "escalated", "copied", "edited", "regenerated"}
COMMON = ("conversation_id", "model_version", "prompt_version", "feature_flag_state")


def raw_calls(root, days):
    """Every parseable call of each day, in key and line order."""
    for day in days:
        folder = root / "raw" / "ai_events" / f"dt={day}"
        for path in sorted(folder.iterdir()):
            for line in gzip.decompress(path.read_bytes()).split(b"\n"):
                try:
                    call = json.loads(line.decode("utf-8"))
                except ValueError:
                    continue
                if isinstance(call, dict):
                    yield day, call


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def valid(call):
    props = call.get("properties")
    if not isinstance(props, dict) or not isinstance(call.get("messageId"), str):
        return False
    if not all(isinstance(props.get(name), str) for name in COMMON):
        return False
    if not is_int(props.get("prompt_number")) or props["prompt_number"] < 1:
        return False
    if call["event"] == "ai_llm_response_received":
        if props.get("response_status") not in ("success", "error") or not is_number(props.get("latency_ms")):
            return False
        if props["latency_ms"] < 0 or (props["response_status"] == "error" and not props.get("error_type")):
            return False
    if call["event"] == "ai_user_action":
        return props.get("action_type") in ACTIONS and isinstance(props.get("conversion_flag"), bool)
    return True


def analytics_consent(context):
    management = context.get("consentManagement") or {}
    preferences = (context.get("consent") or {}).get("categoryPreferences") or {}
    if "analytics" in management.get("deniedConsentIds", []) or preferences.get("analytics") is False:
        return False
    return "analytics" in management.get("allowedConsentIds", []) or preferences.get("analytics") is True


def governed_events(root, days):
    seen, kept = set(), []
    for day, call in raw_calls(root, days):
        if call.get("type") != "track" or call.get("event") not in EVENTS:
            continue
        if call.get("messageId") in seen:
            continue
        seen.add(call.get("messageId"))
        if valid(call) and analytics_consent(call.get("context") or {}):
            kept.append((day, call))
    return kept


def prices():
    with open(CONFIG_DIR / "model_prices.csv") as handle:
        return sorted(csv.DictReader(handle), key=lambda row: row["valid_from"])


def cost_of(props, event_day, table):
    if props.get("cost") is not None:
        return props["cost"]
    rows = [r for r in table if r["model_version"] == props["model_version"] and r["valid_from"] <= event_day]
    price = rows[-1]
    cached = props.get("cached_input_tokens") or 0
    return ((props["input_tokens"] - cached) * float(price["input_usd_per_mtok"])
            + cached * float(price["cached_input_usd_per_mtok"])
            + props["output_tokens"] * float(price["output_usd_per_mtok"])) / 1e6


def quantile(values, q):
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def oracle(root, days):
    """{(dt, model_version, prompt_version, flag): metrics} for every day."""
    events = governed_events(root, days)
    table = prices()
    prompt_days, response_days = defaultdict(list), defaultdict(list)
    prompt_key, first_response_key = {}, {}
    outcome, escalated = defaultdict(bool), defaultdict(bool)
    for day, call in sorted(events, key=lambda e: e[1]["timestamp"]):
        p = call["properties"]
        turn = (p["conversation_id"], p["prompt_number"])
        key = tuple(p[name] for name in ("model_version", "prompt_version", "feature_flag_state"))
        if call["event"] == "ai_user_prompt_created":
            prompt_days[turn].append(day)
            prompt_key.setdefault(turn, key)
        elif call["event"] == "ai_llm_response_received":
            response_days[turn].append(day)
            first_response_key.setdefault(turn, key)
        else:
            outcome[turn] |= p["action_type"] == "accepted" or p["conversion_flag"]
            escalated[turn] |= p["action_type"] == "escalated"
    # A turn is the day its prompt arrived (its response's, without a valid prompt); its versions are
    # its first response's (its prompt's, without one).
    turn_day = {turn: min(prompt_days.get(turn) or response_days[turn]) for turn in set(prompt_days) | set(response_days)}
    key_of_turn = {turn: first_response_key.get(turn, prompt_key.get(turn)) for turn in turn_day}
    metrics = defaultdict(lambda: {"latencies": [], "statuses": [], "errors": defaultdict(int), "cost": 0.0,
                                   "outcomes": 0, "conversations": 0, "completed": 0})
    for day, call in events:
        p = call["properties"]
        if call["event"] != "ai_llm_response_received":
            continue
        group = metrics[(turn_day[(p["conversation_id"], p["prompt_number"])],
                         p["model_version"], p["prompt_version"], p["feature_flag_state"])]
        group["latencies"].append(p["latency_ms"])
        group["statuses"].append(p["response_status"])
        group["cost"] += cost_of(p, call["timestamp"][:10], table)
        if p["response_status"] == "error":
            group["errors"][p["error_type"]] += 1
    conversations = defaultdict(list)
    for turn, day in turn_day.items():
        metrics[(day, *key_of_turn[turn])]["outcomes"] += outcome[turn]
        conversations[turn[0]].append(turn)
    for turns in conversations.values():
        first = min(turns, key=lambda t: t[1])
        group = metrics[(min(turn_day[t] for t in turns), *key_of_turn[first])]
        group["conversations"] += 1
        group["completed"] += any(outcome[t] for t in turns) and not any(escalated[t] for t in turns)
    return metrics


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("oracle")
    _, manifest, _ = run_generated(home, GeneratorConfig(days=3, users=120, events_per_day=1_500, seed=99, start=date(2026, 9, 1)))
    return home, manifest["days"]


def test_performance_daily_equals_an_independent_oracle_cell_by_cell(pipeline_run):
    home, days = pipeline_run
    expected = oracle(home / "lake", days)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            """SELECT dt::VARCHAR, model_version, prompt_version, feature_flag_state, requests, success_rate,
                      errors_by_type, p50_latency_ms, p95_latency_ms, p99_latency_ms, total_cost_usd,
                      successful_outcomes, cost_per_successful_outcome, conversations, conversation_completion_rate
               FROM metrics.performance_daily ORDER BY ALL""").fetchall()
    assert {row[:4] for row in rows} == set(expected)
    for (dt, model, prompt, flag, requests, success, errors, p50, p95, p99, cost, outcomes, per_outcome,
         conversations, completion) in rows:
        truth = expected[(dt, model, prompt, flag)]
        assert requests == len(truth["statuses"]) and dict(errors) == dict(truth["errors"])
        assert list(dict(errors)) == sorted(truth["errors"])  # in the same order on every run
        assert success == pytest.approx(truth["statuses"].count("success") / requests, abs=1e-9)
        for got, q in ((p50, 0.5), (p95, 0.95), (p99, 0.99)):
            assert got == pytest.approx(quantile(truth["latencies"], q), abs=1e-9)
        assert cost == pytest.approx(truth["cost"], abs=1e-9)
        assert outcomes == truth["outcomes"] and conversations == truth["conversations"]
        assert per_outcome == (pytest.approx(truth["cost"] / outcomes, abs=1e-9) if outcomes else None)
        assert completion == pytest.approx(truth["completed"] / conversations, abs=1e-9)
