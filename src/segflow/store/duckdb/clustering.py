"""Keeping events clustered by (event code, profile) and traits by (key, profile).

The batch evaluator scans one event name (one trait key) at a time, and DuckDB skips
the row groups whose zone maps rule that name out: it reads only the name's rows when
they sit together.  A bulk load inserts each file sorted that way, but the server's
group commits (a few thousand rows each) leave row groups holding every name, and each
per-name scan then reads all of them.

``compact_tail`` re-sorts the rows stored since the last compaction, a chunk of them at
a time, and appends them back as one sorted run (DuckDB's checkpoint drops the emptied
row groups).  Its cost is the chunk's, not the table's, so the server runs it whenever
ingestion goes idle; ``DuckDBStore.compact`` still rewrites whole tables.

Where the clustered part ends is a mark in ``seq_marks``: ``events_clustered`` by event
``seq``, ``traits_clustered`` by trait ``wseq`` (both only grow, and the rewrite keeps
them).  A store without the marks counts as clustered up to its newest row when
first opened (``segflow compact`` sorts what it already holds).  A load that is itself
a sorted run of at least a chunk, stored with nothing unclustered before it, moves the
mark past itself (``note_sorted_load``), so the tail never re-sorts a bulk load.
"""

from __future__ import annotations

from typing import Final

import duckdb

from segflow.store.duckdb.marks import set_row

TAIL_CHUNK_ROWS: Final = 500_000
"""Seq numbers re-sorted together by one ``compact_tail`` (~4 row groups): larger
chunks pause the writer longer for little more clustering (docs/performance.md,
"Stores written by the server").  Also the size from which a sorted load counts as a
clustered run by itself."""

ORDERS: Final = {
    "events": 'event_code, profile_no, "timestamp"',
    "traits": 'key, profile_no, "timestamp"',
}
SEQ: Final = {"events": "seq", "traits": "wseq"}
MARKS: Final = {"events": "events_clustered", "traits": "traits_clustered"}


def rewrite_sorted(
    con: duckdb.DuckDBPyConnection,
    table: str,
    where: str = "",
    params: dict[str, object] | None = None,
) -> int:
    """Delete ``table``'s rows matching ``where`` (all without it) and insert them back
    in clustering order; returns the rows rewritten.  The caller holds the transaction."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _sf_compact AS SELECT * FROM {table}{where}"
        f" ORDER BY {ORDERS[table]}",
        params,
    )
    con.execute(f"DELETE FROM {table}{where}", params)
    (n,) = con.execute(f"INSERT INTO {table} SELECT * FROM _sf_compact").fetchone() or (0,)
    con.execute("DROP TABLE _sf_compact")
    return int(n)


def newest(con: duckdb.DuckDBPyConnection, table: str, above: int = 0) -> int:
    """The highest seq (wseq) of ``table`` above ``above`` (``above`` if none): zone maps
    let DuckDB read only the row groups holding newer rows."""
    seq = SEQ[table]
    row = con.execute(f"SELECT max({seq}) FROM {table} WHERE {seq} > $a", {"a": above}).fetchone()
    return int(row[0]) if row and row[0] is not None else above


def set_clustered(con: duckdb.DuckDBPyConnection, table: str, upto: int) -> None:
    set_row(
        con,
        "UPDATE seq_marks SET value = $v WHERE name = $n",
        "INSERT INTO seq_marks VALUES ($n, $v)",
        {"n": MARKS[table], "v": upto},
    )


def clustered_upto(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Where ``table``'s clustered part ends; set to its newest row when unmarked."""
    row = con.execute("SELECT value FROM seq_marks WHERE name = $n", {"n": MARKS[table]}).fetchone()
    if row is not None:
        return int(row[0])
    upto = newest(con, table)
    set_clustered(con, table, upto)
    return upto


def note_sorted_load(
    con: duckdb.DuckDBPyConnection, table: str, rows: int, *, chunk: int = TAIL_CHUNK_ROWS
) -> None:
    """After a load inserted ``rows`` rows sorted in clustering order (in its
    transaction): when they are a chunk or more and the only rows past the mark, they
    are a clustered run already, and the mark moves past them."""
    if rows < chunk:
        return
    seq, upto = SEQ[table], clustered_upto(con, table)
    (past,) = con.execute(
        f"SELECT count(*) FROM {table} WHERE {seq} > $u", {"u": upto}
    ).fetchone() or (0,)
    if past == rows:
        set_clustered(con, table, newest(con, table, upto))


def compact_tail(con: duckdb.DuckDBPyConnection, chunk: int = TAIL_CHUNK_ROWS) -> dict[str, int]:
    """Re-sort the oldest ``chunk`` seq numbers past each table's mark, once that many
    have been handed out, each table in its own transaction; returns the rows rewritten
    by table (none when the tails are shorter than a chunk)."""
    done: dict[str, int] = {}
    for table, seq in SEQ.items():
        upto = clustered_upto(con, table)
        if newest(con, table, upto) - upto < chunk:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            done[table] = rewrite_sorted(
                con,
                table,
                f" WHERE {seq} > $lo AND {seq} <= $hi",
                {"lo": upto, "hi": upto + chunk},
            )
            set_clustered(con, table, upto + chunk)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return done


__all__ = [
    "TAIL_CHUNK_ROWS",
    "clustered_upto",
    "compact_tail",
    "note_sorted_load",
    "rewrite_sorted",
    "set_clustered",
]
