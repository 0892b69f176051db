"""The batch evaluator's steps shared by engines whose results are read through Arrow
(chDB, Spark): compile the plan for the engine's dialect over the tables it holds,
run it once, and keep the rows (profile id and a boolean per segment) in memory.

An engine's package supplies the session (``rows``, ``arrow``, ``close``), which
tables and columns it holds, and the error for a missing one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final, Generic, Protocol, TypeVar

import pyarrow as pa

from segflow.batch.compile import BatchCompiler, CompiledQuery, Field
from segflow.model.definition import Segment
from segflow.plan.planner import build_plan, closure
from segflow.store.engines import BATCH_TABLES

RESULT: Final = "(read into memory)"


class SqlSession(Protocol):
    """A session of an engine: rows as tuples, or as one Arrow table."""

    def rows(self, sql: str) -> list[tuple[Any, ...]]: ...

    def arrow(self, sql: str) -> pa.Table: ...

    def close(self) -> None: ...


S = TypeVar("S", bound=SqlSession)


@dataclass
class ArrowResult:
    """Memberships as of ``at``: the query's rows, one boolean column per segment."""

    at: datetime
    query: CompiledQuery
    profiles: list[str]
    flags: dict[str, list[bool]]
    table: str = RESULT

    @property
    def columns(self) -> dict[str, str]:
        return self.query.columns

    def size(self, segment_id: str) -> int:
        return sum(self.flags[self.query.columns[segment_id]])

    def sizes(self) -> dict[str, int]:
        return {sid: self.size(sid) for sid in self.query.columns}

    def members(self, segment_id: str) -> list[str]:
        flags = self.flags[self.query.columns[segment_id]]
        return sorted(p for p, f in zip(self.profiles, flags, strict=True) if f)

    def membership_map(self) -> dict[str, set[str]]:
        return {sid: set(self.members(sid)) for sid in self.query.columns}


class ArrowBatch(ABC, Generic[S]):
    """The batch evaluator over an engine's session (``BatchEvaluator``)."""

    dialect: ClassVar[str]
    loader: ClassVar[str]
    """The module whose load sets ``traits.valid_to`` (named when rows disagree)."""

    def __init__(self, session: S, *, own: bool) -> None:
        self.session = session
        self._own = own
        try:
            self._columns()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._own:
            self.session.close()

    @abstractmethod
    def tables_columns(self, tables: Iterable[str]) -> dict[str, dict[str, str]]:
        """Column name -> type of each of ``tables`` the engine holds."""

    @abstractmethod
    def require_tables(self, tables: Iterable[str], have: Collection[str]) -> None:
        """One error naming those of ``tables`` not in ``have``."""

    def catalog(self) -> Mapping[str, Field]:
        found = self.session.rows("SELECT path, type, overflow FROM field_catalog")
        return {str(p): Field(str(t), bool(o)) for p, t, o in found}

    def _columns(self) -> dict[str, dict[str, str]]:
        """Each batch table's columns (one error naming any table missing)."""
        columns = self.tables_columns((*BATCH_TABLES, "event_names"))
        self.require_tables(BATCH_TABLES, columns)
        return columns

    def event_codes(self, columns: Mapping[str, Mapping[str, str]]) -> dict[str, int] | None:
        if "event_code" not in columns["events"]:
            return None
        self.require_tables(["event_names"], columns)
        found = self.session.rows("SELECT name, code FROM event_names")
        return {str(n): int(c) for n, c in found}

    @staticmethod
    def profile_key(columns: Mapping[str, Mapping[str, str]]) -> str:
        numbered = all("profile_no" in columns[t] for t in ("profiles", "events", "traits"))
        return "profile_no" if numbered else "profile_id"

    def compile(self, segments: Iterable[Segment], at: datetime) -> CompiledQuery:
        plan = build_plan(list(segments))
        columns = self._columns()
        return BatchCompiler(
            plan,
            self.catalog(),
            at,
            dialect=self.dialect,
            event_codes=self.event_codes(columns),
            profile_key=self.profile_key(columns),
        ).compile()

    def prepare(self) -> None:
        """Make the tables a compiled query reads ready (loaded tables already are)."""

    def evaluate(
        self, segments: Iterable[Segment], at: datetime, *, only: Iterable[str] | None = None
    ) -> ArrowResult:
        """Evaluate ``segments`` (or ``only`` those and what they reference) as of ``at``."""
        by_id = {s.id: s for s in segments}
        chosen = closure(by_id, only) if only is not None else list(by_id.values())
        query = self.compile(chosen, at)
        self.prepare()
        table = self.session.arrow(query.sql)
        (profiles,) = self.session.rows("SELECT count(*) FROM profiles")[0]
        if table.num_rows != profiles:
            raise RuntimeError(
                f"batch evaluation gave {table.num_rows} rows for {profiles} profiles: a"
                " (profile, trait key) has overlapping validity intervals (traits.valid_to"
                f" is inconsistent; {self.loader} sets it)"
            )
        if only is not None:
            keep = set(only)
            query.columns = {k: v for k, v in query.columns.items() if k in keep}
        return ArrowResult(
            at,
            query,
            [str(p) for p in table.column(0).to_pylist()],  # the first column: p.profile_id
            {c: [bool(v) for v in table.column(c).to_pylist()] for c in query.columns.values()},
        )
