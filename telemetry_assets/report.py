"""`telemetry report --date D`: the day's ingest, performance, business, safety and version comparison.

Ingest comes first, read from the audit tables: how the day's lines were accounted for, and what was
quarantined, is what every metric below was computed from. The other numbers are read from the
metric tables; arrows compare each with the same group's mean over the previous 7 days (blank when
the group is new), so a change reads at a glance.
"""

from __future__ import annotations

from datetime import date, timedelta

from telemetry_assets.ingest.reconcile import line_reconciliation, quarantined_by_type, unaccounted_lines
from telemetry_assets.ingest.tables import EVENTS_ORIGIN, existing_columns, existing_tables

PERFORMANCE_COLUMNS = [
    ("requests", "requests", "{:,.0f}"), ("success_rate", "success", "{:.1%}"), ("p95_latency_ms", "p95 ms", "{:,.0f}"),
    ("total_cost_usd", "cost $", "{:,.4f}"), ("cost_per_successful_outcome", "$/outcome", "{:.5f}"),
    ("conversation_completion_rate", "completion", "{:.1%}"),
]
BUSINESS_COLUMNS = [
    ("conversations", "conversations", "{:,.0f}"), ("identified_conversations", "signed in", "{:,.0f}"),
    ("conversion_rate", "conversion", "{:.1%}"),
    ("multi_turn_share", "multi-turn", "{:.1%}"), ("d1_retention", "D1", "{:.1%}"),
    ("support_deflection_rate", "deflection", "{:.1%}"),
]
KEY = ["model_version", "prompt_version", "feature_flag_state"]
REPORTED_TABLES = ["metrics.performance_daily", "metrics.business_daily", "metrics.safety_daily",
                   "metrics.version_comparison", "metrics.alerts"]


def not_measured(con, day: date) -> str | None:
    """Why `day` has no report, or None when it has one: the metric tables are not built yet, or the
    day was never measured (every measured day has its `metrics.safety_daily` row, even one without
    events)."""
    present = existing_tables(con)
    if missing := [table for table in REPORTED_TABLES if table not in present]:
        return f"no metric tables yet ({', '.join(missing)} missing)"
    if not con.execute("SELECT count(*) FROM metrics.safety_daily WHERE dt = ?", [day]).fetchone()[0]:
        return f"{day} has not been measured"
    return None


def render_report(con, day: date) -> str:
    sections = [f"AI telemetry report for {day}  (arrows: against the same group's mean over the previous 7 days)"]
    sections.append(_ingest(con, day))
    sections.append(_section(con, "Performance", "metrics.performance_daily", day, KEY, PERFORMANCE_COLUMNS, ""))
    sections.append(_section(con, "Business (all users, and by plan; conversion, D1 and deflection are over the "
                                  "signed-in conversations)", "metrics.business_daily", day,
                             KEY + ["cohort"], BUSINESS_COLUMNS, "AND cohort_dimension IN ('all', 'plan')"))
    sections.append(_safety(con, day))
    sections.append(_comparison(con, day))
    sections.append(_alerts(con, day))
    return "\n\n".join(sections)


def _ingest(con, day: date) -> str:
    (row,) = line_reconciliation(con, day, day) or [None]
    if row is None:
        return "Ingest\n  (no raw objects)"
    gap = unaccounted_lines(row)
    counts = [row[c] for c in ("objects", "lines_read", "valid_events", "quarantined", "duplicates", "non_ai_events",
                               "erased_events", "blank_lines")]
    lines = [_table(["objects", "lines read", "valid", "quarantined", "duplicates", "non-AI", "erased", "blank", "reconciled"],
                    [[f"{n:,}" for n in counts] + [f"no, {gap:+,} lines" if gap else "yes"]], title="Ingest")]
    if by_type := quarantined_by_type(con, day, day):
        lines.append("  quarantined events by type: " + ", ".join(f"{kind} {n:,}" for kind, n in by_type.items()))
    sources = con.execute("SELECT origin, count(*) FROM audit.quarantine WHERE dt = ? AND origin <> ? GROUP BY 1 ORDER BY 1",
                          [day, EVENTS_ORIGIN]).fetchall()
    if sources:
        lines.append("  quarantined source rows: " + ", ".join(f"{origin} {n:,}" for origin, n in sources))
    if links := _identity_links(con, day):
        lines.append(links)
    return "\n".join(lines)


def _identity_links(con, day: date) -> str | None:
    """The day's identify calls that linked an anonymousId to a user, kept and kept out by consent
    (with why, when the day was landed after reasons were counted); None for a day (or a warehouse)
    landed before links were counted."""
    counted = existing_columns(con, "audit.ingest_files")
    if "identity_links" not in counted:
        return None
    kept, blocked = con.execute("SELECT sum(identity_links)::BIGINT, sum(identity_links_blocked)::BIGINT "
                                "FROM audit.ingest_files WHERE dt = ?", [day]).fetchone()
    if kept is None:
        return None
    line = f"  identity links (sign-ins naming both ids): {kept:,} kept, {blocked:,} kept out by consent"
    reasons = con.execute("""SELECT reason.key, sum(reason.value)::BIGINT AS n
        FROM (SELECT unnest(map_entries(identity_links_blocked_by)) AS reason FROM audit.ingest_files WHERE dt = ?)
        GROUP BY 1 ORDER BY n DESC, 1""", [day]).fetchall() if "identity_links_blocked_by" in counted else []
    return line + (" (" + ", ".join(f"{reason} {n:,}" for reason, n in reasons) + ")" if reasons else "")


def _alerts(con, day: date) -> str:
    rows = con.execute("""SELECT severity, rule, group_key, message FROM metrics.alerts WHERE dt = ?
                          ORDER BY severity, rule, group_key""", [day]).fetchall()
    lines = [f"Alerts ({len(rows)})"] + [f"  [{severity}] {rule}: {group}\n      {message}" for severity, rule, group, message in rows]
    return "\n".join(lines if rows else lines + ["  none"])


def _section(con, title, table, day, key, columns, where) -> str:
    names = ", ".join(key + [c for c, _, _ in columns])
    today = con.execute(f"SELECT {names} FROM {table} WHERE dt = ? {where} ORDER BY ALL", [day]).fetchall()
    history = con.execute(
        f"""SELECT {", ".join(key)}, {", ".join(f"avg({c})" for c, _, _ in columns)} FROM {table}
            WHERE dt BETWEEN ? AND ? {where} GROUP BY ALL""", [day - timedelta(days=7), day - timedelta(days=1)]).fetchall()
    before = {tuple(row[:len(key)]): row[len(key):] for row in history}
    header = [k.replace("_", " ") for k in key] + [label for _, label, _ in columns]
    body = []
    for row in today:
        group, values = tuple(row[:len(key)]), row[len(key):]
        past = before.get(group, [None] * len(columns))
        body.append([str(v) for v in group] + [_cell(v, p, fmt) for v, p, (_, _, fmt) in zip(values, past, columns)])
    return f"{title}\n" + (_table(header, body) if body else "  (no rows)")


def _cell(value, past, fmt: str) -> str:
    if value is None:
        return "-"
    text = fmt.format(value)
    if past is None or past == 0:
        return text
    change = (value - past) / abs(past)
    arrow = "↑" if change > 0.02 else "↓" if change < -0.02 else "→"
    return f"{text} {arrow}{abs(change):.0%}"


def _safety(con, day: date) -> str:
    without_consent = "no_consent_rate" if "no_consent_rate" in existing_columns(con, "metrics.safety_daily") else "NULL"
    rows = con.execute(
        f"""SELECT redaction_rate, consent_enforcement_rate, audit_completeness, {without_consent},
                   sensitive_destinations_blocked
            FROM metrics.safety_daily WHERE dt = ?""", [day]).fetchall()
    if not rows:
        return "Safety\n  (no rows)"
    redaction, enforcement, completeness, no_consent, blocked = rows[0]
    pct = lambda v: "-" if v is None else f"{v:.1%}"
    table = _table(["redaction rate", "consent enforcement", "audit completeness", "without consent", "deliveries blocked"],
                   [[pct(redaction), pct(enforcement), pct(completeness), pct(no_consent), f"{blocked:,}"]],
                   title="Safety")
    if by_destination := _blocked_by_destination(con, day):
        table += "\n  deliveries blocked, by destination and reason:\n" + "\n".join(by_destination)
    return table


def _blocked_by_destination(con, day: date) -> list[str]:
    """One line per destination: why its deliveries were blocked, the most frequent reason first.
    A refusal (`consent denied`) reads apart from a call that carried no consent (`consent unknown`)."""
    entries = con.execute(
        """SELECT entry.key, entry.value FROM (
               SELECT unnest(map_entries(blocked_by_destination_reason)) AS entry FROM metrics.safety_daily WHERE dt = ?)
           ORDER BY entry.value DESC, entry.key""", [day]).fetchall()
    reasons: dict[str, list[str]] = {}
    for key, count in entries:
        destination, reason = key.split(": ", 1)
        reasons.setdefault(destination, []).append(f"{reason} {count:,}")
    width = max(map(len, reasons), default=0)
    return [f"    {destination.ljust(width)}  {', '.join(listed)}" for destination, listed in sorted(reasons.items())]


def _comparison(con, day: date) -> str:
    rows = con.execute(
        """SELECT verdict, dimension, arm, baseline, candidate, message FROM metrics.version_comparison
           WHERE dt = ? AND verdict IN ('regression', 'improvement')
           ORDER BY verdict DESC, dimension, arm, message""", [day]).fetchall()
    counts = dict(con.execute("SELECT verdict, count(*) FROM metrics.version_comparison WHERE dt = ? GROUP BY 1", [day]).fetchall())
    verdicts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))
    lines = [f"Version comparison ({sum(counts.values())} tests: {verdicts})" if counts else "Version comparison (no tests)"]
    for verdict, dimension, arm, baseline, candidate, message in rows:
        mark = "✗" if verdict == "regression" else "✓"
        lines.append(f"  {mark} [{arm}] {dimension} {baseline} -> {candidate}: {message}")
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]], title: str | None = None) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    line = lambda cells: "  " + "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]
    return "\n".join(([title] if title else []) + out)
