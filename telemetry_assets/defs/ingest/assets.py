"""Ingest and govern as one Dagster step: the day's raw objects into governed, quarantine and audit tables.

One multi-asset rather than an asset per table because the tables are written in one streaming
pass and one transaction, with governance (consent, redaction, routing) in flight: raw text is
never staged anywhere but memory and the secure store, and a partition lands whole or not at all.
"""

from datetime import date, timedelta

import dagster as dg

from checks.asset_checks import table_metadata, valid_rows_result, valid_rows_spec
from checks.pii_leak import LeakScan, scan_exports, scan_table
from checks.table_models import governed_model
from checks.tracking_plan import load_tracking_plan
from resources.object_store import ObjectStore
from resources.secrets import GovernanceSecrets
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.defs.partitions import daily_partitions
from telemetry_assets.govern.flight import WAREHOUSE, text_fields
from telemetry_assets.govern.policy import SECURE_DESTINATION, load_policy
from telemetry_assets.ingest.partition import PartitionReport, ingest_partition
from telemetry_assets.ingest.reconcile import landed_row_counts

EVENT_TABLES = ("ai_user_prompt_created", "ai_llm_response_received", "ai_user_action")
OWNERS = ["team:ai-data-platform"]


# The raw partitions are fresh when the ledger of yesterday's raw objects has landed by 04:00 UTC.
RAW_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 4 * * *", lower_bound_delta=timedelta(hours=4))


def _spec(key: list[str], group: str, description: str, **extra) -> dg.AssetSpec:
    return dg.AssetSpec(key=key, group_name=group, description=description, owners=OWNERS, kinds={"duckdb"}, **extra)


INGEST_SPECS = [
    *(
        _spec(
            ["governed", name],
            "governed",
            f"One row per unique message_id of `{name}` that passed the tracking plan (or was forwarded "
            "with its violations recorded) and the warehouse consent decision. Text is redacted.",
        )
        for name in EVENT_TABLES
    ),
    _spec(["audit", "quarantine"], "ingest", "One row per raw line that failed parsing or the tracking plan; "
          "typed violations, never the payload."),
    _spec(["audit", "governance_log"], "ingest", "One row per processed AI event (valid, forwarded or quarantined): "
          "policy and plan versions, redactions, intent source, consent, every destination delivered or blocked."),
    _spec(["audit", "ingest_files"], "ingest", "One row per raw object read, with its line reconciliation.",
          freshness_policy=RAW_FRESHNESS),
]
NO_PII_LEAK = [
    dg.AssetCheckSpec(name="no_pii_leak", asset=["governed", name], blocking=True,
                      description="No personal data in the day's text columns, by every detector the redactor has.")
    for name in EVENT_TABLES
]
NO_PII_IN_EXPORTS = dg.AssetCheckSpec(
    name="no_pii_in_exports", asset=["audit", "governance_log"], blocking=True,
    description="No personal data in the day's exports that the policy says carry redacted text or none.",
)
RECONCILES = dg.AssetCheckSpec(
    name="lines_reconcile",
    asset=["audit", "ingest_files"],
    description="Lines read = valid + quarantined + duplicates + non-AI + blank, and every counted row is in its table.",
    blocking=True,
)


@dg.multi_asset(
    name="ingest_ai_events",
    specs=INGEST_SPECS,
    check_specs=[RECONCILES, *NO_PII_LEAK, NO_PII_IN_EXPORTS, *(valid_rows_spec(f"governed.{n}") for n in EVENT_TABLES)],
    partitions_def=daily_partitions,
    pool="warehouse",
    can_subset=False,
)
def ingest_ai_events(
    context: dg.AssetExecutionContext,
    lake: ObjectStore,
    warehouse: Warehouse,
    secure_store: SecureStore,
    secrets: GovernanceSecrets,
):
    """Stream the day's raw objects (any layout), validate, dedupe, govern and land them in one transaction."""
    day = date.fromisoformat(context.partition_key)
    plan = load_tracking_plan(settings.tracking_plan_path())
    policy = load_policy(settings.policy_path())
    with warehouse.get_connection() as con:
        report = ingest_partition(
            lake, con, day, plan, policy, secure_store,
            redaction_salt=secrets.redaction_salt, lookback_days=settings.dedupe_lookback_days(),
        )
        landed = landed_row_counts(con, day)
        schemas = {".".join(s.key.path): table_metadata(con, ".".join(s.key.path), day) for s in INGEST_SPECS}
        scans = _leak_scans(con, lake, day, plan, policy)
        row_checks = [valid_rows_result(con, governed_model(plan.events[name]), day) for name in EVENT_TABLES]
    context.log.info(f"{day}: {report.summary()} quarantined by type {report.quarantined_by_type}")
    yield from _materializations(report, landed, lake.describe(), schemas)
    yield _reconciliation_check(report, landed)
    for spec, scan in scans:
        yield dg.AssetCheckResult(check_name=spec.name, asset_key=spec.asset_key, passed=scan.passed,
                                  metadata=scan.metadata())
    yield from row_checks


def _leak_scans(con, lake, day, plan, policy):
    """(check, scan) for each governed table's text columns and each export that is not raw."""
    def text_columns(event):
        return [f.column for f in text_fields(plan.events[event], policy)]

    scans = [(spec, scan_table(con, f"governed.{name}", day, text_columns(name))) for spec, name in zip(NO_PII_LEAK, EVENT_TABLES)]
    columns = sorted({c for event in EVENT_TABLES for c in text_columns(event)})
    exported = [scan_exports(con, lake, name, day, columns) for name, destination in policy.destinations.items()
                if destination.text != "raw" and name not in (WAREHOUSE, SECURE_DESTINATION)]
    return [*scans, (NO_PII_IN_EXPORTS, LeakScan.combined("exports", exported))]


def _materializations(report: PartitionReport, landed: dict[str, int], lake: str, schemas: dict[str, dict]):
    shared = {"tracking_plan_version": report.tracking_plan_version, "policy_version": report.policy_version}
    for spec in INGEST_SPECS:
        table = ".".join(spec.key.path)
        metadata = {**shared, **schemas[table], "dagster/row_count": landed[table]}
        if table == "audit.ingest_files":
            metadata.update({**report.summary(), "objects": len(report.files), "lake": lake})
        if table == "audit.quarantine":
            metadata.update({f"quarantined/{kind}": count for kind, count in report.quarantined_by_type.items()})
        yield dg.MaterializeResult(asset_key=spec.key, metadata=metadata)


def _reconciliation_check(report: PartitionReport, landed: dict[str, int]) -> dg.AssetCheckResult:
    governed = sum(landed[f"governed.{name}"] for name in EVENT_TABLES)
    problems = [f"{f.source_key}: {f.unaccounted:+d} lines" for f in report.files if f.unaccounted]
    if governed != landed["delivered_to_warehouse"]:
        problems.append(f"governed tables hold {governed} rows, the log delivered {landed['delivered_to_warehouse']}")
    if landed["audit.quarantine"] != report.total("quarantined"):
        problems.append(f"quarantine holds {landed['audit.quarantine']} rows, the log counts {report.total('quarantined')}")
    return dg.AssetCheckResult(
        check_name=RECONCILES.name,
        asset_key=RECONCILES.asset_key,
        passed=not problems,
        metadata={**report.summary(), "problems": "; ".join(problems) or "none"},
    )
