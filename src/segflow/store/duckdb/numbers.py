"""Profile numbers: a dense INTEGER key beside the ``profile_id`` text.

The batch evaluator groups every event scan by profile and joins a dozen such groups
(and the trait scans, and the sequences) to ``profiles``.  On text ids that hashing
and comparing is the largest cost of the plan, and a 4-byte integer is cheaper to do
both on.  ``profile_no`` is that integer: ``profiles`` holds
one per profile, and every ``events`` and ``traits`` row carries its profile's.

Like ``events.event_code`` it is added by ``DuckDBStore`` (``number_profiles`` here),
not by the DDL, so a store made from the DDL alone is still valid and the compiler
then keys on ``profile_id`` (``has_profile_numbers``).  Once added, the columns are
``NOT NULL``: a writer that forgets the number fails loudly instead of leaving rows
the evaluator cannot see.  Numbers are given in order of first storage (within one
load, in ``profile_id`` order); a merged-away profile's number is not reused while
other profiles hold higher ones, and the merged rows take their new profile's.
"""

from __future__ import annotations

from typing import Final

import duckdb

from segflow.store.duckdb.catalog import table_columns

TABLES: Final = ("profiles", "events", "traits")

NEXT_NUMBER: Final = "(SELECT coalesce(max(profile_no), 0) FROM profiles)"
"""The largest number given so far (new profiles take the following ones)."""


def _numbered(con: duckdb.DuckDBPyConnection) -> dict[str, bool]:
    """Table -> whether its ``profile_no`` is nullable, for the tables that have one."""
    columns = {t: table_columns(con, t) for t in TABLES}
    return {t: cols["profile_no"] for t, cols in columns.items() if "profile_no" in cols}


def has_profile_numbers(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``profiles``, ``events`` and ``traits`` all carry ``profile_no``."""
    return set(_numbered(con)) == set(TABLES)


def profile_key(con: duckdb.DuckDBPyConnection) -> str:
    """The column the batch evaluator groups and joins on: ``profile_no`` where all
    three tables carry it, else ``profile_id``."""
    return "profile_no" if has_profile_numbers(con) else "profile_id"


def number_profiles(con: duckdb.DuckDBPyConnection) -> None:
    """Add ``profile_no`` to the tables that lack it, in one transaction: profiles are
    numbered in ``profile_id`` order and rows take their profile's number.  A row whose
    profile is not in ``profiles`` cannot be numbered; that is an error naming the
    table, not a silent gap.  The columns are then made ``NOT NULL``, each in its own
    transaction: DuckDB cannot add the constraint in the transaction that filled them
    (and redoes it on the next open if interrupted).  Then a checkpoint: DuckDB 1.4
    cannot replay ``SET NOT NULL`` from its log, so a process killed before its next
    checkpoint would leave a store that no longer opens (a new store included)."""
    missing = [t for t in TABLES if t not in _numbered(con)]
    if missing:
        _add_numbers(con, missing)
    constrained = False
    for table, nullable in _numbered(con).items():
        if nullable:
            con.execute(f"ALTER TABLE {table} ALTER COLUMN profile_no SET NOT NULL")
            constrained = True
    if constrained and _on_disk(con):
        con.execute("CHECKPOINT")


def _on_disk(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the database is a file (an in-memory one has no log to replay, and
    DuckDB 1.4 checkpointing it right after ``SET NOT NULL`` loses other columns'
    null counts, so that ``IS NULL`` filters then skip every row)."""
    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return bool(row and row[0])


def _add_numbers(con: duckdb.DuckDBPyConnection, missing: list[str]) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        for table in missing:
            con.execute(f"ALTER TABLE {table} ADD COLUMN profile_no INTEGER")
            if table == "profiles":
                con.execute(
                    "UPDATE profiles SET profile_no = n.k FROM (SELECT profile_id,"
                    " row_number() OVER (ORDER BY profile_id) AS k FROM profiles) n"
                    " WHERE profiles.profile_id = n.profile_id"
                )
                continue
            con.execute(
                f"UPDATE {table} SET profile_no = p.profile_no FROM profiles p"
                f" WHERE {table}.profile_id = p.profile_id"
            )
            orphans = con.execute(
                f"SELECT count(*), min(profile_id) FROM {table} WHERE profile_no IS NULL"
            ).fetchone()
            if orphans and orphans[0]:
                raise RuntimeError(
                    f"cannot number {table}: {orphans[0]} rows belong to profiles not"
                    f" in the profiles table (e.g. {orphans[1]!r})"
                )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
