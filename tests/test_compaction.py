"""The warehouse's own checkpoints leave part-filled row groups to the nightly compaction, which
merges them without changing a row, and says so in its ledger."""

import dagster as dg
import duckdb

from resources.warehouse import Warehouse
from telemetry_assets.compaction import row_groups

ROWS_PER_DAY = 150_000  # more than a row group (122,880 rows): DuckDB inserts it in parallel
ROW_GROUP = 122_880


def land_a_day(warehouse: Warehouse, day: int) -> None:
    with warehouse.get_connection() as con:
        con.execute("CREATE TABLE IF NOT EXISTS events (day INTEGER, n BIGINT, label VARCHAR)")
        con.execute("SET preserve_insertion_order = false")
        con.execute("INSERT INTO events SELECT ?, i, 'event ' || i FROM range(?) r(i)", [day, ROWS_PER_DAY])


def compact(warehouse: Warehouse) -> tuple[dg.ExecuteInProcessResult, dict]:
    from telemetry_assets.definitions import defs

    result = defs.resolve_job_def("compact_warehouse").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), resources={"warehouse": warehouse}, raise_on_error=False)
    (materialization,) = result.asset_materializations_for_node("audit__warehouse_compactions")
    return result, {key: value.value for key, value in materialization.metadata.items()}


def events_row_groups(database: str) -> int:
    with duckdb.connect(database, read_only=True) as con:
        return con.execute("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('events')").fetchall()[0][0]


def contents(database: str) -> tuple:
    with duckdb.connect(database, read_only=True) as con:
        return con.execute("SELECT count(*), sum(day * n), sum(hash(label)) FROM events").fetchall()[0]


def test_compaction_merges_the_row_groups_the_days_left_part_filled_and_changes_no_row(tmp_path):
    warehouse = Warehouse(database=str(tmp_path / "warehouse.duckdb"))
    for day in range(4):
        land_a_day(warehouse, day)
    assert events_row_groups(warehouse.database) == 8  # each day's last row group part-filled: none merged
    before = contents(warehouse.database)

    result, metadata = compact(warehouse)
    assert result.success
    assert (metadata["row_groups_before"], metadata["row_groups_after"]) == (8, 6)
    assert events_row_groups(warehouse.database) == 6  # writing the ledger's row merged nothing more
    assert contents(warehouse.database) == before
    with duckdb.connect(warehouse.database, read_only=True) as con:
        ledger = con.execute("SELECT row_groups_before, row_groups_after, seconds >= 0, compacted_at IS NOT NULL "
                             "FROM audit.warehouse_compactions").fetchall()
    assert ledger == [(8, 6, True, True)]

    result, metadata = compact(warehouse)  # the next night merges further, down to the fewest row groups
    assert events_row_groups(warehouse.database) == -(-4 * ROWS_PER_DAY // ROW_GROUP) == 5
    assert contents(warehouse.database) == before

    land_a_day(warehouse, 4)  # and the warehouse's connections go on leaving it to the compaction
    assert events_row_groups(warehouse.database) == 5 + 2


def test_an_empty_warehouse_compacts_to_nothing(tmp_path):
    result, metadata = compact(Warehouse(database=str(tmp_path / "warehouse.duckdb")))
    assert result.success
    assert (metadata["row_groups_before"], metadata["row_groups_after"]) == (0, 0)
