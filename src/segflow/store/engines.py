"""Batch engines other than the store's own file, chosen by URL scheme.

Each engine offers two things: a ``BatchEvaluator`` over the tables at a URL, and a
load that replaces those tables with a DuckDB store's.  The service asks this module
for them by URL, so a new engine is one entry in ``ENGINES`` and a package under
``segflow.store`` (docs/engines.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from segflow.store.protocols import BatchEvaluator

LOADED_TABLES: Final = (
    "events",
    "traits",
    "profiles",
    "identities",
    "field_catalog",
    "event_names",
    "static_members",
)
"""The store's tables a load copies to an engine, in load order: what the batch
evaluator reads (``event_names`` where events carry codes)."""

BATCH_TABLES: Final = ("events", "traits", "profiles", "field_catalog", "static_members")
"""What the batch evaluator reads (``event_names`` too where events carry codes)."""


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


@dataclass
class AttachReport:
    """What attaching a Segment warehouse schema found and made: the schema read, the
    schema holding the views, the per-event and other call tables, the typed field
    paths, the trait keys, and the columns not read (with why, in the docs)."""

    source: str
    target: str
    event_tables: list[str] = field(default_factory=list)
    call_tables: list[str] = field(default_factory=list)
    fields: int = 0
    trait_keys: int = 0
    skipped: list[str] = field(default_factory=list)


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
    attach_segment: Callable[[str, str], AttachReport] | None = None
    """``attach_segment(url, schema)``: views at ``url`` reading the Segment warehouse
    schema ``schema`` in place (None: the engine cannot)."""


def _duckdb_batch(url: str) -> BatchEvaluator:
    from segflow.store.duckdb.engine import DuckDBFileBatch

    return DuckDBFileBatch(url)


def _duckdb_load(source: Any, url: str) -> LoadReport:
    from segflow.store.duckdb.engine import copy_store

    return copy_store(source, url)


def _postgres_batch(url: str) -> BatchEvaluator:
    from segflow.store.postgres.warehouse import open_batch

    return open_batch(url)


def _postgres_attach(url: str, schema: str) -> AttachReport:
    from segflow.store.postgres.warehouse import attach_url

    return attach_url(url, schema)


def _postgres_load(source: Any, url: str) -> LoadReport:
    from segflow.store.postgres.connection import connect
    from segflow.store.postgres.load import copy_store
    from segflow.store.postgres.warehouse import attached_source

    target = connect(url)
    try:
        segment = attached_source(target)
        if segment is not None:
            raise EngineUnavailable(
                f"this PostgreSQL schema reads the Segment warehouse schema {segment!r} in"
                " place (segflow engine attach): load the store into a schema of its own"
            )
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


def _spark_batch(url: str) -> BatchEvaluator:
    from segflow.store.spark.warehouse import open_batch

    return open_batch(url)


def _spark_attach(url: str, source: str) -> AttachReport:
    from segflow.store.spark.warehouse import attach

    return attach(url, source)


def _spark_load(source: Any, url: str) -> LoadReport:
    from segflow.store.spark.connection import open_session
    from segflow.store.spark.load import copy_store
    from segflow.store.spark.warehouse import attached_source

    target = open_session(url, create=True)
    try:
        segment = attached_source(target.path)
        if segment is not None:
            raise EngineUnavailable(
                f"this Spark directory reads the Segment source {segment} in place"
                " (segflow engine attach): load the store into a directory of its own"
            )
        return copy_store(source, target)
    finally:
        target.close()


ENGINES: Final[tuple[Engine, ...]] = (
    Engine(
        "DuckDB",
        ("duckdb://",),
        "duckdb:///absolute/path/to/file.duckdb",
        _duckdb_batch,
        _duckdb_load,
    ),
    Engine(
        "PostgreSQL",
        ("postgresql://", "postgres://"),
        "postgresql://user@host:port/database",
        _postgres_batch,
        _postgres_load,
        _postgres_attach,
    ),
    Engine(
        "ClickHouse (chDB)", ("chdb://",), "chdb:///absolute/path/to/dir", _chdb_batch, _chdb_load
    ),
    Engine(
        "Spark",
        ("spark://", "sc://"),
        "spark://local[N]/absolute/path/to/dir (or sc://host:port/... for Spark Connect)",
        _spark_batch,
        _spark_load,
        _spark_attach,
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


def attach_segment(url: str, schema: str) -> AttachReport:
    """Views at ``url`` reading the Segment warehouse schema ``schema`` in place (the
    engine's report of what it found); ``EngineUnavailable`` names what is missing."""
    engine = engine_for(url)
    if engine.attach_segment is None:
        raise EngineUnavailable(f"{engine.name} cannot read a Segment warehouse in place")
    return engine.attach_segment(url, schema)
