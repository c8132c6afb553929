"""Turns and conversations: late events, dated prices, cost per outcome, re-runs."""

import json
import re
from datetime import timedelta

import pytest

from checks.sources import load_sources
from telemetry_assets.analytics.business import build_business
from telemetry_assets.analytics.comparison import build_comparison
from telemetry_assets.analytics.joins import ModelPricesError, build_joins
from telemetry_assets.analytics.performance import build_performance
from telemetry_assets.settings import CONFIG_DIR
from telemetry_assets.sources.load import load_source
from tests.builders import PRICES_HEADER, ai_call, custom_policy, gz, rudder_consent, segment_consent
from tests.conftest import DAY

NEXT = DAY + timedelta(days=1)
SPECS = load_sources(CONFIG_DIR / "sources.yaml")


def at(call, when, day=DAY):
    stamp = f"{day.isoformat()}T{when}.000Z"
    return {**call, "timestamp": stamp, "originalTimestamp": stamp, "receivedAt": stamp}


def turn(conversation, number, when, action="accepted", day=DAY, action_day=None, **response):
    props = {"conversation_id": conversation, "prompt_number": number}
    calls = [at(ai_call("ai_user_prompt_created", **props), when, day),
             at(ai_call("ai_llm_response_received", **props, **response), when, day)]
    if action:
        calls.append(at(ai_call("ai_user_action", **props, action_type=action), when, action_day or day))
    return calls


def land(lake, warehouse, ingest, policy, by_day, conversions=(), tickets=()):
    for day, calls in by_day.items():
        lake.put(f"raw/ai_events/dt={day.isoformat()}/p.jsonl.gz", gz(*calls))
    lines = "".join(json.dumps(c) + "\n" for c in conversions)
    lake.put(f"sources/conversions/dt={NEXT.isoformat()}/c.jsonl", lines.encode())
    lines = "".join(json.dumps(t) + "\n" for t in tickets)
    lake.put(f"sources/support_tickets/dt={NEXT.isoformat()}/t.jsonl", lines.encode())
    lake.put("sources/user_profiles/p.csv", b"user_id,plan,country,signup_at\nusr_1,free,GB,2026-01-01\n")
    for day in by_day:
        ingest(day)
        for spec in SPECS.values():
            load_source(lake, warehouse, spec, day)
    for day in by_day:
        build_joins(warehouse, day, policy)
    for day in by_day:
        build_performance(warehouse, day)
        build_business(warehouse, day)
        build_comparison(warehouse, day)


def test_a_conversation_across_midnight_is_its_first_days_and_gives_the_next_day_its_later_turn(
        lake, warehouse, ingest, policy):
    """The joins read the window's other days only for the conversations of the day: these must
    still find the day before's turns of a conversation that goes on past midnight."""
    late_answer = at(ai_call("ai_llm_response_received", conversation_id="across", prompt_number=1,
                             message_id="r-late"), "00:00:30", NEXT)
    land(lake, warehouse, ingest, policy, {
        DAY: turn("across", 1, "23:59:00", action=None) + turn("done", 1, "09:00:00"),
        NEXT: [late_answer] + turn("across", 2, "00:05:00", day=NEXT) + turn("next", 1, "10:00:00", day=NEXT)})
    assert warehouse.execute("SELECT dt, conversation_id, prompt_number, responses FROM analytics.ai_turns "
                             "ORDER BY ALL").fetchall() == [
        (DAY, "across", 1, 2), (DAY, "done", 1, 1), (NEXT, "across", 2, 1), (NEXT, "next", 1, 1)]
    assert warehouse.execute("SELECT dt FROM analytics.ai_responses WHERE message_id = 'r-late'").fetchall() == [(DAY,)]
    assert warehouse.execute("SELECT dt, conversation_id, turns FROM analytics.ai_conversations ORDER BY ALL").fetchall() \
        == [(DAY, "across", 2), (DAY, "done", 1), (NEXT, "next", 1)]


def test_an_action_a_conversion_and_a_ticket_after_midnight_count_for_the_day_the_turn_began(lake, warehouse, ingest, policy):
    late = turn("late", 1, "23:59:00", action_day=NEXT)
    conversion = {"conversion_id": "cv1", "user_id": "usr_1", "occurred_at": f"{NEXT}T03:00:00Z", "type": "purchase"}
    ticket = {"ticket_id": "T-1", "user_id": "usr_1", "created_at": f"{NEXT}T02:00:00Z"}
    land(lake, warehouse, ingest, policy, {DAY: late[:2], NEXT: late[2:] + turn("next", 1, "10:00:00", action=None, day=NEXT)},
         conversions=[conversion], tickets=[ticket])
    turns = warehouse.execute("SELECT dt, conversation_id, first_action_type, successful_outcome FROM analytics.ai_turns ORDER BY 2").fetchall()
    assert turns == [(DAY, "late", "accepted", True), (NEXT, "next", None, False)]
    conversations = warehouse.execute(
        "SELECT dt, conversation_id, converted, deflected, completed, plan FROM analytics.ai_conversations ORDER BY 2").fetchall()
    # the 02:00 ticket and 03:00 conversion follow the late conversation, not the one that began at 10:00
    assert conversations == [(DAY, "late", True, False, True, "free"), (NEXT, "next", False, True, False, "free")]


def test_a_turn_takes_its_earliest_prompt_and_response_and_a_tie_goes_to_the_lower_message_id(lake, warehouse, ingest, policy):
    key = {"conversation_id": "c", "prompt_number": 1}
    calls = [at(ai_call("ai_user_prompt_created", message_id="p-b", **key), "10:00:00"),
             at(ai_call("ai_user_prompt_created", message_id="p-a", **key), "10:00:00"),
             at(ai_call("ai_llm_response_received", message_id="r-retry", latency_ms=900, **key), "10:00:09"),
             at(ai_call("ai_llm_response_received", message_id="r-first", response_status="error", error_type="timeout",
                        latency_ms=30000, **key), "10:00:05")]
    land(lake, warehouse, ingest, policy, {DAY: calls})
    turns = warehouse.execute("""SELECT prompt_message_id, responses, response_status, error_type, latency_ms,
                                        strftime(response_ts, '%H:%M:%S') FROM analytics.ai_turns""").fetchall()
    assert turns == [("p-a", 2, "error", "timeout", 30000.0, "10:00:05")]
    responses = warehouse.execute("SELECT message_id FROM analytics.ai_responses ORDER BY 1").fetchall()
    assert responses == [("r-first",), ("r-retry",)]


def test_missing_cost_is_priced_from_the_dated_table_with_cached_tokens_apart(lake, warehouse, ingest, policy, tmp_path, monkeypatch):
    prices = tmp_path / "prices.csv"  # the day's row is the one between an older and a newer price
    prices.write_text(PRICES_HEADER + f"m1,2026-01-01,1.0,0.5,2.0\nm1,{DAY},10.0,5.0,20.0\nm1,{NEXT},100.0,50.0,200.0\n")
    monkeypatch.setenv("TELEMETRY_MODEL_PRICES", str(prices))
    calls = turn("c1", 1, "10:00:00", model_version="m1", cost=None, input_tokens=1000, cached_input_tokens=400,
                 output_tokens=100) + turn("c2", 1, "11:00:00", cost=0.5) + turn("c3", 1, "12:00:00", model_version="unpriced", cost=None)
    land(lake, warehouse, ingest, policy, {DAY: calls})
    costs = warehouse.execute("SELECT conversation_id, cost_usd, cost_source FROM analytics.ai_responses ORDER BY 1").fetchall()
    assert costs == [("c1", pytest.approx((600 * 10.0 + 400 * 5.0 + 100 * 20.0) / 1e6), "price_table"),
                     ("c2", 0.5, "reported"), ("c3", None, None)]


def test_a_conversation_returned_when_its_user_began_another_within_seven_days_after_it(lake, warehouse, ingest, policy):
    week_later = DAY + timedelta(days=7)
    by = lambda user, calls: [{**call, "userId": user} for call in calls]
    land(lake, warehouse, ingest, policy, {
        DAY: by("usr_1", turn("back", 1, "10:00:00")) + by("usr_2", turn("late", 1, "10:00:00"))
             + by("usr_3", turn("same-1", 1, "10:00:00")) + by("usr_3", turn("same-2", 1, "10:00:00")),
        week_later: by("usr_1", turn("back-again", 1, "10:00:00", day=week_later))
                    + by("usr_2", turn("late-again", 1, "10:00:01", day=week_later))})
    rates = warehouse.execute("""SELECT identified_conversations, return_within_7d_rate FROM metrics.business_daily
                                 WHERE dt = ? AND cohort_dimension = 'all'""", [DAY]).fetchall()
    # back: its user began again exactly seven days later; late: a second past that; same-1 and
    # same-2 began at the same moment, so neither came after the other
    assert rates == [(4, 0.25)]


def test_a_group_without_successful_outcomes_has_null_cost_per_outcome(lake, warehouse, ingest, policy):
    calls = turn("won", 1, "10:00:00") + turn("lost", 1, "11:00:00", action="dismissed", feature_flag_state="variant_b")
    land(lake, warehouse, ingest, policy, {DAY: calls})
    rows = warehouse.execute("""SELECT feature_flag_state, successful_outcomes, total_cost_usd > 0, cost_per_successful_outcome
                                FROM metrics.performance_daily ORDER BY 1""").fetchall()
    assert rows == [("control", 1, True, pytest.approx(0.00019)), ("variant_b", 0, True, None)]


def test_rerunning_joins_and_metrics_gives_identical_rows(lake, warehouse, ingest, policy):
    land(lake, warehouse, ingest, policy, {DAY: turn("a", 1, "10:00:00") + turn("a", 2, "10:05:00", action="escalated")})
    tables = ("analytics.ai_responses", "analytics.ai_turns", "analytics.ai_conversations", "metrics.performance_daily",
              "metrics.business_daily", "metrics.version_comparison")
    snapshot = lambda: {t: warehouse.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}
    first = snapshot()
    build_joins(warehouse, DAY, policy)
    build_performance(warehouse, DAY)
    build_business(warehouse, DAY)
    build_comparison(warehouse, DAY)
    assert snapshot() == first and first["metrics.business_daily"]
    assert warehouse.execute("SELECT completed, escalated, turns FROM analytics.ai_conversations").fetchall() == [(False, True, 2)]


def test_costs_sum_to_the_same_bits_whatever_order_their_rows_come_in(lake, warehouse, ingest, policy):
    """Floating-point addition is not associative: summed in the order DuckDB's threads read them,
    the same costs can differ in their last bits from one run to the next, so a re-run would change
    the day's metrics. The two days hold the same costs in opposite orders."""
    costs = (0.1, 0.2, 0.3)

    def calls(name, day, order):
        three_turns = [call for n, cost in enumerate(order, 1)
                       for call in turn(f"{name}-turns", n, f"10:0{n}:00", day=day, cost=cost)]
        retried = [at(ai_call("ai_llm_response_received", conversation_id=f"{name}-retries", prompt_number=1, cost=cost),
                      f"11:00:0{n}", day) for n, cost in enumerate(order)]
        return three_turns + retried

    land(lake, warehouse, ingest, policy, {DAY: calls("up", DAY, costs), NEXT: calls("down", NEXT, costs[::-1])})
    [(up, down)] = warehouse.execute(f"""SELECT max(total_cost_usd) FILTER (WHERE dt = '{DAY}'),
        max(total_cost_usd) FILTER (WHERE dt = '{NEXT}') FROM metrics.performance_daily""").fetchall()
    assert up == down == pytest.approx(1.2)
    conversations = dict(warehouse.execute("SELECT conversation_id, total_cost_usd FROM analytics.ai_conversations").fetchall())
    turns = dict(warehouse.execute("SELECT conversation_id, cost_usd FROM analytics.ai_turns WHERE prompt_number = 1").fetchall())
    assert conversations["up-turns"] == conversations["down-turns"] == pytest.approx(0.6)
    assert turns["up-retries"] == turns["down-retries"] == pytest.approx(0.6)


@pytest.mark.parametrize("rows, named", [
    ("m1,2026-01-01,-1.0,0.5,2.0\n", "m1 from 2026-01-01: a price is negative"),
    ("m1,2026-01-01,1.0,,2.0\n", "m1 from 2026-01-01: every price is required"),
    ("m1,2026-01-01,1.0,0.5,2.0\nm1,2026-01-01,3.0,0.5,2.0\n", "m1 from 2026-01-01: listed more than once"),
    (",2026-01-01,1.0,0.5,2.0\n", "(no model_version) from 2026-01-01: model_version and valid_from are required"),
])
def test_a_price_table_that_would_price_wrongly_is_refused_naming_the_row(warehouse, policy, tmp_path, monkeypatch,
                                                                          rows, named):
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES_HEADER + rows)
    monkeypatch.setenv("TELEMETRY_MODEL_PRICES", str(prices))
    with pytest.raises(ModelPricesError, match=re.escape(f"{prices}: {named}")):
        build_joins(warehouse, DAY, policy)


def anonymous(calls):
    """The calls of a visitor who never signed in, in the variant arm: an anonymousId and no userId,
    as Segment sends them."""
    return [{**{k: v for k, v in call.items() if k != "userId"}, "anonymousId": "anon_9",
             "properties": {**call["properties"], "feature_flag_state": "variant_b"}} for call in calls]


def test_an_anonymous_conversation_is_no_user_and_no_outcome_of_a_user(lake, warehouse, ingest, policy):
    """Outcomes matched by user (conversion, ticket, return, retention) are unknown for a visitor
    without a userId, not false: they are left out of those rates, not counted as failures."""
    land(lake, warehouse, ingest, policy, {
        DAY: [*turn("c-known", 1, "10:00:00"), *anonymous(turn("c-anon", 1, "11:00:00"))],
        NEXT: turn("c-next", 1, "10:00:00", day=NEXT),
    }, conversions=[{"conversion_id": "cv1", "user_id": "usr_1", "occurred_at": f"{DAY}T12:00:00Z",
                     "type": "purchase", "revenue": 10}],
       tickets=[{"ticket_id": "t1", "user_id": "usr_1", "created_at": f"{DAY}T13:00:00Z"}])
    rows = warehouse.execute(
        """SELECT feature_flag_state, conversations, identified_conversations, users, conversions, conversion_rate,
                  d1_retention, support_deflection_rate, multi_turn_share
           FROM metrics.business_daily WHERE dt = ? AND cohort_dimension = 'all' ORDER BY 1""", [DAY]).fetchall()
    assert rows == [("control", 1, 1, 1, 1, 1.0, 1.0, 0.0, 0.0),
                    ("variant_b", 1, 0, 0, 0, None, None, None, 0.0)]  # its only conversation is anonymous
    counted = dict(warehouse.execute(
        """SELECT metric, [n_baseline, n_candidate] FROM metrics.version_comparison
           WHERE dt = ? AND candidate = 'variant_b' AND cohort = 'all'""", [DAY]).fetchall())
    assert {m: counted[m] for m in ("conversion_rate", "support_deflection_rate", "completion_rate")} == {
        "conversion_rate": [1, 0], "support_deflection_rate": [1, 0], "completion_rate": [1, 1]}


def signed_in_later(calls, anonymous_id="anon_9"):
    """The same visitor's calls once signed in: SDKs send the userId and keep the anonymousId."""
    return [{**call, "anonymousId": anonymous_id} for call in calls]


def test_an_anonymous_conversation_takes_the_user_its_visitor_signed_in_as(lake, warehouse, ingest, policy):
    """A visitor asks the assistant before signing in, signs in, and buys within the window: the
    conversion and the ticket are theirs, and so is the conversation."""
    land(lake, warehouse, ingest, policy, {
        DAY: [*anonymous(turn("c-before", 1, "09:00:00")), *signed_in_later(turn("c-after", 1, "11:00:00"))],
        NEXT: turn("c-next", 1, "10:00:00", day=NEXT),  # the day the conversions and tickets are filed under
    }, conversions=[{"conversion_id": "cv1", "user_id": "usr_1", "occurred_at": f"{DAY}T12:00:00Z", "type": "purchase"}],
       tickets=[{"ticket_id": "t1", "user_id": "usr_1", "created_at": f"{DAY}T13:00:00Z"}])
    rows = warehouse.execute("""SELECT conversation_id, user_id, user_id_source, anonymous_id, converted, deflected, plan
                                FROM analytics.ai_conversations WHERE dt = ? ORDER BY 1""", [DAY]).fetchall()
    assert rows == [("c-after", "usr_1", "sent", "anon_9", True, False, "free"),
                    ("c-before", "usr_1", "stitched", "anon_9", True, False, "free")]
    business = warehouse.execute(
        """SELECT feature_flag_state, conversations, identified_conversations, users, conversions
           FROM metrics.business_daily WHERE dt = ? AND cohort_dimension = 'all' ORDER BY 1""", [DAY]).fetchall()
    assert business == [("control", 1, 1, 1, 1), ("variant_b", 1, 1, 1, 1)]


def test_a_device_seen_with_two_users_or_with_none_stays_anonymous(lake, warehouse, ingest, policy):
    shared = [*anonymous(turn("c-shared", 1, "09:00:00")), *signed_in_later(turn("c-usr1", 1, "10:00:00")),
              *[{**call, "userId": "usr_2"} for call in signed_in_later(turn("c-usr2", 1, "11:00:00"))]]
    stranger = [{**call, "anonymousId": "anon_stranger"} for call in anonymous(turn("c-stranger", 1, "12:00:00"))]
    land(lake, warehouse, ingest, policy, {DAY: shared + stranger, NEXT: turn("c-next", 1, "10:00:00", day=NEXT)},
         conversions=[{"conversion_id": "cv1", "user_id": "usr_1", "occurred_at": f"{DAY}T12:30:00Z", "type": "purchase"}])
    rows = warehouse.execute("""SELECT conversation_id, user_id, user_id_source, converted FROM analytics.ai_conversations
                                WHERE conversation_id IN ('c-shared', 'c-stranger') ORDER BY 1""").fetchall()
    assert rows == [("c-shared", None, None, False), ("c-stranger", None, None, False)]


def test_a_sign_in_the_next_day_still_identifies_the_conversation(lake, warehouse, ingest, policy):
    """Links are looked for in the days the conversation's outcomes are (up to two days on)."""
    land(lake, warehouse, ingest, policy, {
        DAY: anonymous(turn("c-anon", 1, "22:00:00")),
        NEXT: signed_in_later(turn("c-signed-in", 1, "08:00:00", day=NEXT)),
    })
    rows = warehouse.execute("SELECT dt, conversation_id, user_id, user_id_source FROM analytics.ai_conversations ORDER BY 1, 2").fetchall()
    assert rows == [(DAY, "c-anon", "usr_1", "stitched"), (NEXT, "c-signed-in", "usr_1", "sent")]


def identify(anonymous_id="anon_9", user_id="usr_1", consent=None, when="10:30:00", day=DAY):
    """An identify call, as an SDK sends it when the visitor signs in (consent as `ai_call` takes it)."""
    stamp = f"{day.isoformat()}T{when}.000Z"
    return {"type": "identify", "messageId": f"identify-{anonymous_id}-{user_id}-{when}", "userId": user_id,
            "anonymousId": anonymous_id, "timestamp": stamp, "receivedAt": stamp, "traits": {"plan": "free"},
            "context": segment_consent() if consent is None else consent}


def test_a_visitor_who_signs_in_without_asking_again_is_found_by_the_identify_call(lake, warehouse, ingest, policy):
    """Asks once, signs up, buys, never uses the assistant again: only the identify call links them.
    One consented to analytics, the other did not, so only the first link is kept and used."""
    refused = rudder_consent(denied=["analytics"])
    calls = [*anonymous(turn("c-asked", 1, "09:00:00")), identify(when="09:30:00"),
             *[{**call, "anonymousId": "anon_8"} for call in anonymous(turn("c-private", 1, "09:10:00"))],
             identify(anonymous_id="anon_8", user_id="usr_1", consent=refused, when="09:40:00")]
    land(lake, warehouse, ingest, policy, {DAY: calls, NEXT: turn("c-next", 1, "10:00:00", day=NEXT)},
         conversions=[{"conversion_id": "cv1", "user_id": "usr_1", "occurred_at": f"{DAY}T11:00:00Z", "type": "purchase"}])
    links = warehouse.execute("SELECT dt, anonymous_id, user_id, strftime(linked_at, '%H:%M') FROM governed.identity_links").fetchall()
    assert links == [(DAY, "anon_9", "usr_1", "09:30")]
    rows = warehouse.execute("""SELECT conversation_id, user_id, user_id_source, converted FROM analytics.ai_conversations
                                WHERE dt = ? ORDER BY 1""", [DAY]).fetchall()
    assert rows == [("c-asked", "usr_1", "stitched", True), ("c-private", None, None, False)]
    files = warehouse.execute("SELECT non_ai_events, valid_events, identity_links, identity_links_blocked, "
                              "identity_links_blocked_by FROM audit.ingest_files WHERE dt = ?", [DAY]).fetchall()
    # identify calls are still counted as other traffic; the refused link is audited with the reason
    assert files == [(2, 6, 1, 1, {"consent denied: analytics": 1})]


def test_identity_links_are_replaced_with_their_day(lake, warehouse, ingest, policy):
    no_user = identify(anonymous_id="anon_6", user_id="")  # RudderStack's SDKs send "" before sign-in
    no_device = {k: v for k, v in identify(anonymous_id="anon_5").items() if k != "anonymousId"}
    lake.put(f"raw/ai_events/dt={DAY.isoformat()}/p.jsonl.gz",
             gz(identify(), identify(anonymous_id="anon_7"), no_user, no_device))
    ingest(DAY)
    ingest(DAY)
    assert warehouse.execute("SELECT count(*) FROM governed.identity_links").fetchone() == (2,)
    counted = "SELECT non_ai_events, identity_links, identity_links_blocked, identity_links_blocked_by FROM audit.ingest_files"
    assert warehouse.execute(counted).fetchall() == [(4, 2, 0, {})]  # a call missing either id links nothing
    lake.put(f"raw/ai_events/dt={DAY.isoformat()}/p.jsonl.gz", gz(identify()))
    ingest(DAY)
    assert warehouse.execute("SELECT anonymous_id FROM governed.identity_links").fetchall() == [("anon_9",)]


def test_links_kept_out_are_counted_by_reason(lake, warehouse, ingest, policy):
    """A refusal and a call that carried no consent at all (a consent manager that did not load) are
    different problems, so each object counts them apart, in the governance log's words."""
    refused = rudder_consent(denied=["analytics"])
    unasked = {key: value for key, value in identify(anonymous_id="anon_3").items() if key != "context"}
    lake.put(f"raw/ai_events/dt={DAY.isoformat()}/p.jsonl.gz",
             gz(identify(), identify(anonymous_id="anon_7", consent=refused), identify(anonymous_id="anon_8", consent=refused),
                unasked))
    ingest(DAY)
    counted = "SELECT identity_links, identity_links_blocked, identity_links_blocked_by FROM audit.ingest_files"
    assert warehouse.execute(counted).fetchall() == [(1, 3, {"consent denied: analytics": 2, "consent unknown: analytics": 1})]


def test_without_a_warehouse_destination_no_link_is_kept_and_each_is_counted_as_blocked(lake, warehouse, ingest, tmp_path):
    no_warehouse = custom_policy(tmp_path, lambda p: p["destinations"].pop("warehouse"))
    lake.put(f"raw/ai_events/dt={DAY.isoformat()}/p.jsonl.gz", gz(identify(), identify(anonymous_id="anon_7")))
    ingest(DAY, policy=no_warehouse)
    assert warehouse.execute("SELECT count(*) FROM governed.identity_links").fetchone() == (0,)
    counted = "SELECT identity_links, identity_links_blocked, identity_links_blocked_by FROM audit.ingest_files"
    assert warehouse.execute(counted).fetchall() == [(0, 2, {"the policy has no warehouse destination": 2})]
