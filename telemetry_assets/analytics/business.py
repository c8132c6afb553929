"""`metrics.business_daily`: what users did after talking to the AI, by version key and by cohort.

Grain: one row per (dt, model_version, prompt_version, feature_flag_state, cohort_dimension,
cohort) over the conversations that began on dt; `cohort_dimension` is `all` (cohort `all`) or
`plan` (the user's plan in that day's profile snapshot, `unknown` without one).
- `conversion_rate`: conversations followed by a conversion of the same user within the attribution
  window (or carrying their conversation_id);
- `multi_turn_share`, `return_within_7d_rate` (the user began another conversation within 7 days):
  engagement;
- `d1_retention`, `d7_retention`: users of the group active again exactly 1 or 7 days later;
- `support_deflection_rate`: conversations not followed by a ticket of the same user in the window.
Retention and returns need later days: they are NULL until the day they look at has landed (no
conversations recorded for it yet), never a misleading zero.

Outcomes matched by user need a user: a conversation without a userId (a visitor who never signed
in, known only by an anonymousId) counts in `conversations` and `multi_turn_share`, but whether it
converted, returned or was followed by a ticket is unknown, not false. So conversion, return and
deflection are rates over `identified_conversations`, and `users` and retention count identified
users only. (Counted as failures, anonymous traffic would have lowered conversion and raised
deflection; counted as users, all of it was one user who never came back.)
"""

from __future__ import annotations

from datetime import date

from telemetry_assets.analytics.joins import CONVERSATIONS_TABLE
from telemetry_assets.ingest.tables import create_or_extend, replacing_day

BUSINESS_TABLE = "metrics.business_daily"
BUSINESS = {
    "dt": "DATE", "model_version": "VARCHAR", "prompt_version": "VARCHAR", "feature_flag_state": "VARCHAR",
    "cohort_dimension": "VARCHAR", "cohort": "VARCHAR", "conversations": "BIGINT", "users": "BIGINT",
    "conversions": "BIGINT", "conversion_rate": "DOUBLE", "multi_turn_share": "DOUBLE",
    "return_within_7d_rate": "DOUBLE", "d1_retention": "DOUBLE", "d7_retention": "DOUBLE",
    "support_deflection_rate": "DOUBLE", "identified_conversations": "BIGINT",
}


def build_business(con, day: date) -> int:
    create_or_extend(con, BUSINESS_TABLE, "One row per dt, version key and cohort (all, or plan).", BUSINESS)
    with replacing_day(con, day, [BUSINESS_TABLE]):
        con.execute(_BUSINESS, {"day": day})
    return con.execute(f"SELECT count(*) FROM {BUSINESS_TABLE} WHERE dt = ?", [day]).fetchall()[0][0]


_BUSINESS = f"""
INSERT INTO {BUSINESS_TABLE} BY NAME
WITH landed AS (
    SELECT max(dt) AS last_day FROM {CONVERSATIONS_TABLE}
), later AS (  -- the identified conversations of the day and the 7 after it
    SELECT conversation_id, user_id, dt, started_at FROM {CONVERSATIONS_TABLE}
    WHERE dt BETWEEN $day AND $day + 7 AND user_id IS NOT NULL
), returns AS (
    -- a conversation returned when its user began another after it, within 7 days: the latest
    -- start among the user's from this one's to 7 days later is a later one. One sort of the
    -- window's starts, where a join of each conversation to its user's others took 2-3 times as long
    SELECT conversation_id, dt, max(started_at) OVER (PARTITION BY user_id ORDER BY started_at
               RANGE BETWEEN CURRENT ROW AND INTERVAL 7 DAY FOLLOWING) > started_at AS returned
    FROM later
), conversations AS (
    SELECT c.*, c.user_id IS NOT NULL AS identified, coalesce(r.returned, false) AS returned
    FROM {CONVERSATIONS_TABLE} c LEFT JOIN returns r ON r.conversation_id = c.conversation_id AND r.dt = c.dt
    WHERE c.dt = $day
), by_cohort AS (
    SELECT *, 'all' AS cohort_dimension, 'all' AS cohort FROM conversations
    UNION ALL
    SELECT *, 'plan' AS cohort_dimension, coalesce(plan, 'unknown') AS cohort FROM conversations
), users AS (
    SELECT DISTINCT model_version, prompt_version, feature_flag_state, cohort_dimension, cohort, user_id,
        EXISTS (SELECT 1 FROM later l WHERE l.user_id = b.user_id AND l.dt = $day + 1) AS active_d1,
        EXISTS (SELECT 1 FROM later l WHERE l.user_id = b.user_id AND l.dt = $day + 7) AS active_d7
    FROM by_cohort b WHERE identified
), retention AS (
    SELECT model_version, prompt_version, feature_flag_state, cohort_dimension, cohort, count(*) AS users,
        avg(CASE WHEN active_d1 THEN 1.0 ELSE 0.0 END) AS d1, avg(CASE WHEN active_d7 THEN 1.0 ELSE 0.0 END) AS d7
    FROM users GROUP BY ALL
), rates AS (
    SELECT model_version, prompt_version, feature_flag_state, cohort_dimension, cohort, count(*) AS conversations,
        count(*) FILTER (WHERE identified) AS identified_conversations,
        count(*) FILTER (WHERE identified AND converted) AS conversions,
        avg(CASE WHEN converted THEN 1.0 ELSE 0.0 END) FILTER (WHERE identified) AS conversion_rate,
        avg(CASE WHEN multi_turn THEN 1.0 ELSE 0.0 END) AS multi_turn_share,
        avg(CASE WHEN returned THEN 1.0 ELSE 0.0 END) FILTER (WHERE identified) AS return_rate,
        avg(CASE WHEN deflected THEN 1.0 ELSE 0.0 END) FILTER (WHERE identified) AS support_deflection_rate
    FROM by_cohort GROUP BY ALL
)
SELECT $day AS dt, r.model_version, r.prompt_version, r.feature_flag_state, r.cohort_dimension, r.cohort,
    r.conversations, r.identified_conversations, coalesce(t.users, 0) AS users, r.conversions, r.conversion_rate,
    r.multi_turn_share,
    CASE WHEN (SELECT last_day FROM landed) >= $day + 7 THEN r.return_rate END AS return_within_7d_rate,
    CASE WHEN (SELECT last_day FROM landed) >= $day + 1 THEN t.d1 END AS d1_retention,
    CASE WHEN (SELECT last_day FROM landed) >= $day + 7 THEN t.d7 END AS d7_retention,
    r.support_deflection_rate
FROM rates r LEFT JOIN retention t
    USING (model_version, prompt_version, feature_flag_state, cohort_dimension, cohort)
"""
