"""Profile numbers (store.duckdb.numbers): given on first storage, rewritten by merges, added
to stores made before them, and required of every writer."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from segflow.model.definition import parse_segment
from segflow.store.duckdb.batch import evaluate
from segflow.store.duckdb.numbers import has_profile_numbers
from segflow.store.duckdb.schema import DDL
from segflow.store.duckdb.store import DuckDBStore
from tests.helpers import assert_profile_numbers_hold


def msg(mid: str, day: int, *, user: str | None = None, anon: str | None = None,
        kind: str = "track", **extra: Any) -> dict[str, Any]:  # fmt: skip
    m: dict[str, Any] = {"type": kind, "messageId": mid,
                         "timestamp": f"2026-01-{day:02d}T00:00:00Z", **extra}  # fmt: skip
    if kind == "track":
        m.setdefault("event", "Viewed")
    if user:
        m["userId"] = user
    if anon:
        m["anonymousId"] = anon
    return m


def numbers(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(con.execute("SELECT profile_id, profile_no FROM profiles").fetchall())


def test_new_profiles_take_the_next_numbers_in_id_order() -> None:
    with DuckDBStore(":memory:") as s:
        s.ingest_messages([msg("m1", 1, user="b"), msg("m2", 1, user="a")])
        assert numbers(s.con) == {"a": 1, "b": 2}
        s.ingest_messages([msg("m3", 2, user="c"), msg("m4", 2, user="a")])
        assert numbers(s.con) == {"a": 1, "b": 2, "c": 3}
        assert_profile_numbers_hold(s.con)


def test_a_merge_moves_rows_to_the_number_of_the_profile_they_join() -> None:
    with DuckDBStore(":memory:") as s:
        s.ingest_messages(
            [
                msg("m1", 1, anon="x1", context={"traits": {"plan": "free"}}),
                msg("m2", 1, user="u9"),
            ]
        )
        before = numbers(s.con)
        # x1 becomes known as u9, an existing profile: x1's rows take u9's number
        s.ingest_messages([msg("m3", 2, user="u9", anon="x1", kind="identify")])
        assert numbers(s.con) == {"u9": before["u9"]}
        assert_profile_numbers_hold(s.con)
        # an anonymous profile renamed to a new user id gets a new number
        s.ingest_messages([msg("m4", 3, anon="x2", context={"traits": {"plan": "pro"}})])
        s.ingest_messages([msg("m5", 4, user="u1", anon="x2", kind="identify")])
        after = numbers(s.con)
        assert set(after) == {"u9", "u1"} and after["u1"] not in before.values()
        assert_profile_numbers_hold(s.con)
        seg = parse_segment({"id": "pro", "condition": {"trait": "plan", "eq": "pro"}})
        assert evaluate(s.con, [seg], datetime(2026, 2, 1)).members("pro") == ["u1"]


def _old_store(path: Path, *, orphan: bool = False) -> None:
    con = duckdb.connect(str(path))
    con.execute(DDL)
    con.execute(
        "INSERT INTO profiles VALUES ('q', TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-02'),"
        " ('p', TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-01');"
        'INSERT INTO events (message_id, seq, type, event, profile_id, "timestamp")'
        " VALUES ('m1', 1, 'track', 'A', 'p', TIMESTAMP '2026-01-01'),"
        " ('m2', 2, 'track', 'A', 'q', TIMESTAMP '2026-01-02');"
        'INSERT INTO traits (profile_id, key, "timestamp", message_id, kind, num)'
        " VALUES ('q', 'age', TIMESTAMP '2026-01-02', 'm2', 'number', 30)"
    )
    if orphan:
        con.execute(
            'INSERT INTO traits (profile_id, key, "timestamp", message_id, kind, num)'
            " VALUES ('gone', 'age', TIMESTAMP '2026-01-02', 'm3', 'number', 31)"
        )
    con.close()


def test_a_store_made_before_profile_numbers_gets_them_when_opened(tmp_path: Path) -> None:
    _old_store(tmp_path / "old.duckdb")
    with DuckDBStore(tmp_path / "old.duckdb") as s:
        assert numbers(s.con) == {"p": 1, "q": 2}
        assert_profile_numbers_hold(s.con)
        nullable = s.con.execute(
            "SELECT table_name, is_nullable FROM duckdb_columns()"
            " WHERE column_name = 'profile_no' ORDER BY 1"
        ).fetchall()
        assert nullable == [("events", False), ("profiles", False), ("traits", False)]
        s.ingest_messages([msg("m9", 3, user="r")])
        assert numbers(s.con)["r"] == 3
        # a writer that leaves the number out fails instead of hiding its row
        with pytest.raises(duckdb.ConstraintException, match="profile_no"):
            s.con.execute(
                'INSERT INTO traits (profile_id, key, "timestamp", message_id, kind, num)'
                " VALUES ('p', 'age', TIMESTAMP '2026-01-02', 'm4', 'number', 30)"
            )


def test_rows_of_an_unknown_profile_stop_the_numbering_and_change_nothing(
    tmp_path: Path,
) -> None:
    _old_store(tmp_path / "old.duckdb", orphan=True)
    with pytest.raises(RuntimeError, match=r"cannot number traits: 1 rows .* 'gone'"):
        DuckDBStore(tmp_path / "old.duckdb")
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    assert not has_profile_numbers(con)
    cols = con.execute("SELECT count(*) FROM duckdb_columns() WHERE column_name = 'profile_no'")
    assert cols.fetchone() == (0,)
    con.close()
