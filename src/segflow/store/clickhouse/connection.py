"""Opening the chDB engine by URL, and the one clear error for what is missing.

The URL names a directory on this machine, ``chdb:///absolute/path/to/dir``: chDB
(ClickHouse embedded in the process) keeps its database there.  A session is opened
per use and closed after it.  chDB is an optional dependency (the ``clickhouse``
extra); without it, a missing or unwritable directory, or missing tables, the error
says so in one line."""

from __future__ import annotations

import importlib
import os
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from segflow.batch.dialects.clickhouse import SETTINGS
from segflow.store.engines import EngineUnavailable as EngineUnavailable

SCHEME: Final = "chdb://"


EXTRA: Final = "clickhouse"
"""segflow's optional dependency group that installs chDB."""


def directory(url: str) -> Path:
    """The directory a ``chdb:///absolute/path`` URL names."""
    if not url.startswith(SCHEME):
        raise EngineUnavailable(
            f"not a chDB URL: expected chdb:///absolute/path/to/dir, got {url.split('://')[0]}://..."
        )
    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/") or parts.query or parts.fragment:
        raise EngineUnavailable(
            f"not a chDB URL: expected chdb:///absolute/path/to/dir (three slashes, no host,"
            f" query or fragment), got {url!r}"
        )
    return Path(unquote(parts.path))


def check_directory(path: Path, *, create: bool) -> None:
    """``path`` is a directory this process may write (made when ``create`` and its
    parent exists), else one error naming what is wrong."""
    try:
        if create and not path.exists() and path.parent.is_dir():
            path.mkdir()
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as e:
        raise EngineUnavailable(f"cannot use the chDB directory {path}: {e.strerror}") from None
    if not exists:
        raise EngineUnavailable(f"chDB directory {path} does not exist")
    if not is_dir:
        raise EngineUnavailable(f"chDB path {path} is not a directory")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise EngineUnavailable(f"chDB directory {path} is not writable by this user")


class Session:
    """A chDB session on a directory (chDB's own, typed for segflow's use)."""

    def __init__(self, session: Any, path: Path) -> None:
        self._session = session
        self.path = path

    def execute(self, sql: str) -> None:
        self._session.query(sql)

    def arrow(self, sql: str) -> pa.Table:
        table = self._session.query(sql, "ArrowTable")
        assert isinstance(table, pa.Table)
        return table

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of a query, as Python values (through Arrow)."""
        columns = [c.to_pylist() for c in self.arrow(sql).columns]
        return list(zip(*columns, strict=True)) if columns else []

    def close(self) -> None:
        self._session.close()


def open_session(url: str, *, create: bool = False) -> Session:
    """A chDB session on the URL's directory, with the batch query's settings."""
    path = directory(url)
    try:
        chdb_session = importlib.import_module("chdb.session")
    except ImportError:
        raise EngineUnavailable(
            f"the chDB engine needs the chdb package: install segflow's {EXTRA!r} extra"
            f" (pip install 'segflow[{EXTRA}]')"
        ) from None
    check_directory(path, create=create)
    try:
        session = Session(chdb_session.Session(str(path)), path)
    except RuntimeError as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EngineUnavailable(f"cannot open chDB at {path}: {reason}") from None
    for name, value in SETTINGS.items():
        session.execute(f"SET {name} = {_setting(value)}")
    return session


def _setting(value: int | str) -> str:
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


def quoted(name: str) -> str:
    """A ClickHouse identifier (backquoted; ``\\`` and ``` ` ``` escaped)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def tables_columns(session: Session, tables: Iterable[str]) -> dict[str, dict[str, str]]:
    """Column name -> type of each of ``tables`` that exists in the current database."""
    names = ", ".join(literal(t) for t in tables)
    found = session.rows(
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase()"
        f" AND table IN ({names}) ORDER BY table, position"
    )
    out: dict[str, dict[str, str]] = {}
    for table, name, kind in found:
        out.setdefault(str(table), {})[str(name)] = str(kind)
    return out


def existing_tables(session: Session, tables: Iterable[str]) -> set[str]:
    names = ", ".join(literal(t) for t in tables)
    found = session.rows(
        f"SELECT name FROM system.tables WHERE database = currentDatabase() AND name IN ({names})"
    )
    return {str(r[0]) for r in found}


def require_tables(
    session: Session, tables: Iterable[str], have: Collection[str] | None = None
) -> None:
    """Every table exists (``have``: the tables known to exist), else one error naming
    those missing."""
    tables = list(tables)
    present = existing_tables(session, tables) if have is None else have
    missing = [t for t in tables if t not in present]
    if missing:
        raise EngineUnavailable(
            f"chDB directory {session.path} lacks the table{'s' if len(missing) > 1 else ''}"
            f" {', '.join(missing)}: load a store into it first (segflow engine load)"
        )
