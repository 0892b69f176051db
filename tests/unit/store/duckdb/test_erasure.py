"""The erasure helpers on a real DuckDB file: the suppression list holds keyed hashes
only (a plain list from older stores is converted), and a scrub leaves no byte of
deleted rows in the file, also in tables with a primary key."""

from __future__ import annotations

from pathlib import Path

import duckdb

from segflow.model.suppressions import Suppressions
from segflow.store.duckdb.erasure import erasure_key, load_suppressions, pseudonym, scrub

SECRET = "zz-distinctive-customer-0042@example.org"


def test_plain_suppression_list_becomes_keyed_hashes(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE suppressions (value VARCHAR, profile_id VARCHAR, suppressed_at TIMESTAMP)"
    )
    con.execute("INSERT INTO suppressions VALUES (?, 'p1', now()::TIMESTAMP)", [SECRET])
    con.execute("CHECKPOINT")
    s = Suppressions()
    load_suppressions(con, s)
    assert SECRET in s and "someone else" not in s and len(s) == 1
    con.close()
    assert SECRET.encode() not in db.read_bytes()
    again = Suppressions()
    load_suppressions(duckdb.connect(str(db)), again)
    assert SECRET in again


def test_pseudonyms_are_stable_per_store_and_differ_between_stores(tmp_path: Path) -> None:
    a, b = duckdb.connect(str(tmp_path / "a.duckdb")), duckdb.connect(str(tmp_path / "b.duckdb"))
    assert pseudonym(erasure_key(a), "ada") == pseudonym(erasure_key(a), "ada")
    assert pseudonym(erasure_key(a), "ada") != pseudonym(erasure_key(b), "ada")


def test_scrub_removes_deleted_bytes_from_an_indexed_table(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE people (id VARCHAR PRIMARY KEY, email VARCHAR NOT NULL)")
    con.execute("INSERT INTO people VALUES ('p1', ?), ('p2', 'other@example.org')", [SECRET])
    con.execute("CHECKPOINT")
    assert SECRET.encode() in db.read_bytes()
    con.execute("DELETE FROM people WHERE id = 'p1'")
    con.execute("CHECKPOINT")
    assert SECRET.encode() in db.read_bytes()  # what a checkpoint alone leaves
    scrub(con, ["people"])
    con.close()
    assert SECRET.encode() not in db.read_bytes()
    con = duckdb.connect(str(db))
    assert con.execute("SELECT * FROM people").fetchall() == [("p2", "other@example.org")]
    con.execute("INSERT INTO people VALUES ('p3', 'x')")
    try:
        con.execute("INSERT INTO people VALUES ('p3', 'y')")
        raise AssertionError("the primary key was lost")
    except duckdb.ConstraintException:
        pass
