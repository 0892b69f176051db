"""Batch engines other than the store's own DuckDB file, chosen by URL scheme.

Each engine offers two things: a ``BatchEvaluator`` over the tables at a URL, and a
load that replaces those tables with a DuckDB store's.  The service asks this module
for them by URL, so a new engine is one entry in ``ENGINES`` and a package under
``segflow.store`` (docs/engines.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from segflow.store.protocols import BatchEvaluator


class EngineUnavailable(ValueError):
    """The engine at a URL cannot serve: the message names the server, table or
    privilege that is missing."""


@dataclass
class LoadReport:
    """Rows copied per table, and the event partitions made (where the engine has
    them)."""

    engine: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    partitions: int = 0


@dataclass(frozen=True)
class Engine:
    """One engine: its name, the URL schemes it answers and how to reach it (imported
    on use, so an engine's client library loads only when its URL is given)."""

    name: str
    schemes: tuple[str, ...]
    example: str
    batch: Callable[[str], BatchEvaluator]
    load: Callable[[Any, str], LoadReport]
    """``load(source, url)``: ``source`` is the DuckDB store's connection (typed where
    the engine's package imports DuckDB; this module stays engine-neutral)."""


def _postgres_batch(url: str) -> BatchEvaluator:
    from segflow.store.postgres.batch import PostgresBatch

    return PostgresBatch(url)


def _postgres_load(source: Any, url: str) -> LoadReport:
    from segflow.store.postgres.connection import connect
    from segflow.store.postgres.load import copy_store

    target = connect(url)
    try:
        return copy_store(source, target)
    finally:
        target.close()


def _chdb_batch(url: str) -> BatchEvaluator:
    from segflow.store.clickhouse.batch import ClickHouseBatch

    return ClickHouseBatch(url)


def _chdb_load(source: Any, url: str) -> LoadReport:
    from segflow.store.clickhouse.connection import open_session
    from segflow.store.clickhouse.load import copy_store

    target = open_session(url, create=True)
    try:
        return copy_store(source, target)
    finally:
        target.close()


ENGINES: Final[tuple[Engine, ...]] = (
    Engine(
        "PostgreSQL",
        ("postgresql://", "postgres://"),
        "postgresql://user@host:port/database",
        _postgres_batch,
        _postgres_load,
    ),
    Engine(
        "ClickHouse (chDB)", ("chdb://",), "chdb:///absolute/path/to/dir", _chdb_batch, _chdb_load
    ),
)


def engine_for(url: str) -> Engine:
    """The engine whose scheme starts ``url``; an unknown scheme names the known ones."""
    for engine in ENGINES:
        if url.startswith(engine.schemes):
            return engine
    scheme = url.split("://", 1)[0] + "://" if "://" in url else repr(url)
    known = ", ".join(e.example for e in ENGINES)
    raise EngineUnavailable(f"no batch engine for {scheme}: expected one of {known}")
