"""The governance policy (versioned YAML): what to store, redact, route and sample, and what counts
as a successful outcome for the business metrics.

Validated on load: an unknown key, a bad value or a contradiction (raw text routed to a destination
while the policy says raw text is never kept) fails with the key's path in the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import phonenumbers

from telemetry_assets.config_files import is_number, is_whole_number, load_versioned_yaml, reject_unknown
from telemetry_assets.govern.intent import IntentRules

ENTITY_TYPES = ("email", "phone", "card", "ssn", "iban", "ipv4", "ipv6", "person")
REPLACEMENTS = ("mask", "hash", "remove")
STORE_RAW_TEXT = ("never", "secure_only", "everywhere")
TEXT_POLICIES = ("raw", "redacted", "none")
SECURE_DESTINATION = "secure_archive"
MAX_RETENTION_DAYS = 3650


class PolicyError(ValueError):
    """The policy file is not valid; the message names the offending key."""


@dataclass(frozen=True)
class Destination:
    name: str
    requires: tuple[str, ...]
    text: str  # raw | redacted | none


@dataclass(frozen=True)
class Policy:
    version: str
    store_raw_text: str
    raw_text_retention_days: int | None  # None: the secure store keeps raw text until deleted by hand
    redact_fields: tuple[str, ...]
    entities: tuple[str, ...]
    replacement: str
    phone_region: str
    missing_consent: str
    strategy: str
    destinations: dict[str, Destination]
    intent_sample_rate: float
    always_classify: tuple[str, ...]
    success_actions: tuple[str, ...]
    attribution_window_hours: int
    ticket_window_hours: int


def load_policy(path: Path) -> Policy:
    raw = load_versioned_yaml(
        path, PolicyError,
        {"version", "changes", "store_raw_text", "raw_text_retention_days", "redaction", "consent", "destinations",
         "intent", "outcomes"},
        {"store_raw_text", "redaction", "consent", "destinations", "intent", "outcomes"},
    )
    _one_of(raw["store_raw_text"], STORE_RAW_TEXT, "store_raw_text")
    retention = raw.get("raw_text_retention_days")
    if retention is not None and (not is_whole_number(retention) or not 1 <= retention <= MAX_RETENTION_DAYS):
        raise PolicyError(f"raw_text_retention_days: {retention!r} is not a whole number of days from 1 to "
                          f"{MAX_RETENTION_DAYS} (leave it out, or null, to keep raw text until deleted by hand)")
    redaction = _section(raw, "redaction", {"fields", "entities", "replacement", "phone_region"})
    entities = _strings(redaction, "entities", "redaction", ENTITY_TYPES)
    for entity in entities:
        _one_of(entity, ENTITY_TYPES, "redaction.entities")
    _one_of(redaction.get("replacement", "mask"), REPLACEMENTS, "redaction.replacement")
    _phone_region(redaction.get("phone_region", "US"))
    consent = _section(raw, "consent", {"missing_consent", "strategy"})
    _one_of(consent.get("missing_consent", "deny"), ("deny", "allow"), "consent.missing_consent")
    _one_of(consent.get("strategy", "and"), ("and", "or"), "consent.strategy")
    intent = _section(raw, "intent", {"sample_rate", "always_classify"})
    rate = intent.get("sample_rate", 1.0)
    if not is_number(rate) or not 0 <= rate <= 1:
        raise PolicyError(f"intent.sample_rate: {rate!r} is not a share between 0 and 1")
    always_classify = _strings(intent, "always_classify", "intent", ())
    labels = IntentRules.load().labels
    for label in always_classify:
        _one_of(label, labels, "intent.always_classify")
    outcomes = _section(raw, "outcomes", {"success_actions", "attribution_window_hours", "ticket_window_hours"})
    for window in ("attribution_window_hours", "ticket_window_hours"):
        hours = outcomes.get(window, 24)
        if not is_whole_number(hours) or not 0 < hours <= 24 * 7:
            raise PolicyError(f"outcomes.{window}: {hours!r} is not a whole number of hours up to a week")
    destinations = {name: _destination(name, spec, raw["store_raw_text"]) for name, spec in raw["destinations"].items()}
    return Policy(
        version=str(raw["version"]),
        store_raw_text=raw["store_raw_text"],
        raw_text_retention_days=retention,
        redact_fields=_strings(redaction, "fields", "redaction", ()),
        entities=entities,
        replacement=redaction.get("replacement", "mask"),
        phone_region=redaction.get("phone_region", "US"),
        missing_consent=consent.get("missing_consent", "deny"),
        strategy=consent.get("strategy", "and"),
        destinations=destinations,
        intent_sample_rate=float(rate),
        always_classify=always_classify,
        success_actions=_strings(outcomes, "success_actions", "outcomes", ("accepted",)),
        attribution_window_hours=outcomes.get("attribution_window_hours", 24),
        ticket_window_hours=outcomes.get("ticket_window_hours", 24),
    )


def check_against_plan(policy: Policy, plan) -> None:
    """What the policy names from the tracking plan must be in it. A misspelt field to redact is
    worse than useless: the real field is then neither redacted nor scanned for leaks; a misspelt
    success action makes every turn unsuccessful."""
    string_fields = {f.column for event in plan.events.values() for f in event.fields if f.type == "string"}
    for field in policy.redact_fields:
        if field not in string_fields:
            raise PolicyError(f"redaction.fields: '{field}' is not a string field of any event in tracking plan "
                              f"{plan.version}")
    actions = {value for event in plan.events.values() for f in event.fields if f.column == "action_type"
               for value in f.enum or ()}
    for action in policy.success_actions:
        if actions and action not in actions:
            raise PolicyError(f"outcomes.success_actions: '{action}' is not an action_type tracking plan "
                              f"{plan.version} allows ({', '.join(sorted(actions))})")


def _section(raw: dict, name: str, allowed: set[str]) -> dict:
    section = raw[name]
    if not isinstance(section, dict):
        raise PolicyError(f"{name}: must be a mapping")
    reject_unknown(section, allowed, name, PolicyError)
    return section


def _destination(name: str, spec, store_raw_text: str) -> Destination:
    where = f"destinations.{name}"
    if not isinstance(spec, dict):
        raise PolicyError(f"{where}: must be a mapping")
    reject_unknown(spec, {"requires", "text"}, where, PolicyError)
    text = spec.get("text", "none")
    _one_of(text, TEXT_POLICIES, f"{where}.text")
    if text == "raw" and store_raw_text == "never":
        raise PolicyError(f"{where}.text: raw text is routed here but store_raw_text is 'never'")
    if text == "raw" and store_raw_text == "secure_only" and name != SECURE_DESTINATION:
        raise PolicyError(f"{where}.text: raw text outside {SECURE_DESTINATION} needs store_raw_text 'everywhere'")
    return Destination(name, _strings(spec, "requires", where, ()), text)


def _strings(section: dict, key: str, where: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A list of names: a lone string would otherwise be read as its letters."""
    value = section.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PolicyError(f"{where}.{key}: {value!r} is not a list of names")
    return tuple(value)


def _phone_region(region) -> None:
    """Numbers written without a country code are read in this region; a region phonenumbers does
    not know (`us` for `US`) would leave every such number unredacted."""
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise PolicyError(f"redaction.phone_region: {region!r} is not an ISO 3166 region phonenumbers knows "
                          "(two capital letters, such as US or GB)")


def _one_of(value, allowed: tuple[str, ...], where: str) -> None:
    if value not in allowed:
        raise PolicyError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
