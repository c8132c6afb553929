"""Tasks side by side on cursors of their own: results in order, sessions apart, errors raised."""

import threading

import duckdb
import pytest

from telemetry_assets.cursors import side_by_side


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")
    con.execute("CREATE TABLE numbers AS SELECT range AS n FROM range(10)")
    yield con
    con.close()


def test_results_come_in_the_order_of_the_items_whatever_order_the_tasks_end_in(con):
    first_may_end = threading.Event()

    def task(cursor, limit):
        if limit == 3:
            first_may_end.wait(5)  # the first item's task ends after the second's
        else:
            first_may_end.set()
        return cursor.execute("SELECT count(*) FROM numbers WHERE n < ?", [limit]).fetchone()[0]

    assert side_by_side(con, task, [3, 7]) == [3, 7]


def test_each_task_has_a_session_of_its_own_in_the_callers_time_zone(con):
    both_created = threading.Barrier(2, timeout=5)

    def task(cursor, name):
        cursor.execute(f"CREATE TEMP TABLE scratch AS SELECT '{name}' AS owner")
        both_created.wait()  # each task's temp table exists before either reads its own
        owner = cursor.execute("SELECT owner FROM scratch").fetchall()
        return owner, cursor.execute("SELECT current_setting('TimeZone')").fetchone()[0]

    assert side_by_side(con, task, ["a", "b"]) == [([("a",)], "America/New_York"), ([("b",)], "America/New_York")]
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'scratch'").fetchone()[0] == 0


def test_a_failing_task_is_raised_after_every_other_task_has_ended(con):
    ended = []

    def task(cursor, item):
        if item == "bad":
            cursor.execute("SELECT * FROM no_such_table")
        cursor.execute("SELECT count(*) FROM numbers").fetchone()
        ended.append(item)
        return item

    with pytest.raises(duckdb.CatalogException, match="no_such_table"):
        side_by_side(con, task, ["bad", "ok", "also ok"])
    assert sorted(ended) == ["also ok", "ok"]
    assert con.execute("SELECT count(*) FROM numbers").fetchone()[0] == 10  # the caller's connection still works
