"""Run the batch evaluator's compiled plan on PostgreSQL and read the memberships back.

The tables are those ``load.copy_store`` writes; the compiled query (``dialect``
``postgres``) is materialised in a temporary table of the session, which the sizes and
member lists read.  Nothing in the schema is written: the path is read-only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import psycopg

from segflow.batch.compile import BatchCompiler, CompiledQuery, Field
from segflow.model.definition import Segment
from segflow.plan.planner import build_plan, closure
from segflow.store.engines import BATCH_TABLES
from segflow.store.postgres.connection import (
    EngineUnavailable,
    connect,
    require_tables,
    table_columns,
)

RESULT_TABLE: Final = "_segflow_result"

Connection = psycopg.Connection[tuple[object, ...]]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class PostgresResult:
    """Memberships as of ``at``: one boolean column per segment in a temp table."""

    at: datetime
    query: CompiledQuery
    con: Connection
    table: str = RESULT_TABLE

    @property
    def columns(self) -> dict[str, str]:
        return self.query.columns

    def size(self, segment_id: str) -> int:
        c = _quoted(self.query.columns[segment_id])
        row = self.con.execute(f"SELECT count(*) FROM {self.table} WHERE {c}").fetchone()
        return int(row[0]) if row else 0  # type: ignore[call-overload]

    def sizes(self) -> dict[str, int]:
        if not self.query.columns:
            return {}
        parts = ", ".join(
            f"count(*) FILTER (WHERE {_quoted(c)})" for c in self.query.columns.values()
        )
        row = self.con.execute(f"SELECT {parts} FROM {self.table}").fetchone()
        assert row is not None
        return {sid: int(n) for sid, n in zip(self.query.columns, row, strict=True)}  # type: ignore[call-overload]

    def members(self, segment_id: str) -> list[str]:
        c = _quoted(self.query.columns[segment_id])
        rows = self.con.execute(
            f'SELECT profile_id FROM {self.table} WHERE {c} ORDER BY profile_id COLLATE "C"'
        ).fetchall()
        return [str(r[0]) for r in rows]

    def membership_map(self) -> dict[str, set[str]]:
        return {sid: set(self.members(sid)) for sid in self.query.columns}


class PostgresBatch:
    """The batch evaluator over a PostgreSQL schema (``BatchEvaluator``)."""

    def __init__(self, url_or_connection: str | Connection) -> None:
        if isinstance(url_or_connection, str):
            self.con = connect(url_or_connection)
            self._own = True
        else:
            self.con = url_or_connection
            self._own = False
        require_tables(self.con, BATCH_TABLES)

    def close(self) -> None:
        if self._own:
            self.con.close()

    def catalog(self) -> Mapping[str, Field]:
        rows = self.con.execute("SELECT path, type, overflow FROM field_catalog").fetchall()
        return {str(p): Field(str(t), bool(o)) for p, t, o in rows}

    def event_codes(self) -> dict[str, int] | None:
        if "event_code" not in table_columns(self.con, "events"):
            return None
        require_tables(self.con, ["event_names"])
        rows = self.con.execute("SELECT name, code FROM event_names").fetchall()
        return {str(n): int(c) for n, c in rows}  # type: ignore[call-overload]

    def profile_key(self) -> str:
        numbered = all(
            "profile_no" in table_columns(self.con, t) for t in ("profiles", "events", "traits")
        )
        return "profile_no" if numbered else "profile_id"

    def compile(self, segments: Iterable[Segment], at: datetime) -> CompiledQuery:
        plan = build_plan(list(segments))
        return BatchCompiler(
            plan,
            self.catalog(),
            at,
            dialect="postgres",
            event_codes=self.event_codes(),
            profile_key=self.profile_key(),
        ).compile()

    def evaluate(
        self, segments: Iterable[Segment], at: datetime, *, only: Iterable[str] | None = None
    ) -> PostgresResult:
        """Evaluate ``segments`` (or ``only`` those and what they reference) as of ``at``."""
        by_id = {s.id: s for s in segments}
        chosen = closure(by_id, only) if only is not None else list(by_id.values())
        query = self.compile(chosen, at)
        try:
            self.con.execute(f"DROP TABLE IF EXISTS pg_temp.{RESULT_TABLE}")
            self.con.execute(f"CREATE TEMP TABLE {RESULT_TABLE} AS {query.sql}".encode())
        except psycopg.errors.InsufficientPrivilege as e:
            raise EngineUnavailable(
                f"PostgreSQL refused the batch query: {str(e).splitlines()[0]}"
            ) from None
        (rows,) = self.con.execute(f"SELECT count(*) FROM {RESULT_TABLE}").fetchone() or (0,)
        (profiles,) = self.con.execute("SELECT count(*) FROM profiles").fetchone() or (0,)
        if rows != profiles:
            raise RuntimeError(
                f"batch evaluation gave {rows} rows for {profiles} profiles: a (profile,"
                " trait key) has overlapping validity intervals (traits.valid_to is"
                " inconsistent; store.postgres.load sets it)"
            )
        if only is not None:
            keep = set(only)
            query.columns = {k: v for k, v in query.columns.items() if k in keep}
        return PostgresResult(at, query, self.con)
