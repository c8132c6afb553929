"""The schedules ask for the right days: yesterday first, then the day before for its late events;
every check again over the last week, on a job that writes nothing; and a landed day again when
raw objects arrive, or are written again, after it landed."""

from datetime import datetime, timedelta, timezone

import dagster as dg
import duckdb
import pytest

from checks.sources import load_sources
from resources.object_store import LocalObjectStore
from resources.secrets import GovernanceSecrets
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.defs.ingest.assets import ingest_ai_events
from telemetry_assets.defs.schedules import (
    RECHECK_DAYS,
    checks_only_schedule,
    daily_pipeline_schedule,
    late_objects_sensor,
    privacy_checks_schedule,
    raw_text_expiry_schedule,
    warehouse_compaction_schedule,
)
from telemetry_assets.ingest.reconcile import objects_changed_since_landing
from telemetry_assets.sources.load import load_source
from tests.builders import ai_call, gz

MORNING = datetime(2026, 9, 10, 2, tzinfo=timezone.utc)


def requests(schedule) -> list[dg.RunRequest]:
    return list(schedule(dg.build_schedule_context(scheduled_execution_time=MORNING)))


def test_the_daily_schedule_runs_yesterday_first_then_the_day_before_again():
    runs = requests(daily_pipeline_schedule)
    assert [(r.partition_key, r.tags["dagster/priority"]) for r in runs] == [("2026-09-09", "10"), ("2026-09-08", "0")]
    assert len({r.run_key for r in runs}) == 2


def test_the_check_only_schedule_rechecks_the_last_week_by_partition_tag():
    runs = requests(checks_only_schedule)
    assert len(runs) == RECHECK_DAYS
    assert [r.tags["dagster/partition"] for r in runs][:2] == ["2026-09-09", "2026-09-08"]
    assert runs[-1].tags["dagster/partition"] == "2026-09-03"
    assert all(r.partition_key is None for r in runs)


@pytest.mark.parametrize("schedule, job, run_key", [
    (raw_text_expiry_schedule, "expire_raw_text", "expiry@2026-09-10"),
    (privacy_checks_schedule, "privacy_checks", "privacy checks@2026-09-10"),
    (warehouse_compaction_schedule, "compact_warehouse", "compaction@2026-09-10"),
])
def test_the_upkeep_schedules_run_once_a_night_and_are_on_unless_switched_off(schedule, job, run_key):
    run = schedule(dg.build_schedule_context(scheduled_execution_time=MORNING))
    assert run.run_key == run_key and run.partition_key is None
    assert schedule.job_name == job
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


class LandedLake:
    """A local lake, days landed through Dagster on an ephemeral instance, and the sensor looking."""

    def __init__(self, tmp_path):
        self.lake = LocalObjectStore(root=str(tmp_path / "lake"))
        self.resources = {"lake": self.lake, "warehouse": Warehouse(database=str(tmp_path / "warehouse.duckdb")),
                          "secrets": GovernanceSecrets(), "secure_store": SecureStore(database=str(tmp_path / "secure.duckdb"))}
        self.instance = dg.DagsterInstance.ephemeral()

    def land(self, day):
        assert dg.materialize([ingest_ai_events], partition_key=day.isoformat(), instance=self.instance,
                              resources=self.resources).success

    def look(self):
        context = dg.build_sensor_context(instance=self.instance,
                                          resources={k: self.resources[k] for k in ("lake", "warehouse")})
        return late_objects_sensor(context)


def test_objects_that_arrive_after_their_day_landed_land_it_again_with_the_day_before(tmp_path):
    """A day of the last week that landed gets a late object: that day runs again first, then the
    day before (its turns read the day's events). Looking again asks for nothing new; once the day
    has landed again, there is nothing to ask for, until a late source file comes. An object for a
    day never landed is not ours."""
    today = datetime.now(timezone.utc).date()
    before, late, never = (today - timedelta(days=n) for n in (3, 2, 1))
    world = LandedLake(tmp_path)
    for day in (before, late):
        world.lake.put(f"raw/ai_events/dt={day}/part-0.jsonl.gz", gz(ai_call()))
        world.land(day)
    world.lake.put(f"raw/ai_events/dt={never}/part-0.jsonl.gz", gz(ai_call()))
    assert isinstance(world.look(), dg.SkipReason)

    world.lake.put(f"raw/ai_events/dt={late}/1789380000.retried.jsonl.gz", gz(ai_call()))
    runs = world.look()
    assert [(r.partition_key, r.tags["dagster/priority"]) for r in runs] == [(late.isoformat(), "10"), (before.isoformat(), "0")]
    assert [r.run_key for r in world.look()] == [r.run_key for r in runs]

    world.land(late)
    assert "no object arrived or changed after its day landed (2 landed days looked at)" in world.look().skip_message
    world.lake.put(f"sources/support_tickets/dt={late}/helpdesk-late.csv", b"ticket_id\n")  # a business source too
    assert [r.partition_key for r in world.look()] == [late.isoformat(), before.isoformat()]


def test_an_object_written_again_after_its_day_landed_lands_the_day_again_once_per_version(tmp_path):
    """An upstream job re-run over its output rewrites a key the day already read: the key is not
    new, but what it holds is, so the day runs again. Each new version is one run key."""
    day = datetime.now(timezone.utc).date() - timedelta(days=2)
    world = LandedLake(tmp_path)
    key = f"raw/ai_events/dt={day}/part-0.jsonl.gz"
    world.lake.put(key, gz(ai_call()))
    world.land(day)
    assert isinstance(world.look(), dg.SkipReason)

    world.lake.put(key, gz(ai_call(), ai_call(message_id="m-rerun")))
    first = world.look()
    assert [r.partition_key for r in first] == [day.isoformat()]
    world.lake.put(key, gz(ai_call(message_id="m-third")))
    second = world.look()
    assert [r.partition_key for r in second] == [day.isoformat()]
    assert second[0].run_key != first[0].run_key


def changed_keys(lake, con, days, sources) -> dict:
    return {day: [obj.key for obj in objects] for day, objects in objects_changed_since_landing(lake, con, days, sources).items()}


def test_objects_the_ledgers_say_were_read_have_not_arrived_and_one_gone_from_the_lake_is_no_reason(lake, warehouse):
    day = datetime.now(timezone.utc).date() - timedelta(days=2)
    conversions = load_sources(settings.sources_path())["conversions"]
    header = "conversion_id,user_id,conversation_id,occurred_at,type,revenue"
    lake.put(f"sources/conversions/dt={day}/a.csv", f"{header}\ncv1,u,,{day}T12:00:00Z,purchase,9\n".encode())
    load_source(lake, warehouse, conversions, day)
    warehouse.execute("INSERT INTO audit.ingest_files (dt, source_key) VALUES (?, ?)", [day, f"raw/ai_events/dt={day}/gone.jsonl"])
    assert changed_keys(lake, warehouse, [day], [conversions]) == {}

    lake.put(f"sources/conversions/dt={day}/late.csv", f"{header}\n".encode())
    lake.put(f"raw/ai_events/dt={day}/new.jsonl", b"{}\n")
    assert changed_keys(lake, warehouse, [day], [conversions]) == {
        day: [f"raw/ai_events/dt={day}/new.jsonl", f"sources/conversions/dt={day}/late.csv"]}
    assert changed_keys(lake, warehouse, [day], []) == {day: [f"raw/ai_events/dt={day}/new.jsonl"]}


def test_a_source_file_written_again_is_changed_and_a_ledger_without_versions_is_taken_as_read(lake, tmp_path):
    """The helpdesk export of a day re-run with corrections keeps its name; its new version is a
    change. Ledger rows from before versions were recorded (NULL, or no such column in a warehouse
    the sensor can only read) are not: upgrading must not land a week again."""
    day = datetime.now(timezone.utc).date() - timedelta(days=2)
    conversions = load_sources(settings.sources_path())["conversions"]
    header = "conversion_id,user_id,conversation_id,occurred_at,type,revenue"
    key = f"sources/conversions/dt={day}/a.csv"
    lake.put(key, f"{header}\ncv1,u,,{day}T12:00:00Z,purchase,9\n".encode())
    database = str(tmp_path / "w.duckdb")
    with duckdb.connect(database) as con:
        load_source(lake, con, conversions, day)
        [(version,)] = con.execute("SELECT object_version FROM audit.source_files").fetchall()
        assert version == next(lake.list_objects(key)).version
        lake.put(key, f"{header}\ncv1,u,,{day}T12:00:00Z,purchase,19\n".encode())
        assert changed_keys(lake, con, [day], [conversions]) == {day: [key]}
        con.execute("UPDATE audit.source_files SET object_version = NULL")
        assert changed_keys(lake, con, [day], [conversions]) == {}
        con.execute("ALTER TABLE audit.source_files DROP COLUMN object_version")
    with duckdb.connect(database, read_only=True) as old_ledger:
        assert changed_keys(lake, old_ledger, [day], [conversions]) == {}
