"""Ingest holds about 1 GB of its own beside DuckDB, so it runs DuckDB under `ingest_memory_limit`;
the stages after it get the full `memory_limit` (see `resources/warehouse.py`)."""

import duckdb

from resources.warehouse import Warehouse
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
