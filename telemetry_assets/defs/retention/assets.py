"""Raw-text retention as an asset: `audit/raw_text_expiry` clears the secure store's raw text of
every day past the policy's `raw_text_retention_days` and records every expiry the store shows
(`telemetry_assets/govern/retention.py` says why ids stay and text goes).

Not partitioned: retention is counted back from today, not from a partition, and one run covers
every day that aged past it. It runs on `raw_text_expiry_schedule` and after every `telemetry run`.
"""

import dagster as dg

from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.defs.ingest.assets import OWNERS
from telemetry_assets.govern.policy import load_policy
from telemetry_assets.govern.retention import expire_raw_text, expiries, record_expiries, retention_cutoff, utc_today

RAW_TEXT_EXPIRY = dg.AssetKey(["audit", "raw_text_expiry"])


@dg.asset(key=RAW_TEXT_EXPIRY, group_name="retention", owners=OWNERS, kinds={"duckdb"}, pool="warehouse",
          description="One row per received day and time its raw text left the secure store: by this asset, once "
                      "the day was more than the policy's raw_text_retention_days old, or by ingest of a day already "
                      "past it.")
def raw_text_expiry(warehouse: Warehouse, secure_store: SecureStore) -> dg.MaterializeResult:
    policy = load_policy(settings.policy_path())
    cutoff = retention_cutoff(policy, utc_today())
    if cutoff is None:
        return dg.MaterializeResult(metadata={"retention": "none: the policy keeps raw text until deleted by hand",
                                              "policy_version": policy.version})
    with secure_store.get_connection() as secure_con:
        cleared = expire_raw_text(secure_con, cutoff)
        shown = expiries(secure_con)
    if cleared:
        secure_store.rewrite()
    with warehouse.get_connection() as con:
        recorded = record_expiries(con, shown, policy)
    return dg.MaterializeResult(metadata={
        "retention_days": policy.raw_text_retention_days, "kept_from": cutoff.isoformat(),
        "days_expired": len(cleared), "rows_expired": sum(cleared.values()), "policy_version": policy.version,
        "expired_days": ", ".join(day.isoformat() for day in cleared) or "none", "expiries_recorded": recorded,
    })
