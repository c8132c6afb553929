"""When things run on their own: the daily schedules, late raw objects, alert delivery, and run
failures. (Freshness of the raw partitions is a `FreshnessPolicy` on `audit/ingest_files`, the ledger
of each day's raw objects.)

Each morning the schedule runs `daily_pipeline` for yesterday and again for the day before: the
day before's turns and conversations read yesterday's events and outcomes (answers and tickets after
midnight), so it is recomputed once yesterday has landed. Yesterday's run carries the higher
priority, and the instance queues one run at a time (`config/dagster.yaml`), so it lands first.
"""

import hashlib
from datetime import date, datetime, timedelta, timezone

import dagster as dg
import duckdb

from checks.sources import load_sources
from resources.alert_sinks import AlertRouter
from resources.duckdb_files import DatabaseLockedError, connect
from resources.object_store import ObjectStore
from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.analytics.alerts import AlertLedger, deliver
from telemetry_assets.defs.jobs import checks_only, compact_warehouse, daily_pipeline, expire_raw_text, privacy_checks
from telemetry_assets.ingest.reconcile import objects_changed_since_landing

SCHEDULE_HOUR_UTC = 2


@dg.schedule(job=daily_pipeline, cron_schedule=f"0 {SCHEDULE_HOUR_UTC} * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def daily_pipeline_schedule(context: dg.ScheduleEvaluationContext):
    """Yesterday's partition, then the day before's again for its late events."""
    today = (context.scheduled_execution_time or datetime.utcnow()).date()
    for offset, priority in ((1, 10), (2, 0)):
        day = (today - timedelta(days=offset)).isoformat()
        yield dg.RunRequest(run_key=f"{day}@{today}", partition_key=day, tags={"dagster/priority": str(priority)})


RECHECK_DAYS = 7
CHECKS_HOUR_UTC = 6


@dg.schedule(job=checks_only, cron_schedule=f"0 {CHECKS_HOUR_UTC} * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def checks_only_schedule(context: dg.ScheduleEvaluationContext):
    """Every check again on each of the last week's days, writing nothing: catches what changed after a
    day landed (an export rewritten, a table edited by hand, a weaker policy). The partition goes in
    as a tag because a job of checks alone has no partitioning Dagster can infer."""
    today = (context.scheduled_execution_time or datetime.utcnow()).date()
    for offset in range(1, RECHECK_DAYS + 1):
        day = (today - timedelta(days=offset)).isoformat()
        yield dg.RunRequest(run_key=f"checks {day}@{today}", tags={"dagster/partition": day})


EXPIRY_HOUR_UTC = 3


@dg.schedule(job=expire_raw_text, cron_schedule=f"0 {EXPIRY_HOUR_UTC} * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def raw_text_expiry_schedule(context: dg.ScheduleEvaluationContext):
    """Each night, raw text past the policy's retention leaves the secure store. Running by default,
    unlike the schedules that land data: a retention nobody switched on would keep text it promised
    to drop."""
    today = (context.scheduled_execution_time or datetime.utcnow()).date()
    return dg.RunRequest(run_key=f"expiry@{today}")


PRIVACY_CHECKS_HOUR_UTC = 4


@dg.schedule(job=privacy_checks, cron_schedule=f"0 {PRIVACY_CHECKS_HOUR_UTC} * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def privacy_checks_schedule(context: dg.ScheduleEvaluationContext):
    """Each night, after the day has landed and raw text expired, check that no text outlived its
    retention and no erased person is held anywhere: a warehouse or secure store restored from a
    backup, or a table edited by hand, would bring them back without any run saying so. Running by
    default, as the expiry does; it writes nothing."""
    today = (context.scheduled_execution_time or datetime.utcnow()).date()
    return dg.RunRequest(run_key=f"privacy checks@{today}")


COMPACTION_HOUR_UTC = 5


@dg.schedule(job=compact_warehouse, cron_schedule=f"0 {COMPACTION_HOUR_UTC} * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def warehouse_compaction_schedule(context: dg.ScheduleEvaluationContext):
    """Each night, once the day's runs have written, compact the warehouse file they left part-filled.
    Running by default: the pipeline's own checkpoints leave that to it."""
    today = (context.scheduled_execution_time or datetime.utcnow()).date()
    return dg.RunRequest(run_key=f"compaction@{today}")


LATE_OBJECT_DAYS = 7
LANDED = dg.AssetKey(["audit", "ingest_files"])


@dg.sensor(job=daily_pipeline, minimum_interval_seconds=15 * 60, default_status=dg.DefaultSensorStatus.STOPPED)
def late_objects_sensor(context: dg.SensorEvaluationContext, lake: ObjectStore, warehouse: Warehouse):
    """Lands a day of the last week again when raw objects or business source files arrived after
    it landed (a delivery retried after an outage, a helpdesk export run late) or were written
    again since (an upstream job re-run over its output), and the day before it, as the daily
    schedule does: its conversations are matched to the day's events, tickets and conversions.
    Without it they waited, unread, for someone to notice. A day never landed is left to the
    schedule or a backfill. The run keys name the objects and their versions, so one arrival or
    rewrite is run once, however often the sensor looks."""
    today = datetime.now(timezone.utc).date()
    landed = sorted(day for day in map(date.fromisoformat, context.instance.get_materialized_partitions(LANDED))
                    if today - timedelta(days=LATE_OBJECT_DAYS) <= day < today)
    try:
        con = connect(warehouse.database, 0, read_only=True)
    except (DatabaseLockedError, duckdb.Error) as busy:
        return dg.SkipReason(f"warehouse busy: {busy}")
    with con:
        changed = objects_changed_since_landing(lake, con, landed, list(load_sources(settings.sources_path()).values()))
    if not changed:
        return dg.SkipReason(f"no object arrived or changed after its day landed ({len(landed)} landed days looked at)")
    context.log.info("; ".join(f"{day}: {len(objects)} object(s) new or written again, e.g. {objects[0].key}"
                               for day, objects in changed.items()))
    listed = "\n".join(f"{obj.key} {obj.version}" for objects in changed.values() for obj in objects)
    digest = hashlib.sha256(listed.encode()).hexdigest()[:16]
    priorities: dict[date, int] = {}
    for day in changed:
        priorities[day] = 10
        if day - timedelta(days=1) in landed:
            priorities.setdefault(day - timedelta(days=1), 0)
    return [dg.RunRequest(run_key=f"late objects {day} {digest}", partition_key=day.isoformat(),
                          tags={"dagster/priority": str(priority)})
            for day, priority in sorted(priorities.items(), reverse=True)]


ALERT_LOOKBACK_DAYS = 14


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def alert_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse, alert_router: AlertRouter):
    """Delivers each `metrics.alerts` row of the last two weeks whose dedupe key was never sent, to
    every sink; evaluating again sends nothing new. Skips a tick while a run holds the warehouse."""
    try:
        con = connect(warehouse.database, 0, read_only=True)
    except (DatabaseLockedError, duckdb.Error) as busy:
        return dg.SkipReason(f"warehouse busy: {busy}")
    with con:
        today = datetime.now(timezone.utc).date()
        sent = deliver(con, alert_router.sinks(), AlertLedger(settings.alert_ledger_path()),
                       today - timedelta(days=ALERT_LOOKBACK_DAYS), today)
    return dg.SkipReason(f"delivered {len(sent)} new alert(s)")


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.STOPPED)
def run_failure_alert(context: dg.RunFailureSensorContext, alert_router: AlertRouter):
    """A failed run is an alert too (a blocking check that failed stops the run, so it lands here)."""
    run = context.dagster_run
    alert = {"dt": datetime.now(timezone.utc).date().isoformat(), "rule": "run_failed", "severity": "critical",
             "group_key": run.job_name, "value": None, "baseline": None,
             "message": f"{run.job_name} failed for partition {run.tags.get('dagster/partition')}: "
                        f"{context.failure_event.message}", "dedupe_key": f"run_failed|{run.run_id}"}
    for sink in alert_router.sinks():
        sink.send(alert)
