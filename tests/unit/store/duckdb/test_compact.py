"""Compaction re-clusters events by name and traits by key without changing what is
stored or evaluated."""

from __future__ import annotations

from datetime import datetime

from segflow.model.definition import parse_segment
from segflow.store.duckdb.batch import evaluate
from segflow.store.duckdb.store import DuckDBStore


def msg(i: int, name: str, user: str) -> dict[str, object]:
    return {
        "type": "track",
        "event": name,
        "messageId": f"m{i}",
        "userId": user,
        "timestamp": f"2026-01-0{1 + i % 5}T00:00:00Z",
        "properties": {"revenue": i},
    }


def identify(i: int, user: str) -> dict[str, object]:
    """Traits of two keys, written again by later loads (so older rows get valid_to)."""
    return {
        "type": "identify",
        "messageId": f"i{i}",
        "userId": user,
        "timestamp": f"2026-01-0{1 + i % 5}T00:00:0{i % 10}Z",
        "traits": {"plan": "premium" if i % 2 else "basic", "age": 20 + i % 30},
    }


def test_compact_clusters_by_event_code_and_keeps_rows_seqs_and_members() -> None:
    store = DuckDBStore(":memory:")
    names = ["Order Completed", "Product Viewed", "Email Opened"]
    for batch in range(4):  # small loads, each interleaving every name and trait key
        store.ingest_messages(
            [msg(batch * 30 + i, names[i % 3], f"u{i % 7}") for i in range(30)]
            + [identify(batch * 30 + i, f"u{i % 7}") for i in range(10)],
            source=f"batch{batch}",
        )
    segs = [
        parse_segment({"id": "buyers", "condition": {"event": "Order Completed", "gte": 2}}),
        parse_segment({"id": "premium", "condition": {"trait": "plan", "eq": "premium"}}),
    ]
    at = datetime(2026, 1, 3, 12)
    every_trait = "SELECT * FROM traits ORDER BY profile_id, key, message_id"
    rows_before = store.con.execute("SELECT * FROM events ORDER BY seq").fetchall()
    traits_before = store.con.execute(every_trait).fetchall()
    members_before = evaluate(store.con, segs, at).membership_map()

    assert store.compact()["events"] == 160  # 120 tracks + 40 identify calls

    assert store.con.execute("SELECT * FROM events ORDER BY seq").fetchall() == rows_before
    assert store.con.execute(every_trait).fetchall() == traits_before
    codes = [r[0] for r in store.con.execute("SELECT event_code FROM events").fetchall()]
    named = [c for c in codes if c is not None]  # identify calls have no name: last
    assert codes[: len(named)] == named == sorted(named)
    keys = [r[0] for r in store.con.execute("SELECT key FROM traits").fetchall()]
    assert keys == sorted(keys) and set(keys) == {"age", "plan"}
    assert evaluate(store.con, segs, at).membership_map() == members_before
    assert members_before["buyers"] and members_before["premium"]
    store.close()


def test_compact_gives_events_stored_without_their_code_the_code() -> None:
    """An older store may hold events whose name got no code (a repeat left out of an
    earlier load); compaction codes them, so the batch evaluator's name match sees
    them again."""
    store = DuckDBStore(":memory:")
    store.ingest_messages([msg(i, "Order Completed", "u1") for i in range(3)], source="a")
    store.con.execute("UPDATE events SET event_code = NULL WHERE message_id <> 'm0'")
    seg = parse_segment({"id": "buyers", "condition": {"event": "Order Completed", "gte": 2}})
    at = datetime(2026, 2, 1)
    assert evaluate(store.con, [seg], at).members("buyers") == []

    store.compact()

    codes = store.con.execute("SELECT DISTINCT event_code FROM events").fetchall()
    assert codes == [(1,)]
    assert evaluate(store.con, [seg], at).members("buyers") == ["u1"]
