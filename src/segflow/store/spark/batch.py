"""Run the batch evaluator's compiled plan on Spark and read the memberships back.

The tables are those ``load.copy_store`` writes; the compiled query (``dialect``
``spark``) runs in the session of ``connection``, and its rows (profile id and a
boolean per segment) are read once through Arrow.  Nothing in the directory is
written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from segflow.batch.compile import BatchCompiler, CompiledQuery, Field
from segflow.model.definition import Segment
from segflow.plan.planner import build_plan, closure
from segflow.store.clickhouse.batch import ClickHouseResult as SparkResult
from segflow.store.spark.connection import (
    BATCH_TABLES,
    Session,
    open_session,
    require_tables,
    tables_columns,
)

__all__ = ["SparkBatch", "SparkResult"]


class SparkBatch:
    """The batch evaluator over a Spark directory (``BatchEvaluator``)."""

    def __init__(self, url_or_session: str | Session) -> None:
        if isinstance(url_or_session, str):
            self.session = open_session(url_or_session)
            self._own = True
        else:
            self.session = url_or_session
            self._own = False
        try:
            self._columns()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._own:
            self.session.close()

    def catalog(self) -> Mapping[str, Field]:
        found = self.session.rows("SELECT path, type, overflow FROM field_catalog")
        return {str(p): Field(str(t), bool(o)) for p, t, o in found}

    def _columns(self) -> dict[str, dict[str, str]]:
        """Each batch table's columns (one error naming any table missing)."""
        columns = tables_columns(self.session, (*BATCH_TABLES, "event_names"))
        require_tables(self.session, BATCH_TABLES, columns)
        return columns

    def event_codes(self, columns: Mapping[str, Mapping[str, str]]) -> dict[str, int] | None:
        if "event_code" not in columns["events"]:
            return None
        require_tables(self.session, ["event_names"], columns)
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
            dialect="spark",
            event_codes=self.event_codes(columns),
            profile_key=self.profile_key(columns),
        ).compile()

    def prepare(self) -> None:
        """Make the tables a compiled query reads ready (loaded tables already are)."""

    def explain(self, segments: Iterable[Segment], at: datetime) -> str:
        """Spark's physical plan of the query evaluating ``segments`` as of ``at``."""
        query = self.compile(segments, at)
        self.prepare()
        return self.session.explain(query.sql)

    def evaluate(
        self, segments: Iterable[Segment], at: datetime, *, only: Iterable[str] | None = None
    ) -> SparkResult:
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
                " is inconsistent; store.spark.load sets it)"
            )
        if only is not None:
            keep = set(only)
            query.columns = {k: v for k, v in query.columns.items() if k in keep}
        flags = {c: [bool(v) for v in table.column(c).to_pylist()] for c in query.columns.values()}
        return SparkResult(at, query, [str(p) for p in table.column(0).to_pylist()], flags)
