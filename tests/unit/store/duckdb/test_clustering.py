"""Tail compaction (store.duckdb.clustering): the rows the server's small group commits leave
interleaved are re-sorted a chunk at a time, nothing else moves, nothing changes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.model.definition import Segment, parse_segment
from segflow.store.duckdb.batch import evaluate
from segflow.store.duckdb.clustering import MARKS, ORDERS
from segflow.store.duckdb.store import DuckDBStore
from tests.helpers import assert_profile_numbers_hold

NAMES = ("Product Viewed", "Product Added", "Order Completed", "Products Searched")
AT = datetime(2026, 2, 1)


def batch(start: int, n: int, *, anonymous: bool = False) -> list[dict[str, Any]]:
    """``n`` messages as a server's group commit gets them: names, profiles and traits
    interleaved in arrival order (``anonymous``: every fifth from a visitor whom a
    later identify may merge into a user)."""
    out: list[dict[str, Any]] = []
    for i in range(start, start + n):
        who = (
            {"anonymousId": f"a{i % 11}"}
            if anonymous and i % 5 == 0
            else {"userId": f"u{i * 7 % 23}"}
        )
        m: dict[str, Any] = {
            "type": "track",
            "messageId": f"m{i}",
            **who,
            "event": NAMES[i % len(NAMES)],
            "timestamp": f"2026-01-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
            "properties": {"revenue": float(i % 50)},
        }
        if i % 3 == 0:
            m["context"] = {"traits": {"plan": ("free", "pro")[i % 2], "score": i % 10}}
        out.append(m)
    return out


def load(store: DuckDBStore, batches: int, size: int, start: int = 0) -> None:
    for b in range(batches):
        store.ingest_messages(batch(start + b * size, size))


def mark(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute("SELECT value FROM seq_marks WHERE name = ?", [MARKS[table]]).fetchone()
    assert row is not None
    return int(row[0])


def contents(con: duckdb.DuckDBPyConnection) -> tuple[list[Any], list[Any]]:
    events = con.execute(
        "SELECT * EXCLUDE (extra, received_at) FROM events ORDER BY seq"
    ).fetchall()
    # wseq numbers a load's trait rows in no set order within a (key, profile)
    traits = con.execute("SELECT * EXCLUDE (wseq) FROM traits ORDER BY ALL").fetchall()
    return events, traits


def physical(con: duckdb.DuckDBPyConnection, table: str, where: str) -> list[tuple[Any, ...]]:
    """The clustering key of the rows matching ``where``, in storage order, with each
    row's position among all the table's rows."""
    return con.execute(
        f"SELECT pos, {ORDERS[table]} FROM (SELECT row_number() OVER (ORDER BY rowid)"
        f" AS pos, * FROM {table}) WHERE {where} ORDER BY pos"
    ).fetchall()


def in_order(rows: list[tuple[Any, ...]]) -> bool:
    """Whether the rows' clustering keys (after the position) are in DuckDB's order,
    NULLs last."""
    keys = [tuple((v is None, v) for v in r[1:]) for r in rows]
    return keys == sorted(keys, key=lambda k: tuple((n, 0 if n else v) for n, v in k))


def library() -> list[Segment]:
    return [
        parse_segment(
            {
                "id": "viewers",
                "name": "viewers",
                "condition": {"event": "Product Viewed", "within": "20d", "gte": 2},
            }
        ),
        parse_segment(
            {
                "id": "pro_buyers",
                "name": "pro buyers",
                "condition": {
                    "all": [
                        {"trait": "plan", "eq": "pro"},
                        {
                            "event": "Order Completed",
                            "measure": "sum",
                            "of": "revenue",
                            "gt": 40,
                        },
                    ]
                },
            }
        ),
    ]


def test_the_oldest_chunk_of_the_tail_is_resorted_and_nothing_changes(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "s.duckdb") as s:
        load(s, batches=12, size=50)  # seq 1..600, interleaved
        before = contents(s.con)
        members = evaluate(s.con, library(), AT).membership_map()
        assert all(members.values())  # both segments have members to lose
        assert s.compact_tail(1000) == {}  # a tail shorter than a chunk waits
        assert mark(s.con, "events") == 0

        done = s.compact_tail(250)
        assert done["events"] == 250
        assert mark(s.con, "events") == 250
        traits_mark = mark(s.con, "traits")
        assert done["traits"] == traits_mark == 250

        # the chunk is one run in clustering order; the rest of the tail as it was
        run = physical(s.con, "events", "seq <= 250")
        assert in_order(run)
        assert run[-1][0] - run[0][0] == len(run) - 1
        rest = physical(s.con, "events", "seq > 250")
        assert not in_order(rest)
        t_run = physical(s.con, "traits", "wseq <= 250")
        assert in_order(t_run)

        assert contents(s.con) == before
        assert evaluate(s.con, library(), AT).membership_map() == members
        assert_profile_numbers_hold(s.con)

        s.compact_tail(250)
        assert mark(s.con, "events") == 500
        assert s.compact_tail(250) == {}  # 100 left: below a chunk
        assert contents(s.con) == before
        s.con.execute("CHECKPOINT")
    with DuckDBStore(tmp_path / "s.duckdb") as s:  # the marks and rows survive a reopen
        assert mark(s.con, "events") == 500
        assert contents(s.con) == before
        assert evaluate(s.con, library(), AT).membership_map() == members


def test_a_sorted_load_of_a_chunk_with_nothing_before_it_moves_the_mark() -> None:
    with DuckDBStore(":memory:") as s:
        s.tail_chunk_rows = 300
        s.ingest_messages(batch(0, 400))  # one load of >= a chunk, sorted as it is stored
        assert mark(s.con, "events") == 400
        load(s, batches=2, size=50, start=400)  # group commits: the tail
        assert mark(s.con, "events") == 400
        s.ingest_messages(batch(500, 400))  # a big load, but after an unsorted tail
        assert mark(s.con, "events") == 400
        assert s.compact_tail() == {"events": 300, "traits": 300}
        assert mark(s.con, "events") == 700


def test_a_full_compaction_moves_the_marks_to_the_newest_rows() -> None:
    with DuckDBStore(":memory:") as s:
        load(s, batches=4, size=50)
        assert mark(s.con, "events") == 0
        s.compact()
        newest_trait = s.con.execute("SELECT max(wseq) FROM traits").fetchone()
        assert mark(s.con, "events") == 200
        assert (mark(s.con, "traits"),) == newest_trait
        assert s.compact_tail(1) == {}


def test_a_store_from_before_the_marks_counts_as_clustered_up_to_its_newest_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.duckdb"
    with DuckDBStore(path) as s:
        load(s, batches=3, size=50)
        s.con.execute("DELETE FROM seq_marks WHERE name LIKE '%_clustered'")
    with DuckDBStore(path) as s:
        assert mark(s.con, "events") == 150
        (newest,) = s.con.execute("SELECT max(wseq) FROM traits").fetchone() or (0,)
        assert mark(s.con, "traits") == newest
        load(s, batches=1, size=50, start=150)
        assert s.compact_tail(50)["events"] == 50


steps = st.lists(
    st.one_of(
        st.tuples(st.just("load"), st.integers(1, 90)),
        st.tuples(st.just("identify"), st.integers(0, 10)),
        st.tuples(st.just("compact"), st.integers(5, 120)),
    ),
    min_size=1,
    max_size=10,
)


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(steps)
def test_tail_compactions_between_any_loads_and_merges_change_nothing(
    plan: list[tuple[str, int]],
) -> None:
    """Whatever the loads, merges and chunk sizes, the rows, the profile numbers and
    the members are those of the same loads never compacted, and each chunk is one
    sorted run of at most a chunk of rows."""
    with DuckDBStore(":memory:") as plain, DuckDBStore(":memory:") as kept:
        kept.tail_chunk_rows = 60  # loads of 60+ rows can count as runs of their own
        start = 0
        for i, (kind, n) in enumerate(plan):
            if kind == "compact":
                before = {t: mark(kept.con, t) for t in MARKS}
                done = kept.compact_tail(n)
                for table, rows in done.items():
                    assert rows <= n
                    assert mark(kept.con, table) == before[table] + n
                    seq = "seq" if table == "events" else "wseq"
                    lo, hi = before[table], before[table] + n
                    run = physical(kept.con, table, f"{seq} > {lo} AND {seq} <= {hi}")
                    assert in_order(run)
                    assert run[-1][0] - run[0][0] == len(run) - 1
                continue
            if kind == "load":
                msgs = batch(start, n, anonymous=True)
                start += n
            else:  # the visitor a<n> signs in as u<n>: their profiles merge
                msgs = [{"type": "identify", "messageId": f"i{i}", "userId": f"u{n}",
                         "anonymousId": f"a{n}", "timestamp": "2026-01-15T00:00:00Z"}]  # fmt: skip
            for s in (plain, kept):
                s.ingest_messages(msgs)
        assert_profile_numbers_hold(kept.con)
        assert contents(kept.con) == contents(plain.con)
        assert kept.profile_ids() == plain.profile_ids()
        assert (
            evaluate(kept.con, library(), AT).membership_map()
            == evaluate(plain.con, library(), AT).membership_map()
        )
