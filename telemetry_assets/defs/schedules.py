"""When things run on their own: the daily schedule. (Freshness of the raw partitions is a
`FreshnessPolicy` on `audit/ingest_files`, the ledger of each day's raw objects.)

Each morning the schedule runs `daily_pipeline` for yesterday and again for the day before: the
day before's turns and conversations read yesterday's events and outcomes (answers and tickets after
midnight), so it is recomputed once yesterday has landed. Yesterday's run carries the higher
priority, and the instance queues one run at a time (`config/dagster.yaml`), so it lands first.
"""

from datetime import datetime, timedelta

import dagster as dg

from telemetry_assets.defs.jobs import daily_pipeline

SCHEDULE_HOUR_UTC = 2


@dg.schedule(job=daily_pipeline, cron_schedule=f"0 {SCHEDULE_HOUR_UTC} * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def daily_pipeline_schedule(context: dg.ScheduleEvaluationContext):
    """Yesterday's partition, then the day before's again for its late events."""
    today = (context.scheduled_execution_time or datetime.utcnow()).date()
    for offset, priority in ((1, 10), (2, 0)):
        day = (today - timedelta(days=offset)).isoformat()
        yield dg.RunRequest(run_key=f"{day}@{today}", partition_key=day, tags={"dagster/priority": str(priority)})
