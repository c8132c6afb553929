"""`telemetry`: generate a lake, run partitions through Dagster, re-check or report a day, erase a person, or all of
it (`demo`)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections import Counter
from datetime import date, timedelta

from resources.duckdb_files import DatabaseLockedError
from telemetry_assets import settings

QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# `check` prints every failed check itself: Dagster's own error log of a failing blocking check
# (a step failure with a stack trace) would only repeat it
SILENT_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except (settings.SettingsError, DatabaseLockedError) as error:
        print(f"telemetry {args.command}: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telemetry", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="write realistic AI traffic into the lake")
    _generator_options(generate)
    generate.set_defaults(handler=_generate_command)
    run = commands.add_parser("run", help="materialise every asset for a range of daily partitions")
    run.add_argument("--start", type=date.fromisoformat, required=True)
    run.add_argument("--end", type=date.fromisoformat, required=True)
    run.set_defaults(handler=lambda args: run_partitions(args.start, args.end))
    check = commands.add_parser("check", help="re-run every asset check on landed days, writing nothing")
    check.add_argument("--start", type=date.fromisoformat, required=True)
    check.add_argument("--end", type=date.fromisoformat, required=True)
    check.set_defaults(handler=lambda args: check_partitions(args.start, args.end))
    erase = commands.add_parser("erase", help="delete what is held about a person, and drop their calls from now on")
    erase.add_argument("--user-id", action="append", default=[], type=_an_id, help="one person's; repeat for several")
    erase.add_argument("--anonymous-id", action="append", default=[], type=_an_id, help="one person's; repeat for several")
    erase.add_argument("--requests", metavar="FILE", help="many people at once: a JSON-lines file, one person a line, "
                       'as {"user_id": "u1", "anonymous_id": ["a1", "a2"]}; the exports are read once for all')
    erase.set_defaults(handler=_erase_command)
    demo = commands.add_parser("demo", help="generate a week of traffic, then run every partition")
    _generator_options(demo)
    demo.set_defaults(handler=_demo_command)
    report = commands.add_parser("report", help="the day's metric tables and version verdicts in the terminal")
    report.add_argument("--date", type=date.fromisoformat, required=True)
    report.set_defaults(handler=_report_command)
    ui = commands.add_parser("ui", help="open the Dagster UI on the instance `run` records to")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=_ui_command)
    bench = commands.add_parser("bench", help="time each stage of one partition against a bare DuckDB scan")
    day_of = bench.add_mutually_exclusive_group()
    day_of.add_argument("--events", type=_at_least_one, default=1_000_000,
                        help="AI events to generate for the benchmarked partition, and for the day landed before it")
    day_of.add_argument("--lake", metavar="URL", help="bench a day of this lake (a path or s3://bucket/prefix) instead, "
                        "copied to a temporary folder first with the day before if the lake holds it; needs --date")
    bench.add_argument("--date", type=date.fromisoformat, help="the day of --lake to bench")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(handler=_bench_command)
    return parser


def _generate_command(args) -> int:
    _generate(args)
    return 0


def _demo_command(args) -> int:
    manifest = _generate(args)
    status = run_partitions(date.fromisoformat(manifest["days"][0]), date.fromisoformat(manifest["days"][-1]))
    if status == 0:
        print()
        _report_command(argparse.Namespace(date=date.fromisoformat(manifest["days"][-1])))
    return status


def _report_command(args) -> int:
    from telemetry_assets.report import not_measured, render_report

    path = settings.warehouse_path()
    if not path.exists():
        reason = f"no warehouse at {path} yet"
    else:
        with _warehouse().get_connection() as con:
            reason = not_measured(con, args.date)
            if reason is None:
                print(render_report(con, args.date))
                return 0
    print(f"telemetry report: {reason}; `telemetry run --start D --end D` (or `telemetry demo`) measures days",
          file=sys.stderr)
    return 2


def _ui_command(args) -> int:
    _prepare_dagster_home()
    dagster_dev = [sys.executable, "-m", "dagster", "dev", "-m", "telemetry_assets.definitions",
                   "-h", "127.0.0.1", "-p", str(args.port)]
    os.execv(sys.executable, dagster_dev)


def _bench_command(args) -> int:
    from resources.object_store import LakeUnreadableError
    from telemetry_assets.bench import NoRawObjects, print_table, run_bench, run_bench_on_lake

    if (args.lake is None) != (args.date is None):
        print("telemetry bench: --lake and --date go together", file=sys.stderr)
        return 2
    settings.ingest_chunk_mb()  # refused before a million events are generated, not after
    settings.ingest_memory_mb()
    try:
        if args.lake is None:
            result = run_bench(args.events)
        else:
            result = run_bench_on_lake(settings.checked_lake_url(args.lake, "--lake"), args.date)
    except (NoRawObjects, LakeUnreadableError) as error:
        print(f"telemetry bench: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


def _erase_command(args) -> int:
    """Erase outside Dagster: a run's config and logs are kept in its instance, and the ids would be
    kept there too. The request is then reported to the instance as a materialisation of
    `audit/erasure_requests` (counts, no ids), the joins and metrics of each day erased from are
    computed again through Dagster, so no aggregate counts the person any more, and the privacy
    checks say whether anything of theirs is still held."""
    from telemetry_assets.govern.erasure import ErasureIncomplete, Request, RequestsError, erase_people, load_requests

    if args.requests and (args.user_id or args.anonymous_id):
        print("telemetry erase: --requests names its people itself; leave out --user-id and --anonymous-id",
              file=sys.stderr)
        return 2
    if not (args.requests or args.user_id or args.anonymous_id):
        print("telemetry erase: name the person with --user-id, --anonymous-id, or both (or many with --requests)",
              file=sys.stderr)
        return 2
    try:
        requests = load_requests(args.requests) if args.requests else [Request(tuple(args.user_id), tuple(args.anonymous_id))]
    except (OSError, RequestsError) as error:
        print(f"telemetry erase: {error}", file=sys.stderr)
        return 2
    _check_configuration()
    from telemetry_assets import environment

    try:
        reports = erase_people(environment.lake(), environment.warehouse(), environment.secure_store(), requests)
    except ErasureIncomplete as error:
        print(f"telemetry erase: {error}", file=sys.stderr)
        return 1
    instance = _dagster_instance()
    from telemetry_assets.defs.erasure.assets import erasure_materialization

    for report in reports:
        _print_erasure(report)
        instance.report_runless_asset_event(erasure_materialization(report))
    print("warehouse and secure store files rewritten")
    failed = []
    for day in sorted({day for report in reports for day in report.days}):
        if all(_run_day(stage, day, instance, failed) for stage in ("join_day", "measure_day")):
            print(f"{day}  joins and metrics computed again")
    private = _privacy_checks(instance)
    return 1 if failed or not private else 0


def _print_erasure(report) -> None:
    print(f"erasure {report.request_id}: {report.ids_suppressed} ids and {report.conversations_suppressed} "
          "conversations, whose calls ingest drops from now on")
    for place, rows in sorted(report.rows_erased.items()):
        print(f"  {place:<40} {rows:>8,} rows erased")
    if not report.rows_erased:
        print("  nothing was held about them")
    print(f"  {report.log_rows_marked:,} governance-log rows stamped erased_at; "
          f"{report.export_files_rewritten} export files written again")


def _counted(n: int, noun: str) -> str:
    """`1 request`, `2 requests`: the nouns counted here all take an s."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _an_id(text: str) -> str:
    """A user or anonymous id as the calls carry it: any text but an empty one."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an id cannot be empty")
    return text


def _generator_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=_at_least_one, default=7)
    parser.add_argument("--users", type=_at_least_one, default=200)
    parser.add_argument("--events-per-day", type=_at_least_one, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", type=date.fromisoformat, default=None, help="first day (default: ends yesterday)")


def _at_least_one(text: str) -> int:
    """A count of days, users or events: a whole number, 1 or more (the generator needs something to draw from)."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return count


def _generate(args) -> dict:
    from telemetry_assets import environment
    from telemetry_assets.generate.traffic import GeneratorConfig, generate

    store = environment.lake()
    config = GeneratorConfig(days=args.days, users=args.users, events_per_day=args.events_per_day,
                             seed=args.seed, start=args.start)
    manifest = generate(store, config)
    print(f"generated {args.days} days x ~{args.events_per_day:,} AI events into {store.describe()}")
    return manifest


def run_partitions(start: date, end: date) -> int:
    """Land every day of the range through Dagster, then join every day, then measure every day (see
    defs/jobs.py), on a persistent instance the UI reads."""
    days = _days(start, end)
    _check_configuration()
    instance = _dagster_instance()
    from telemetry_assets.govern.safety import safety_over
    from telemetry_assets.ingest.reconcile import line_reconciliation, quarantined_by_type

    warehouse = _warehouse()
    failed = []
    for day in days:
        if _run_day("land_day", day, instance, failed):
            with warehouse.get_connection() as con:
                (row,) = line_reconciliation(con, day, day) or [None]
            print(_progress_line(day, row))
    landed = [day for day in days if day not in failed]
    for stage, done in (("join_day", "joined to outcomes"), ("measure_day", "metrics computed")):
        for day in days:
            if day not in failed and _run_day(stage, day, instance, failed):
                print(f"{day}  {done}")
    expired = _expire_raw_text(instance)
    compacted = _compact_warehouse(instance)
    _deliver_alerts(start, end)
    if landed:  # over the days this run landed: a failed day's rows, if any, are an earlier run's
        with warehouse.get_connection() as con:
            by_type = sum((Counter(quarantined_by_type(con, day, day)) for day in landed), Counter())
            _print_summary([row for day in landed for row in line_reconciliation(con, day, day)],
                           dict(sorted(by_type.items())), safety_over(con, landed))
    if failed:
        print(f"{len(failed)} of {len(days)} days failed: {', '.join(map(str, failed))}", file=sys.stderr)
    return 1 if failed or not expired or not compacted else 0


NO_RETENTION = "kept until deleted by hand (the policy sets no raw_text_retention_days)"


def _expire_raw_text(instance) -> bool:
    """Run `expire_raw_text` once the range is measured: days landed before may have aged past the
    retention since (a day this run landed already past it was archived without its text)."""
    metadata = _run_upkeep("expire_raw_text", "audit__raw_text_expiry", instance, "raw text      expiry")
    if metadata is None:
        return False
    if "kept_from" not in metadata:
        print(f"raw text      {NO_RETENTION}")
    else:
        expired_now = (f"{metadata['rows_expired']:,} rows of {metadata['days_expired']} days expired now"
                       if metadata["rows_expired"] else "none older left to expire")
        print(f"raw text      kept from {metadata['kept_from']} ({metadata['retention_days']} days): {expired_now}")
    return True


def _compact_warehouse(instance) -> bool:
    """Run `compact_warehouse` once the range is written: the runs' own checkpoints leave the
    warehouse's row groups part-filled (`telemetry_assets/compaction.py`)."""
    metadata = _run_upkeep("compact_warehouse", "audit__warehouse_compactions", instance, "warehouse     compaction")
    if metadata is None:
        return False
    print(f"warehouse     compacted: {metadata['row_groups_before']:,} row groups to {metadata['row_groups_after']:,} "
          f"in {metadata['seconds']:.1f} s")
    return True


def _run_upkeep(job: str, asset_node: str, instance, name: str) -> dict | None:
    """Run a job of one unpartitioned asset; the metadata it materialised, or None once the failure
    is printed under `name`."""
    result = _execute(job, instance, QUIET_CONSOLE)
    if not result.success:
        print(f"{name} FAILED {_first_failure(result)} (run {result.run_id}; `telemetry ui` has the logs)")
        return None
    (materialization,) = result.asset_materializations_for_node(asset_node)
    return {key: value.value for key, value in materialization.metadata.items()}


def check_partitions(start: date, end: date) -> int:
    """Run the `checks_only` job on every day of the range, on the instance the UI reads, and print
    each check that did not pass with its metadata (where and how many, never a value), then the
    privacy checks, once. Exit 1 when a check of severity error failed or could not run; a failed
    warning is printed and exits 0."""
    days = _days(start, end)
    _check_configuration()
    instance = _dagster_instance()
    from telemetry_assets.definitions import defs

    every_check = len(defs.resolve_job_def("checks_only").asset_layer.asset_graph.asset_check_keys)
    failed = []
    for day in days:
        result = _execute("checks_only", instance, SILENT_CONSOLE, tags={"dagster/partition": day.isoformat()})
        evaluations = result.get_asset_check_evaluations()
        print(f"{day}  {sum(c.passed for c in evaluations)} of {every_check} checks passed"
              + ("" if _objects_landed(day) else " (no raw objects landed for this day)"))
        for evaluation in evaluations:
            if not evaluation.passed:
                print("  " + _check_failure_line(evaluation))
        crashed = [(step, message) for step, kind, message in _step_failures(result) if kind != "DagsterAssetCheckFailedError"]
        for step, message in crashed:
            print(f"  DID NOT RUN {step}: {message} (run {result.run_id}; `telemetry ui` has the logs)")
        if crashed or any(not c.passed and c.severity.value == "ERROR" for c in evaluations):
            failed.append(day)
    private = _privacy_checks(instance)
    if failed:
        print(f"{len(failed)} of {len(days)} days failed a check: {', '.join(map(str, failed))}", file=sys.stderr)
    return 1 if failed or not private else 0


PRIVACY_CHECKS = {"no_raw_text_past_retention": "raw text", "no_erased_person_held": "erasure"}  # in the order printed


def _privacy_checks(instance) -> bool:
    """Run `privacy_checks` (they look at every day at once, so once per command) and print a line
    for each; False when one failed or could not run."""
    result = _execute("privacy_checks", instance, SILENT_CONSOLE)
    evaluations = {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}
    for name, label in PRIVACY_CHECKS.items():
        evaluation = evaluations.get(name)
        if evaluation is None:
            crash = next((message for step, _, message in _step_failures(result) if step.endswith(name)), "no step failed")
            print(f"{label:<13} {name} DID NOT RUN: {crash} (run {result.run_id}; `telemetry ui` has the logs)")
        elif not evaluation.passed:
            print(f"{label:<13} {_check_failure_line(evaluation)}")
        else:
            print(f"{label:<13} {_privacy_pass_line(name, evaluation.metadata)}")
    return all(name in evaluations and evaluations[name].passed for name in PRIVACY_CHECKS)


def _privacy_pass_line(name: str, metadata) -> str:
    if name == "no_erased_person_held":
        return f"no erased person held anywhere ({_counted(metadata['requests'].value, 'request')}, every one completed)"
    if "kept_from" in metadata:
        return f"none held past retention (text kept from {metadata['kept_from'].value})"
    return NO_RETENTION


def _days(start: date, end: date) -> list[date]:
    """Every day from `start` to `end`; an inverted range stops the command (exit 2) before anything runs."""
    if end < start:
        raise settings.SettingsError(f"--end {end} is before --start {start}")
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def _objects_landed(day: date) -> int:
    """Raw objects the warehouse's ledger says the day read: none for a day with no traffic or never run."""
    from telemetry_assets.ingest.tables import existing_tables

    with _warehouse().get_connection() as con:
        if "audit.ingest_files" not in existing_tables(con):
            return 0
        return con.execute("SELECT count(*) FROM audit.ingest_files WHERE dt = ?", [day]).fetchone()[0]


def _check_failure_line(evaluation) -> str:
    kind = "WARNING" if evaluation.severity.value == "WARN" else ("FAILED (blocking)" if evaluation.blocking else "FAILED")
    details = ", ".join(f"{key}={value.value}" for key, value in evaluation.metadata.items())
    return f"{kind} {evaluation.asset_key.to_user_string()} {evaluation.check_name}: {details}"


def _check_configuration() -> None:
    """Load every configuration file the runs read, list the lake, and open the warehouse and the
    secure store, before the first run starts: a mistake then stops the command at once
    (SettingsError, exit 2), not the step that first reads it after every day of the range has
    landed, or every day in turn. A database another process holds stops it too, naming that
    process (DatabaseLockedError, exit 2). The settings read from the environment alone come first:
    a typo in one is refused at once, not after the seconds the imports below take."""
    settings.partitions_start()
    settings.dedupe_lookback_days()
    settings.ingest_chunk_mb()
    settings.ingest_memory_mb()
    import duckdb

    from checks.sources import load_sources
    from checks.tracking_plan import load_tracking_plan
    from telemetry_assets import environment
    from telemetry_assets.analytics.alert_rules import load_alert_rules
    from telemetry_assets.analytics.joins import load_model_prices
    from telemetry_assets.govern.intent import IntentRules
    from telemetry_assets.govern.policy import check_against_plan, load_policy

    with duckdb.connect() as scratch:  # the price table is read, and checked, by DuckDB
        loads = {
            "TELEMETRY_TRACKING_PLAN": lambda: load_tracking_plan(settings.tracking_plan_path()),
            "TELEMETRY_INTENTS": IntentRules.load,  # before the policy, whose intents it names
            "TELEMETRY_POLICY": lambda: check_against_plan(load_policy(settings.policy_path()),
                                                           load_tracking_plan(settings.tracking_plan_path())),
            "TELEMETRY_SOURCES": lambda: load_sources(settings.sources_path()),
            "TELEMETRY_ALERT_RULES": lambda: load_alert_rules(settings.alert_rules_path()),
            "TELEMETRY_MODEL_PRICES": lambda: load_model_prices(scratch),
            "TELEMETRY_LAKE_URL": lambda: environment.lake().check_readable(),
            "TELEMETRY_LOCK_WAIT_SECONDS": settings.lock_wait_seconds,
            "TELEMETRY_HOME": _open_databases,
        }
        for variable, load in loads.items():
            try:
                load()
            except settings.SettingsError:
                raise
            except (ValueError, duckdb.Error) as error:
                raise settings.SettingsError(f"{variable}: {error}") from None


def _warehouse():
    """The warehouse the runs open (imported here: the resources load Dagster, which `--help` need not)."""
    from telemetry_assets import environment

    return environment.warehouse()


def _open_databases() -> None:
    from telemetry_assets import environment

    for database in (environment.warehouse(), environment.secure_store()):
        with database.get_connection():
            pass


def _prepare_dagster_home() -> None:
    """A persistent instance under $TELEMETRY_HOME, with the single-writer pool limit."""
    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(settings.CONFIG_DIR / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)


def _deliver_alerts(start: date, end: date) -> None:
    """The same delivery the alert sensor does, so a `run` outside the daemon still alerts (once)."""
    from resources.alert_sinks import alert_router_from_env
    from telemetry_assets.analytics.alerts import AlertLedger, deliver

    sinks = alert_router_from_env().process_config_and_initialize().sinks()
    with _warehouse().get_connection() as con:
        sent = deliver(con, sinks, AlertLedger(settings.alert_ledger_path()), start, end)
    print(f"alerts        {len(sent)} new" + (f", sent to {len(sinks)} sink(s)" if sinks else " (no sink configured)"))
    for alert in sent:
        print(f"  [{alert['severity']}] {alert['dt']} {alert['rule']}: {alert['group_key']}")


def _execute(job_name: str, instance, console: dict, **options):
    """Run a job in this process on the resources the environment picks now. The code location
    picked its own when it was first imported: a caller that moved TELEMETRY_HOME since (a test
    calling `main`) would otherwise run on the old home."""
    from telemetry_assets import environment
    from telemetry_assets.definitions import defs

    return defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, resources=environment.resources(), raise_on_error=False, run_config=console, **options)


def _run_day(job_name: str, day: date, instance, failed: list) -> bool:
    result = _execute(job_name, instance, QUIET_CONSOLE, partition_key=day.isoformat())
    if not result.success:
        failed.append(day)
        print(f"{day}  {job_name} FAILED {_first_failure(result)} (run {result.run_id}; `telemetry ui` has the logs)")
    return result.success


def _first_failure(result) -> str:
    """The step that failed first and the error at the root of it, in one line."""
    failures = _step_failures(result)
    if not failures:
        return "with no failed step (the run's own logs say why)"
    step, _, message = failures[0]
    return f"in {step}: {message}"


def _step_failures(result) -> list[tuple[str, str, str]]:
    """Each failed step, the class of the error at the root of its failure, and its first line."""
    failures = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error.cause:  # Dagster wraps what the step raised
                error = error.cause
            failures.append((event.step_key, error.cls_name, error.message.strip().splitlines()[0]))
    return failures


def _dagster_instance():
    _prepare_dagster_home()
    import dagster as dg

    return dg.DagsterInstance.get()


def _progress_line(day: date, row: dict | None) -> str:
    from telemetry_assets.ingest.reconcile import unaccounted_lines

    if row is None:
        return f"{day}  no raw objects"
    gap = unaccounted_lines(row)
    verdict = f"GAP {gap:+,d}" if gap else "reconciled"
    erased = f" + {row['erased_events']:,} erased" if row["erased_events"] else ""
    return (f"{day}  {_counted(row['objects'], 'object'):<10} {row['lines_read']:>9,} lines = {row['valid_events']:,} valid"
            f" + {row['quarantined']:,} quarantined + {row['duplicates']:,} duplicates"
            f" + {row['non_ai_events']:,} non-AI{erased} + {row['blank_lines']:,} blank  [{verdict}]")


def _print_summary(rows: list[dict], by_type: dict[str, int], safety: dict) -> None:
    from telemetry_assets.ingest.reconcile import RECONCILED_COLUMNS

    total = {key: sum(r[key] for r in rows) for key in RECONCILED_COLUMNS}
    percent = lambda rate: "n/a" if rate is None else f"{rate:.1%}"
    print()
    print(f"events read   {total['lines_read']:>10,}  lines over {_counted(len(rows), 'partition')}")
    print(f"valid events  {total['valid_events']:>10,}  passed the tracking plan")
    print(f"governed      {safety['in_warehouse']:>10,}  in the warehouse (consent to analytics)")
    print(f"quarantined   {total['quarantined']:>10,}  " + ", ".join(f"{k} {v:,}" for k, v in by_type.items()))
    print(f"duplicates    {total['duplicates']:>10,}")
    print(f"non-AI events {total['non_ai_events']:>10,}")
    if total["erased_events"]:
        print(f"erased        {total['erased_events']:>10,}  calls from people who asked to be erased")
    print(f"blank lines   {total['blank_lines']:>10,}")
    print(f"safety        redaction rate {percent(safety['redaction_rate'])}, "
          f"consent enforcement {percent(safety['consent_enforcement_rate'])}, "
          f"audit completeness {percent(safety['audit_completeness'])}, "
          f"{safety['sensitive_destinations_blocked']:,} deliveries blocked")


if __name__ == "__main__":
    sys.exit(main())
