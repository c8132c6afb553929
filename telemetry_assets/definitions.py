"""The Dagster code location: assets from each stage, and resources picked from the environment
(`environment.py`).

Every job runs its steps in one process, one after another (`in_process_executor`). Dagster's
default for launched runs (schedules, the UI) is a process per step, and each would import Dagster,
DuckDB, pandas, pandera and Great Expectations again: `daily_pipeline` on a 1M-event day took 187 s
that way against 50 s in one process (its 22 checks alone: 143 s against 16 to 18 s). The steps
gain nothing from their own processes here: DuckDB takes one writer, so the `warehouse` pool runs
them one at a time anyway.
"""

import dagster as dg

from checks.asset_checks import all_asset_checks
from telemetry_assets import environment
from telemetry_assets.defs.analytics.assets import join_outcomes
from telemetry_assets.defs.erasure.assets import erasure_requests
from telemetry_assets.defs.ingest.assets import ingest_ai_events
from telemetry_assets.defs.maintenance.assets import warehouse_compactions
from telemetry_assets.defs.jobs import (
    checks_only,
    compact_warehouse,
    daily_pipeline,
    expire_raw_text,
    join_job,
    land_job,
    measure_job,
    privacy_checks,
)
from telemetry_assets.defs.metrics.assets import alerts, business_daily, performance_daily, safety_daily, version_comparison
from telemetry_assets.defs.retention.assets import raw_text_expiry
from telemetry_assets.defs.schedules import (
    alert_sensor,
    checks_only_schedule,
    daily_pipeline_schedule,
    late_objects_sensor,
    privacy_checks_schedule,
    raw_text_expiry_schedule,
    run_failure_alert,
    warehouse_compaction_schedule,
)
from telemetry_assets.defs.sources.assets import source_assets

defs = dg.Definitions(
    assets=[
        ingest_ai_events, safety_daily, *source_assets, join_outcomes, performance_daily, business_daily,
        version_comparison, alerts, raw_text_expiry, erasure_requests, warehouse_compactions,
    ],
    asset_checks=all_asset_checks(),
    jobs=[daily_pipeline, land_job, join_job, measure_job, checks_only, expire_raw_text, privacy_checks,
          compact_warehouse],
    schedules=[daily_pipeline_schedule, checks_only_schedule, raw_text_expiry_schedule, privacy_checks_schedule,
               warehouse_compaction_schedule],
    sensors=[alert_sensor, late_objects_sensor, run_failure_alert],
    executor=dg.in_process_executor,
    resources=environment.resources(),
)
