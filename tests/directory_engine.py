"""An engine whose tables live in a directory of their own (chDB, Spark), under test:
a temporary directory per runner, the tables replaced by every load through DuckDB as
``engine load`` does, and the memberships read back."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from segflow.model.definition import Segment
from segflow.model.history import ProfileHistory
from segflow.store.arrow_batch import ArrowBatch
from tests.helpers import load


class DirectoryEngine:
    """Evaluates histories on an engine's session over one directory."""

    def __init__(
        self,
        engine: str,
        session: Any,
        copy: Callable[[duckdb.DuckDBPyConnection, Any], object],
        batch: Callable[[Any], ArrowBatch[Any]],
    ) -> None:
        self.engine = engine
        self.session = session
        self.copy = copy
        self.batch = batch

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
            self.copy(con, self.session)
        finally:
            con.close()
        return self.batch(self.session).evaluate(segments, at).membership_map()


@contextmanager
def directory_engine(
    engine: str,
    open_session: Callable[[Path], Any],
    copy: Callable[[duckdb.DuckDBPyConnection, Any], object],
    batch: Callable[[Any], ArrowBatch[Any]],
) -> Iterator[DirectoryEngine]:
    with tempfile.TemporaryDirectory(prefix=f"segflow-{engine}-test-") as tmp:
        e = DirectoryEngine(engine, open_session(Path(tmp)), copy, batch)
        try:
            yield e
        finally:
            e.close()
