from datetime import date, timedelta

import duckdb
import pytest

from checks.tracking_plan import load_tracking_plan
from resources.object_store import LocalObjectStore
from resources.secure_store import SecureStore
from telemetry_assets.govern.policy import load_policy
from telemetry_assets.ingest.partition import ingest_partition
from telemetry_assets.settings import CONFIG_DIR

DAY = date(2026, 9, 14)
SUMMARY = "summary"  # a test's `record_property` lines under this name are printed at the end of the run


def pytest_terminal_summary(terminalreporter):
    """Print the figures tests recorded for people to read (redaction recall). Printing them from the
    test itself shows nothing when the test ran on an xdist worker; its recorded properties come back."""
    lines = [value for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
             if report.when == "call" for name, value in report.user_properties if name == SUMMARY]
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def own_telemetry_home(tmp_path_factory, monkeypatch):
    """Every test starts on a home of its own (a test that needs a particular one sets it), so none
    writes into the `.telemetry` that `make test` exports, where a developer's demo lives, and no
    two xdist workers share a warehouse."""
    monkeypatch.setenv("TELEMETRY_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture
def plan():
    return load_tracking_plan(CONFIG_DIR / "tracking_plan.yaml")


@pytest.fixture
def policy():
    return load_policy(CONFIG_DIR / "policy.yaml")


@pytest.fixture
def secure_store(tmp_path):
    return SecureStore(database=str(tmp_path / "secure.duckdb"))


@pytest.fixture
def lake(tmp_path):
    return LocalObjectStore(root=str(tmp_path / "lake"))


@pytest.fixture
def warehouse(tmp_path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    yield con
    con.close()


@pytest.fixture
def ingest(lake, warehouse, plan, policy, secure_store):
    """Ingest one day of `lake` into `warehouse` and check nothing was lost."""

    def run(day=DAY, policy=policy, **options):
        options.setdefault("today", day + timedelta(days=1))  # landed the morning after: raw text is archived
        report = ingest_partition(lake, warehouse, day, plan, policy, secure_store, **options)
        for f in report.files:
            assert f.unaccounted == 0, f
        return report

    return run


def quarantine_rows(con, day=DAY) -> list[tuple]:
    """(line_number, message_id, event, [violation types]) ordered by key and line."""
    return con.execute(
        """SELECT line_number, message_id, event, list_transform(violations, lambda v: v.type)
           FROM audit.quarantine WHERE dt = ? ORDER BY source_key, line_number""",
        [day],
    ).fetchall()
