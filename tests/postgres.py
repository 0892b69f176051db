"""A PostgreSQL schema per test on the server of ``SEGFLOW_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), dropped afterwards; tests that need
one skip, saying why, where no server answers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

import duckdb
import psycopg
import pytest

from segflow.model.definition import Segment
from segflow.model.history import ProfileHistory
from segflow.store.duckdb.batch import evaluate
from segflow.store.postgres.batch import PostgresBatch
from segflow.store.postgres.connection import EngineUnavailable, connect
from segflow.store.postgres.load import copy_store
from tests.helpers import load

URL = os.environ.get("SEGFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
ENGINES = ("duckdb", "postgres")


def server() -> psycopg.Connection[tuple[object, ...]]:
    """A connection to the test server, or a skip naming the URL and the reason."""
    try:
        return connect(URL)
    except EngineUnavailable as e:
        pytest.skip(f"no PostgreSQL for the engine tests (set SEGFLOW_TEST_POSTGRES): {e}")


def schema_url(schema: str) -> str:
    sep = "&" if "?" in URL else "?"
    return f"{URL}{sep}options=-csearch_path%3D{schema}"


@contextmanager
def temporary_schema() -> Iterator[str]:
    """A fresh schema's URL (its ``search_path``), the schema dropped on exit."""
    admin = server()
    name = f"segflow_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {name}")
    try:
        yield schema_url(name)
    finally:
        admin.execute(f"DROP SCHEMA {name} CASCADE")
        admin.close()


class Engines:
    """Evaluates a history on one engine: DuckDB in memory, or PostgreSQL in a schema
    of its own (the tables replaced by every load)."""

    def __init__(self, engine: str, url: str | None) -> None:
        self.engine = engine
        self.url = url
        self.pg = connect(url) if url else None

    def close(self) -> None:
        if self.pg is not None:
            self.pg.close()

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
            if self.pg is None:
                return evaluate(con, segments, at).membership_map()
            copy_store(con, self.pg)
        finally:
            con.close()
        return PostgresBatch(self.pg).evaluate(segments, at).membership_map()


@contextmanager
def engine_for(engine: str) -> Iterator[Engines]:
    if engine == "duckdb":
        e = Engines(engine, None)
        yield e
        return
    with temporary_schema() as url:
        e = Engines(engine, url)
        try:
            yield e
        finally:
            e.close()
