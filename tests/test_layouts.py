from datetime import date

import pytest

from telemetry_assets.ingest.layouts import detect, partition_objects, segment_folder_name

DAY = date(2026, 9, 15)


@pytest.mark.parametrize(
    "key, layout, source, day",
    [
        ("raw/ai_events/dt=2026-09-15/part-00000.jsonl.gz", "hive", None, DAY),
        ("raw/ai_events/dt=2026-09-15/events.json", "hive", None, DAY),
        ("rudder-logs/2Xk9src/09-15-2026/1789434000.2Xk9src.0b9b.json.gz", "rudderstack", "2Xk9src", DAY),
        ("rudder-logs/2Xk9src/2026-09-15/1789434000.2Xk9src.0b9b.json.gz", "rudderstack", "2Xk9src", DAY),
        ("acme/prod/rudder-logs/src/2026-09-15/1.src.u.json.gz", "rudderstack", "src", DAY),
        ("segment-logs/2Xk9src/1789430400000/1789434000.2Xk9src.1447.gz", "segment", "2Xk9src", DAY),
        ("team/segment-logs/s/1789430400000/x.gz", "segment", "s", DAY),
    ],
)
def test_detects_each_layout_and_its_day(key, layout, source, day):
    found = detect(key)
    assert (found.layout, found.source_id, found.day) == (layout, source, day)


@pytest.mark.parametrize(
    "key",
    [
        "sources/conversions/dt=2026-09-15/conversions.jsonl.gz",  # not raw events
        "raw/ai_events/dt=2026-09-15/_SUCCESS",  # marker file, not data
        "rudder-logs/src/15-09/1.json.gz",  # not a date folder
        "segment-logs/src/notanepoch/x.gz",
        "exports/warehouse/dt=2026-09-15/part.jsonl",
    ],
)
def test_ignores_keys_that_are_not_raw_event_objects(key):
    assert detect(key) is None


def test_segment_folder_is_utc_midnight_in_epoch_ms():
    assert segment_folder_name(DAY) == "1789430400000"


def test_partition_reads_every_layout_for_its_day_and_nothing_else(lake):
    wanted = [
        "raw/ai_events/dt=2026-09-15/part-0.jsonl.gz",
        "rudder-logs/srcA/09-15-2026/1.srcA.a.json.gz",
        "rudder-logs/srcA/2026-09-15/2.srcA.b.json.gz",
        "acme/rudder-logs/srcB/2026-09-15/3.srcB.c.json.gz",
        "segment-logs/srcC/1789430400000/4.srcC.d.gz",
    ]
    other_days = [
        "raw/ai_events/dt=2026-09-16/part-0.jsonl.gz",
        "rudder-logs/srcA/09-14-2026/0.srcA.z.json.gz",
        "segment-logs/srcC/1789516800000/5.srcC.e.gz",
    ]
    for key in wanted + other_days + ["sources/user_profiles/user_profiles.csv"]:
        lake.put(key, b"")
    assert [obj.key for obj in partition_objects(lake, DAY)] == sorted(wanted)
