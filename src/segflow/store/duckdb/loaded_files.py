"""The load ledger: which files are stored whole, by their content's digest.

A file's row is inserted in the transaction that stores its events, so after a crash
the ledger names exactly the files that are in; a later load of the same files skips
those (without reading them) and loads the rest.  Keyed by content, not path: a file
moved or copied elsewhere is still known, and a file rewritten with new content is
not."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Final

import duckdb

from segflow.model.time import utcnow
from segflow.store.protocols import StrPath

LOADED_FILES_DDL: Final = """
CREATE TABLE IF NOT EXISTS loaded_files (
    digest    VARCHAR PRIMARY KEY,
    path      VARCHAR NOT NULL,
    bytes     BIGINT NOT NULL,
    "read"    BIGINT NOT NULL,
    inserted  BIGINT NOT NULL,
    invalid   BIGINT NOT NULL,
    loaded_at TIMESTAMP NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class LoadedFile:
    """A file about to be loaded: where it is, its size and its content's digest."""

    path: str
    bytes: int
    digest: str


def file_digest(path: StrPath) -> LoadedFile:
    """The file's SHA-256 (read in large blocks; hardware-accelerated hashing reads
    faster than any load stores)."""
    p = os.fspath(path)
    with open(p, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return LoadedFile(p, os.path.getsize(p), digest)


def is_loaded(con: duckdb.DuckDBPyConnection, file: LoadedFile) -> bool:
    row = con.execute("SELECT 1 FROM loaded_files WHERE digest = ?", [file.digest]).fetchone()
    return row is not None


def record_loaded(
    con: duckdb.DuckDBPyConnection, file: LoadedFile, read: int, inserted: int, invalid: int
) -> None:
    """Note ``file`` as stored (inside the load's own transaction)."""
    con.execute(
        'INSERT INTO loaded_files (digest, path, bytes, "read", inserted, invalid, loaded_at)'
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [file.digest, file.path, file.bytes, read, inserted, invalid, utcnow()],
    )
