"""Raw lines for tests, in the envelope shape the Segment and RudderStack SDKs send."""

from __future__ import annotations

import gzip
import itertools
import json

import yaml

from telemetry_assets.govern.policy import load_policy
from telemetry_assets.settings import CONFIG_DIR

_ids = itertools.count(1)

PRICES_HEADER = "model_version,valid_from,input_usd_per_mtok,cached_input_usd_per_mtok,output_usd_per_mtok\n"

PROPERTIES = {
    "ai_user_prompt_created": {"prompt_number": 1, "intent_label": None, "prompt_text": "How do I rotate my key?"},
    "ai_llm_response_received": {
        "prompt_number": 1, "response_status": "success", "latency_ms": 812.5, "input_tokens": 420,
        "output_tokens": 180, "token_count": 600, "cost": 0.00019, "response_text": "Go to Settings.",
    },
    "ai_user_action": {"prompt_number": 1, "action_type": "accepted", "conversion_flag": False, "rating": 5},
}
ANALYTICAL_KEY = {
    "conversation_id": "conv_1", "model_version": "gpt-4o-mini-2024-07-18", "prompt_version": "v7",
    "feature_flag_state": "control", "model_used": "gpt-4o-mini",
}


ALL_GRANTED = {"necessary": True, "analytics": True, "ai_improvement": True, "marketing": True}


def segment_consent(**preferences) -> dict:
    """Segment's `context.consent`: categories default to granted, keyword arguments override."""
    return {"consent": {"categoryPreferences": {**ALL_GRANTED, **preferences}}}


def rudder_consent(allowed=(), denied=(), strategy=None) -> dict:
    """RudderStack's `context.consentManagement`."""
    management = {"provider": "custom", "allowedConsentIds": list(allowed), "deniedConsentIds": list(denied)}
    if strategy:
        management["resolutionStrategy"] = strategy
    return {"consentManagement": management}


def ai_call(event: str = "ai_llm_response_received", message_id: str | None = None,
            drop: tuple[str, ...] = (), consent: dict | None = None, **properties) -> dict:
    """A valid AI track call from a user who granted every category (unless `consent` says otherwise);
    keyword arguments override properties, `drop` removes them."""
    props = {**ANALYTICAL_KEY, **PROPERTIES.get(event, PROPERTIES["ai_user_action"]), **properties}
    for name in drop:
        props.pop(name)
    return {
        "type": "track", "event": event, "messageId": message_id or f"msg-{next(_ids)}",
        "userId": "usr_1", "anonymousId": "anon_1",
        "timestamp": "2026-09-14T08:00:00.000Z", "originalTimestamp": "2026-09-14T08:00:00.000Z",
        "sentAt": "2026-09-14T08:00:00.100Z", "receivedAt": "2026-09-14T08:00:00.900Z",
        "context": {"library": {"name": "analytics-python", "version": "2.4.0"},
                    **(segment_consent() if consent is None else consent)},
        "properties": props,
    }


def page_call() -> dict:
    return {"type": "page", "name": "Pricing", "messageId": f"page-{next(_ids)}", "userId": "usr_1",
            "receivedAt": "2026-09-14T08:00:00.900Z", "properties": {"path": "/pricing"}}


def ndjson(*lines) -> bytes:
    """Lines as bytes: dicts are JSON-encoded, str and bytes are written as they are."""
    out = []
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        out.append(line if isinstance(line, bytes) else line.encode())
    return b"\n".join(out) + b"\n"


def gz(*lines) -> bytes:
    return gzip.compress(ndjson(*lines))


def custom_policy(tmp_path, change):
    """The shipped policy with `change` applied to its YAML, loaded as `telemetry run` would."""
    raw = yaml.safe_load((CONFIG_DIR / "policy.yaml").read_text())
    change(raw)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_policy(path)
