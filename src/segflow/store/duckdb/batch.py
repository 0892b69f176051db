"""Run the batch evaluator's compiled plan on DuckDB and read the memberships back.

``segflow.batch.compile`` turns a plan into one typed query; this module loads what
the compiler needs from the store (the field catalog, event codes, the profile key),
materialises the query's result and answers sizes and member lists from it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import duckdb

from segflow.batch.compile import BatchCompiler, Catalog, CompiledQuery, Field
from segflow.model.definition import Segment
from segflow.plan.planner import Plan, build_plan, closure
from segflow.store.duckdb.catalog import table_columns
from segflow.store.duckdb.numbers import profile_key
from segflow.store.duckdb.schema import LINK_TRAITS

RESULT_TABLE = "_segflow_result"


def load_catalog(con: duckdb.DuckDBPyConnection) -> dict[str, Field]:
    rows = con.execute("SELECT path, type, overflow FROM field_catalog").fetchall()
    return {path: Field(type_, bool(overflow)) for path, type_, overflow in rows}


def load_event_codes(con: duckdb.DuckDBPyConnection) -> dict[str, int] | None:
    """Event name -> integer code, when the store keeps codes (see store.duckdb.schema)."""
    if "event_code" not in table_columns(con, "events"):
        return None
    return dict(con.execute("SELECT name, code FROM event_names").fetchall())


@dataclass
class BatchResult:
    """Memberships as of ``at``: one boolean column per segment in a temp table."""

    at: datetime
    query: CompiledQuery
    con: duckdb.DuckDBPyConnection
    table: str = RESULT_TABLE

    @property
    def columns(self) -> dict[str, str]:
        """Segment id -> its column in ``table``."""
        return self.query.columns

    def size(self, segment_id: str) -> int:
        c = self.query.columns[segment_id]
        row = self.con.execute(f'SELECT count(*) FROM {self.table} WHERE "{c}"').fetchone()
        return int(row[0]) if row else 0

    def sizes(self) -> dict[str, int]:
        if not self.query.columns:
            return {}
        parts = ", ".join(f'count(*) FILTER (WHERE "{c}")' for c in self.query.columns.values())
        row = self.con.execute(f"SELECT {parts} FROM {self.table}").fetchone()
        assert row is not None
        return {sid: int(n) for sid, n in zip(self.query.columns, row, strict=True)}

    def members(self, segment_id: str) -> list[str]:
        c = self.query.columns[segment_id]
        rows = self.con.execute(
            f'SELECT profile_id FROM {self.table} WHERE "{c}" ORDER BY profile_id'
        ).fetchall()
        return [r[0] for r in rows]

    def membership_map(self) -> dict[str, set[str]]:
        return {sid: set(self.members(sid)) for sid in self.query.columns}


def compile_plan(
    con: duckdb.DuckDBPyConnection, plan: Plan, at: datetime, catalog: Catalog | None = None
) -> CompiledQuery:
    catalog = catalog if catalog is not None else load_catalog(con)
    return BatchCompiler(
        plan, catalog, at, event_codes=load_event_codes(con), profile_key=profile_key(con)
    ).compile()


def evaluate(
    con: duckdb.DuckDBPyConnection,
    segments: Iterable[Segment],
    at: datetime,
    *,
    only: Iterable[str] | None = None,
) -> BatchResult:
    """Evaluate ``segments`` (or ``only`` those and what they reference) as of ``at``."""
    by_id = {s.id: s for s in segments}
    chosen = closure(by_id, only) if only is not None else list(by_id.values())
    plan = build_plan(chosen)
    con.execute(LINK_TRAITS)
    query = compile_plan(con, plan, at)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {RESULT_TABLE} AS {query.sql}")
    # a row per profile: the trait joins rely on LINK_TRAITS having made each
    # (profile, key)'s validity intervals disjoint; a broken link must fail loudly,
    # not count a member twice (two counts are cheap next to the plan)
    (rows,) = con.execute(f"SELECT count(*) FROM {RESULT_TABLE}").fetchone() or (0,)
    (profiles,) = con.execute("SELECT count(*) FROM profiles").fetchone() or (0,)
    if rows != profiles:
        raise RuntimeError(
            f"batch evaluation gave {rows} rows for {profiles} profiles: a (profile, trait"
            " key) has overlapping validity intervals although its rows are marked linked"
            " (traits.valid_to is inconsistent; store.duckdb.schema.LINK_TRAITS sets it)"
        )
    if only is not None:
        keep = set(only)
        query.columns = {k: v for k, v in query.columns.items() if k in keep}
    return BatchResult(at, query, con)


class DuckDBBatch:
    """The batch evaluator over one connection: what the service holds to evaluate."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def evaluate(
        self, segments: Iterable[Segment], at: datetime, *, only: Iterable[str] | None = None
    ) -> BatchResult:
        """Evaluate ``segments`` (or ``only`` those and what they reference) as of ``at``."""
        return evaluate(self.con, segments, at, only=only)
