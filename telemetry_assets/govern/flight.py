"""Governance in flight: each chunk's kept events are decided, redacted, classified, delivered, logged.

Runs on each chunk's view `kept_rows` (row_id, the typed columns, the call's `consent_fragments`,
`plan_violations`, `outcome`), so raw text only ever exists in memory:

1. consent state per category and a decision per destination, in SQL over the call's consent objects;
2. free text pulled into a frame, redacted (`redact.py`), prompts classified (`intent.py`);
3. the `warehouse` destination is the `governed.*` tables; the other destinations are JSONL exports
   under `exports/<destination>/dt=…/` in the lake, except `secure_archive`, which puts raw text in
   the secure store; each gets only the events its consent allows and the text its policy allows;
4. one `audit.governance_log` row per event: versions, redaction counts, intent source, consent
   state, every destination delivered or blocked with the reason.

Exports and the secure store are replaced per partition like the tables, but are not in the
warehouse transaction: a failed run leaves them to the next run of the day, which replaces them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Iterable

import numpy as np
import pandas as pd
from isal import isal_zlib

from checks.tracking_plan import EventPlan
from telemetry_assets.govern.consent import decision_sql, with_consent_sql
from telemetry_assets.govern.exports import PartUploads, back_to_back, export_prefix, json_lines
from telemetry_assets.govern.intent import IntentRules, classify, in_sample_sql
from telemetry_assets.govern.policy import SECURE_DESTINATION, Policy
from telemetry_assets.govern.redact import Redactor
from telemetry_assets.ingest.staging import Staging
from telemetry_assets.ingest.tables import governed_table
from telemetry_assets.record_batches import text_frame
from telemetry_assets.stage_clock import StageClock

WAREHOUSE = "warehouse"
# Stages a partition's time is reported under (see `telemetry bench`); `land` is shared with ingest.
REDACT, ROUTE, LAND = "redact+classify", "route+exports", "land"
PROMPT_EVENT = "ai_user_prompt_created"


def text_fields(plan: EventPlan, policy: Policy):
    """The event's free text: sensitive fields, and any other string property the policy redacts.
    One rule for what governance redacts and what the leak scans and safety suites inspect."""
    return [f for f in plan.fields if f.type == "string" and (f.sensitive or f.column in policy.redact_fields)]


def _as_rfc3339(plan: EventPlan) -> str:
    """A `REPLACE` clause writing the event's timestamps as RFC 3339 UTC (`2026-09-01T14:27:15.207000Z`),
    as the SDKs send them: DuckDB writes a TIMESTAMP as `2026-09-01 14:27:15.207`, which a consumer
    loading the export cannot tell from local time. Costs 3% of the export's writing."""
    stamps = [f.column for f in plan.fields if f.type == "timestamp" and f.has_value_column]
    if not stamps:
        return ""
    rfc3339 = "'%Y-%m-%dT%H:%M:%S.%fZ'"
    return " REPLACE (" + ", ".join(f'strftime("{c}", {rfc3339}) AS "{c}"' for c in stamps) + ")"


def gzip_member(blocks: Iterable[bytes]) -> bytes:
    """Plain gzip that any consumer reads, written by ISA-L: the exports of 1M events (1.36 GB of
    JSONL) take 1.9 s at its level 1 against 9.3 s at zlib's, and come out smaller (165 MB, 183 MB)."""
    compressor = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)  # wbits 31: a gzip member
    return b"".join([*(compressor.compress(block) for block in blocks), compressor.flush()])


@dataclass
class Governor:
    policy: Policy
    redactor: Redactor
    intents: IntentRules
    store: object  # ObjectStore: put, delete_prefix
    secure_con: object  # a connection to the secure store
    day: date
    clock: StageClock
    staging: Staging  # the warehouse rows, published with the partition
    # set when the day is already past the policy's raw-text retention: the archive then gets ids,
    # not text, all stamped with this one time
    text_expired_at: datetime | None = None
    # Two tasks (each one event of a chunk) are governed at once: they share the secure store's
    # connection (one DuckDB connection must not run two statements at once).
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _uploads: PartUploads = field(init=False)

    def __post_init__(self) -> None:
        self._uploads = PartUploads(self.store)

    @property
    def export_destinations(self) -> list[str]:
        return [name for name in self.policy.destinations if name not in (WAREHOUSE, SECURE_DESTINATION)]

    def start(self) -> None:
        """Clear the day's exports: this run replaces them. Archived text is staged in the secure
        store itself (never on other disk) and replaces the day's in `finish`."""
        for destination in self.export_destinations:
            self.store.delete_prefix(export_prefix(destination, self.day))
        self.secure_con.execute("CREATE OR REPLACE TABLE raw_text_staged AS FROM raw_text LIMIT 0")

    def finish(self) -> None:
        with self.clock.stage(ROUTE):
            self._uploads.finish()
        self.secure_con.execute("BEGIN TRANSACTION")
        try:
            self.secure_con.execute("DELETE FROM raw_text WHERE dt = ?", [self.day])
            self.secure_con.execute("INSERT INTO raw_text SELECT * FROM raw_text_staged")
            self.secure_con.execute("DROP TABLE raw_text_staged")
            self.secure_con.execute("COMMIT")
        except BaseException:
            self.secure_con.execute("ROLLBACK")
            raise

    def abort(self) -> None:
        self._uploads.abort()
        self.secure_con.execute("DROP TABLE IF EXISTS raw_text_staged")

    def govern(self, con, plan: EventPlan, plan_version: str, chunk: int) -> None:
        """The kept rows of one event of chunk number `chunk`, which names the event's export parts."""
        with self.clock.stage(ROUTE):
            self._decide(con)
        with self.clock.stage(REDACT):
            raw = self._raw_text(con, plan)
            # copied into DuckDB once: four statements read it, and a native table is faster to join
            con.register("governed_text_frame", self._redact_and_classify(raw, plan))
            con.execute("CREATE OR REPLACE TEMP TABLE governed_text AS FROM governed_text_frame")
            con.register("raw_text_frame", raw)
        stamps = {"day": self.day, "plan_version": plan_version, "policy_version": self.policy.version}
        with self.clock.stage(LAND):
            if WAREHOUSE in self.policy.destinations:
                self.staging.insert(con, governed_table(plan.name), self._rows_for(plan, WAREHOUSE), stamps)
            self.staging.insert(con, "audit.governance_log", self._log_sql(plan), {**stamps, "event": plan.name})
        with self.clock.stage(ROUTE):
            for destination in self.export_destinations:
                self._export(con, plan, destination, {**stamps, "event": plan.name}, chunk)
            if SECURE_DESTINATION in self.policy.destinations and self.policy.store_raw_text != "never":
                self._archive(con, plan)

    def _decide(self, con) -> None:
        decisions = []
        for name in self.policy.destinations:
            deliver, reason = decision_sql(self.policy, name)
            decisions.append(f'{deliver} AS "deliver__{name}", {reason} AS "reason__{name}"')
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE decisions AS
            SELECT row_id, consent, consent_strategy, {", ".join(decisions)}
            FROM ({with_consent_sql(self.policy, "SELECT row_id, consent_fragments FROM kept_rows")})"""
        )

    def _text_fields(self, plan: EventPlan):
        return text_fields(plan, self.policy)

    def _raw_text(self, con, plan: EventPlan) -> pd.DataFrame:
        """The free text as sent (the plan's string columns hold a value only when it was a JSON string),
        in no order: what is made of it is joined back by row_id."""
        keys = ["message_id", "user_id", "anonymous_id", "conversation_id", *(["intent_label"] if plan.name == PROMPT_EVENT else [])]
        columns = [f'"{c}"' for c in ["row_id", *keys, *(f.column for f in self._text_fields(plan))]]
        if plan.name == PROMPT_EVENT:
            columns.append(f"{in_sample_sql('conversation_id', self.policy.intent_sample_rate)} AS in_intent_sample")
        return text_frame(con, f"SELECT {', '.join(columns)} FROM kept_rows")

    def _redact_and_classify(self, raw: pd.DataFrame, plan: EventPlan) -> pd.DataFrame:
        """Redacted text per field, `texts_present`, the redactions per entity summed over the
        event's fields (`redacted__<entity>` columns), and for prompts the intent."""
        out = pd.DataFrame({"row_id": raw["row_id"]})
        totals = np.zeros((len(raw), len(self.redactor.entities)), dtype=np.int32)
        sensitive = [f.column for f in self._text_fields(plan) if f.sensitive]
        out["texts_present"] = raw[sensitive].notna().sum(axis=1).astype("int32") if sensitive else 0
        for f in self._text_fields(plan):
            if f.column not in self.policy.redact_fields:
                continue  # sensitive but not listed: no redacted copy exists, so only raw destinations get it
            redacted = self.redactor.redact(raw[f.column])
            out[f.column] = redacted.texts.to_numpy()
            totals += redacted.counts.to_numpy(dtype=np.int32)  # a frame of no entity has no dtype of its own
        for column, entity in enumerate(self.redactor.entities):
            out[f"redacted__{entity}"] = totals[:, column]
        if plan.name == PROMPT_EVENT:
            out["intent_label"], out["intent_source"] = self._intents(raw)
        return out

    def _intents(self, raw: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        predicted = classify(raw["prompt_text"], self.intents)
        keep = predicted.notna() & (raw["in_intent_sample"] | predicted.isin(self.policy.always_classify))
        provided = raw["intent_label"].notna()
        label = raw["intent_label"].where(provided, predicted.where(keep))
        source = pd.Series("not_sampled", index=raw.index, dtype="str")
        source[keep] = "classified"
        source[provided] = "provided"
        return label.astype("str"), source

    def _rows_for(self, plan: EventPlan, destination: str) -> str:
        """The SELECT of one destination's rows: its consent, its text policy."""
        text_policy = self.policy.destinations[destination].text
        text_fields = {f.column for f in self._text_fields(plan)}
        overridden = text_fields | ({"intent_label"} if plan.name == PROMPT_EVENT else set())
        columns = [f'k."{f.column}"' for f in plan.fields if f.has_value_column and f.column not in overridden]
        if plan.name == PROMPT_EVENT:
            columns += ["t.intent_label", "t.intent_source"]
        for column in sorted(text_fields):
            if text_policy == "raw":
                columns.append(f'r."{column}"')
            elif text_policy == "redacted" and column in self.policy.redact_fields:
                columns.append(f't."{column}"')
        raw_join = "JOIN raw_text_frame r USING (row_id)" if text_policy == "raw" else ""
        return f"""SELECT $day AS dt, {", ".join(columns)}, k.source_key, k.line_number,
                $plan_version AS tracking_plan_version, $policy_version AS policy_version, k.plan_violations
            FROM kept_rows k JOIN decisions d USING (row_id) JOIN governed_text t USING (row_id) {raw_join}
            WHERE d."deliver__{destination}" """

    def _export(self, con, plan: EventPlan, destination: str, stamps: dict, chunk: int) -> None:
        """DuckDB makes the rows JSON lines, ISA-L gzips them (several times faster than DuckDB's
        gzip), and `PartUploads` uploads them while the next event is processed. One part per event
        and chunk, named after both: a re-run of the day writes the same keys."""
        rows = con.sql(f"SELECT $event AS event, *{_as_rfc3339(plan)} FROM ({self._rows_for(plan, destination)})",
                       params=stamps)
        lines = json_lines(rows)
        if not len(lines):
            return
        key = f"{export_prefix(destination, self.day)}{plan.name}-{chunk:05d}.jsonl.gz"
        self._uploads.put(key, gzip_member(back_to_back(lines)))

    def _archive(self, con, plan: EventPlan) -> None:
        """One secure-store row per raw text field the archive may have, unpivoted by DuckDB and
        handed over as Arrow (pandas' melt and the frame scan took 4 s of a 1M-event ingest). A day
        past retention is archived as already expired: which fields arrived, without text or user."""
        fields = [f'"{f.column}"' for f in self._text_fields(plan)]
        if not fields:
            return
        expired = self.text_expired_at is not None
        kept = ("NULL::VARCHAR AS user_id, NULL::VARCHAR AS anonymous_id, NULL::VARCHAR AS text" if expired
                else "user_id, anonymous_id, text")
        archived = con.sql(
            f"""SELECT $day AS dt, message_id, $event AS event, field, {kept}, $expired_at::TIMESTAMPTZ AS expired_at
                FROM (UNPIVOT (SELECT r.message_id, r.user_id, r.anonymous_id, {", ".join(f"r.{c}" for c in fields)}
                         FROM raw_text_frame r JOIN decisions d USING (row_id) WHERE d."deliver__{SECURE_DESTINATION}")
                ON {", ".join(fields)} INTO NAME field VALUE text)""",
            params={"day": self.day, "event": plan.name, "expired_at": self.text_expired_at}).to_arrow_table()
        with self._lock:
            self.secure_con.register("archived", archived)
            self.secure_con.execute("INSERT INTO raw_text_staged BY NAME SELECT * FROM archived")

    def _redactions_sql(self) -> str:
        """MAP(entity -> count) of the entities redacted from the event, leaving out zeros."""
        entries = ", ".join(f"{{'key': '{e}', 'value': t.\"redacted__{e}\"}}" for e in self.redactor.entities)
        if not entries:
            return "MAP {}::MAP(VARCHAR, INTEGER)"
        return f"map_from_entries(list_filter([{entries}], lambda e: e.value > 0))::MAP(VARCHAR, INTEGER)"

    def _log_sql(self, plan: EventPlan) -> str:
        names = list(self.policy.destinations)
        delivered = ", ".join(f"""CASE WHEN d."deliver__{n}" THEN '{n}' END""" for n in names)
        blocked = ", ".join(
            f"""CASE WHEN NOT d."deliver__{n}" THEN {{'destination': '{n}', 'reason': d."reason__{n}"}} END""" for n in names
        )
        return f"""SELECT $day AS dt, k.message_id, $event AS event, k.source_key, k.line_number, k.outcome,
                $plan_version AS tracking_plan_version, $policy_version AS policy_version,
                {"t.intent_source" if plan.name == PROMPT_EVENT else "NULL"} AS intent_source, t.texts_present,
                {self._redactions_sql()} AS redactions,
                d.consent, d.consent_strategy,
                list_filter([{delivered}], lambda x: x IS NOT NULL) AS delivered,
                list_filter([{blocked}], lambda x: x IS NOT NULL) AS blocked
            FROM kept_rows k JOIN decisions d USING (row_id) JOIN governed_text t USING (row_id)"""
