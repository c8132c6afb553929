"""Source assets: support tickets, conversions and user profiles, one asset per spec in sources.yaml."""

from dataclasses import asdict
from datetime import date

import dagster as dg

from checks.sources import SourceSpec, load_sources
from resources.object_store import ObjectStore
from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.defs.ingest.assets import OWNERS
from telemetry_assets.defs.metadata import table_metadata
from telemetry_assets.defs.partitions import daily_partitions
from telemetry_assets.govern.erasure import ERASURE_TABLE
from telemetry_assets.sources.load import load_source


def source_asset(spec: SourceSpec) -> dg.AssetsDefinition:
    grain = f"one row per {spec.key} received on dt" if spec.dated else f"one row per {spec.key} as of dt (latest file wins)"

    @dg.asset(
        name=spec.name,
        key_prefix="sources",
        group_name="sources",
        owners=OWNERS,
        deps=[ERASURE_TABLE.split(".")],  # the rows of an erased user id are dropped
        kinds={"duckdb"},
        partitions_def=daily_partitions,
        pool="warehouse",
        description=f"`sources.{spec.name}` from `sources/{spec.name}/` in the lake: {grain}. Bad rows are quarantined.",
    )
    def load(context: dg.AssetExecutionContext, lake: ObjectStore, warehouse: Warehouse):
        day = date.fromisoformat(context.partition_key)
        with warehouse.get_connection() as con:
            report = load_source(lake, con, spec, day)
            schema = table_metadata(con, spec.table, day)
        facts = {k: v for k, v in asdict(report).items() if isinstance(v, int)}
        not_in_header = "; ".join(report.columns_not_in_header)
        if not_in_header:
            context.log.warning(f"{spec.table} {day}: optional columns read as NULL, not in the CSV header: {not_in_header}")
        return dg.MaterializeResult(metadata={**facts, "columns_not_in_header": not_in_header or "none", **schema})

    return load


source_assets = [source_asset(spec) for spec in load_sources(settings.sources_path()).values()]
