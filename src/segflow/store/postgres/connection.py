"""Opening a PostgreSQL engine by URL, and the one clear error for what is missing.

The URL is libpq's (``postgresql://user:password@host:port/database``); a schema other
than ``public`` is chosen with libpq's own options parameter,
``?options=-csearch_path%3Dname``.  An unreachable server, a refused login, a missing
table or a missing privilege raises ``EngineUnavailable`` naming it (the password is
never repeated)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import psycopg
from psycopg.conninfo import conninfo_to_dict

from segflow.store.engines import EngineUnavailable as EngineUnavailable

SCHEMES: Final = ("postgresql://", "postgres://")


def is_postgres_url(url: str) -> bool:
    return url.startswith(SCHEMES)


def describe(url: str) -> str:
    """``user@host:port/database`` of a URL, without its password."""
    try:
        d = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(an unreadable URL)"
    user = d.get("user") or "(default user)"
    where = f"{d.get('host') or 'localhost'}:{d.get('port') or 5432}"
    return f"{user}@{where}/{d.get('dbname') or '(default database)'}"


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[tuple[object, ...]]:
    """A connection to the PostgreSQL server at ``url`` (UTC session time zone)."""
    if not is_postgres_url(url):
        raise EngineUnavailable(
            f"not a PostgreSQL URL: expected postgresql://user@host:port/database, got {url.split('://')[0]}://..."
        )
    try:
        con = psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.ProgrammingError as e:
        raise EngineUnavailable(f"not a valid PostgreSQL URL: {e}") from None
    except psycopg.OperationalError as e:
        reason = " ".join(x.strip() for x in str(e).splitlines() if x.strip())
        reason = reason or type(e).__name__
        raise EngineUnavailable(
            f"cannot connect to PostgreSQL at {describe(url)}: {reason}"
        ) from None
    con.execute("SET TimeZone = 'UTC'")
    # the batch query has tens of aggregates and joins: compiling it with JIT takes
    # longer than running it (see docs/performance.md)
    con.execute("SET jit = off")
    return con


def current_schema(con: psycopg.Connection[tuple[object, ...]]) -> str:
    row = con.execute("SELECT current_schema()").fetchone()
    if row is None or row[0] is None:
        raise EngineUnavailable(
            "PostgreSQL has no current schema: the search_path names no schema that exists"
        )
    return str(row[0])


def table_columns(con: psycopg.Connection[tuple[object, ...]], table: str) -> dict[str, str]:
    """Column name -> data type of ``table`` in the current schema ({} without it)."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return {str(c): str(t) for c, t in rows}


def require_tables(con: psycopg.Connection[tuple[object, ...]], tables: Iterable[str]) -> None:
    """Every table exists in the current schema and may be read, else one error naming
    what is missing (tables, then the privilege)."""
    tables = list(tables)
    schema = current_schema(con)
    rows = con.execute(
        "SELECT c.relname, has_table_privilege(c.oid, 'SELECT') FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p', 'v')",
        [schema, tables],
    ).fetchall()
    found = {str(name): bool(ok) for name, ok in rows}
    missing = [t for t in tables if t not in found]
    if missing:
        raise EngineUnavailable(
            f"PostgreSQL schema {schema!r} lacks the table{'s' if len(missing) > 1 else ''}"
            f" {', '.join(missing)}: load a store into it first (segflow engine load)"
        )
    denied = [t for t in tables if not found[t]]
    if denied:
        user = con.execute("SELECT current_user").fetchone()
        raise EngineUnavailable(
            f"PostgreSQL user {user[0] if user else '?'!s} may not read {schema}."
            f"{', '.join(denied)}: grant SELECT on {'them' if len(denied) > 1 else 'it'}"
        )
