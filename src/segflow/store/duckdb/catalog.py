"""What the open database holds: its tables and their columns (in its ``main``
schema, so a same-named table of another attached database or of ``temp`` does not
decide what the store has).  No other store module is imported here, so any of them
can ask."""

from __future__ import annotations

import duckdb


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, bool]:
    """Column name -> nullable, in declared order, of ``table`` in the open database's
    ``main`` schema ({} without such a table): a same-named table of another attached
    database or of ``temp`` must not decide what the store has."""
    rows = con.execute(
        "SELECT column_name, is_nullable FROM duckdb_columns() WHERE table_name = $t"
        " AND schema_name = 'main' AND database_name = current_database()"
        " ORDER BY column_index",
        {"t": table},
    ).fetchall()
    return {str(c): bool(n) for c, n in rows}


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the open database's ``main`` schema holds table ``name`` (optional
    tables are made on first use; a same-named temp table does not count)."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?"
        " AND schema_name = 'main' AND database_name = current_database()",
        [name],
    ).fetchone()
    return bool(row and row[0])
