"""What erasure needs from the store: a per-store secret key, keyed hashes of erased ids
(the suppression list holds those, never the ids), pseudonyms for the change log, and
a scrub that leaves no byte of deleted rows in the database file.

DuckDB marks deleted rows and keeps their bytes until a row group is rewritten, and a
rewritten table's old blocks are only put on the free list, bytes intact.  ``scrub``
therefore rebuilds each table that held the erased rows from its own DDL, checkpoints
(the old blocks become free), then fills every free block with random bytes and frees
them again, so the file keeps no copy of what was deleted.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from typing import Final

import duckdb

from segflow.model.suppressions import Suppressions, digest
from segflow.model.time import utcnow
from segflow.store.duckdb.catalog import has_table

KEYS_DDL: Final = """
CREATE TABLE IF NOT EXISTS store_keys (
    name VARCHAR PRIMARY KEY,
    key  VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS suppressed_ids (
    digest        VARCHAR NOT NULL,
    suppressed_at TIMESTAMP NOT NULL
);
"""
"""``store_keys``: random secrets made once per store; ``suppressed_ids``: keyed hashes
(HMAC-SHA256 under the ``erasure`` key) of ids whose later events ingestion drops."""

PSEUDONYM_PREFIX: Final = "erased:"


def erasure_key(con: duckdb.DuckDBPyConnection) -> bytes:
    """This store's erasure key, made on first use."""
    con.execute(KEYS_DDL)
    row = con.execute("SELECT key FROM store_keys WHERE name = 'erasure'").fetchone()
    if row is None:
        con.execute(
            "INSERT INTO store_keys VALUES ('erasure', ?) ON CONFLICT DO NOTHING",
            [secrets.token_hex(32)],
        )
        row = con.execute("SELECT key FROM store_keys WHERE name = 'erasure'").fetchone()
    assert row is not None
    return bytes.fromhex(str(row[0]))


def pseudonym(key: bytes, profile_id: str) -> str:
    """What an erased profile's id becomes in the change log (stable per store)."""
    return PSEUDONYM_PREFIX + digest(key, "profile:" + profile_id)[:32]


def load_suppressions(con: duckdb.DuckDBPyConnection, into: Suppressions) -> None:
    """Read the stored list into ``into`` (a list of plain ids found in the file is
    moved to hashes first)."""
    key = erasure_key(con)
    _migrate_plain_list(con, key)
    rows = con.execute("SELECT DISTINCT digest FROM suppressed_ids").fetchall()
    into.hold(key, (str(d) for (d,) in rows))


def add_suppressions(
    con: duckdb.DuckDBPyConnection, into: Suppressions, ids: Iterable[str]
) -> None:
    """Store the hashes of ``ids`` (in the caller's transaction) and hold them."""
    key = into.key if into.key is not None else erasure_key(con)
    new = sorted({digest(key, v) for v in ids})
    now = utcnow()
    con.executemany("INSERT INTO suppressed_ids VALUES (?, ?)", [(d, now) for d in new])
    into.hold(key, new)


def _migrate_plain_list(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    if not has_table(con, "suppressions"):
        return
    plain = con.execute("SELECT DISTINCT value, suppressed_at FROM suppressions").fetchall()
    con.execute("BEGIN TRANSACTION")
    try:
        con.executemany(
            "INSERT INTO suppressed_ids VALUES (?, ?)", [(digest(key, v), t) for v, t in plain]
        )
        con.execute("DROP TABLE suppressions")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    scrub(con, ())


# -- scrubbing the file --------------------------------------------------------------

SCRUB_TABLE: Final = "_sf_scrub"


def rewrite_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Rebuild ``table`` from its own DDL (constraints, defaults and indexes kept), so
    its rows live in new row groups and its old blocks, deleted rows included, are
    freed.  A table with an index is not vacuumed by a checkpoint; this one is."""
    found = con.execute(
        "SELECT sql FROM duckdb_tables() WHERE table_name = ?"
        " AND schema_name = 'main' AND database_name = current_database()",
        [table],
    ).fetchone()
    if found is None:
        return
    indexes = [
        str(sql)
        for (sql,) in con.execute(
            "SELECT sql FROM duckdb_indexes() WHERE table_name = ?"
            " AND schema_name = 'main' AND database_name = current_database()"
            " AND sql IS NOT NULL",
            [table],
        ).fetchall()
    ]
    staged = f"_sf_rewrite_{table}"
    ddl = re.sub(
        rf'(?i)^CREATE TABLE\s+(\S+\.)?"?{re.escape(table)}"?', f"CREATE TABLE {staged}", found[0]
    )
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DROP TABLE IF EXISTS {staged}")
        con.execute(ddl)
        con.execute(f'INSERT INTO {staged} SELECT * FROM "{table}"')
        con.execute(f'DROP TABLE "{table}"')
        con.execute(f'ALTER TABLE {staged} RENAME TO "{table}"')
        for sql in indexes:
            con.execute(sql)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _free_blocks(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    row = con.execute("SELECT free_blocks, block_size FROM pragma_database_size()").fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def scrub(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> None:
    """Leave no byte of deleted rows in the file: rewrite ``tables``, checkpoint, then
    overwrite every free block with random bytes (a table written and dropped)."""
    for table in tables:
        rewrite_table(con, table)
    con.execute("CHECKPOINT")
    free, block = _free_blocks(con)
    if free == 0:
        return
    # random hex compresses to a little over half: this many rows fill the free blocks
    rows = (free + 2) * block // 32 + 1
    con.execute(
        f"CREATE OR REPLACE TABLE {SCRUB_TABLE} AS"
        " SELECT md5(random()::VARCHAR) || md5(random()::VARCHAR) AS filler FROM range(?)",
        [rows],
    )
    con.execute("CHECKPOINT")
    con.execute(f"DROP TABLE {SCRUB_TABLE}")
    con.execute("CHECKPOINT")
