"""The schedules ask for the right days: yesterday first, then the day before for its late events;
and every check again over the last week, on a job that writes nothing."""

from datetime import datetime, timezone

import dagster as dg

from telemetry_assets.defs.schedules import RECHECK_DAYS, checks_only_schedule, daily_pipeline_schedule

MORNING = datetime(2026, 9, 10, 2, tzinfo=timezone.utc)


def requests(schedule) -> list[dg.RunRequest]:
    return list(schedule(dg.build_schedule_context(scheduled_execution_time=MORNING)))


def test_the_daily_schedule_runs_yesterday_first_then_the_day_before_again():
    runs = requests(daily_pipeline_schedule)
    assert [(r.partition_key, r.tags["dagster/priority"]) for r in runs] == [("2026-09-09", "10"), ("2026-09-08", "0")]
    assert len({r.run_key for r in runs}) == 2


def test_the_check_only_schedule_rechecks_the_last_week_by_partition_tag():
    runs = requests(checks_only_schedule)
    assert len(runs) == RECHECK_DAYS
    assert [r.tags["dagster/partition"] for r in runs][:2] == ["2026-09-09", "2026-09-08"]
    assert runs[-1].tags["dagster/partition"] == "2026-09-03"
    assert all(r.partition_key is None for r in runs)
