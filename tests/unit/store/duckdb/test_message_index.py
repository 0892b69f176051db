"""The message index finds every stored entry with an equal hash, and the store stays
exactly idempotent on top of it (a hash match alone never drops an event)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.store.duckdb.message_index import MessageIndex
from segflow.store.duckdb.store import DuckDBStore

U64 = np.uint64


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(
        st.lists(st.tuples(st.integers(0, 40), st.integers(1, 10_000)), max_size=30),
        max_size=12,
    ),
    probe=st.lists(st.integers(0, 45), max_size=20),
)
def test_candidates_are_every_equal_hash(
    chunks: list[list[tuple[int, int]]], probe: list[int]
) -> None:
    index = MessageIndex(np.empty(0, U64), np.empty(0, np.int64))
    stored: list[tuple[int, int]] = []
    for chunk in chunks:  # small hashes: many collisions, many runs to merge
        index.add(np.array([h for h, _ in chunk], U64), np.array([s for _, s in chunk], np.int64))
        stored += chunk
    assert len(index) == len(stored)
    assert len(index.runs) <= max(1, len(stored)).bit_length() + 1
    pos, seqs = index.candidates(np.array(probe, U64))
    got = sorted(zip(pos.tolist(), seqs.tolist(), strict=True))
    want = sorted((i, s) for i, p in enumerate(probe) for h, s in stored if h == p)
    assert got == want


def track(mid: str, user: str, ts: str = "2026-01-01T00:00:00Z") -> dict[str, object]:
    return {"type": "track", "event": "Viewed", "messageId": mid, "userId": user, "timestamp": ts}


def test_repeats_are_dropped_across_loads_and_after_reopening(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    store = DuckDBStore(db)
    assert store.ingest_messages([track("a", "u1"), track("b", "u2")]).inserted == 2
    r = store.ingest_messages([track("b", "u2"), track("c", "u3"), track("c", "u3")])
    assert (r.inserted, r.duplicates) == (1, 2)
    store.close()
    store = DuckDBStore(db)  # the index is rebuilt from the file
    r = store.ingest_messages([track("a", "u1"), track("d", "u4")])
    assert (r.inserted, r.duplicates) == (1, 1)
    (n,) = store.con.execute("SELECT count(*) FROM events").fetchone() or (0,)
    assert n == 4
    store.close()


def test_an_equal_hash_alone_does_not_drop_an_event() -> None:
    """A hash collision: the index says a stored event has the new id's hash, but the
    stored id differs, so the new event is stored."""
    store = DuckDBStore(":memory:")
    store.ingest_messages([track("a", "u1")])
    (seq_a,) = store.con.execute("SELECT seq FROM events").fetchone() or (0,)
    (h_new,) = store.con.execute("SELECT hash('new')").fetchone() or (0,)
    assert store._messages is not None
    store._messages.add(np.array([h_new], U64), np.array([seq_a], np.int64))
    r = store.ingest_messages([track("new", "u2")])
    assert (r.inserted, r.duplicates) == (1, 0)
    store.close()


def test_an_erased_event_can_be_stored_again() -> None:
    store = DuckDBStore(":memory:")
    store.ingest_messages([track("a", "u1")])
    store.con.execute("DELETE FROM events WHERE message_id = 'a'")  # its index entry stays
    assert store.ingest_messages([track("a", "u1")]).inserted == 1
    store.close()
