"""Copy a DuckDB store's batch tables into PostgreSQL (replacing what was there).

Each table is written by DuckDB as CSV to a temporary file and streamed into
PostgreSQL's ``COPY ... FROM STDIN (FORMAT csv)``: both spell NULL as an empty field
and an empty string as ``""``, and DuckDB writes each double in its shortest exact
form, so every value arrives unchanged.  One PostgreSQL transaction holds the load, so
a failed load leaves the previous tables in place.  Trait rows carry ``valid_to``
computed on the way (the DuckDB store is only read)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

import duckdb
import psycopg
from psycopg import sql

from segflow.store.engines import LoadReport
from segflow.store.postgres.connection import current_schema
from segflow.store.postgres.schema import (
    INDEXES,
    PARSE_TIMESTAMP_DDL,
    TABLES,
    create_table,
    event_indexes,
    event_partitions,
    months,
)

CHUNK: Final = 1 << 20

VALID_TO: Final = (
    'lead("timestamp") OVER (PARTITION BY profile_id, key ORDER BY "timestamp", message_id)'
)
"""``traits.valid_to`` as ``store.duckdb.schema.LINK_TRAITS`` sets it."""


def _duckdb_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ?"
        " AND schema_name = 'main' AND database_name = current_database()"
        " ORDER BY column_index",
        [table],
    ).fetchall()
    return {str(c): str(t) for c, t in rows}


def _select(table: str, columns: Iterable[str]) -> str:
    names = list(columns)
    parts = []
    for c in names:
        if table == "traits" and c == "valid_to":
            parts.append(f"{VALID_TO} AS valid_to")
        elif table == "traits" and c == "linked":
            parts.append("TRUE AS linked")
        else:
            parts.append('"' + c.replace('"', '""') + '"')
    query = f"SELECT {', '.join(parts)} FROM {table}"
    if table == "events":  # each month's rows by name, then profile: see event_order
        query += " ORDER BY " + ", ".join(f'"{c}"' for c in event_order(names))
    return query


def event_order(columns: Iterable[str]) -> list[str]:
    """How a load lays events out in each month: by event code (the name where the
    store has no codes), then profile, so that the BRIN index on the code finds a
    scan's names in a few block ranges and a profile's rows lie together."""
    names = list(columns)
    return [
        "event_code" if "event_code" in names else "event",
        "profile_no" if "profile_no" in names else "profile_id",
    ]


def _csv(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> int:
    """Write ``query``'s rows to ``path`` as CSV; their number."""
    quoted = str(path).replace("'", "''")
    row = con.execute(f"COPY ({query}) TO '{quoted}' (FORMAT CSV, HEADER false)").fetchone()
    return int(row[0]) if row else 0


def copy_store(
    source: duckdb.DuckDBPyConnection, target: psycopg.Connection[tuple[object, ...]]
) -> LoadReport:
    """Replace the batch tables of ``target``'s current schema with ``source``'s."""
    columns: Mapping[str, dict[str, str]] = {t: _duckdb_columns(source, t) for t in TABLES}
    absent = [t for t, cols in columns.items() if not cols]
    if absent:
        raise ValueError(f"the DuckDB store has no table {', '.join(absent)}: not a segflow store")
    first, last = source.execute(
        'SELECT min("timestamp"), max("timestamp") FROM events'
    ).fetchone() or (None, None)
    spans = months(first, last)
    report = LoadReport(engine="PostgreSQL", partitions=len(spans))
    schema = current_schema(target)
    with target.transaction(), target.cursor() as cur:
        for t in TABLES:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(t)))
        cur.execute(PARSE_TIMESTAMP_DDL)
        for t in TABLES:
            cur.execute(
                create_table(t, columns[t], partition_by="timestamp" if t == "events" else None)
            )
        for stmt in event_partitions(spans):
            cur.execute(stmt)
        for t in TABLES:
            names = list(columns[t])
            copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                sql.Identifier(t), sql.SQL(", ").join(map(sql.Identifier, names))
            )
            try:
                with tempfile.TemporaryDirectory(prefix="segflow-copy-") as tmp:
                    path = Path(tmp) / f"{t}.csv"
                    n = _csv(source, _select(t, names), path)
                    with cur.copy(copy) as cp, path.open("rb") as fh:
                        while chunk := fh.read(CHUNK):
                            cp.write(chunk)
            except psycopg.DataError as e:
                raise ValueError(
                    f"PostgreSQL refused a row of {t} (schema {schema!r}): {str(e).splitlines()[0]}"
                ) from None
            report.rows[t] = n
        indexes: list[str | sql.Composed] = [*INDEXES]
        indexes += event_indexes(event_order(columns["events"])[0])
        for index in indexes:
            cur.execute(index)
    for t in TABLES:
        target.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(t)))
    return report
