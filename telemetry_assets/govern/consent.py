"""Consent: each category's state from the raw call, and each destination's decision.

A category is denied when it is in RudderStack's `deniedConsentIds` or its Segment preference is
false; granted when it is in `allowedConsentIds` or its preference is true; unknown otherwise (no
consent information at all, or a category not mentioned). Denied is checked first, so a call that
both allows and denies a category denies it. Unknown counts as the policy's `missing_consent`.

A destination gets an event when all its required categories count as granted (`and`, the
default) or any does (`or`); RudderStack's per-call `resolutionStrategy` wins when sent. This is
stricter than RudderStack's own server, which filters only on denied ids and lets unknown through.

`decision_sql` is what routing uses in flight (SQL over the raw call); `recompute_decision` is a
separate implementation over the governance log, used to measure `consent_enforcement_rate`
against what was actually delivered. Keep them separate: their agreement is the measurement.
"""

from __future__ import annotations

import pandas as pd

from telemetry_assets.govern.policy import Policy

# Both consent objects are taken from the raw call with its other fields, in one parse (ingest puts
# them in a column `consent_fragments`); `_consent_inputs_sql` reads each part the rules need once.
CONSENT_PATHS = ("$.context.consentManagement", "$.context.consent.categoryPreferences")


def categories(policy: Policy) -> list[str]:
    return sorted({category for d in policy.destinations.values() for category in d.requires})


def _consent_inputs_sql(policy: Policy) -> str:
    """Columns `allowed_ids`, `denied_ids`, `preferences` (each category's JSON preference, in
    `categories` order) and `requested_strategy`, over a column `consent_fragments`."""
    management, preferences = "consent_fragments[1]", "consent_fragments[2]"
    paths = ", ".join(f"""'$."{category}"'""" for category in categories(policy))
    return f"""json_extract_string({management}, '$.allowedConsentIds[*]') AS allowed_ids,
        json_extract_string({management}, '$.deniedConsentIds[*]') AS denied_ids,
        {f"json_extract({preferences}, [{paths}])" if paths else "NULL"} AS preferences,
        lower(json_extract_string({management}, '$.resolutionStrategy')) AS requested_strategy"""


def _consent_state_sql(policy: Policy) -> str:
    """MAP(category -> granted | denied | unknown) for the categories any destination needs,
    over the columns of `_consent_inputs_sql`."""
    entries = []
    for position, category in enumerate(categories(policy), 1):
        preference = f"preferences[{position}]"
        entries.append(
            f"""('{category}', CASE
                WHEN list_contains(denied_ids, '{category}') OR {preference} = 'false'::JSON THEN 'denied'
                WHEN list_contains(allowed_ids, '{category}') OR {preference} = 'true'::JSON THEN 'granted'
                ELSE 'unknown' END)"""
        )
    if not entries:
        return "MAP {}::MAP(VARCHAR, VARCHAR)"
    return f"map_from_entries([{', '.join(entries)}])"


def _strategy_sql(policy: Policy) -> str:
    return f"CASE WHEN requested_strategy IN ('and', 'or') THEN requested_strategy ELSE '{policy.strategy}' END"


def with_consent_sql(policy: Policy, relation: str) -> str:
    """Every column of `relation` (a query with a column `consent_fragments`), plus `consent` and
    `consent_strategy`, over which `decision_sql` decides."""
    return f"""SELECT *, {_consent_state_sql(policy)} AS consent, {_strategy_sql(policy)} AS consent_strategy
        FROM (SELECT *, {_consent_inputs_sql(policy)} FROM ({relation}))"""


def decision_sql(policy: Policy, destination: str) -> tuple[str, str]:
    """(deliver BOOLEAN, reason VARCHAR when blocked) over columns `consent` and `consent_strategy`."""
    required = policy.destinations[destination].requires
    if not required:
        return "TRUE", "NULL"
    counts = lambda c: f"(consent['{c}'] = 'granted' OR (consent['{c}'] = 'unknown' AND {policy.missing_consent == 'allow'}))"
    all_granted = " AND ".join(counts(c) for c in required)
    any_granted = " OR ".join(counts(c) for c in required)
    deliver = f"CASE WHEN consent_strategy = 'or' THEN ({any_granted}) ELSE ({all_granted}) END"
    first_missing = " ".join(f"WHEN NOT {counts(c)} THEN 'consent ' || consent['{c}'] || ': {c}'" for c in required)
    return deliver, f"CASE WHEN NOT ({deliver}) THEN CASE {first_missing} END END"


def recompute_decision(log: pd.DataFrame, policy: Policy, destination: str) -> pd.Series:
    """Expected delivery to `destination` from each event's recorded consent state.

    `log` has one row per event, `consent_strategy`, and `consent__<category>` holding the state
    (granted | denied | unknown) of every category in `categories(policy)`. The result is one
    boolean per row.
    """
    required = policy.destinations[destination].requires
    if not required:
        return pd.Series(True, index=log.index)
    allow_unknown = policy.missing_consent == "allow"
    counted = pd.DataFrame({
        category: (log[f"consent__{category}"] == "granted") | ((log[f"consent__{category}"] == "unknown") & allow_unknown)
        for category in required
    })
    return counted.any(axis=1).where(log["consent_strategy"] == "or", counted.all(axis=1))
