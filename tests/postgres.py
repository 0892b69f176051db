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
from segflow.store.postgres.batch import PostgresBatch
from segflow.store.postgres.connection import EngineUnavailable, connect
from segflow.store.postgres.load import copy_store
from tests.helpers import load

URL = os.environ.get("SEGFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


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


class PostgresEngine:
    """Evaluates a history on PostgreSQL in a schema of its own (the tables replaced by
    every load, through DuckDB as ``engine load`` does)."""

    engine = "postgres"

    def __init__(self, url: str) -> None:
        self.pg = connect(url)

    def close(self) -> None:
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
            copy_store(con, self.pg)
        finally:
            con.close()
        return PostgresBatch(self.pg).evaluate(segments, at).membership_map()


@contextmanager
def postgres_engine() -> Iterator[PostgresEngine]:
    with temporary_schema() as url:
        e = PostgresEngine(url)
        try:
            yield e
        finally:
            e.close()
