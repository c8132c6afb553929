"""Warehouse tables written by ingest, each with its grain. Governed tables are built from the plan.

`ensure_tables` is additive: a new plan property becomes a new column on the next run (existing
rows read NULL), so a plan change never needs a manual migration.
"""

from __future__ import annotations

from contextlib import contextmanager

from checks.tracking_plan import EventPlan, TrackingPlan

VIOLATIONS_TYPE = "STRUCT(type VARCHAR, message VARCHAR)[]"
EVENTS_ORIGIN = "ai_events"

AUDIT_TABLES = {
    "audit.quarantine": (
        "One row per raw line (event or source row) that failed parsing or its contract. Never holds the payload.",
        {
            "dt": "DATE",
            "origin": "VARCHAR",  # ai_events, or the source table the row was meant for
            "source_key": "VARCHAR",
            "line_number": "BIGINT",
            "message_id": "VARCHAR",
            "event": "VARCHAR",
            "violations": VIOLATIONS_TYPE,
            "tracking_plan_version": "VARCHAR",
        },
    ),
    "audit.governance_log": (
        "One row per processed AI event (valid, forwarded or quarantined): versions, redactions, consent, routing.",
        {
            "dt": "DATE",
            "message_id": "VARCHAR",
            "event": "VARCHAR",
            "source_key": "VARCHAR",
            "line_number": "BIGINT",
            "outcome": "VARCHAR",  # valid | forwarded | quarantined
            "tracking_plan_version": "VARCHAR",
            "policy_version": "VARCHAR",
            "intent_source": "VARCHAR",  # prompts only: provided | classified | not_sampled
            "texts_present": "INTEGER",  # free-text fields the event carried
            "redactions": "MAP(VARCHAR, INTEGER)",  # entity type -> values redacted
            "consent": "MAP(VARCHAR, VARCHAR)",  # category -> granted | denied | unknown
            "consent_strategy": "VARCHAR",
            "delivered": "VARCHAR[]",
            "blocked": "STRUCT(destination VARCHAR, reason VARCHAR)[]",
            "erased_at": "TIMESTAMPTZ",  # set when the event's person asked to be erased: its rows elsewhere are gone
        },
    ),
    "audit.ingest_files": (
        "One row per raw object read for the partition, with its line reconciliation and identity links.",
        {
            "dt": "DATE",
            "source_key": "VARCHAR",
            "layout": "VARCHAR",
            "source_id": "VARCHAR",
            "object_version": "VARCHAR",  # as listed when read: a later rewrite of the key is a new version
            "lines_read": "BIGINT",
            "blank_lines": "BIGINT",
            "valid_events": "BIGINT",
            "quarantined": "BIGINT",
            "duplicates": "BIGINT",
            "non_ai_events": "BIGINT",
            "erased_events": "BIGINT",  # calls from a person who asked to be erased: counted, never read further
            "identity_links": "BIGINT",  # identify calls naming both ids, kept in governed.identity_links
            "identity_links_blocked": "BIGINT",  # the same, kept out by the warehouse destination's consent
            "identity_links_blocked_by": "MAP(VARCHAR, BIGINT)",  # those by reason: consent denied: analytics -> 3
            "identity_links_erased": "BIGINT",  # of identity_links, deleted since by an erasure request
        },
    ),
}

IDENTITY_LINKS = "governed.identity_links"
IDENTITY_LINK_COLUMNS = {
    "dt": "DATE",
    "anonymous_id": "VARCHAR",
    "user_id": "VARCHAR",
    "linked_at": "TIMESTAMP",  # the call's receivedAt, UTC
    "source_key": "VARCHAR",
    "line_number": "BIGINT",
}


def governed_table(event: str) -> str:
    return f"governed.{event}"


def governed_columns(plan: EventPlan) -> dict[str, str]:
    """dt, the envelope, the event's properties as typed columns, then lineage and plan stamps."""
    columns = {"dt": "DATE"}
    for f in plan.fields:
        if f.warehouse_type:
            columns[f.column] = f.warehouse_type
    if "intent_label" in columns:
        columns["intent_source"] = "VARCHAR"  # provided | classified | not_sampled
    columns.update(
        {
            "source_key": "VARCHAR",
            "line_number": "BIGINT",
            "tracking_plan_version": "VARCHAR",
            "policy_version": "VARCHAR",
            "plan_violations": VIOLATIONS_TYPE,  # non-empty only for events in `forward` mode
        }
    )
    return columns


def ensure_tables(con, tracking_plan: TrackingPlan) -> None:
    ensure_audit_tables(con)
    create_or_extend(con, IDENTITY_LINKS, "One row per identify call received on dt that named both an anonymousId "
                     "and a userId and had the warehouse destination''s consent.", IDENTITY_LINK_COLUMNS)
    for name, plan in tracking_plan.events.items():
        grain = f"One row per unique message_id of {name} that passed validation and warehouse consent; text redacted."
        create_or_extend(con, governed_table(name), grain, governed_columns(plan))


def ensure_audit_tables(con) -> None:
    for table, (grain, columns) in AUDIT_TABLES.items():
        create_or_extend(con, table, grain, columns)


def existing_tables(con) -> set[str]:
    """The warehouse's tables as `schema.table` (not those of another database attached to `con`)."""
    return {f"{schema}.{table}" for schema, table in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()").fetchall()}


def existing_columns(con, table: str) -> set[str]:
    """The columns `table` has in the warehouse: one landed by an older version may lack newer ones."""
    return {column for (column,) in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ?", table.split(".")).fetchall()}


def create_or_extend(con, table: str, grain: str, columns: dict[str, str]) -> None:
    """Create the table, or add the columns it lacks; its comment states its grain."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {table.split('.')[0]}")
    ddl = ", ".join(f'"{column}" {sql_type}' for column, sql_type in columns.items())
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({ddl})")
    for column, sql_type in columns.items():
        con.execute(f'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "{column}" {sql_type}')
    con.execute(f"COMMENT ON TABLE {table} IS '{grain}'")


@contextmanager
def replacing_day(con, day, tables: list[str]):
    """One transaction that deletes the day's rows of `tables`, lets the caller insert the new ones,
    and commits, or rolls back on any error: a day is replaced whole or not at all."""
    con.execute("BEGIN TRANSACTION")
    try:
        for table in tables:
            con.execute(f"DELETE FROM {table} WHERE dt = ?", [day])
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
