"""Every asset check, one per guarantee and partition. Each is its own step after the asset it
guards, so `checks_only` can re-run them all on a landed day without rewriting anything.

Blocking checks (PII leaks, line reconciliation, the safety invariants) stop the run's downstream
assets when they fail: a day that leaked or lost lines computes no metrics.
"""

import warnings
from datetime import date

import dagster as dg

from checks import safety_suites
from checks.pii_leak import LeakScan, scan_exports, scan_table
from checks.sources import load_sources
from checks.table_models import (
    ANALYTICS_MODELS,
    IDENTITY_LINKS_MODEL,
    METRIC_MODELS,
    TableModel,
    governed_model,
    source_model,
)
from checks.tracking_plan import load_tracking_plan
from resources.object_store import ObjectStore
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.analytics.joins import orphan_turns
from telemetry_assets.cursors import side_by_side
from telemetry_assets.defs.ingest.assets import EVENT_TABLES
from telemetry_assets.defs.erasure.assets import ERASURE_REQUESTS
from telemetry_assets.defs.partitions import daily_partitions
from telemetry_assets.defs.retention.assets import RAW_TEXT_EXPIRY
from telemetry_assets.govern.erasure import audit_erasures
from telemetry_assets.govern.flight import WAREHOUSE, text_fields
from telemetry_assets.govern.policy import SECURE_DESTINATION, load_policy
from telemetry_assets.govern.retention import retention_cutoff, texts_kept_past, utc_today
from telemetry_assets.ingest.reconcile import RECONCILED_COLUMNS, landed_row_counts
from telemetry_assets.ingest.tables import IDENTITY_LINKS

# Partitioned asset checks are a Dagster preview feature (the release line is pinned in
# pyproject.toml). Every check here depends on them knowingly, so the warning that says so is not
# repeated on every command and run; other preview warnings still show.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)

# What every check shares: the day it checks, and the single warehouse writer's pool.
CHECK = {"partitions_def": daily_partitions, "pool": "warehouse"}
GOVERNED_TABLES = [f"governed.{name}" for name in EVENT_TABLES]
LINK_COLUMNS = ("identity_links", "identity_links_blocked")


def _day(context: dg.AssetCheckExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)


def _table_model(table: str) -> TableModel:
    """The pandera model of a table, built from its contract where it has one (read at run time,
    so an edited tracking plan or sources.yaml is checked without reloading the code location)."""
    schema, name = table.split(".")
    if table == IDENTITY_LINKS_MODEL.table:
        return IDENTITY_LINKS_MODEL
    if schema == "governed":
        return governed_model(load_tracking_plan(settings.tracking_plan_path()).events[name])
    if schema == "sources":
        return source_model(load_sources(settings.sources_path())[name])
    return {**ANALYTICS_MODELS, **METRIC_MODELS}[table]


def valid_rows_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=table.split("."), name="valid_rows", **CHECK,
                    description=f"The day's rows of {table} satisfy its pandera model (types, ranges, allowed values, keys).")
    def valid_rows(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.get_connection() as con:
            passed, metadata = _table_model(table).check(con, _day(context))
        return dg.AssetCheckResult(passed=passed, metadata=metadata)

    return valid_rows


def _text_columns(table: str) -> list[str]:
    """The columns of a governed table that carry free text under the current policy."""
    plan, policy = load_tracking_plan(settings.tracking_plan_path()), load_policy(settings.policy_path())
    return [f.column for f in text_fields(plan.events[table.split(".")[1]], policy)]


def no_pii_leak_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=table.split("."), name="no_pii_leak", blocking=True, **CHECK,
                    description="No personal data in the day's text columns, by every detector the redactor has.")
    def no_pii_leak(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.get_connection() as con:
            scan = scan_table(con, table, _day(context), _text_columns(table))
        return dg.AssetCheckResult(passed=scan.passed, metadata=scan.metadata())

    return no_pii_leak


@dg.asset_check(asset=["audit", "governance_log"], name="no_pii_in_exports", blocking=True, **CHECK,
                description="No personal data in the day's exports that the policy says carry redacted text or none.")
def no_pii_in_exports(context: dg.AssetCheckExecutionContext, lake: ObjectStore, warehouse: Warehouse) -> dg.AssetCheckResult:
    policy = load_policy(settings.policy_path())
    columns = sorted({column for table in GOVERNED_TABLES for column in _text_columns(table)})
    exported = [name for name, destination in policy.destinations.items()
                if destination.text != "raw" and name not in (WAREHOUSE, SECURE_DESTINATION)]

    def scan_one(cursor, destination: str) -> LeakScan:
        return scan_exports(cursor, lake, destination, _day(context), columns)

    with warehouse.get_connection() as con:
        scan = LeakScan.combined("exports", side_by_side(con, scan_one, exported))
    return dg.AssetCheckResult(passed=scan.passed, metadata=scan.metadata())


@dg.asset_check(asset=["audit", "ingest_files"], name="lines_reconcile", blocking=True, **CHECK,
                description="Lines read = valid + quarantined + duplicates + non-AI + erased + blank for every object, "
                            "and every counted row (events, quarantined lines, identity links) is in its table, "
                            "or was erased since at its person's request.")
def lines_reconcile(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    day = _day(context)
    lines_read, *parts = RECONCILED_COLUMNS
    accounted = " + ".join(f"coalesce({part}, 0)" for part in parts)  # a column added since counts 0 on older rows
    with warehouse.get_connection() as con:
        gaps = con.execute(
            f"SELECT source_key, {lines_read} - ({accounted}) AS gap FROM audit.ingest_files "
            f"WHERE dt = ? AND gap <> 0 ORDER BY source_key", [day]).fetchall()
        # link counts stay NULL for a day landed before they were counted
        sums = [f"coalesce(sum({c}), 0)::BIGINT" for c in RECONCILED_COLUMNS] + [f"sum({c})::BIGINT" for c in LINK_COLUMNS]
        [row] = con.execute(f"SELECT {', '.join(sums)}, coalesce(sum(identity_links_erased), 0)::BIGINT "
                            "FROM audit.ingest_files WHERE dt = ?", [day]).fetchall()
        totals = dict(zip(RECONCILED_COLUMNS, row))
        links = dict(zip(LINK_COLUMNS, row[len(RECONCILED_COLUMNS):]))
        links_erased = row[-1]
        landed = landed_row_counts(con, day)
    problems = [f"{key}: {gap:+d} lines" for key, gap in gaps]
    governed = sum(landed[table] for table in GOVERNED_TABLES)
    if governed != landed["delivered_to_warehouse"]:
        problems.append(f"governed tables hold {governed} rows, the log delivered {landed['delivered_to_warehouse']}")
    if landed["audit.quarantine"] != totals["quarantined"]:
        problems.append(f"quarantine holds {landed['audit.quarantine']} rows, the objects count {totals['quarantined']}")
    if links["identity_links"] is not None and landed[IDENTITY_LINKS] != links["identity_links"] - links_erased:
        problems.append(f"identity_links holds {landed[IDENTITY_LINKS]} rows, the objects count {links['identity_links']}"
                        + (f", {links_erased} of them erased since" if links_erased else ""))
    return dg.AssetCheckResult(passed=not problems, metadata={**totals, **{k: v or 0 for k, v in links.items()},
                                                              "problems": "; ".join(problems) or "none"})


@dg.asset_check(asset=["analytics", "ai_turns"], name="turns_belong_to_conversations", **CHECK,
                description="Every turn of the day belongs to a conversation of the day or the day before.")
def turns_belong_to_conversations(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        orphans = orphan_turns(con, _day(context))
    return dg.AssetCheckResult(passed=not orphans,
                               metadata={"orphan_turns": len(orphans), "examples": "; ".join(orphans[:5]) or "none"})


@dg.asset_check(asset=["metrics", "safety_daily"], name="safety_invariants", blocking=True, **CHECK,
                description="Great Expectations: audit completeness and consent enforcement are 1; "
                            "no governed text matches a PII pattern.")
def safety_invariants(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    text_columns = {table: _text_columns(table) for table in GOVERNED_TABLES}
    with warehouse.get_connection() as con:
        passed, metadata = safety_suites.invariants(con, _day(context), text_columns)
    return dg.AssetCheckResult(passed=passed, metadata=metadata)


@dg.asset_check(asset=["metrics", "safety_daily"], name="safety_drift", **CHECK,
                description="Great Expectations: redaction rate within its 7-day band; quarantined share of lines under 1%.")
def safety_drift(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        passed, metadata = safety_suites.drift(con, _day(context))
    return dg.AssetCheckResult(passed=passed, metadata=metadata, severity=dg.AssetCheckSeverity.WARN)


@dg.asset_check(asset=RAW_TEXT_EXPIRY, name="no_raw_text_past_retention", blocking=True, pool="warehouse",
                description="No secure-store row received before the policy's raw-text retention still holds "
                            "text or a user id.")
def no_raw_text_past_retention(secure_store: SecureStore) -> dg.AssetCheckResult:
    policy = load_policy(settings.policy_path())
    cutoff = retention_cutoff(policy, utc_today())
    if cutoff is None:
        return dg.AssetCheckResult(passed=True, metadata={"retention": "none: the policy keeps raw text until deleted by hand"})
    with secure_store.get_connection() as secure_con:
        kept = texts_kept_past(secure_con, cutoff)
    return dg.AssetCheckResult(passed=not kept, metadata={
        "kept_from": cutoff.isoformat(), "rows_past_retention": sum(kept.values()),
        "days_past_retention": ", ".join(day.isoformat() for day in kept) or "none"})


# blocking, as the retention check is: nothing is downstream, but a failure then fails the nightly
# run, and `run_failure_alert` sends it
@dg.asset_check(asset=ERASURE_REQUESTS, name="no_erased_person_held", blocking=True, pool="warehouse",
                description="Every erasure request completed, and no row of the governed, analytics and sources tables "
                            "or the secure store, on any day, carries an id a request erased or an erased event's "
                            "message id.")
def no_erased_person_held(warehouse: Warehouse, secure_store: SecureStore) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con, secure_store.get_connection() as secure_con:
        audit = audit_erasures(con, secure_con)
    return dg.AssetCheckResult(passed=audit.passed, metadata={
        "requests": audit.requests, "requests_unfinished": len(audit.unfinished),
        "unfinished_request_ids": ", ".join(audit.unfinished) or "none",
        **{f"rows_held/{place}": rows for place, rows in sorted(audit.held.items())},
        "rows_held": sum(audit.held.values())})


def all_asset_checks() -> list[dg.AssetChecksDefinition]:
    tables = [*GOVERNED_TABLES, IDENTITY_LINKS_MODEL.table,
              *(spec.table for spec in load_sources(settings.sources_path()).values()),
              *ANALYTICS_MODELS, *METRIC_MODELS]
    return [
        *(valid_rows_check(table) for table in tables),
        *(no_pii_leak_check(table) for table in GOVERNED_TABLES),
        no_pii_in_exports, lines_reconcile, turns_belong_to_conversations, safety_invariants, safety_drift,
        no_raw_text_past_retention, no_erased_person_held,
    ]
