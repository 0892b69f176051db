"""Event sequence numbers only grow, even when the newest events are erased."""

from __future__ import annotations

from segflow.store.duckdb.store import DuckDBStore


def track(mid: str, user: str) -> dict[str, object]:
    return {
        "type": "track",
        "event": "Viewed",
        "messageId": mid,
        "userId": user,
        "timestamp": "2026-01-01T00:00:00Z",
    }


def test_seq_is_never_reused_after_the_newest_events_are_deleted() -> None:
    store = DuckDBStore(":memory:")
    store.ingest_messages([track("a", "u1"), track("b", "u2"), track("c", "u3")])
    (top,) = store.con.execute("SELECT max(seq) FROM events").fetchone() or (0,)
    store.con.execute("DELETE FROM events WHERE profile_id = 'u3'")  # a privacy delete

    store.ingest_messages([track("d", "u4")])

    (new,) = store.con.execute("SELECT seq FROM events WHERE message_id = 'd'").fetchone() or (0,)
    assert new > top
    store.close()
