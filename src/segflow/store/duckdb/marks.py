"""One-row marks kept beside the data: the events' seq high-water mark
(``seq_marks``), the change log's highest seq (``log_marks``) and where the live
evaluator's log is complete (``live_marks``).  Read and written many times a second by
the server, so never by scanning the table they describe."""

from __future__ import annotations

import duckdb


def set_row(
    con: duckdb.DuckDBPyConnection, update: str, insert: str, params: dict[str, object]
) -> None:
    """Keep a one-row mark: ``update``, and ``insert`` only when it matched no row.
    DuckDB's ``ON CONFLICT`` upsert of one row costs several times an ``UPDATE``, and
    marks are set on every group commit (two by the evaluator, one by the store)."""
    row = con.execute(update, params).fetchone()
    if not row or not row[0]:
        con.execute(insert, params)


def events_seq(con: duckdb.DuckDBPyConnection) -> int:
    """The highest event ``seq`` ever handed out: the high-water mark, not
    ``max(seq)``, which reads every stored event's seq and, after a privacy delete of
    the newest events, would hand their numbers out again (readers resume by seq).
    ``max(seq)`` only in a store that has no mark yet."""
    row = con.execute("SELECT max(value) FROM seq_marks WHERE name = 'events'").fetchone()
    if row and row[0] is not None:
        return int(row[0])
    row = con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    return int(row[0]) if row else 0


def raise_events_seq(con: duckdb.DuckDBPyConnection, top: int) -> None:
    """Move the events' high-water mark up to ``top`` (never down)."""
    set_row(
        con,
        "UPDATE seq_marks SET value = greatest(value, $top) WHERE name = 'events'",
        "INSERT INTO seq_marks VALUES ('events', $top)",
        {"top": top},
    )


__all__ = ["events_seq", "raise_events_seq", "set_row"]
