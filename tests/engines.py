"""Every batch engine the conformance suites run on, each behind one interface: load
some profiles' histories, evaluate segments as of an instant, read the members back.

An engine is an entry in ``RUNNERS``: a context manager giving an ``Engine`` on a
fresh place of its own (a PostgreSQL schema, a chDB or Spark directory), dropped afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Protocol

import duckdb

from segflow.model.definition import Segment
from segflow.model.history import ProfileHistory
from segflow.store.duckdb.batch import evaluate
from tests.chdb import chdb_engine
from tests.helpers import load
from tests.postgres import postgres_engine
from tests.spark import spark_engine


class Engine(Protocol):
    """One batch engine under test."""

    engine: str

    def members(
        self,
        histories: Iterable[ProfileHistory],
        segments: list[Segment],
        at: datetime,
        *,
        numbered: bool = True,
    ) -> dict[str, set[str]]:
        """Each segment's members as of ``at`` over ``histories`` (profile numbers as
        the key when ``numbered``)."""
        ...


class DuckDBEngine:
    """The store's own engine, in memory."""

    engine = "duckdb"

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
            return evaluate(con, segments, at).membership_map()
        finally:
            con.close()


@contextmanager
def duckdb_engine() -> Iterator[DuckDBEngine]:
    yield DuckDBEngine()


RUNNERS: dict[str, Callable[[], AbstractContextManager[Engine]]] = {
    "duckdb": duckdb_engine,
    "postgres": postgres_engine,
    "chdb": chdb_engine,
    "spark": spark_engine,
}
ENGINES = tuple(RUNNERS)


def engine_for(name: str) -> AbstractContextManager[Engine]:
    return RUNNERS[name]()
