"""Opening the warehouse and the secure store. One that another process holds (a `duckdb` shell,
a notebook): a connection waits a while for it, then fails naming the process; the CLI stops before
any run. And a long query draws no progress bar on stdout."""

import os
import subprocess
import sys
import threading
from contextlib import contextmanager

import duckdb
import pytest

from resources import duckdb_files
from resources.duckdb_files import DatabaseLockedError
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import settings
from telemetry_assets.cli import main

HOLD = "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()"


@contextmanager
def held_by_another_process(path):
    """A process that holds `path` open until the block ends (or `release` is called)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        release(holder)


def release(holder: subprocess.Popen) -> None:
    if holder.stdin and not holder.stdin.closed:
        holder.stdin.close()
    holder.wait(timeout=30)


STORES = {
    "warehouse": lambda path, wait: Warehouse(database=str(path), lock_wait_seconds=wait),
    "secure_store": lambda path, wait: SecureStore(database=str(path), lock_wait_seconds=wait),
}


@pytest.mark.parametrize("store", STORES)
def test_a_held_file_fails_after_the_wait_naming_the_process(tmp_path, store):
    path = tmp_path / "held.duckdb"
    with held_by_another_process(path) as holder:
        with pytest.raises(DatabaseLockedError) as raised:
            with STORES[store](path, 0.3).get_connection():
                pass
    message = str(raised.value)
    assert str(path) in message and f"PID {holder.pid} " in message
    assert "waited 0.3 s" in message and "TELEMETRY_LOCK_WAIT_SECONDS" in message


@pytest.mark.parametrize("store", STORES)
def test_a_lock_released_while_waiting_is_taken(tmp_path, store):
    path = tmp_path / "held.duckdb"
    with held_by_another_process(path) as holder:
        threading.Timer(0.5, release, [holder]).start()
        with STORES[store](path, 60).get_connection() as con:
            assert con.execute("SELECT 42").fetchone() == (42,)


PROGRESS_BAR_SETTINGS = """
import sys, duckdb
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
setting = "SELECT current_setting('enable_progress_bar')"
with duckdb.connect(sys.argv[1]) as plain:
    print(plain.execute(setting).fetchone()[0])
for store in (Warehouse(database=sys.argv[2]), SecureStore(database=sys.argv[3])):
    with store.get_connection() as con:
        print(con.execute(setting).fetchone()[0])
"""


def test_connections_draw_no_progress_bar(tmp_path):
    """Where DuckDB takes Python for interactive (`python -c`, a notebook; the bench's floor ran so),
    it enables a progress bar on a database file, drawn on stdout for any query over two seconds:
    it came before `bench --json`'s JSON, and in run logs. (Drawing it cannot be tested quickly:
    setting the delay to zero enables the bar again.)"""
    paths = [str(tmp_path / name) for name in ("plain.duckdb", "warehouse.duckdb", "secure.duckdb")]
    done = subprocess.run([sys.executable, "-c", PROGRESS_BAR_SETTINGS, *paths], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split() == ["True", "False", "False"]  # what DuckDB does, then what the stores do


def test_the_sensors_skip_a_tick_while_a_run_holds_the_warehouse_naming_it(tmp_path):
    import dagster as dg

    from resources.alert_sinks import AlertRouter
    from telemetry_assets.defs.schedules import alert_sensor

    path = tmp_path / "warehouse.duckdb"
    resources = {"warehouse": Warehouse(database=str(path)), "alert_router": AlertRouter(file_path=str(tmp_path / "out"))}
    with held_by_another_process(path) as holder:
        skipped = alert_sensor(dg.build_sensor_context(resources=resources))
    assert skipped.skip_message.startswith(f"warehouse busy: {path} is held by PID {holder.pid} ")
    assert "waited" not in skipped.skip_message  # a sensor never waits: it looks again next tick
    assert not (tmp_path / "out").exists()


def test_other_errors_are_raised_at_once_without_waiting(tmp_path, monkeypatch):
    pauses = []
    monkeypatch.setattr(duckdb_files.time, "sleep", pauses.append)
    not_a_database = tmp_path / "warehouse.duckdb"
    not_a_database.write_text("a CSV someone saved under the warehouse's name\n")
    with pytest.raises(duckdb.Error) as raised:
        with Warehouse(database=str(not_a_database), lock_wait_seconds=600).get_connection():
            pass
    assert not isinstance(raised.value, DatabaseLockedError)
    assert pauses == []


def test_a_secure_store_that_cannot_be_opened_leaves_the_umask_as_it_was(tmp_path):
    before = os.umask(0o022)
    try:
        path = tmp_path / "secure.duckdb"
        with held_by_another_process(path), pytest.raises(DatabaseLockedError):
            with SecureStore(database=str(path), lock_wait_seconds=0).get_connection():
                pass
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TELEMETRY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TELEMETRY_LAKE_URL", raising=False)
    monkeypatch.setenv("TELEMETRY_LOCK_WAIT_SECONDS", "0.2")
    return tmp_path / "home"


@pytest.mark.parametrize("held", ["warehouse.duckdb", "secure.duckdb"])
def test_telemetry_run_stops_before_any_run_while_a_database_is_held(home, held, capsys):
    home.mkdir()
    with held_by_another_process(home / held) as holder:
        status = main(["run", "--start", "2026-09-01", "--end", "2026-09-03"])
    out, err = capsys.readouterr()
    assert status == 2
    assert f"telemetry run: {home / held} is held by PID {holder.pid} " in err
    assert "land_day" not in out and not (home / "dagster").exists()  # no run was started


def test_telemetry_report_on_a_held_warehouse_says_so(home, capsys):
    home.mkdir()
    with held_by_another_process(home / "warehouse.duckdb") as holder:
        assert main(["report", "--date", "2026-09-01"]) == 2
    assert f"is held by PID {holder.pid} " in capsys.readouterr().err


@pytest.mark.parametrize("value", ["soon", "-1", "nan", ""])
def test_a_lock_wait_that_is_not_a_number_of_seconds_is_refused(home, value, monkeypatch, capsys):
    home.mkdir()
    monkeypatch.setenv("TELEMETRY_LOCK_WAIT_SECONDS", value)
    with pytest.raises(settings.SettingsError, match="TELEMETRY_LOCK_WAIT_SECONDS="):
        settings.lock_wait_seconds()
    assert main(["run", "--start", "2026-09-01", "--end", "2026-09-01"]) == 2
    assert "is not a number of seconds (0 or more)" in capsys.readouterr().err
