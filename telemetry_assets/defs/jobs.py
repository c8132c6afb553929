"""Jobs: the daily pipeline materialises every asset of one partition."""

import dagster as dg

from telemetry_assets.defs.partitions import daily_partitions

daily_pipeline = dg.define_asset_job(
    name="daily_pipeline",
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Every asset for one day: ingest, then (as the chain grows) govern, join and metrics.",
)
