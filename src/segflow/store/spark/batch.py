"""Run the batch evaluator's compiled plan on Spark and read the memberships back.

The tables are those ``load.copy_store`` writes; the compiled query (``dialect``
``spark``) runs in the session of ``connection``, and its rows are read once through
Arrow (``store.arrow_batch``).  Nothing in the directory is written."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from segflow.model.definition import Segment
from segflow.store.arrow_batch import ArrowBatch
from segflow.store.spark.connection import (
    Session,
    open_session,
    require_tables,
    tables_columns,
)


class SparkBatch(ArrowBatch[Session]):
    """The batch evaluator over a Spark directory (``BatchEvaluator``)."""

    dialect = "spark"
    loader = "store.spark.load"

    def __init__(self, url_or_session: str | Session) -> None:
        if isinstance(url_or_session, str):
            super().__init__(open_session(url_or_session), own=True)
        else:
            super().__init__(url_or_session, own=False)

    def tables_columns(self, tables: Iterable[str]) -> dict[str, dict[str, str]]:
        return tables_columns(self.session, tables)

    def require_tables(self, tables: Iterable[str], have: Collection[str]) -> None:
        require_tables(self.session, tables, have)

    def explain(self, segments: Iterable[Segment], at: datetime) -> str:
        """Spark's physical plan of the query evaluating ``segments`` as of ``at``."""
        query = self.compile(segments, at)
        self.prepare()
        return self.session.explain(query.sql)
