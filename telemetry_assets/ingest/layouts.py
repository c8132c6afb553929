"""Which raw objects belong to a partition, for the three layouts DESIGN.md names.

- hive:        raw/ai_events/dt=YYYY-MM-DD/<name>
- rudderstack: [<prefix>/]rudder-logs/<sourceId>/<YYYY-MM-DD | MM-DD-YYYY>/<name>.json.gz
- segment:     [<prefix>/]segment-logs/<sourceId>/<UTC day as epoch ms>/<name>.gz

The date in the key is the partition: every object whose key date is the day is read, whatever
the layout. Finding them walks folders (never the whole lake), so a partition's listing cost does
not grow with the lake's history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Protocol

HIVE_ROOT = "raw/ai_events/"
DUMP_FOLDERS = ("rudder-logs/", "segment-logs/")
RAW_SUFFIXES = (".json.gz", ".jsonl.gz", ".jsonl", ".json", ".gz")

_HIVE = re.compile(r"^raw/ai_events/dt=(?P<day>\d{4}-\d{2}-\d{2})/[^/]+$")
_RUDDER = re.compile(
    r"^(?:.+/)?rudder-logs/(?P<source>[^/]+)/(?P<day>\d{4}-\d{2}-\d{2}|\d{2}-\d{2}-\d{4})/[^/]+$"
)
_SEGMENT = re.compile(r"^(?:.+/)?segment-logs/(?P<source>[^/]+)/(?P<epoch_ms>\d{10,14})/[^/]+$")


@dataclass(frozen=True)
class RawObject:
    key: str
    layout: str  # hive | rudderstack | segment
    source_id: str | None
    day: date
    version: str = ""  # as the listing saw it (`ListedObject.version`): a rewrite of the key changes it


class Lister(Protocol):
    def list_objects(self, prefix: str): ...
    def list_folders(self, prefix: str) -> list[str]: ...


def detect(key: str, version: str = "") -> RawObject | None:
    """The layout, source and day of a key, or None when the key is not a raw event object."""
    if not key.endswith(RAW_SUFFIXES):
        return None
    if match := _HIVE.match(key):
        return RawObject(key, "hive", None, date.fromisoformat(match["day"]), version)
    if match := _RUDDER.match(key):
        return RawObject(key, "rudderstack", match["source"], _rudder_day(match["day"]), version)
    if match := _SEGMENT.match(key):
        epoch_day = datetime.fromtimestamp(int(match["epoch_ms"]) / 1000, tz=timezone.utc).date()
        return RawObject(key, "segment", match["source"], epoch_day, version)
    return None


def _rudder_day(text: str) -> date:
    if text[4] == "-":
        return date.fromisoformat(text)
    month, day, year = text.split("-")
    return date(int(year), int(month), int(day))


def segment_folder_name(day: date) -> str:
    """Segment names a day's folder by its UTC midnight in epoch milliseconds."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return str(int(midnight.timestamp() * 1000))


def partition_objects(store: Lister, day: date) -> list[RawObject]:
    """Every raw object of one day, in key order (the order dedupe treats as arrival order)."""
    listed = list(store.list_objects(f"{HIVE_ROOT}dt={day.isoformat()}/"))
    for dump_root in _dump_roots(store):
        day_folders = _day_folder_names(dump_root, day)
        for source_folder in store.list_folders(dump_root):
            for day_folder in day_folders:
                listed.extend(store.list_objects(f"{source_folder}{day_folder}/"))
    versions = {entry.key: entry.version for entry in listed}
    objects = (detect(key, versions[key]) for key in sorted(versions))
    return [obj for obj in objects if obj is not None and obj.day == day]


def _dump_roots(store: Lister) -> list[str]:
    """`rudder-logs/` and `segment-logs/` folders at the lake root or one folder below it."""
    top = store.list_folders("")
    candidates = top + [sub for folder in top for sub in store.list_folders(folder)]
    return [folder for folder in candidates if folder.rsplit("/", 2)[-2] + "/" in DUMP_FOLDERS]


def _day_folder_names(dump_root: str, day: date) -> list[str]:
    if dump_root.endswith("rudder-logs/"):
        return [day.isoformat(), day.strftime("%m-%d-%Y")]
    return [segment_folder_name(day)]
