"""Opening the Spark engine by URL, and the one clear error for what is missing.

Two kinds of URL name a Spark and a directory:

* ``spark://local[N]/absolute/path/to/dir`` (``spark://local/...``: every core): Spark
  in this process, in local mode.  The JVM and its Spark context start once per process
  (that takes seconds) and stay; each opened directory gets a session of its own on it.
* ``sc://host:port/absolute/path/to/dir``: a Spark Connect server (a cluster's, or one
  on this machine), reached over gRPC; each opened directory gets a session of its own
  there.  The server reads the directory's files, so it must see the same path (the
  same machine, or a shared mount).

The directory holds the batch tables as Parquet files (``tables/<name>.parquet``,
written by ``load.copy_store``), which the session reads as temporary views.  PySpark
is an optional dependency (the ``spark`` extra, with Spark Connect's client) and local
mode needs Java; without either, a malformed URL, an unreachable server, a missing
directory or missing tables, the error says so in one line."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import socket
import sys
import threading
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

import pyarrow as pa

from segflow.batch.dialects.spark import SETTINGS
from segflow.store.engines import EngineUnavailable as EngineUnavailable

SCHEME: Final = "spark://"
CONNECT_SCHEME: Final = "sc://"


EXTRA: Final = "spark"
"""segflow's optional dependency group that installs PySpark."""

TABLES_DIR: Final = "tables"
"""The directory's entry (a link to the latest load's directory) holding the tables."""

SHUFFLE_PARTITIONS: Final = 4
"""Few shuffle partitions: a local session's tables are small next to a cluster's."""

_MASTER = re.compile(r"local(\[(\*|[1-9][0-9]*)\])?")
_SERVER = re.compile(r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(?P<port>[0-9]{1,5})")
CONNECT_PARAMS: Final = frozenset(
    {
        "token",
        "use_ssl",
        "user_id",
        "user_agent",
        "grpc_keepalive_enabled",
        "grpc_keepalive_time_ms",
        "grpc_keepalive_timeout_ms",
        "grpc_keepalive_without_calls",
    }
)
"""Spark Connect's connection parameters a URL may carry after the directory
(``;token=...;use_ssl=true``); a session id is not one: each directory opens its own."""
CONNECT_MODE: Final = "SPARK_CONNECT_MODE_ENABLED"
"""The variable by which PySpark marks a process as a Spark Connect client."""
CONNECT_TIMEOUT: Final = 5.0
"""Seconds to wait for a Spark Connect server's port before naming it unreachable."""
_LOCK = threading.Lock()


def parse_url(url: str) -> tuple[str, Path]:
    """The Spark master (``local[N]``, or ``sc://host:port`` for Spark Connect) and the
    directory of a Spark URL."""
    expected = "expected spark://local[N]/absolute/path/to/dir or sc://host:port/absolute/path"
    if url.startswith(CONNECT_SCHEME):
        server, slash, rest = url.removeprefix(CONNECT_SCHEME).partition("/")
        path, *params = rest.split(";")
        shown = f"{CONNECT_SCHEME}{server}/{path}"  # the parameters may hold a token
        found = _SERVER.fullmatch(server)
        if found is None or not slash or "?" in path or "#" in path:
            raise EngineUnavailable(
                f"not a Spark Connect URL: {expected} (host:port of the server), got {shown!r}"
            )
        if not 0 < int(found["port"]) < 65536:
            raise EngineUnavailable(f"not a Spark Connect URL: port {found['port']} in {shown!r}")
        for param in params:
            key, eq, value = param.partition("=")
            if key not in CONNECT_PARAMS or not eq or not value:
                raise EngineUnavailable(
                    f"not a Spark Connect URL parameter: {key!r} in {shown!r} (expected"
                    f" ;name=value with a name of {', '.join(sorted(CONNECT_PARAMS))})"
                )
        remote = f"{CONNECT_SCHEME}{server}/" + "".join(f";{p}" for p in params)
        return remote, Path("/" + unquote(path))
    if not url.startswith(SCHEME):
        raise EngineUnavailable(f"not a Spark URL: {expected}, got {url.split('://')[0]}://...")
    rest = url.removeprefix(SCHEME)
    master, slash, path = rest.partition("/")
    if not _MASTER.fullmatch(master) or not slash or "?" in path or "#" in path:
        raise EngineUnavailable(
            f"not a Spark URL: {expected} (a local master, N a number of cores or *), got {url!r}"
        )
    return (master if "[" in master else "local[*]"), Path("/" + unquote(path))


def check_directory(path: Path, *, create: bool) -> None:
    """``path`` is a directory this process may write (made when ``create`` and its
    parent exists), else one error naming what is wrong."""
    try:
        if create and not path.exists() and path.parent.is_dir():
            path.mkdir()
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as e:
        raise EngineUnavailable(f"cannot use the Spark directory {path}: {e.strerror}") from None
    if not exists:
        raise EngineUnavailable(f"Spark directory {path} does not exist")
    if not is_dir:
        raise EngineUnavailable(f"Spark path {path} is not a directory")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise EngineUnavailable(f"Spark directory {path} is not writable by this user")


def _pyspark_sql() -> Any:
    try:
        return importlib.import_module("pyspark.sql")
    except ImportError:
        raise EngineUnavailable(
            f"the Spark engine needs the pyspark package: install segflow's {EXTRA!r} extra"
            f" (pip install 'segflow[{EXTRA}]')"
        ) from None


def _java_found() -> bool:
    home = os.environ.get("JAVA_HOME")
    return bool(home and (Path(home) / "bin" / "java").exists()) or shutil.which("java") is not None


def connect_session(remote: str) -> Any:
    """A new session on the Spark Connect server at ``remote`` (``sc://host:port/``
    and its parameters; errors name the host and port only)."""
    sql = _pyspark_sql()
    try:
        importlib.import_module("pyspark.sql.connect.session")
    except ImportError as e:
        raise EngineUnavailable(
            f"Spark Connect needs its client's packages ({e.name}): install segflow's"
            f" {EXTRA!r} extra (pip install 'segflow[{EXTRA}]')"
        ) from None
    server = remote.removeprefix(CONNECT_SCHEME).split("/", 1)[0]
    host, _, port = server.rpartition(":")
    try:  # a closed port would keep the client retrying for minutes
        socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT).close()
    except OSError as e:
        raise EngineUnavailable(
            f"cannot reach the Spark Connect server at {host}:{port}: {e.strerror or e}"
        ) from None
    # creating a remote session marks the whole process as Spark Connect's, after which
    # PySpark refuses to open the local context ``spark://`` URLs use: keep the mark off
    marked = os.environ.get(CONNECT_MODE)
    try:
        return sql.SparkSession.builder.remote(remote).create()
    except Exception as e:  # the client's errors have no common class
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EngineUnavailable(
            f"cannot open a Spark Connect session at {server}: {reason}"
        ) from None
    finally:
        if marked is None:
            os.environ.pop(CONNECT_MODE, None)


def spark_session(master: str) -> Any:
    """The process's Spark session (started on first use with ``master``; a later
    master is that of the running one, as Spark has one context per process)."""
    sql = _pyspark_sql()
    with _LOCK:
        active = sql.SparkSession.getActiveSession()
        if active is not None:
            return active
        if not _java_found():
            raise EngineUnavailable(
                "the Spark engine needs Java (17 or later): none on PATH or in JAVA_HOME"
            )
        builder = (
            sql.SparkSession.builder.master(master)
            .appName("segflow")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.sql.shuffle.partitions", str(SHUFFLE_PARTITIONS))
        )
        for name, value in SETTINGS.items():
            builder = builder.config(name, value)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # a local master stays local
        # Python workers (UDFs, a stream's stateful processor) run this interpreter,
        # which has segflow, not whichever python3 is first on PATH
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        try:
            spark = builder.getOrCreate()
        except Exception as e:  # PySpark's gateway errors have no common class
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise EngineUnavailable(f"cannot start Spark ({master}): {reason}") from None
        spark.sparkContext.setLogLevel("FATAL")
        return spark


class Session:
    """A Spark session of its own over a directory: its tables are temporary views
    over the Parquet files of the directory's latest load."""

    def __init__(self, spark: Any, path: Path, *, remote: bool = False) -> None:
        self.remote = remote
        """A Spark Connect session (``spark`` is already this directory's own)."""
        self.spark = spark if remote else spark.newSession()
        for name, value in SETTINGS.items():
            self.spark.conf.set(name, value)
        self.path = path
        self.tables: set[str] = set()
        self.refresh()

    def refresh(self) -> None:
        """Read the directory's tables afresh (after a load)."""
        for t in self.tables:
            self.spark.catalog.dropTempView(t)
        self.tables = set()
        root = self.path / TABLES_DIR
        for file in sorted(root.glob("*.parquet")) if root.is_dir() else []:
            self.spark.read.parquet(str(file.resolve())).createOrReplaceTempView(file.stem)
            self.tables.add(file.stem)

    def arrow(self, sql: str) -> pa.Table:
        table = self.spark.sql(sql).toArrow()
        assert isinstance(table, pa.Table)
        return table

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.spark.sql(sql).collect()]

    def explain(self, sql: str) -> str:
        """Spark's physical plan of a query (``EXPLAIN FORMATTED``)."""
        return str(self.spark.sql(f"EXPLAIN FORMATTED {sql}").collect()[0][0])

    def close(self) -> None:
        """Drop the session's views (the process's Spark context stays for the next);
        a Spark Connect session is released on the server."""
        if self.remote:
            self.spark.stop()
        else:
            for t in self.tables:
                self.spark.catalog.dropTempView(t)
        self.tables = set()


def open_session(url: str, *, create: bool = False) -> Session:
    """A Spark session on the URL's directory, with the batch query's settings."""
    master, path = parse_url(url)
    _pyspark_sql()
    check_directory(path, create=create)
    if master.startswith(CONNECT_SCHEME):
        return Session(connect_session(master), path, remote=True)
    return Session(spark_session(master), path)


def tables_columns(session: Session, tables: Iterable[str]) -> dict[str, dict[str, str]]:
    """Column name -> Spark type of each of ``tables`` that the directory holds."""
    out: dict[str, dict[str, str]] = {}
    for t in tables:
        if t in session.tables:
            schema = session.spark.table(t).schema
            out[t] = {f.name: f.dataType.simpleString() for f in schema.fields}
    return out


def require_tables(
    session: Session, tables: Iterable[str], have: Collection[str] | None = None
) -> None:
    """Every table exists (``have``: the tables known to exist), else one error naming
    those missing."""
    present = session.tables if have is None else have
    missing = [t for t in tables if t not in present]
    if missing:
        raise EngineUnavailable(
            f"Spark directory {session.path} lacks the table{'s' if len(missing) > 1 else ''}"
            f" {', '.join(missing)}: load a store into it first (segflow engine load)"
        )
