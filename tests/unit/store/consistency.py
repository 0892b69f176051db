"""Invariants of a store that tests check after loads and merges."""

from __future__ import annotations

import duckdb


def assert_profile_numbers_hold(con: duckdb.DuckDBPyConnection) -> None:
    """Every profile has its own number, and every events/traits row carries its
    profile's (store.numbers): a row with another number is invisible to the batch
    evaluator's joins, or counted for the wrong profile."""
    (profiles, numbers) = con.execute(
        "SELECT count(*), count(DISTINCT profile_no) FROM profiles"
    ).fetchone() or (0, 0)
    assert profiles == numbers, "two profiles share a number"
    for table in ("events", "traits"):
        wrong = con.execute(
            f"SELECT t.profile_id, t.profile_no, p.profile_no FROM {table} t"
            " LEFT JOIN profiles p USING (profile_id)"
            " WHERE p.profile_no IS DISTINCT FROM t.profile_no LIMIT 5"
        ).fetchall()
        assert not wrong, (table, wrong)
