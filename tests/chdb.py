"""A chDB directory per test (a temporary directory, removed afterwards)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb

from segflow.model.definition import Segment
from segflow.model.history import ProfileHistory
from segflow.store.clickhouse.batch import ClickHouseBatch
from segflow.store.clickhouse.connection import open_session
from segflow.store.clickhouse.load import copy_store
from tests.helpers import load


class ChdbEngine:
    """Evaluates a history on chDB in a directory of its own (the tables replaced by
    every load, through DuckDB as ``engine load`` does)."""

    engine = "chdb"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.session = open_session(f"chdb://{path}")

    def close(self) -> None:
        self.session.close()

    def members(
        self,
        histories: Iterable[ProfileHistory],
        segments: list[Segment],
        at: datetime,
        *,
        numbered: bool = True,
    ) -> dict[str, set[str]]:
        con = duckdb.connect()
        try:
            load(con, histories, numbered=numbered)
            copy_store(con, self.session)
        finally:
            con.close()
        return ClickHouseBatch(self.session).evaluate(segments, at).membership_map()


@contextmanager
def chdb_engine() -> Iterator[ChdbEngine]:
    with tempfile.TemporaryDirectory(prefix="segflow-chdb-test-") as tmp:
        e = ChdbEngine(Path(tmp))
        try:
            yield e
        finally:
            e.close()
