"""Another DuckDB file as a batch engine, ``duckdb:///absolute/path/to/file.duckdb``.

A load copies the store's batch tables into the file in one transaction (all replaced,
or none: a failed load leaves what the file held, and a file the load created is
removed); the batch evaluator then runs on that file as it runs on the store.  What
for: a snapshot to evaluate on while the store's own file is held by a server, or a
file to hand to another machine."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

import duckdb

from segflow.store.duckdb.batch import DuckDBBatch
from segflow.store.engines import LOADED_TABLES, EngineUnavailable, LoadReport

SCHEME: Final = "duckdb://"

TABLES: Final = LOADED_TABLES
"""What a load copies, in load order; the batch evaluator reads them all."""

TARGET: Final = "segflow_engine_target"
"""The name the target file is attached under during a load."""


def path_of(url: str) -> Path:
    """The file a ``duckdb:///absolute/path`` URL names."""
    parts = urlsplit(url)
    if (
        not url.startswith(SCHEME)
        or parts.netloc
        or not parts.path.startswith("/")
        or parts.query
        or parts.fragment
    ):
        raise EngineUnavailable(
            "not a DuckDB URL: expected duckdb:///absolute/path/to/file.duckdb (three slashes,"
            f" no host, query or fragment), got {url!r}"
        )
    return Path(unquote(parts.path))


def _missing_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The batch tables the connection's current database lacks."""
    found = {
        str(name)
        for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_catalog = current_database() AND table_schema = 'main'"
        ).fetchall()
    }
    return [t for t in TABLES if t not in found]


def _remove(path: Path) -> None:
    for f in (path, path.with_name(path.name + ".wal")):
        f.unlink(missing_ok=True)


class DuckDBFileBatch(DuckDBBatch):
    """The batch evaluator over a DuckDB file a load filled (``BatchEvaluator``)."""

    def __init__(self, url: str) -> None:
        path = path_of(url)
        if not path.is_file():
            raise EngineUnavailable(
                f"DuckDB file {path} does not exist: load a store into it first"
                " (segflow engine load)"
            )
        try:
            con = duckdb.connect(str(path))
        except duckdb.Error as e:
            raise EngineUnavailable(f"cannot open the DuckDB file {path}: {e}") from None
        missing = _missing_tables(con)
        if missing:
            con.close()
            raise EngineUnavailable(
                f"DuckDB file {path} lacks the tables {', '.join(missing)}: load a store into"
                " it first (segflow engine load)"
            )
        super().__init__(con)

    def close(self) -> None:
        self.con.close()


def copy_store(source: duckdb.DuckDBPyConnection, url: str) -> LoadReport:
    """Replace the batch tables of the file at ``url`` with the store's, in one
    transaction; the rows copied per table."""
    path = path_of(url)
    if not path.parent.is_dir():
        raise EngineUnavailable(f"cannot make the DuckDB file {path}: no directory {path.parent}")
    missing = _missing_tables(source)
    if missing:
        raise ValueError(f"the store lacks the tables {', '.join(missing)}")
    created = not path.exists()
    try:
        source.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS {TARGET}")
    except duckdb.Error as e:
        if created:
            _remove(path)
        raise EngineUnavailable(f"cannot open the DuckDB file {path}: {e}") from None
    report = LoadReport("DuckDB")
    done = False
    try:
        source.execute("BEGIN TRANSACTION")
        for table in TABLES:
            source.execute(
                f"CREATE OR REPLACE TABLE {TARGET}.main.{table} AS SELECT * FROM {table}"
            )
            (n,) = source.execute(f"SELECT count(*) FROM {TARGET}.main.{table}").fetchone() or (0,)
            report.rows[table] = int(n)
        source.execute("COMMIT")
        done = True
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            source.execute("ROLLBACK")
        raise
    finally:
        with contextlib.suppress(duckdb.Error):
            source.execute(f"DETACH {TARGET}")  # detaching checkpoints the file
        if created and not done:
            _remove(path)
    return report
