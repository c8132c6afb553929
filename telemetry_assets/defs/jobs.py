"""Jobs. `daily_pipeline` is every asset of one day; `telemetry run` uses its two halves so that a
range is landed whole (ingest, governance, sources) before any day is joined: joins read the next
days' events and outcomes, and would otherwise miss what arrived after midnight."""

import dagster as dg

LANDING_GROUPS = ("ingest", "governed", "sources")
LANDED = dg.AssetSelection.groups(*LANDING_GROUPS) | dg.AssetSelection.assets(["metrics", "safety_daily"])

daily_pipeline = dg.define_asset_job(
    name="daily_pipeline",
    selection=dg.AssetSelection.all(),
    description="Every asset for one day: ingest and govern, sources, joins, metrics.",
)
land_job = dg.define_asset_job(
    name="land_day",
    selection=LANDED,
    description="Ingest, govern and land one day's events and sources, with the safety metrics.",
)
outcomes_job = dg.define_asset_job(
    name="join_and_measure_day",
    selection=dg.AssetSelection.all() - LANDED,
    description="Join one landed day to its outcomes and compute its product metrics.",
)
