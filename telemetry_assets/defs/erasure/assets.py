"""Erasure requests as an external asset: `telemetry erase` writes `audit.erasure_requests` outside
Dagster (a run's config and logs would keep the ids), then reports each request here as a
materialisation, with what it erased and never an id. Ingest and the source loads depend on it:
they drop the calls and rows of every id it holds (`telemetry_assets/govern/erasure.py`)."""

import dagster as dg

from telemetry_assets.defs.ingest.assets import OWNERS
from telemetry_assets.govern.erasure import ERASURE_TABLE, ErasureReport

ERASURE_REQUESTS = dg.AssetKey(ERASURE_TABLE.split("."))

erasure_requests = dg.AssetSpec(
    key=ERASURE_REQUESTS, group_name="erasure", owners=OWNERS, kinds={"duckdb"},
    description="One row per erasure request (`telemetry erase`): digests of the ids it erased, which ingest and the "
                "source loads drop from then on, and the rows it erased from each place. Written outside Dagster.")


def erasure_materialization(report: ErasureReport) -> dg.AssetMaterialization:
    """What the UI shows of one request: counts and days, never an id."""
    return dg.AssetMaterialization(asset_key=ERASURE_REQUESTS, metadata={
        "request_id": report.request_id, "ids_suppressed": report.ids_suppressed,
        "conversations_suppressed": report.conversations_suppressed,
        **{f"rows_erased/{place}": rows for place, rows in sorted(report.rows_erased.items())},
        "export_files_rewritten": report.export_files_rewritten, "log_rows_marked": report.log_rows_marked,
        "days": ", ".join(day.isoformat() for day in report.days) or "none",
    })
