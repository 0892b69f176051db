"""Run the batch evaluator's compiled plan on chDB and read the memberships back.

The tables are those ``load.copy_store`` writes; the compiled query (``dialect``
``clickhouse``) runs with the settings of ``batch.dialects.clickhouse.SETTINGS`` and
its rows are read once through Arrow (``store.arrow_batch``).  Nothing in the
directory is written."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from segflow.store.arrow_batch import ArrowBatch
from segflow.store.clickhouse.connection import (
    Session,
    open_session,
    require_tables,
    tables_columns,
)


class ClickHouseBatch(ArrowBatch[Session]):
    """The batch evaluator over a chDB directory (``BatchEvaluator``)."""

    dialect = "clickhouse"
    loader = "store.clickhouse.load"

    def __init__(self, url_or_session: str | Session) -> None:
        if isinstance(url_or_session, str):
            super().__init__(open_session(url_or_session), own=True)
        else:
            super().__init__(url_or_session, own=False)

    def tables_columns(self, tables: Iterable[str]) -> dict[str, dict[str, str]]:
        return tables_columns(self.session, tables)

    def require_tables(self, tables: Iterable[str], have: Collection[str]) -> None:
        require_tables(self.session, tables, have)
