"""Copy a DuckDB store's batch tables into a Spark directory (replacing what was there).

DuckDB writes each table as a Parquet file (``COPY ... TO ... (FORMAT parquet)``):
Parquet carries every value in its binary form (doubles bit for bit, timestamps in
microseconds), and the ``extra`` JSON as the text DuckDB keeps.  The files go to a new
directory of their own; only when every table is written does the directory's
``tables`` link point to it (``os.replace`` of a link: one step), and the previous
load's files are removed, so a failed load leaves the previous tables in place.
Trait rows carry ``valid_to`` computed on the way (the DuckDB store is only read)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import duckdb

from segflow.store.clickhouse.load import UNREADABLE_JSON
from segflow.store.engines import LOADED_TABLES, LoadReport
from segflow.store.postgres.load import VALID_TO
from segflow.store.spark.connection import TABLES_DIR, Session

TABLES: Final = LOADED_TABLES
"""The tables a load writes."""

LOADS: Final = "tables-"
"""The prefix of each load's directory (``tables`` links to the latest)."""


def duckdb_columns(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """Column name -> DuckDB type of each table a load writes ({} for one absent)."""
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


def select(table: str, columns: Mapping[str, str]) -> str:
    """The rows a table's file holds: JSON as its text, traits with ``valid_to``."""
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


def check_json(con: duckdb.DuckDBPyConnection) -> None:
    """Refuse a store whose overflow JSON holds a number Spark's reader could take
    otherwise than DuckDB's (an integer beyond 64 bits or beyond a double's range)."""
    n, example = con.execute(UNREADABLE_JSON).fetchone() or (0, None)
    if n:
        raise ValueError(
            f"events.extra holds {n} JSON number{'s' if n > 1 else ''} Spark may read"
            f" otherwise than DuckDB (an integer beyond 64 bits or beyond a double's range),"
            f" e.g. {example}: this store cannot be copied to Spark"
        )


def _parquet(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> int:
    """Write ``query``'s rows to ``path`` as Parquet; their number."""
    target = str(path).replace("'", "''")
    row = con.execute(f"COPY ({query}) TO '{target}' (FORMAT PARQUET)").fetchone()
    return int(row[0]) if row else 0


def copy_store(source: duckdb.DuckDBPyConnection, target: Session) -> LoadReport:
    """Replace the tables of ``target``'s directory with ``source``'s."""
    columns = duckdb_columns(source)
    absent = [t for t, cols in columns.items() if not cols]
    if absent:
        raise ValueError(f"the DuckDB store has no table {', '.join(absent)}: not a segflow store")
    if "extra" in columns["events"]:
        check_json(source)
    report = LoadReport(engine="Spark")
    root = target.path
    fresh = root / f"{LOADS}{uuid.uuid4().hex}"
    try:
        fresh.mkdir()
        for t in TABLES:
            report.rows[t] = _parquet(source, select(t, columns[t]), fresh / f"{t}.parquet")
        link = root / f".{fresh.name}.link"
        os.symlink(fresh.name, link)
        os.replace(link, root / TABLES_DIR)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    for old in root.glob(f"{LOADS}*"):
        if old != fresh:
            shutil.rmtree(old, ignore_errors=True)
    target.refresh()
    return report
