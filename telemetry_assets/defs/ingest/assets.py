"""Ingest and govern as one Dagster step: the day's raw objects into governed, quarantine and audit tables.

One multi-asset rather than an asset per table because the tables are written in one streaming
pass and published in one transaction, with governance (consent, redaction, routing) in flight:
raw text is never staged anywhere but memory and the secure store, and a partition lands whole or
not at all. The seconds spent per stage are recorded on `audit/ingest_files`.
"""

from datetime import date, timedelta

import dagster as dg

from checks.tracking_plan import load_tracking_plan
from resources.object_store import ObjectStore
from resources.secrets import GovernanceSecrets
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.defs.metadata import table_metadata
from telemetry_assets.defs.partitions import daily_partitions
from telemetry_assets.govern.erasure import ERASURE_TABLE
from telemetry_assets.govern.policy import load_policy
from telemetry_assets.ingest.partition import PartitionReport, ingest_partition
from telemetry_assets.ingest.reconcile import landed_row_counts
from telemetry_assets.ingest.tables import IDENTITY_LINKS
from telemetry_assets.stage_clock import StageClock

EVENT_TABLES = ("ai_user_prompt_created", "ai_llm_response_received", "ai_user_action")
OWNERS = ["team:ai-data-platform"]


# The raw partitions are fresh when the ledger of yesterday's raw objects has landed by 04:00 UTC.
RAW_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 4 * * *", lower_bound_delta=timedelta(hours=4))


def _spec(key: list[str], group: str, description: str, **extra) -> dg.AssetSpec:
    """Every table ingest writes reads the erasure requests: the calls of an erased id are dropped."""
    return dg.AssetSpec(key=key, group_name=group, description=description, owners=OWNERS, kinds={"duckdb"},
                        deps=[ERASURE_TABLE.split(".")], **extra)


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
    _spec(["governed", "identity_links"], "governed", "One row per identify call that named both an anonymousId and "
          "a userId and had the warehouse destination's consent: how a conversation held before sign-in finds its user."),
    _spec(["audit", "quarantine"], "ingest", "One row per raw line that failed parsing or the tracking plan; "
          "typed violations, never the payload."),
    _spec(["audit", "governance_log"], "ingest", "One row per processed AI event (valid, forwarded or quarantined): "
          "policy and plan versions, redactions, intent source, consent, every destination delivered or blocked."),
    _spec(["audit", "ingest_files"], "ingest", "One row per raw object read, with its line reconciliation.",
          freshness_policy=RAW_FRESHNESS),
]


@dg.multi_asset(
    name="ingest_ai_events",
    specs=INGEST_SPECS,
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
    """Stream the day's raw objects (any layout), validate, dedupe, govern and land them in one transaction.
    A lake that cannot be listed fails the step saying which lake and why."""
    day = date.fromisoformat(context.partition_key)
    lake.check_readable()
    plan = load_tracking_plan(settings.tracking_plan_path())
    policy = load_policy(settings.policy_path())
    clock = StageClock()
    chunk_mb = settings.ingest_chunk_mb()
    with warehouse.get_connection(memory_limit=warehouse.ingest_memory_limit) as con:
        report = ingest_partition(
            lake, con, day, plan, policy, secure_store,
            redaction_salt=secrets.redaction_salt, lookback_days=settings.dedupe_lookback_days(), clock=clock,
            chunk_bytes=chunk_mb << 20,
        )
        landed = landed_row_counts(con, day)
        schemas = {".".join(s.key.path): table_metadata(con, ".".join(s.key.path), day) for s in INGEST_SPECS}
    context.log.info(f"{day}: {report.summary()} quarantined by type {report.quarantined_by_type}")
    seconds = {f"seconds/{stage}": round(spent, 2) for stage, spent in clock.seconds.items()}
    yield from _materializations(report, landed, lake.describe(), schemas, seconds, chunk_mb)


def _materializations(report: PartitionReport, landed: dict[str, int], lake: str, schemas: dict[str, dict],
                      seconds: dict[str, float], chunk_mb: int):
    shared = {"tracking_plan_version": report.tracking_plan_version, "policy_version": report.policy_version}
    for spec in INGEST_SPECS:
        table = ".".join(spec.key.path)
        metadata = {**shared, **schemas[table], "dagster/row_count": landed[table]}
        if table == "audit.ingest_files":
            metadata.update({**report.summary(), "objects": len(report.files), "lake": lake,
                             "chunks": report.chunks, "chunk_mb": chunk_mb, **seconds})
        if table == "audit.quarantine":
            metadata.update({f"quarantined/{kind}": count for kind, count in report.quarantined_by_type.items()})
        if table == IDENTITY_LINKS:
            metadata.update({"kept_out_by_consent": report.total("identity_links_blocked"),
                             **{f"kept_out/{reason}": n for reason, n in sorted(report.identity_links_blocked_by().items())}})
        yield dg.MaterializeResult(asset_key=spec.key, metadata=metadata)
