"""Generate a lake of realistic AI-feature traffic in the hive layout, with planted problems.

What a day holds: multi-turn conversations (prompt, response, usually a user action per turn) from
users with a plan, a feature-flag arm and a consent state (RudderStack or Segment form, or none),
a few of them held before the user signed in (an anonymousId and no userId);
ordinary product traffic (page, identify, `Order Completed`); a few malformed or invalid lines of
every kind the tracking plan names; at-least-once re-sends (some crossing midnight); events of
late-night conversations received after midnight. Beside the events: conversions, support tickets
and a user-profile snapshot under `sources/`.

Planted incidents (listed in the manifest with their first day):
- `variant_model_upgrade`: the `variant_b` arm moves to a bigger model; latency and cost rise.
- `control_model_swap`: the `control` arm moves to a smaller model; latency falls, but users on the
  `free` plan convert far less often, which only a by-cohort business metric shows.
- `consent_manager_outage` (runs of 5 days or more, on the second day): from 06:00 UTC
  the consent wrapper of the Segment-form pages fails to load, so their calls carry no consent and
  reach no destination that needs it; only the share of events without consent shows it.

`generator/manifest.json` records what was planted per day so tests can reconcile against it.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import tempfile
import uuid
from array import array
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from telemetry_assets import settings
from telemetry_assets.generate.content import FEEDBACK, INTENT_PROMPTS, RESPONSES, PiiPools

MANIFEST_KEY = "generator/manifest.json"

LINES_PER_MEMBER = 10_000
LINES_PER_PART = 200_000
NON_AI_SHARE = 0.15  # page, identify and `Order Completed` calls, per AI event
SIGNED_OUT_SHARE = 0.05  # conversations held before signing in: the calls carry the anonymousId only

BASELINE_MODEL = ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
UPGRADE_MODEL = ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14")
SWAP_MODEL = ("gpt-4.1-nano", "gpt-4.1-nano-2025-04-14")
CONSENT_OUTAGE_FROM = time(6)  # UTC, on the outage day
CONSENT_CATEGORIES = ("necessary", "analytics", "ai_improvement", "marketing")
CONSENT_PROFILES = {  # name: (share of users, granted categories or None for no consent info)
    "all_granted": (0.78, set(CONSENT_CATEGORIES)),
    "analytics_denied": (0.07, {"necessary", "ai_improvement"}),
    "ai_improvement_denied": (0.06, {"necessary", "analytics", "marketing"}),
    "all_denied": (0.04, {"necessary"}),
    "missing": (0.05, None),
}
PLANS = {"free": 0.6, "pro": 0.3, "enterprise": 0.1}
ERROR_TYPES = {"timeout": 0.4, "rate_limit": 0.3, "content_filter": 0.2, "server_error": 0.1}
ACTIONS = {"accepted": 0.45, "dismissed": 0.2, "copied": 0.1, "edited": 0.08, "regenerated": 0.1, "escalated": 0.07}
BAD_LINE_KINDS = {  # planted kind: violation type it must be quarantined as
    "truncated_json": "Malformed-Line",
    "invalid_utf8": "Malformed-Line",
    "array_line": "Malformed-Line",
    "empty_object": "Required-Missing",
    "missing_required": "Required-Missing",
    "wrong_type": "Datatype-Mismatch",
    "unknown_enum": "Advance-Rules-Violation",
    "negative_latency": "Advance-Rules-Violation",
    "unplanned_event": "Unplanned-Event",
}
PAGES = ["Home", "Pricing", "Docs", "Settings", "Billing"]


@dataclass(frozen=True)
class GeneratorConfig:
    days: int = 7
    users: int = 200
    events_per_day: int = 2_000
    seed: int = 7
    start: date | None = None  # default: the `days` days ending yesterday (UTC)

    def day_list(self) -> list[date]:
        first = self.start or datetime.now(timezone.utc).date() - timedelta(days=self.days)
        return [first + timedelta(days=i) for i in range(self.days)]


@dataclass(frozen=True)
class User:
    user_id: str
    anonymous_id: str
    plan: str
    country: str
    signup_at: datetime
    variant: str
    consent_format: str  # rudderstack | segment
    consent_profile: str


@dataclass
class DayCounts:
    """What was written into one day's raw partition."""

    ai_events: int = 0
    non_ai_events: int = 0
    resent: int = 0
    blank_lines: int = 0
    bad_lines: dict[str, int] = field(default_factory=dict)


def generate(store, config: GeneratorConfig) -> dict:
    """Write the lake and return the manifest (also stored at `generator/manifest.json`)."""
    rng = random.Random(config.seed)
    pools = PiiPools.build(rng)
    days = config.day_list()
    users = _users(rng, config.users, days[0])
    timeline = _Timeline(days)
    prices = _load_prices()
    counts = {day: DayCounts() for day in days}
    conversions: list[dict] = []
    tickets: list[dict] = []
    late_events: list[str] = []  # received after midnight: they belong to the next partition
    late_resends: list[str] = []
    for day in days:
        day_rng = random.Random(f"{config.seed}-{day.isoformat()}")
        writer = _PartitionWriter(store, day)
        for line in late_events + late_resends:
            writer.add(line)
        counts[day].ai_events += len(late_events)
        counts[day].resent += len(late_resends)
        # Who was signed out is drawn apart, so the rest of the day is what it was before it was drawn.
        signed_out = random.Random(f"{config.seed}-{day.isoformat()}-signed-out")
        simulator = _DaySimulator(day_rng, day, users, pools, timeline, prices, signed_out)
        late_events = []
        for received, line in simulator.run(config.events_per_day):
            if received.date() == day:
                writer.add(line)
                counts[day].ai_events += 1
            else:
                late_events.append(line)
        _write_extras(writer, simulator, counts[day], int(config.events_per_day * NON_AI_SHARE))
        late_resends = simulator.resent_tomorrow
        writer.close()
        conversions.extend(simulator.conversions)
        tickets.extend(simulator.tickets)
    _write_sources(store, users, conversions, tickets, days)
    manifest = {
        "config": {**asdict(config), "start": days[0].isoformat()},
        "days": [d.isoformat() for d in days],
        "incidents": timeline.incidents(),
        "per_day": {d.isoformat(): asdict(c) for d, c in counts.items()},
        "anonymous_ids": {user.anonymous_id: user.user_id for user in users},  # whose device each is
        "pii_values": pools.all_values(),
    }
    store.put(MANIFEST_KEY, json.dumps(manifest, indent=2).encode())
    return manifest


def _write_extras(writer, simulator, today: DayCounts, non_ai_calls: int) -> None:
    """Non-AI calls (written as they are made), planted bad lines, same-day re-sends and one blank line."""
    for line in simulator.non_ai_lines(non_ai_calls):
        writer.add(line)
        today.non_ai_events += 1
    for kind, line in simulator.bad_lines:
        writer.add(line)
        today.bad_lines[kind] = today.bad_lines.get(kind, 0) + 1
    for line in simulator.resent_today:
        writer.add(line)
    today.resent += len(simulator.resent_today)
    writer.add("")
    today.blank_lines += 1


class _Timeline:
    """Which model and prompt version each arm runs on each day: where the incidents are planted."""

    def __init__(self, days: list[date]):
        self.days = days
        self.upgrade_day = days[min(len(days) - 1, max(1, len(days) // 3))] if len(days) > 1 else None
        self.swap_day = days[min(len(days) - 1, max(2, 2 * len(days) // 3))] if len(days) > 2 else None
        self.prompt_v8_day = days[len(days) // 2]
        self.consent_outage_day = days[1] if len(days) >= 5 else None  # before the model changes it must not mask

    def model(self, variant: str, day: date) -> tuple[str, str]:
        if variant == "variant_b" and self.upgrade_day and day >= self.upgrade_day:
            return UPGRADE_MODEL
        if variant == "control" and self.swap_day and day >= self.swap_day:
            return SWAP_MODEL
        return BASELINE_MODEL

    def prompt_version(self, day: date) -> str:
        return "v8" if day >= self.prompt_v8_day else "v7"

    def consent_lost(self, user: User, at: datetime) -> bool:
        """Whether a call made at `at` lost its consent to the planted outage."""
        return (user.consent_format == "segment" and at.date() == self.consent_outage_day
                and at.time() >= CONSENT_OUTAGE_FROM)

    def incidents(self) -> list[dict]:
        found = []
        if self.upgrade_day:
            found.append({"name": "variant_model_upgrade", "first_day": self.upgrade_day.isoformat(),
                          "feature_flag_state": "variant_b", "model_version": UPGRADE_MODEL[1],
                          "effect": "p95 latency x1.8, cost per call up"})
        if self.swap_day:
            found.append({"name": "control_model_swap", "first_day": self.swap_day.isoformat(),
                          "feature_flag_state": "control", "model_version": SWAP_MODEL[1],
                          "effect": "latency x0.6, conversion of plan=free users x0.3"})
        if self.consent_outage_day:
            found.append({"name": "consent_manager_outage", "first_day": self.consent_outage_day.isoformat(),
                          "consent_format": "segment", "from_utc": CONSENT_OUTAGE_FROM.isoformat(),
                          "effect": "calls carry no consent: blocked from every destination that needs it"})
        return found


class _DaySimulator:
    """One day's conversations, as raw lines with their received time, plus side outputs."""

    def __init__(self, rng, day, users, pools, timeline, prices, signed_out):
        self.rng, self.day, self.users, self.pools = rng, day, users, pools
        self.timeline, self.prices, self.signed_out = timeline, prices, signed_out
        self.bad_lines: list[tuple[str, str]] = []
        self.resent_today: list[str] = []
        self.resent_tomorrow: list[str] = []
        self.conversions: list[dict] = []
        self.tickets: list[dict] = []

    def run(self, target_events: int):
        """The day's AI events; then the bad lines are planted. Non-AI traffic (`non_ai_lines`)
        comes after, drawing on the same random stream."""
        ai_events = 0
        with _LineSpool() as lines:  # bad lines are spoilt copies of these
            while ai_events < target_events:
                user = self.rng.choice(self.users)
                for call in self._conversation(user, self._start_time()):
                    ai_events += 1
                    received = _parse(call["receivedAt"])
                    line = json.dumps(call, separators=(",", ":"))
                    lines.append(line)
                    self._maybe_resend(line, received)
                    yield received, line
            self._plant_bad_lines(lines, max(len(BAD_LINE_KINDS), target_events // 400))

    def _start_time(self) -> datetime:
        hour = min(23, max(0, int(self.rng.gauss(14, 4.5))))
        start = datetime.combine(self.day, time(hour), tzinfo=timezone.utc)
        return start + timedelta(seconds=self.rng.uniform(0, 3600))

    def _conversation(self, user: User, start: datetime):
        rng = self.rng
        model_used, model_version = self.timeline.model(user.variant, self.day)
        keys = {
            "conversation_id": f"conv_{rng.getrandbits(64):016x}",
            "model_used": model_used,
            "model_version": model_version,
            "prompt_version": self.timeline.prompt_version(self.day),
            "feature_flag_state": user.variant,
        }
        if rng.random() < 0.7:
            keys["session_id"] = f"sess_{rng.getrandbits(48):012x}"
        turns = 1
        while turns < 6 and rng.random() < 0.45:
            turns += 1
        signed_in = self.signed_out.random() >= SIGNED_OUT_SHARE
        clock = start
        for prompt_number in range(1, turns + 1):
            intent = rng.choice(list(INTENT_PROMPTS))
            text = self.pools.fill(rng, rng.choice(INTENT_PROMPTS[intent]))
            yield self._call(user, "ai_user_prompt_created", clock, signed_in, {
                **keys, "prompt_number": prompt_number,
                "intent_label": intent if rng.random() < 0.4 else None, "prompt_text": text,
            })
            response, latency = self._response(user, model_version, prompt_number, keys)
            clock += timedelta(milliseconds=latency)
            yield self._call(user, "ai_llm_response_received", clock, signed_in, response)
            if rng.random() < 0.8:
                clock += timedelta(seconds=rng.uniform(3, 90))
                yield self._call(user, "ai_user_action", clock, signed_in,
                                 self._action(user, model_version, prompt_number, keys, clock))
            clock += timedelta(seconds=rng.uniform(20, 240))

    def _response(self, user, model_version, prompt_number, keys) -> tuple[dict, float]:
        rng = self.rng
        latency = rng.lognormvariate(6.7, 0.45)  # median ~800 ms
        if model_version == UPGRADE_MODEL[1]:
            latency *= 1.8
        elif model_version == SWAP_MODEL[1]:
            latency *= 0.6
        failed = rng.random() < 0.04
        error_type = _weighted(rng, ERROR_TYPES) if failed else None
        if error_type == "timeout":
            latency = 30_000 + rng.uniform(0, 500)
        input_tokens = int(rng.lognormvariate(6.0, 0.5))
        cached = int(input_tokens * rng.choice([0, 0, 0.5, 0.8]))
        output_tokens = 0 if failed else int(rng.lognormvariate(5.5, 0.5))
        cost = _cost(self.prices[model_version], input_tokens, cached, output_tokens)
        props = {
            **keys, "prompt_number": prompt_number,
            "response_status": "error" if failed else "success",
            "latency_ms": round(latency, 1),
            "input_tokens": input_tokens, "cached_input_tokens": cached, "output_tokens": output_tokens,
            "token_count": input_tokens + output_tokens,
            "cost": None if rng.random() < 0.15 else round(cost, 8),  # missing: priced downstream
        }
        if failed:
            props["error_type"] = error_type
        else:
            props["response_text"] = self.pools.fill(rng, rng.choice(RESPONSES))
        return props, latency

    def _action(self, user, model_version, prompt_number, keys, at: datetime) -> dict:
        rng = self.rng
        action = _weighted(rng, ACTIONS)
        convert_rate = 0.12
        if model_version == SWAP_MODEL[1] and user.plan == "free":
            convert_rate *= 0.3
        converted = action == "accepted" and rng.random() < convert_rate
        if converted:
            self.conversions.append({
                "conversion_id": f"cv_{rng.getrandbits(48):012x}", "user_id": user.user_id,
                "conversation_id": keys["conversation_id"] if rng.random() < 0.7 else None,
                "occurred_at": at + timedelta(minutes=rng.uniform(1, 180)),
                "type": rng.choice(["subscription_upgrade", "purchase", "trial_start"]),
                "revenue": round(rng.choice([9.0, 29.0, 49.0, 99.0]), 2),
            })
        if action == "escalated" and rng.random() < 0.6:
            self.tickets.append(self._ticket(user, keys["conversation_id"], at + timedelta(hours=rng.uniform(0, 20))))
        return {
            **keys, "prompt_number": prompt_number, "action_type": action, "conversion_flag": converted,
            "rating": rng.randint(1, 5) if rng.random() < 0.3 else None,
            "feedback": self.pools.fill(rng, rng.choice(FEEDBACK)) if rng.random() < 0.1 else None,
        }

    def _ticket(self, user: User, conversation_id: str | None, at: datetime) -> dict:
        rng = self.rng
        return {
            "ticket_id": f"T-{rng.randrange(10**7):07d}", "user_id": user.user_id,
            "conversation_id": conversation_id if conversation_id and rng.random() < 0.5 else None,
            "created_at": at, "channel": rng.choice(["email", "chat", "phone"]),
            "status": rng.choice(["open", "pending", "solved"]),
            "category": rng.choice(["billing", "bug", "account", "how_to"]),
        }

    def _call(self, user: User, event: str, at: datetime, signed_in: bool, properties: dict) -> dict:
        """A track call; signed out, it carries the anonymousId alone (a purchase or ticket that
        follows is still the user's: they signed in to make it)."""
        rng = self.rng
        received = at + timedelta(milliseconds=rng.uniform(150, 2500))
        call = {
            "type": "track", "event": event,
            "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            **({"userId": user.user_id} if signed_in else {}), "anonymousId": user.anonymous_id,
            "timestamp": _iso(at), "originalTimestamp": _iso(at),
            "sentAt": _iso(at + timedelta(milliseconds=100)), "receivedAt": _iso(received),
            "context": self._context_at(user, at), "integrations": {"All": True},
            "properties": properties,
        }
        if user.consent_format == "rudderstack":
            call.update({"channel": "server", "rudderId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                         "request_ip": f"198.51.100.{rng.randrange(1, 255)}"})
        return call

    def _context_at(self, user: User, at: datetime) -> dict:
        """The user's context, less the consent the planted outage lost at `at`."""
        context = _context(user)
        if self.timeline.consent_lost(user, at):
            context.pop("consent", None)
        return context

    def _maybe_resend(self, line: str, received: datetime) -> None:
        if self.rng.random() >= 0.01:
            return
        if received.date() == self.day and received.hour >= 22 and self.rng.random() < 0.5:
            self.resent_tomorrow.append(line)
        elif received.date() == self.day:
            self.resent_today.append(line)

    def _plant_bad_lines(self, lines: "_LineSpool", count: int) -> None:
        kinds = list(BAD_LINE_KINDS)
        for i in range(count):
            kind = kinds[i % len(kinds)]
            call = json.loads(self.rng.choice(lines))
            call["messageId"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            self.bad_lines.append((kind, _spoil(kind, call)))

    def non_ai_lines(self, count: int):
        for _ in range(count):
            user = self.rng.choice(self.users)
            at = self._start_time()
            kind = self.rng.random()
            call = {"messageId": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                    "userId": user.user_id, "anonymousId": user.anonymous_id,
                    "timestamp": _iso(at), "receivedAt": _iso(at + timedelta(seconds=1)),
                    "context": self._context_at(user, at)}
            if kind < 0.6:
                call.update({"type": "page", "name": self.rng.choice(PAGES), "properties": {"path": "/app"}})
            elif kind < 0.8:
                call.update({"type": "identify", "traits": {"plan": user.plan, "email": self.rng.choice(self.pools.values["email"])}})
            else:
                call.update({"type": "track", "event": "Order Completed",
                             "properties": {"order_id": f"o{self.rng.randrange(10**6)}", "revenue": 49.0}})
            yield json.dumps(call, separators=(",", ":"))


class _LineSpool:
    """The day's AI-event lines in a temporary file, each readable by its index: a bad line may be
    made from any of them, and 5M events are 4.7 GB of text, too much to hold in memory."""

    def __init__(self):
        self.file = tempfile.TemporaryFile()
        self.offsets = array("q")
        self.size = 0

    def append(self, line: str) -> None:
        data = line.encode() + b"\n"
        self.offsets.append(self.size)
        self.file.write(data)
        self.size += len(data)

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, index: int) -> str:
        self.file.seek(self.offsets[index])
        line = self.file.readline().decode().rstrip("\n")
        self.file.seek(self.size)  # the next append writes at the end, not over the next line
        return line

    def __enter__(self) -> "_LineSpool":
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


def _spoil(kind: str, call: dict) -> str:
    """One invalid line of the given kind, made from a valid call."""
    props = call["properties"]
    if kind == "truncated_json":
        text = json.dumps(call)
        return text[: len(text) // 2]
    if kind == "invalid_utf8":
        return json.dumps(call)[:40] + "\udcff"  # written with surrogateescape: a lone 0xFF byte
    if kind == "array_line":
        return json.dumps([call])
    if kind == "empty_object":
        return "{}"
    if kind == "missing_required":
        props.pop("conversation_id")
    elif kind == "wrong_type":
        props["prompt_number"] = str(props["prompt_number"])
    elif kind == "unknown_enum":
        call["event"] = "ai_user_action"
        props.update({"action_type": "thumbs_sideways", "conversion_flag": False})
        for name in ("prompt_text", "intent_label", "response_status", "latency_ms", "input_tokens",
                     "cached_input_tokens", "output_tokens", "token_count", "cost", "error_type", "response_text"):
            props.pop(name, None)
    elif kind == "negative_latency":
        call["event"] = "ai_llm_response_received"
        props.update({"response_status": "success", "latency_ms": -250.0})
        for name in ("prompt_text", "intent_label", "action_type", "conversion_flag", "rating", "feedback"):
            props.pop(name, None)
    elif kind == "unplanned_event":
        call["event"] = "ai_tool_called"
    return json.dumps(call)


class _PartitionWriter:
    """Writes one day's lines as gzip part files of several members (as appending writers do)."""

    def __init__(self, store, day: date):
        self.store, self.day = store, day
        self.part = 0
        self.lines_in_part = 0
        self.member: list[str] = []
        self.buffer = io.BytesIO()

    def add(self, line: str) -> None:
        self.member.append(line)
        self.lines_in_part += 1
        if len(self.member) >= LINES_PER_MEMBER:
            self._flush_member()
        if self.lines_in_part >= LINES_PER_PART:
            self._flush_part()

    def close(self) -> None:
        self._flush_part()

    def _flush_member(self) -> None:
        if self.member:
            text = "\n".join(self.member) + "\n"
            self.buffer.write(gzip.compress(text.encode("utf-8", "surrogateescape"), compresslevel=1, mtime=0))
            self.member = []

    def _flush_part(self) -> None:
        self._flush_member()
        if self.buffer.tell():
            key = f"raw/ai_events/dt={self.day.isoformat()}/part-{self.part:05d}.jsonl.gz"
            self.store.put(key, self.buffer.getvalue())
            self.part += 1
        self.buffer = io.BytesIO()
        self.lines_in_part = 0


def _users(rng: random.Random, count: int, first_day: date) -> list[User]:
    users = []
    for i in range(count):
        user_id = f"usr_{i:05d}"
        profile = _weighted(rng, {name: share for name, (share, _) in CONSENT_PROFILES.items()})
        signup = datetime.combine(first_day, time(), tzinfo=timezone.utc) - timedelta(days=rng.uniform(0, 400))
        users.append(User(
            user_id=user_id, anonymous_id=f"anon_{rng.getrandbits(40):010x}", plan=_weighted(rng, PLANS),
            country=rng.choice(["US", "GB", "DE", "IN", "BR", "FR"]), signup_at=signup,
            variant="variant_b" if rng.random() < 0.5 else "control",
            consent_format=rng.choice(["rudderstack", "segment"]), consent_profile=profile,
        ))
    return users


def _context(user: User) -> dict:
    granted = CONSENT_PROFILES[user.consent_profile][1]
    if user.consent_format == "rudderstack":
        context = {"library": {"name": "rudder-sdk-python", "version": "2.1.9"}}
        if granted is not None:
            context["consentManagement"] = {
                "provider": "custom", "resolutionStrategy": "and",
                "allowedConsentIds": sorted(granted), "deniedConsentIds": sorted(set(CONSENT_CATEGORIES) - granted),
            }
        return context
    context = {"library": {"name": "analytics-python", "version": "2.4.0"}}
    if granted is not None:
        context["consent"] = {"categoryPreferences": {c: c in granted for c in CONSENT_CATEGORIES}}
    return context


def _write_sources(store, users, conversions, tickets, days) -> None:
    profiles = [{"user_id": u.user_id, "plan": u.plan, "country": u.country, "signup_at": _iso(u.signup_at)} for u in users]
    store.put("sources/user_profiles/user_profiles.csv", _csv(profiles))
    for day in days:
        todays = [dict(c, occurred_at=_iso(c["occurred_at"])) for c in conversions if c["occurred_at"].date() == day]
        lines = "".join(json.dumps(c) + "\n" for c in todays)
        store.put(f"sources/conversions/dt={day.isoformat()}/conversions.jsonl.gz", gzip.compress(lines.encode(), mtime=0))
        todays = [dict(t, created_at=_iso(t["created_at"])) for t in tickets if t["created_at"].date() == day]
        store.put(f"sources/support_tickets/dt={day.isoformat()}/support_tickets.csv", _csv(todays, list(_TICKET_FIELDS)))


_TICKET_FIELDS = ("ticket_id", "user_id", "conversation_id", "created_at", "channel", "status", "category")


def _csv(rows: list[dict], fieldnames: list[str] | None = None) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fieldnames or list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _load_prices() -> dict[str, dict[str, float]]:
    with open(settings.model_prices_path()) as handle:
        return {row["model_version"]: {k: float(v) for k, v in row.items() if k.endswith("per_mtok")}
                for row in csv.DictReader(handle)}


def _cost(price: dict[str, float], input_tokens: int, cached: int, output_tokens: int) -> float:
    return ((input_tokens - cached) * price["input_usd_per_mtok"] + cached * price["cached_input_usd_per_mtok"]
            + output_tokens * price["output_usd_per_mtok"]) / 1e6


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
