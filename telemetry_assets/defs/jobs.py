"""Jobs. `daily_pipeline` is every asset of one day. `telemetry run` uses its three stages in turn
over a whole range (land every day, then join every day, then measure every day), because each
stage reads later days of the one before: joins read the next days' events and outcomes, business
metrics the next week's conversations. Run day by day, they would miss what arrives after midnight."""

import dagster as dg

from telemetry_assets.defs.erasure.assets import ERASURE_REQUESTS
from telemetry_assets.defs.maintenance.assets import WAREHOUSE_COMPACTIONS
from telemetry_assets.defs.retention.assets import RAW_TEXT_EXPIRY

LANDED = dg.AssetSelection.groups("ingest", "governed", "sources") | dg.AssetSelection.assets(["metrics", "safety_daily"])
JOINED = dg.AssetSelection.groups("analytics")
MEASURED = dg.AssetSelection.groups("metrics") - LANDED

RETENTION = dg.AssetSelection.groups("retention")
COMPACTION = dg.AssetSelection.assets(WAREHOUSE_COMPACTIONS)
# the checks that look at every day at once, not at a partition
EVERY_DAY_CHECKS = dg.AssetSelection.checks_for_assets(RAW_TEXT_EXPIRY, ERASURE_REQUESTS)

daily_pipeline = dg.define_asset_job(
    name="daily_pipeline",
    selection=dg.AssetSelection.all() - RETENTION - COMPACTION,
    description="Every asset for one day: ingest and govern, sources, joins, metrics.",
)
land_job = dg.define_asset_job(
    name="land_day", selection=LANDED,
    description="Ingest, govern and land one day's events and sources, with the safety metrics.",
)
join_job = dg.define_asset_job(
    name="join_day", selection=JOINED, description="Join one landed day's events to their outcomes.",
)
measure_job = dg.define_asset_job(
    name="measure_day", selection=MEASURED,
    description="Performance, business and version-comparison metrics for one joined day.",
)
checks_only = dg.define_asset_job(
    name="checks_only", selection=dg.AssetSelection.all_asset_checks() - EVERY_DAY_CHECKS,
    description="Every asset check on a day already landed, rewriting nothing. Launch it with the tag "
                "`dagster/partition=<day>` (Dagster cannot infer a partitioning from checks alone).",
)
expire_raw_text = dg.define_asset_job(
    name="expire_raw_text", selection=RETENTION,
    description="Clear the secure store's raw text of every day past the policy's retention, and check none is left.",
)
compact_warehouse = dg.define_asset_job(
    name="compact_warehouse", selection=COMPACTION,
    description="Vacuum the warehouse file: merge the row groups the days' writes left part-filled, drop deleted rows.",
)
privacy_checks = dg.define_asset_job(
    name="privacy_checks", selection=EVERY_DAY_CHECKS,
    description="The checks that look at every day at once: no raw text kept past the policy's retention, and every "
                "erasure request completed with no erased person held in any table or the secure store. Writes nothing.",
)
STAGES = ("land_day", "join_day", "measure_day")
