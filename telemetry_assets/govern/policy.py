"""The governance policy (versioned YAML): what to store, redact, route and sample, and what counts
as a successful outcome for the business metrics.

Validated on load: an unknown key, a bad value or a contradiction (raw text routed to a destination
while the policy says raw text is never kept) fails with the key's path in the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from telemetry_assets.config_files import load_versioned_yaml, reject_unknown

ENTITY_TYPES = ("email", "phone", "card", "ssn", "iban", "ipv4", "ipv6", "person")
REPLACEMENTS = ("mask", "hash", "remove")
STORE_RAW_TEXT = ("never", "secure_only", "everywhere")
TEXT_POLICIES = ("raw", "redacted", "none")
SECURE_DESTINATION = "secure_archive"


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
        {"version", "changes", "store_raw_text", "redaction", "consent", "destinations", "intent", "outcomes"},
        {"store_raw_text", "redaction", "consent", "destinations", "intent", "outcomes"},
    )
    _one_of(raw["store_raw_text"], STORE_RAW_TEXT, "store_raw_text")
    redaction = _section(raw, "redaction", {"fields", "entities", "replacement", "phone_region"})
    for entity in redaction.get("entities", []):
        _one_of(entity, ENTITY_TYPES, "redaction.entities")
    _one_of(redaction.get("replacement", "mask"), REPLACEMENTS, "redaction.replacement")
    consent = _section(raw, "consent", {"missing_consent", "strategy"})
    _one_of(consent.get("missing_consent", "deny"), ("deny", "allow"), "consent.missing_consent")
    _one_of(consent.get("strategy", "and"), ("and", "or"), "consent.strategy")
    intent = _section(raw, "intent", {"sample_rate", "always_classify"})
    rate = intent.get("sample_rate", 1.0)
    if not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise PolicyError(f"intent.sample_rate: {rate!r} is not a share between 0 and 1")
    outcomes = _section(raw, "outcomes", {"success_actions", "attribution_window_hours", "ticket_window_hours"})
    for window in ("attribution_window_hours", "ticket_window_hours"):
        hours = outcomes.get(window, 24)
        if not isinstance(hours, int) or not 0 < hours <= 24 * 7:
            raise PolicyError(f"outcomes.{window}: {hours!r} is not a whole number of hours up to a week")
    destinations = {name: _destination(name, spec, raw["store_raw_text"]) for name, spec in raw["destinations"].items()}
    return Policy(
        version=str(raw["version"]),
        store_raw_text=raw["store_raw_text"],
        redact_fields=tuple(redaction.get("fields", [])),
        entities=tuple(redaction.get("entities", ENTITY_TYPES)),
        replacement=redaction.get("replacement", "mask"),
        phone_region=redaction.get("phone_region", "US"),
        missing_consent=consent.get("missing_consent", "deny"),
        strategy=consent.get("strategy", "and"),
        destinations=destinations,
        intent_sample_rate=float(rate),
        always_classify=tuple(intent.get("always_classify", [])),
        success_actions=tuple(outcomes.get("success_actions", ["accepted"])),
        attribution_window_hours=outcomes.get("attribution_window_hours", 24),
        ticket_window_hours=outcomes.get("ticket_window_hours", 24),
    )


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
    requires = spec.get("requires", [])
    if not isinstance(requires, list):
        raise PolicyError(f"{where}.requires: must be a list of consent categories")
    return Destination(name, tuple(requires), text)


def _one_of(value, allowed: tuple[str, ...], where: str) -> None:
    if value not in allowed:
        raise PolicyError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
