"""PII-leak scan: governed text and exports must hold no personal data, whatever the policy says.

Runs every detector the redactor has (all entity types, even those the policy no longer redacts) over
a day's governed text columns and non-raw exports. A hit means governance was bypassed or weakened:
the check fails, and because it is blocking, no metric is computed from the day. It reports where
(table or export, column, message_id, entity types), never the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from telemetry_assets.govern.exports import export_rows
from telemetry_assets.govern.redact import Redactor
from telemetry_assets.record_batches import record_batches

EXAMPLES = 5


@dataclass(frozen=True)
class LeakScan:
    location: str
    texts_scanned: int
    leaks: pd.DataFrame  # message_id, column, entities

    @classmethod
    def combined(cls, location: str, scans: list["LeakScan"]) -> "LeakScan":
        leaks = [s.leaks for s in scans if not s.leaks.empty]
        return cls(location, sum(s.texts_scanned for s in scans),
                   pd.concat(leaks, ignore_index=True) if leaks else _no_leaks())

    @property
    def passed(self) -> bool:
        return self.leaks.empty

    def metadata(self) -> dict:
        by_entity: dict[str, int] = {}
        for entities in self.leaks["entities"]:
            for entity in entities.split(", "):
                by_entity[entity] = by_entity.get(entity, 0) + 1
        examples = self.leaks.head(EXAMPLES).to_dict("records")
        return {"location": self.location, "texts_scanned": self.texts_scanned, "leaking_values": len(self.leaks),
                **{f"leaks/{entity}": count for entity, count in sorted(by_entity.items())},
                "examples": "; ".join(f"{e['column']} of {e['message_id']}: {e['entities']}" for e in examples) or "none"}


def scan_table(con, table: str, day: date, columns: list[str]) -> LeakScan:
    """The day's text of a table, scanned a record batch at a time (only rows that carry text)."""
    if not columns:
        return LeakScan(table, 0, _no_leaks())
    return _scan_rows(con, table, f"SELECT * FROM {table} WHERE dt = ?", [day], columns)


def scan_exports(con, store, destination: str, day: date, columns: list[str]) -> LeakScan:
    with export_rows(store, destination, day, ["message_id", *columns]) as rows:
        return _scan_rows(con, f"exports/{destination}", f"SELECT * FROM {rows}", [], columns)


def _scan_rows(con, location: str, select_sql: str, params: list, columns: list[str]) -> LeakScan:
    selected = ", ".join(f'"{c}"' for c in columns)
    with_text = " OR ".join(f'"{c}" IS NOT NULL' for c in columns)
    detector = Redactor()  # every entity type, masked: only the counts are used
    reader = record_batches(con, f"SELECT message_id, {selected} FROM ({select_sql}) WHERE {with_text}", params)
    return LeakScan.combined(location, [_scan(location, batch.to_pandas(), columns, detector) for batch in reader])


def _scan(location: str, frame: pd.DataFrame, columns: list[str], detector: Redactor) -> LeakScan:
    found, scanned = [], 0
    for column in columns:
        texts = frame[column].dropna().astype("str")
        scanned += len(texts)
        counts = detector.redact(texts).counts.to_numpy()
        entities = detector.entities
        message_ids = frame.loc[texts.index, "message_id"].to_numpy()
        for row in counts.any(axis=1).nonzero()[0]:
            hits = sorted(entity for entity, count in zip(entities, counts[row]) if count)
            found.append({"message_id": message_ids[row], "column": column, "entities": ", ".join(hits)})
    return LeakScan(location, scanned, pd.DataFrame(found, columns=["message_id", "column", "entities"]))


def _no_leaks() -> pd.DataFrame:
    return pd.DataFrame(columns=["message_id", "column", "entities"])
