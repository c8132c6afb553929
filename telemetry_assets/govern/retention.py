"""Raw-text retention: the secure store keeps a day's raw text for the policy's
`raw_text_retention_days` after the day it was received, and then only the fact that it was archived.

When a day's text expires, its secure-store rows keep `dt`, `message_id`, `event` and `field`, lose
`text`, `user_id` and `anonymous_id`, and are stamped `expired_at`. The message ids stay so that
`consent_enforcement_rate` can still check that the archive received every event it should have;
nothing personal is left.
Text expires wherever it would otherwise outlive the limit:

- `expire_raw_text`, run by the `audit/raw_text_expiry` asset (a daily schedule, and every
  `telemetry run`), for days that aged past the limit since they landed;
- ingest, which archives a day already past it (a backfill, a late object) without its text, so
  re-landing an old day never brings expired text back.

DuckDB leaves overwritten values in its file's free blocks, so the asset rewrites the store's file
after text expired (`SecureStore.rewrite`): only then is the text gone from disk.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from telemetry_assets.govern.policy import Policy
from telemetry_assets.ingest.tables import create_or_extend

EXPIRY_TABLE = "audit.raw_text_expiry"
EXPIRY_COLUMNS = {
    "dt": "DATE",
    "expired_at": "TIMESTAMPTZ",
    "rows_expired": "BIGINT",
    "retention_days": "INTEGER",  # these two: the policy in force when the expiry was recorded
    "policy_version": "VARCHAR",
}


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def retention_cutoff(policy: Policy, today: date) -> date | None:
    """The earliest received day whose raw text is still kept on `today`; None when the policy keeps
    raw text until it is deleted by hand."""
    if policy.raw_text_retention_days is None:
        return None
    return today - timedelta(days=policy.raw_text_retention_days)


def text_expired(policy: Policy, day: date, today: date) -> bool:
    cutoff = retention_cutoff(policy, today)
    return cutoff is not None and day < cutoff


def expire_raw_text(secure_con, cutoff: date) -> dict[date, int]:
    """Clear the text and user ids of every secure-store row received before `cutoff` that still has
    them, in one transaction; returns the rows cleared per received day."""
    secure_con.execute("BEGIN TRANSACTION")
    try:
        cleared = dict(secure_con.execute(
            "SELECT dt, count(*) FROM raw_text WHERE dt < ? AND expired_at IS NULL GROUP BY dt ORDER BY dt",
            [cutoff]).fetchall())
        secure_con.execute("UPDATE raw_text SET text = NULL, user_id = NULL, anonymous_id = NULL, expired_at = now() "
                           "WHERE dt < ? AND expired_at IS NULL", [cutoff])
        secure_con.execute("COMMIT")
    except BaseException:
        secure_con.execute("ROLLBACK")
        raise
    return cleared


def expiries(secure_con) -> list[tuple[date, datetime, int]]:
    """Every expiry the secure store shows, by an expiry run or at ingest: (received day, when, rows)."""
    return secure_con.execute("SELECT dt, expired_at, count(*) FROM raw_text WHERE expired_at IS NOT NULL "
                              "GROUP BY ALL ORDER BY ALL").fetchall()


def record_expiries(con, shown: list[tuple[date, datetime, int]], policy: Policy) -> int:
    """Add to `audit.raw_text_expiry` each expiry the secure store shows that it lacks; returns how
    many. Synced from the store, not from what one run cleared, because the two are separate
    databases: a run that cleared text and then failed to write here is recorded by the next one,
    and so is a day archived already expired by ingest."""
    create_or_extend(con, EXPIRY_TABLE, "One row per received day and time its raw text left the secure store "
                     "(an expiry run, or ingest of a day already past retention).", EXPIRY_COLUMNS)
    recorded = set(con.execute(f"SELECT dt, expired_at FROM {EXPIRY_TABLE}").fetchall())
    missing = [(day, at, rows) for day, at, rows in shown if (day, at) not in recorded]
    if missing:
        con.executemany(f"INSERT INTO {EXPIRY_TABLE} VALUES (?, ?, ?, ?, ?)",
                        [[day, at, rows, policy.raw_text_retention_days, policy.version] for day, at, rows in missing])
    return len(missing)


def texts_kept_past(secure_con, cutoff: date) -> dict[date, int]:
    """Secure-store rows received before `cutoff` that still hold text or a user id, per day: none
    when retention holds."""
    return dict(secure_con.execute(
        "SELECT dt, count(*) FROM raw_text WHERE dt < ? "
        "AND (text IS NOT NULL OR user_id IS NOT NULL OR anonymous_id IS NOT NULL) "
        "GROUP BY dt ORDER BY dt", [cutoff]).fetchall())
