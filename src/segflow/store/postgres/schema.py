"""The PostgreSQL layout of the tables the batch evaluator reads.

The tables mirror DuckDB's (``store.duckdb.schema``), column for column, so one
compiled plan reads either: the core event fields, one typed column per dotted field
path, ``extra`` as ``jsonb``, and ``event_code`` / ``profile_no`` where the DuckDB
store keeps them.  ``events`` is range-partitioned by month of ``timestamp`` (one
partition per month holding events, and a default one for any later insert) with
BRIN indexes on ``timestamp`` and on the event code: a load writes each month's
events ordered by code and profile, so a scan of some names reads their block ranges
only, while the month partitions let a window floor prune whole months.  ``traits``
are stored with ``valid_to`` already set (``load`` computes it), so the value as of t
is a filter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from psycopg import sql

from segflow.batch.dialects import PARSE_TIMESTAMP_FUNCTION
from segflow.model.time import INSTANT_TEXT
from segflow.store.engines import LOADED_TABLES

MAX_IDENTIFIER: Final = 63
"""PostgreSQL's longest identifier in bytes (longer ones are silently cut)."""

TYPES: Final = {
    "VARCHAR": "TEXT",
    "DOUBLE": "DOUBLE PRECISION",
    "BOOLEAN": "BOOLEAN",
    "TIMESTAMP": "TIMESTAMP",
    "BIGINT": "BIGINT",
    "INTEGER": "INTEGER",
    "JSON": "JSONB",
}
"""DuckDB column type -> PostgreSQL's."""

TABLES: Final = LOADED_TABLES
"""The tables a load writes, in load order."""

TRACKER_FORM: Final = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?Z$"
)
"""The form tracking libraries write, with its fields' ranges: read by the fast path
of ``segflow_parse_ts`` (fixed positions, no offset)."""

PARSE_TIMESTAMP_DDL: Final = f"""
CREATE OR REPLACE FUNCTION {PARSE_TIMESTAMP_FUNCTION}_parts(v TEXT) RETURNS TIMESTAMP
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    m TEXT[] := regexp_match(v, '{INSTANT_TEXT}');
    y INT; mo INT; d INT; h INT := 0; mi INT := 0; s INT := 0; us INT := 0;
    offset_min INT := 0;
    t TIMESTAMP;
BEGIN
    IF m IS NULL THEN
        RETURN NULL;
    END IF;
    y := m[1]::INT; mo := m[2]::INT; d := m[3]::INT;
    IF y < 1 OR mo NOT BETWEEN 1 AND 12 OR d < 1
       OR d > EXTRACT(DAY FROM make_date(y, mo, 1) + INTERVAL '1 month' - INTERVAL '1 day') THEN
        RETURN NULL;
    END IF;
    IF m[4] IS NOT NULL THEN
        h := m[4]::INT; mi := m[5]::INT; s := COALESCE(m[6], '0')::INT;
        us := COALESCE(rpad(left(m[7], 6), 6, '0'), '0')::INT;
    END IF;
    IF h > 23 OR mi > 59 OR s > 59 THEN
        RETURN NULL;
    END IF;
    IF m[9] IS NOT NULL THEN
        IF m[10]::INT > 23 OR COALESCE(m[11], '0')::INT > 59 THEN
            RETURN NULL;
        END IF;
        offset_min := m[10]::INT * 60 + COALESCE(m[11], '0')::INT;
        IF m[9] = '-' THEN
            offset_min := -offset_min;
        END IF;
    END IF;
    t := make_timestamp(y, mo, d, h, mi, s)
        + us * INTERVAL '1 microsecond'
        - offset_min * INTERVAL '1 minute';
    IF t < TIMESTAMP '0001-01-01' OR t >= TIMESTAMP '10000-01-01' THEN
        RETURN NULL;  -- an offset moved it out of years 1-9999 UTC
    END IF;
    RETURN t;
END
$$;
CREATE OR REPLACE FUNCTION {PARSE_TIMESTAMP_FUNCTION}(v TEXT) RETURNS TIMESTAMP
LANGUAGE SQL IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN v ~ '{TRACKER_FORM}' THEN
    CASE WHEN substr(v, 1, 4) = '0000' THEN NULL
    WHEN substr(v, 9, 2)::INT <= EXTRACT(DAY FROM
        make_date(substr(v, 1, 4)::INT, substr(v, 6, 2)::INT, 1) + INTERVAL '1 month - 1 day')
    THEN make_timestamp(substr(v, 1, 4)::INT, substr(v, 6, 2)::INT, substr(v, 9, 2)::INT,
        substr(v, 12, 2)::INT, substr(v, 15, 2)::INT, substr(v, 18, 2)::INT)
        + rpad(substr(v, 21, greatest(length(v) - 21, 0)), 6, '0')::INT
        * INTERVAL '1 microsecond' END
ELSE {PARSE_TIMESTAMP_FUNCTION}_parts(v) END
$$
"""
"""``dialects.ParseTimestamp`` on PostgreSQL: the texts of ``model.time.INSTANT_TEXT``
as naive UTC, anything else (impossible dates and times included) as NULL, without a
cast that could fail (an exception block would start a subtransaction per row, which
a parallel query refuses; PostgreSQL's own cast would also read words such as ``now``
as the clock).  ``segflow_parse_ts`` is plain SQL (not STRICT), which the planner inlines: the
tracker form is read from its fixed positions, any other text by the PL/pgSQL
``segflow_parse_ts_parts``, whose per-call cost is many times the inlined path's."""


def pg_type(duckdb_type: str, where: str) -> str:
    try:
        return TYPES[duckdb_type.upper()]
    except KeyError:
        raise ValueError(f"{where}: no PostgreSQL type for DuckDB's {duckdb_type}") from None


def check_identifier(name: str, table: str) -> None:
    if len(name.encode()) > MAX_IDENTIFIER:
        raise ValueError(
            f"{table}.{name!r} is {len(name.encode())} bytes long: PostgreSQL names are at"
            f" most {MAX_IDENTIFIER} bytes, so this store cannot be copied to PostgreSQL"
        )


def create_table(
    table: str, columns: dict[str, str], *, partition_by: str | None = None
) -> sql.Composed:
    """``CREATE TABLE`` with DuckDB's column types mapped."""
    cols = []
    for name, kind in columns.items():
        check_identifier(name, table)
        cols.append(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(pg_type(kind, f"{table}.{name}")))
        )
    stmt = sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table), sql.SQL(", ").join(cols))
    if partition_by is not None:
        stmt = sql.SQL("{} PARTITION BY RANGE ({})").format(stmt, sql.Identifier(partition_by))
    return stmt


def months(first: datetime | None, last: datetime | None) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` of every calendar month from ``first``'s to ``last``'s."""
    if first is None or last is None:
        return []
    out = []
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        out.append((datetime(y, m, 1), datetime(ny, nm, 1)))
        y, m = ny, nm
    return out


def event_partitions(spans: list[tuple[datetime, datetime]]) -> list[sql.Composed]:
    """One partition per month and a default one."""
    stmts = [
        sql.SQL("CREATE TABLE {} PARTITION OF events FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(f"events_{lo:%Y_%m}"),
            sql.Literal(lo),
            sql.Literal(hi),
        )
        for lo, hi in spans
    ]
    stmts.append(sql.SQL("CREATE TABLE events_default PARTITION OF events DEFAULT").format())
    return stmts


def event_indexes(name: str) -> list[sql.Composed]:
    """The BRIN indexes on ``timestamp`` and on ``name`` (the event code or name each
    month is ordered by), built once the rows are in: a block range written after a
    BRIN index is made stays unsummarised, and an unsummarised range matches every
    scan."""
    return [
        sql.SQL("CREATE INDEX {} ON events USING BRIN ({})").format(
            sql.Identifier(f"events_{column}_brin"), sql.Identifier(column)
        )
        for column in ("timestamp", name)
    ]


INDEXES: Final = (
    "CREATE INDEX traits_key ON traits (key, profile_id)",
    "CREATE UNIQUE INDEX profiles_id ON profiles (profile_id)",
    "CREATE UNIQUE INDEX identities_kind_value ON identities (kind, value)",
    "CREATE UNIQUE INDEX field_catalog_path ON field_catalog (path)",
    "CREATE INDEX static_members_segment ON static_members (segment_id)",
)
"""Indexes built after the rows are copied (building them once is cheaper than
maintaining them row by row)."""
