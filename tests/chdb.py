"""A chDB directory per test (a temporary directory, removed afterwards)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from segflow.store.clickhouse.batch import ClickHouseBatch
from segflow.store.clickhouse.connection import open_session
from segflow.store.clickhouse.load import copy_store
from tests.directory_engine import DirectoryEngine, directory_engine


@contextmanager
def chdb_engine() -> Iterator[DirectoryEngine]:
    with directory_engine(
        "chdb", lambda path: open_session(f"chdb://{path}"), copy_store, ClickHouseBatch
    ) as engine:
        yield engine
