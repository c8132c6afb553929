"""Turn- and conversation-level tables linking governed events to what happened next.

Late events: a day's turns and conversations are built from a window of partitions, not one.
A turn belongs to the day its prompt was received (its response, if there was no valid prompt), and
its response and actions are looked up in that day and the next, so an answer or click after
midnight is still attributed to it. A conversation belongs to the day of its first turn and takes
every turn of the window; conversions and tickets are looked up from that day to two days later
(the attribution windows reach 24 h past a conversation that may end the next day). The Dagster
assets declare these as partition mappings, so when the next day lands the earlier partition shows
as stale and is recomputed; `telemetry run` ingests the whole range before it joins.

Identity: a visitor chatting before signing in sends an anonymousId and no userId. Their
conversation takes the userId their anonymousId was linked to from the day before to the day after
(the days its turns are read from), when it was linked to exactly one: a shared device seen with
two users is left unidentified. A link is an identify call (`governed.identity_links`) or an AI
event that carried both ids (signed in, the SDKs send both); both are kept only with the warehouse
destination's consent. `user_id_source` says `sent` or `stitched`.

Cost: where a response reported none, it is priced from the dated price table (the row valid on the
response's day for its model version). Cached input tokens are part of `input_tokens` and are priced
at the cached rate instead of the input rate, never both. `cost_source` says which. A price row is
valid until its model's next one, so responses meet the price table in a hash join on the model,
its dates checked on the one or few rows it matches. DuckDB's ASOF join, which says the same, sorted
every response first: 1.5 s against 0.3 s at 5M events, 10 s against 1.7 s at 20M.
A turn's and a conversation's costs are added up smallest first, as `performance_daily`'s are, so
that a re-run gives the same bits whatever order the window's rows come in.

Memory: a turn takes its first prompt and first response (by `event_ts`, a tie going to the lower
`message_id`), and a conversation its first turn, as whole rows picked by a window (`QUALIFY
row_number() ... = 1`), not with an `arg_min` per column. DuckDB keeps the text an `arg_min` holds in
memory it cannot spill to disk, so at 10M events a day the `arg_min` version ran out of the
warehouse's 1 GB; a window sorts, and DuckDB's sort spills.
"""

from __future__ import annotations

from datetime import date, timedelta

from telemetry_assets import settings
from telemetry_assets.govern.policy import Policy
from telemetry_assets.ingest.tables import IDENTITY_LINKS, create_or_extend, replacing_day

KEY = ("model_version", "prompt_version", "feature_flag_state")
RESPONSES_TABLE = "analytics.ai_responses"
TURNS_TABLE = "analytics.ai_turns"
CONVERSATIONS_TABLE = "analytics.ai_conversations"

RESPONSES = {
    "dt": "DATE", "message_id": "VARCHAR", "conversation_id": "VARCHAR", "prompt_number": "BIGINT",
    "model_version": "VARCHAR", "prompt_version": "VARCHAR", "feature_flag_state": "VARCHAR",
    "response_status": "VARCHAR", "error_type": "VARCHAR", "latency_ms": "DOUBLE",
    "input_tokens": "BIGINT", "cached_input_tokens": "BIGINT", "output_tokens": "BIGINT",
    "cost_usd": "DOUBLE", "cost_source": "VARCHAR", "event_ts": "TIMESTAMP",
}
TURNS = {
    "dt": "DATE", "conversation_id": "VARCHAR", "prompt_number": "BIGINT", "user_id": "VARCHAR", "anonymous_id": "VARCHAR",
    "model_used": "VARCHAR", "model_version": "VARCHAR", "prompt_version": "VARCHAR", "feature_flag_state": "VARCHAR",
    "prompt_message_id": "VARCHAR", "prompt_ts": "TIMESTAMP", "intent_label": "VARCHAR", "intent_source": "VARCHAR",
    "responses": "BIGINT", "response_ts": "TIMESTAMP", "response_status": "VARCHAR", "error_type": "VARCHAR",
    "latency_ms": "DOUBLE", "cost_usd": "DOUBLE", "cost_source": "VARCHAR",
    "first_action_type": "VARCHAR", "first_action_ts": "TIMESTAMP", "last_event_ts": "TIMESTAMP",
    "accepted": "BOOLEAN", "converted_in_turn": "BOOLEAN", "escalated": "BOOLEAN", "successful_outcome": "BOOLEAN",
    "rating": "BIGINT",
}
CONVERSATIONS = {
    "dt": "DATE", "conversation_id": "VARCHAR", "user_id": "VARCHAR", "user_id_source": "VARCHAR", "anonymous_id": "VARCHAR",
    "model_version": "VARCHAR", "prompt_version": "VARCHAR", "feature_flag_state": "VARCHAR",
    "plan": "VARCHAR", "country": "VARCHAR", "signup_month": "VARCHAR",
    "started_at": "TIMESTAMP", "ended_at": "TIMESTAMP", "turns": "BIGINT", "multi_turn": "BOOLEAN",
    "successful_outcomes": "BIGINT", "completed": "BOOLEAN", "escalated": "BOOLEAN",
    "converted": "BOOLEAN", "ticket_within_window": "BOOLEAN", "deflected": "BOOLEAN", "total_cost_usd": "DOUBLE",
}
GRAINS = {
    RESPONSES_TABLE: "One row per LLM response of the turns that began on dt, priced.",
    TURNS_TABLE: "One row per conversation turn (conversation_id, prompt_number) that began on dt.",
    CONVERSATIONS_TABLE: "One row per conversation whose first turn began on dt, with its outcomes.",
}


def build_joins(con, day: date, policy: Policy) -> dict[str, int]:
    """Replace the day's rows of the three analytics tables; returns their row counts."""
    for table, columns in ((RESPONSES_TABLE, RESPONSES), (TURNS_TABLE, TURNS), (CONVERSATIONS_TABLE, CONVERSATIONS)):
        create_or_extend(con, table, GRAINS[table], columns)
    params = {"day": day, "before": day - timedelta(days=1), "after": day + timedelta(days=1)}
    load_model_prices(con)
    con.execute(_DAY_CONVERSATIONS, {"day": day})
    con.execute(_PRICED_RESPONSES, params)
    _build_window_turns(con, policy, params)
    with replacing_day(con, day, list(GRAINS)):
        con.execute(f"""INSERT INTO {RESPONSES_TABLE} BY NAME
            SELECT t.dt, r.* EXCLUDE (dt, user_id, anonymous_id, model_used)
            FROM priced_responses r JOIN window_turns t USING (conversation_id, prompt_number)
            WHERE t.dt = $day""", {"day": day})
        con.execute(f"INSERT INTO {TURNS_TABLE} BY NAME SELECT * FROM window_turns WHERE dt = $day", {"day": day})
        con.execute(_conversations(policy), {**params, "last_source_day": day + timedelta(days=2)})
    return {t: con.execute(f"SELECT count(*) FROM {t} WHERE dt = ?", [day]).fetchall()[0][0] for t in GRAINS}


class ModelPricesError(ValueError):
    """The price table cannot price responses; the message names the file and the rows."""


def load_model_prices(con) -> None:
    """The dated price table, refused when a row could price a response wrongly: a price missing or
    negative (a NULL price makes the cost NULL, a negative one a refund), or a model listed twice
    from the same day (two rows would both be valid on that day)."""
    path = settings.model_prices_path()
    con.execute(
        """CREATE OR REPLACE TEMP TABLE model_prices AS SELECT * FROM read_csv(?, header = true, columns = {
               'model_version': 'VARCHAR', 'valid_from': 'DATE', 'input_usd_per_mtok': 'DOUBLE',
               'cached_input_usd_per_mtok': 'DOUBLE', 'output_usd_per_mtok': 'DOUBLE'})""",
        [str(path)],
    )
    problems = con.execute(
        """SELECT coalesce(model_version, '(no model_version)') || ' from '
                  || coalesce(valid_from::VARCHAR, '(no valid_from)') || ': ' || problem
           FROM (SELECT *, CASE
                     WHEN model_version IS NULL OR valid_from IS NULL THEN 'model_version and valid_from are required'
                     WHEN input_usd_per_mtok IS NULL OR cached_input_usd_per_mtok IS NULL OR output_usd_per_mtok IS NULL
                         THEN 'every price is required'
                     WHEN least(input_usd_per_mtok, cached_input_usd_per_mtok, output_usd_per_mtok) < 0
                         THEN 'a price is negative'
                     WHEN count(*) OVER (PARTITION BY model_version, valid_from) > 1 THEN 'listed more than once'
                 END AS problem FROM model_prices)
           WHERE problem IS NOT NULL ORDER BY ALL LIMIT 5""").fetchall()
    if problems:
        raise ModelPricesError(f"{path}: " + "; ".join(problem for (problem,) in problems))


# Only a conversation with a prompt or response on the day can give the day a turn or a conversation
# (a turn's day is its own events', a conversation's its turns'), so the window's other days are read
# for those conversations alone. Read whole, the day before doubled the joins of a day landed after
# another: 24.2 s against 11.6 s at 5M events.
_DAY_CONVERSATIONS = """
CREATE OR REPLACE TEMP TABLE day_conversations AS
SELECT conversation_id FROM governed.ai_user_prompt_created WHERE dt = $day
UNION SELECT conversation_id FROM governed.ai_llm_response_received WHERE dt = $day
"""
_OF_THE_DAY = "(dt = $day OR conversation_id IN (SELECT conversation_id FROM day_conversations))"

_PRICED_RESPONSES = f"""
CREATE OR REPLACE TEMP TABLE priced_responses AS
SELECT r.dt, r.message_id, r.conversation_id, r.prompt_number, r.user_id, r.anonymous_id, r.model_used, r.model_version,
    r.prompt_version, r.feature_flag_state, r.response_status, r.error_type, r.latency_ms, r.input_tokens,
    r.cached_input_tokens, r.output_tokens, r.event_ts,
    coalesce(r.cost, ((r.input_tokens - coalesce(r.cached_input_tokens, 0)) * p.input_usd_per_mtok
                      + coalesce(r.cached_input_tokens, 0) * p.cached_input_usd_per_mtok
                      + r.output_tokens * p.output_usd_per_mtok) / 1e6) AS cost_usd,
    CASE WHEN r.cost IS NOT NULL THEN 'reported'
         WHEN p.model_version IS NOT NULL AND r.input_tokens IS NOT NULL AND r.output_tokens IS NOT NULL
         THEN 'price_table' END AS cost_source
FROM governed.ai_llm_response_received r
LEFT JOIN (SELECT *, lead(valid_from) OVER (PARTITION BY model_version ORDER BY valid_from) AS valid_until
           FROM model_prices) p
    ON r.model_version = p.model_version AND CAST(r.event_ts AS DATE) >= p.valid_from
        AND (p.valid_until IS NULL OR CAST(r.event_ts AS DATE) < p.valid_until)
WHERE r.dt BETWEEN $before AND $after AND {_OF_THE_DAY}
"""


def _build_window_turns(con, policy: Policy, params: dict) -> None:
    """The turns of the window (`window_turns`), from each turn's first prompt, first response and
    its actions. Each side is built as a table of its own before they are joined: as one query,
    DuckDB held all three sides and the join in memory at once and spilled under the warehouse's
    1 GB cap, and building the turns took 6.9 s against 5.0 s at 5M events and 45 s against 36 s at
    20M (the same 0.7 s at 1M)."""
    con.execute(_TURN_PROMPTS, params)
    con.execute(_TURN_RESPONSES)
    con.execute(_turn_actions(policy), {"day": params["day"], "after": params["after"]})
    con.execute(_WINDOW_TURNS)
    for side in ("turn_prompts", "turn_responses", "turn_actions"):
        con.execute(f"DROP TABLE {side}")


_TURN_PROMPTS = f"""
CREATE OR REPLACE TEMP TABLE turn_prompts AS
SELECT conversation_id, prompt_number, min(dt) OVER turn AS prompt_dt, event_ts AS prompt_ts,
    message_id AS prompt_message_id, user_id AS prompt_user, anonymous_id AS prompt_anonymous,
    intent_label, intent_source,
    model_used AS prompt_model_used, model_version AS prompt_model_version,
    prompt_version AS prompt_prompt_version, feature_flag_state AS prompt_flag
FROM governed.ai_user_prompt_created WHERE dt BETWEEN $before AND $after AND {_OF_THE_DAY}
WINDOW turn AS (PARTITION BY conversation_id, prompt_number)
QUALIFY row_number() OVER (turn ORDER BY event_ts, message_id) = 1
"""

_TURN_RESPONSES = """
CREATE OR REPLACE TEMP TABLE turn_responses AS
SELECT conversation_id, prompt_number, min(dt) OVER turn AS response_dt, count(*) OVER turn AS responses,
    event_ts AS response_ts, max(event_ts) OVER turn AS last_response_ts,
    response_status, error_type, latency_ms, sum(cost_usd ORDER BY cost_usd) OVER turn AS cost_usd,
    CASE WHEN bool_and(cost_source = 'reported') OVER turn THEN 'reported'
         WHEN bool_and(cost_source IS NOT NULL) OVER turn THEN 'price_table' END AS cost_source,
    user_id AS response_user, anonymous_id AS response_anonymous,
    model_used AS response_model_used, model_version AS response_model_version,
    prompt_version AS response_prompt_version, feature_flag_state AS response_flag
FROM priced_responses
WINDOW turn AS (PARTITION BY conversation_id, prompt_number)
QUALIFY row_number() OVER (turn ORDER BY event_ts, message_id) = 1
"""


def _turn_actions(policy: Policy) -> str:
    success = ", ".join(f"'{action}'" for action in policy.success_actions)
    return f"""
CREATE OR REPLACE TEMP TABLE turn_actions AS
SELECT conversation_id, prompt_number, min(event_ts) AS first_action_ts, max(event_ts) AS last_action_ts,
    arg_min(action_type, event_ts) AS first_action_type,
    bool_or(action_type IN ({success})) AS accepted, bool_or(conversion_flag) AS converted_in_turn,
    bool_or(action_type = 'escalated') AS escalated,
    arg_min(rating, event_ts) FILTER (WHERE rating IS NOT NULL) AS rating
FROM governed.ai_user_action WHERE dt BETWEEN $day AND $after GROUP BY ALL
"""


_WINDOW_TURNS = """
CREATE OR REPLACE TEMP TABLE window_turns AS
SELECT coalesce(p.prompt_dt, r.response_dt) AS dt, conversation_id, prompt_number,
    coalesce(p.prompt_user, r.response_user) AS user_id,
    coalesce(p.prompt_anonymous, r.response_anonymous) AS anonymous_id,
    coalesce(r.response_model_used, p.prompt_model_used) AS model_used,
    coalesce(r.response_model_version, p.prompt_model_version) AS model_version,
    coalesce(r.response_prompt_version, p.prompt_prompt_version) AS prompt_version,
    coalesce(r.response_flag, p.prompt_flag) AS feature_flag_state,
    p.prompt_message_id, p.prompt_ts, p.intent_label, p.intent_source,
    coalesce(r.responses, 0) AS responses, r.response_ts, r.response_status, r.error_type, r.latency_ms,
    r.cost_usd, r.cost_source, a.first_action_type, a.first_action_ts,
    greatest(p.prompt_ts, r.last_response_ts, a.last_action_ts) AS last_event_ts,
    coalesce(a.accepted, false) AS accepted, coalesce(a.converted_in_turn, false) AS converted_in_turn,
    coalesce(a.escalated, false) AS escalated,
    coalesce(a.accepted OR a.converted_in_turn, false) AS successful_outcome, a.rating
FROM turn_prompts p FULL JOIN turn_responses r USING (conversation_id, prompt_number)
LEFT JOIN turn_actions a USING (conversation_id, prompt_number)
"""


def _conversations(policy: Policy) -> str:
    # Each (anonymousId, userId) pair linked in the window, once, for the anonymousIds of the day's
    # conversations that came without a userId.
    seen_together = " UNION ".join(
        f"""SELECT anonymous_id, user_id FROM {table}
            WHERE dt BETWEEN $before AND $after AND user_id IS NOT NULL
                AND anonymous_id IN (SELECT anonymous_id FROM first_turns WHERE user_id IS NULL)"""
        for table in (IDENTITY_LINKS, "governed.ai_user_prompt_created", "governed.ai_llm_response_received",
                      "governed.ai_user_action"))
    return f"""
INSERT INTO {CONVERSATIONS_TABLE} BY NAME
WITH first_turns AS (
    SELECT conversation_id, min(dt) OVER conversation AS dt, user_id, anonymous_id,
        model_version, prompt_version, feature_flag_state,
        min(coalesce(prompt_ts, response_ts)) OVER conversation AS started_at,
        max(last_event_ts) OVER conversation AS ended_at, count(*) OVER conversation AS turns,
        count(*) FILTER (WHERE successful_outcome) OVER conversation AS successful_outcomes,
        bool_or(escalated) OVER conversation AS escalated,
        sum(cost_usd ORDER BY cost_usd) OVER conversation AS total_cost_usd
    FROM window_turns
    WINDOW conversation AS (PARTITION BY conversation_id)
    QUALIFY row_number() OVER (conversation ORDER BY prompt_number) = 1 AND min(dt) OVER conversation = $day
), links AS (
    SELECT anonymous_id, any_value(user_id) AS user_id
    FROM ({seen_together})
    GROUP BY anonymous_id HAVING count(*) = 1
), conversations AS (
    SELECT f.* REPLACE (coalesce(f.user_id, l.user_id) AS user_id),
        CASE WHEN f.user_id IS NOT NULL THEN 'sent' WHEN l.user_id IS NOT NULL THEN 'stitched' END AS user_id_source
    FROM first_turns f LEFT JOIN links l ON f.user_id IS NULL AND l.anonymous_id = f.anonymous_id
), outcomes AS (
    SELECT c.*,
        -- two EXISTS, not one with OR: each is an equality join DuckDB can hash, where the OR made it
        -- compare every conversation with every conversion (28 s at 1M events, growing with the square)
        EXISTS (SELECT 1 FROM sources.conversions v
                WHERE v.dt BETWEEN $day AND $last_source_day AND v.conversation_id = c.conversation_id)
        OR EXISTS (SELECT 1 FROM sources.conversions v
                   WHERE v.dt BETWEEN $day AND $last_source_day AND v.user_id = c.user_id
                     AND v.occurred_at >= c.started_at
                     AND v.occurred_at <= c.started_at + INTERVAL {policy.attribution_window_hours} HOUR) AS converted,
        EXISTS (SELECT 1 FROM sources.support_tickets s
                WHERE s.dt BETWEEN $day AND $last_source_day AND s.user_id = c.user_id
                  AND s.created_at >= c.started_at
                  AND s.created_at <= c.ended_at + INTERVAL {policy.ticket_window_hours} HOUR) AS ticket_within_window
    FROM conversations c
)
SELECT c.*, c.turns > 1 AS multi_turn, c.successful_outcomes > 0 AND NOT c.escalated AS completed,
    NOT c.ticket_within_window AS deflected,
    u.plan, u.country, strftime(u.signup_at, '%Y-%m') AS signup_month
FROM outcomes c LEFT JOIN sources.user_profiles u ON u.user_id = c.user_id AND u.dt = $day
"""


def orphan_turns(con, day: date) -> list[str]:
    """Turns of the day whose conversation is in neither that day's nor the day before's conversations."""
    rows = con.execute(
        f"""SELECT conversation_id || '#' || prompt_number FROM {TURNS_TABLE} t WHERE t.dt = $day
            AND NOT EXISTS (SELECT 1 FROM {CONVERSATIONS_TABLE} c WHERE c.conversation_id = t.conversation_id
                            AND c.dt BETWEEN $day - 1 AND $day)
            ORDER BY 1""", {"day": day}).fetchall()
    return [r[0] for r in rows]
