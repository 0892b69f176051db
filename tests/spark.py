"""A Spark directory per test (a temporary directory, removed afterwards), on the one
Spark context of the process (its JVM starts once: that takes seconds)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb

from segflow.model.definition import Segment
from segflow.model.history import ProfileHistory
from segflow.store.spark.batch import SparkBatch
from segflow.store.spark.connection import open_session
from segflow.store.spark.load import copy_store
from tests.helpers import load

MASTER = "local[2]"


class SparkEngine:
    """Evaluates a history on Spark in a directory of its own (the tables replaced by
    every load, through DuckDB as ``engine load`` does)."""

    engine = "spark"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.session = open_session(f"spark://{MASTER}{path}")

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
        return SparkBatch(self.session).evaluate(segments, at).membership_map()


@contextmanager
def spark_engine() -> Iterator[SparkEngine]:
    with tempfile.TemporaryDirectory(prefix="segflow-spark-test-") as tmp:
        e = SparkEngine(Path(tmp))
        try:
            yield e
        finally:
            e.close()
