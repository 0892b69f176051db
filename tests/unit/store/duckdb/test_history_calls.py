"""Page and screen calls, ingested as Segment sends them, reach every evaluator: the
history reader (live bootstrap and catch-up) and the batch evaluator read the same calls."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from segflow.model.definition import parse_segment
from segflow.model.time import format_instant
from segflow.realtime import VirtualClock
from segflow.service.handle import Segflow
from segflow.service.live import LiveEvaluator
from segflow.store.duckdb.batch import evaluate

T = datetime(2026, 1, 1)
H = timedelta(hours=1)


def call(type_: str, user: str, hours: int, mid: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": type_,
        "userId": user,
        "timestamp": format_instant(T + hours * H),
        "messageId": mid,
        **extra,
    }


PRICING = {"name": "Pricing", "properties": {"path": "/pricing", "url": "https://x/pricing"}}
SEGMENTS = {
    "pricing_3x": {"page": "Pricing", "within": "7d", "gte": 3},
    "pricing_path": {"page": True, "where": [{"property": "path", "eq": "/pricing"}]},
    "app_cart": {"screen": "Cart"},
    "pricing_then_order": {"sequence": [{"page": "Pricing"}, {"event": "Order Completed"}]},
}


def test_page_and_screen_calls_count_in_batch_and_live_alike(tmp_path: Path) -> None:
    sf = Segflow(tmp_path / "calls.duckdb")
    sf.registry.save([parse_segment({"id": k, "condition": c}) for k, c in SEGMENTS.items()])
    sf.store.ingest_messages(
        [
            *(call("page", "u1", i, f"p{i}", **PRICING) for i in range(3)),
            call("page", "u2", 0, "q0", **PRICING),
            call("page", "u2", 1, "q1", name="Home", properties={"path": "/"}),
            call("track", "u2", 2, "q2", event="Pricing"),
            call("screen", "u3", 0, "s0", name="Cart"),
            call("track", "u1", 4, "o1", event="Order Completed"),
        ]
    )
    expected = {
        "pricing_3x": ["u1"],
        "pricing_path": ["u1", "u2"],
        "app_cart": ["u3"],
        "pricing_then_order": ["u1"],
    }
    now = T + 5 * H
    batch = evaluate(sf.store.con, sf.registry.current().values(), now)
    assert {k: batch.members(k) for k in SEGMENTS} == expected
    live = LiveEvaluator(sf, VirtualClock(now))
    live.start()
    got = {k: sorted(p for p in ("u1", "u2", "u3") if k in live.segments_of(p)) for k in SEGMENTS}
    assert got == expected
    # catch-up reads page calls stored after the start, too
    sf.store.ingest_messages([call("page", "u2", 5, f"r{i}", **PRICING) for i in range(2)])
    live.catch_up()
    assert "pricing_3x" in live.segments_of("u2")
    sf.close()
