"""Materialisation metadata every table shares, so lineage in the UI reads like the design."""

import dagster as dg


def table_metadata(con, table: str, day) -> dict:
    """Column schema and the day's row count."""
    columns = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ? ORDER BY column_index", table.split(".")).fetchall()
    (rows,) = con.execute(f"SELECT count(*) FROM {table} WHERE dt = ?", [day]).fetchone()
    return {"dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns]),
            "dagster/row_count": rows}
