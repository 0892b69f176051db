"""Copy a DuckDB store's batch tables into chDB (replacing what was there).

Each table is written by DuckDB as Parquet to a temporary file and read by ClickHouse's
``file`` table function into a new MergeTree table of a name of its own: Parquet carries every
value in its binary form (doubles bit for bit, timestamps in microseconds), and the
``extra`` JSON as the text DuckDB keeps.  Only when every table is filled are the new
tables exchanged with the old ones and the old ones dropped, so a failed load leaves
the previous tables in place.  Trait rows carry ``valid_to`` computed on the way (the
DuckDB store is only read)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

import duckdb

from segflow.batch.dialects.clickhouse import TIMESTAMP
from segflow.store.clickhouse.connection import Session, existing_tables, literal, quoted
from segflow.store.engines import LOADED_TABLES, LoadReport
from segflow.store.postgres.load import VALID_TO

TABLES: Final = LOADED_TABLES
"""The tables a load writes, in load order."""

TYPES: Final = {
    "VARCHAR": "String",
    "DOUBLE": "Float64",
    "BOOLEAN": "Bool",
    "TIMESTAMP": TIMESTAMP,
    "BIGINT": "Int64",
    "INTEGER": "Int32",
    "JSON": "String",
}
"""DuckDB column type -> ClickHouse's (each ``Nullable``, as DuckDB's columns are)."""

STAGING: Final = "_segflow_load_"
"""The prefix of the tables a load fills before they replace the batch tables."""


def clickhouse_type(duckdb_type: str, where: str) -> str:
    try:
        return f"Nullable({TYPES[duckdb_type.upper()]})"
    except KeyError:
        raise ValueError(f"{where}: no ClickHouse type for DuckDB's {duckdb_type}") from None


def sort_key(table: str, columns: Iterable[str]) -> list[str]:
    """The MergeTree ordering: events by name (its code where the store has codes),
    profile and time, so a scan of some names reads their ranges only and groups a
    profile's rows together; traits by key and profile; the others by their first
    column."""
    names = list(columns)
    profile = "profile_no" if "profile_no" in names else "profile_id"
    if table == "events":
        return ["event_code" if "event_code" in names else "event", profile, "timestamp"]
    if table == "traits":
        return ["key", profile]
    return names[:1]


def create_table(name: str, table: str, columns: Mapping[str, str]) -> str:
    cols = ", ".join(
        f"{quoted(c)} {clickhouse_type(t, f'{table}.{c}')}" for c, t in columns.items()
    )
    order = ", ".join(quoted(c) for c in sort_key(table, columns))
    return (
        f"CREATE TABLE {quoted(name)} ({cols}) ENGINE = MergeTree ORDER BY ({order})"
        " SETTINGS allow_nullable_key = 1"
    )


def _duckdb_columns(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """Column name -> DuckDB type of each table a load writes ({} for one absent), read
    in one pass over the catalog (each ``duckdb_columns()`` call walks all of it)."""
    found = con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns()"
        " WHERE list_contains($tables, table_name) AND schema_name = 'main'"
        " AND database_name = current_database() ORDER BY table_name, column_index",
        {"tables": list(TABLES)},
    ).fetchall()
    columns: dict[str, dict[str, str]] = {t: {} for t in TABLES}
    for table, name, kind in found:
        columns[str(table)][str(name)] = str(kind)
    return columns


def _select(table: str, columns: Mapping[str, str]) -> str:
    parts = []
    for c, kind in columns.items():
        q = '"' + c.replace('"', '""') + '"'
        if table == "traits" and c == "valid_to":
            parts.append(f"{VALID_TO} AS valid_to")
        elif table == "traits" and c == "linked":
            parts.append("TRUE AS linked")
        elif kind.upper() == "JSON":
            parts.append(f"CAST({q} AS VARCHAR) AS {q}")
        else:
            parts.append(q)
    return f"SELECT {', '.join(parts)} FROM {table}"


UNREADABLE_JSON: Final = """
SELECT count(*), min(t.fullkey || ' = ' || CAST(t.atom AS VARCHAR))
FROM events AS e, json_tree(e.extra) AS t
WHERE e.extra IS NOT NULL AND t.type IN ('DOUBLE', 'HUGEINT') AND (
    regexp_full_match(CAST(t.atom AS VARCHAR), '-?[0-9]+')
    OR isinf(TRY_CAST(CAST(t.atom AS VARCHAR) AS DOUBLE))
)
"""
"""Overflow JSON numbers ClickHouse's reader takes otherwise than DuckDB's: an integer
beyond 64 bits (read as a string) and a number beyond a double's range (the whole
document then reads as invalid)."""


def check_json(con: duckdb.DuckDBPyConnection) -> None:
    """Refuse a store whose overflow JSON holds a number ClickHouse reads otherwise."""
    n, example = con.execute(UNREADABLE_JSON).fetchone() or (0, None)
    if n:
        raise ValueError(
            f"events.extra holds {n} JSON number{'s' if n > 1 else ''} ClickHouse reads"
            f" otherwise than DuckDB (an integer beyond 64 bits or beyond a double's range),"
            f" e.g. {example}: this store cannot be copied to chDB"
        )


def _parquet(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> int:
    """Write ``query``'s rows to ``path`` as Parquet; their number."""
    target = str(path).replace("'", "''")
    row = con.execute(f"COPY ({query}) TO '{target}' (FORMAT PARQUET)").fetchone()
    return int(row[0]) if row else 0


def _drop(session: Session, tables: Iterable[str]) -> None:
    names = ", ".join(quoted(t) for t in tables)
    if names:
        session.execute(f"DROP TABLE IF EXISTS {names} SYNC")


def copy_store(source: duckdb.DuckDBPyConnection, target: Session) -> LoadReport:
    """Replace the batch tables of ``target``'s database with ``source``'s."""
    columns = _duckdb_columns(source)
    absent = [t for t, cols in columns.items() if not cols]
    if absent:
        raise ValueError(f"the DuckDB store has no table {', '.join(absent)}: not a segflow store")
    if "extra" in columns["events"]:
        check_json(source)
    report = LoadReport(engine="ClickHouse")
    staged = {t: STAGING + t for t in TABLES}
    _drop(target, existing_tables(target, staged.values()))
    try:
        with tempfile.TemporaryDirectory(prefix="segflow-chdb-") as tmp:
            for t in TABLES:
                path = Path(tmp) / f"{t}.parquet"
                report.rows[t] = _parquet(source, _select(t, columns[t]), path)
                names = ", ".join(quoted(c) for c in columns[t])
                target.execute(
                    f"{create_table(staged[t], t, columns[t])} AS SELECT {names}"
                    f" FROM file({literal(str(path))}, Parquet)"
                )
    except BaseException:
        _drop(target, existing_tables(target, staged.values()))
        raise
    have = existing_tables(target, TABLES)
    swaps = [f"{quoted(staged[t])} AND {quoted(t)}" for t in TABLES if t in have]
    if swaps:
        target.execute(f"EXCHANGE TABLES {', '.join(swaps)}")
    fresh = [f"{quoted(staged[t])} TO {quoted(t)}" for t in TABLES if t not in have]
    if fresh:
        target.execute(f"RENAME TABLE {', '.join(fresh)}")
    _drop(target, [staged[t] for t in TABLES if t in have])
    return report
