"""Ingest holds about 1 GB of its own beside DuckDB, so it runs DuckDB under `ingest_memory_limit`;
the stages after it get the full `memory_limit` (see `resources/warehouse.py`)."""

import dagster as dg
import duckdb
import pytest

from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import environment
from telemetry_assets.generate.traffic import GeneratorConfig
from tests.pipeline_runs import run_generated


def shown_by_duckdb(limit: str) -> str:
    with duckdb.connect() as con:
        con.execute(f"SET memory_limit = '{limit}'")
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def test_ingest_runs_under_the_ingest_cap_and_the_joins_under_the_full_one(tmp_path, monkeypatch):
    from telemetry_assets.defs.analytics import assets as analytics
    from telemetry_assets.defs.ingest import assets as ingest

    limits = {}

    def recording(name, real):
        def run(*args, **kwargs):
            con = next(arg for arg in args if isinstance(arg, duckdb.DuckDBPyConnection))
            limits[name] = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
            return real(*args, **kwargs)
        return run

    monkeypatch.setattr(ingest, "ingest_partition", recording("ingest", ingest.ingest_partition))
    monkeypatch.setattr(analytics, "build_joins", recording("joins", analytics.build_joins))
    run_generated(tmp_path, GeneratorConfig(days=1, users=20, events_per_day=300, seed=5),
                  stages=("land_day", "join_day"), require_clean=False)
    defaults = Warehouse(database=str(tmp_path / "unused.duckdb"))
    assert limits == {"ingest": shown_by_duckdb(defaults.ingest_memory_limit),
                      "joins": shown_by_duckdb(defaults.memory_limit)}
    assert shown_by_duckdb(defaults.ingest_memory_limit) != shown_by_duckdb(defaults.memory_limit)


def test_the_ingest_cap_is_taken_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TELEMETRY_HOME", str(tmp_path))
    monkeypatch.setenv("TELEMETRY_INGEST_MEMORY_MB", "768")
    assert shown_by_duckdb(environment.warehouse().ingest_memory_limit) == shown_by_duckdb("768MB")
    monkeypatch.delenv("TELEMETRY_INGEST_MEMORY_MB")  # unset: the resource's own default
    default = Warehouse(database=str(tmp_path / "unused.duckdb")).ingest_memory_limit
    assert shown_by_duckdb(environment.warehouse().ingest_memory_limit) == shown_by_duckdb(default)


@pytest.mark.parametrize("configure", [
    lambda path, size: Warehouse(database=path, memory_limit=size),
    lambda path, size: Warehouse(database=path, ingest_memory_limit=size),
    lambda path, size: SecureStore(database=path, memory_limit=size),
], ids=["memory_limit", "ingest_memory_limit", "secure_store"])
def test_a_memory_limit_duckdb_cannot_read_is_refused_when_the_resource_is_configured(tmp_path, configure):
    database = str(tmp_path / "store.duckdb")
    for size in ["lots", "1GB'; DROP TABLE audit.governance_log; --"]:
        with pytest.raises(ValueError, match="is not a memory size DuckDB accepts"):
            configure(database, size)
    assert not (tmp_path / "store.duckdb").exists()  # refused before anything was opened
    configure(database, "2GiB")  # any size DuckDB reads is taken


def test_a_memory_limit_from_the_environment_is_checked_when_a_run_reads_it(tmp_path, monkeypatch):
    @dg.asset
    def reads_the_limit(warehouse: Warehouse) -> None:
        with warehouse.get_connection() as con:
            assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == shown_by_duckdb("2GiB")

    defs = dg.Definitions(assets=[reads_the_limit], resources={
        "warehouse": Warehouse(database=str(tmp_path / "w.duckdb"), memory_limit=dg.EnvVar("WAREHOUSE_MEMORY"))})
    job = defs.resolve_implicit_global_asset_job_def()
    monkeypatch.setenv("WAREHOUSE_MEMORY", "2GiB")
    assert job.execute_in_process().success
    monkeypatch.setenv("WAREHOUSE_MEMORY", "lots")
    with pytest.raises(dg.DagsterResourceFunctionError) as refused:
        job.execute_in_process()
    assert "'lots' is not a memory size DuckDB accepts" in str(refused.value.__cause__)
