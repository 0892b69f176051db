"""The cost estimate of a draft on a small real DuckDB store: shared and new features,
the saved segments sharing them, exact event and trait row counts, size and timing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from segflow.model.definition import parse_segment
from segflow.service.estimate import estimate
from segflow.service.handle import Segflow
from segflow.service.segments import preview

AT = datetime(2026, 3, 1)


def _msg(i: int, **fields: Any) -> bytes:
    base = {"messageId": f"m{i}", "timestamp": "2026-02-01T00:00:00Z"}
    return orjson.dumps({**base, **fields})


@pytest.fixture
def app(tmp_path: Path) -> Any:
    lines = [
        _msg(0, type="identify", userId="u0", traits={"plan": "pro"}),
        _msg(1, type="identify", userId="u1", traits={"plan": "free"}),
        _msg(2, type="identify", userId="u1", traits={"plan": "pro"},
             timestamp="2026-02-02T00:00:00Z"),
        _msg(3, type="identify", userId="u2", traits={"plan": "free", "country": "FR"}),
        _msg(4, type="track", userId="u0", event="Order Completed"),
        _msg(5, type="track", userId="u0", event="Order Completed"),
        _msg(6, type="track", userId="u1", event="Order Completed"),
        _msg(7, type="track", userId="u2", event="Product Viewed"),
        _msg(8, type="page", userId="u2", name="Pricing"),
        _msg(9, type="page", userId="u1", name="Home"),
        _msg(10, type="track", userId="u1", event="Order Completed",
             timestamp="2026-04-01T00:00:00Z"),
    ]  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    sf = Segflow(tmp_path / "s.duckdb")
    sf.ingest([path])
    sf.registry.save(
        [
            parse_segment({"id": "pros", "condition": {"trait": "plan", "eq": "pro"}}),
            parse_segment({"id": "buyers", "condition": {"event": "Order Completed"}}),
        ]
    )
    yield sf
    sf.close()


def test_a_draft_shares_one_feature_and_adds_new_ones(app: Segflow) -> None:
    draft = parse_segment(
        {
            "id": "pro_browsers",
            "condition": {
                "all": [
                    {"trait": "plan", "eq": "pro"},
                    {"any": [{"event": "Product Viewed"}, {"page": True}]},
                    {"computed": "cart_items", "gte": 0},
                ]
            },
        }
    )
    est = estimate(app, draft, AT)
    by_kind = {(u.kind, u.description): u for u in est.features}
    trait = by_kind[("trait", "trait plan")]
    assert trait.shared_with == ["pros"] and not trait.new
    viewed = by_kind[("event", "count of Product Viewed")]
    assert viewed.new and viewed.shared_with == []
    pages = by_kind[("event", "count of page calls")]
    assert pages.new
    # the new features' event-name sets, counted up to ``AT`` (the April order is later)
    events = {tuple(e.names): e.events for e in est.events}
    assert events[("Product Viewed",)] == 1
    assert events[("page calls",)] == 2
    assert by_kind[("cart", "open cart items")].new
    assert events[("Order Completed", "Product Added", "Product Removed")] == 3
    assert len(events) == 3
    assert est.traits == []  # the one trait is shared
    assert (est.size, est.profiles) == (1, 3)  # u1: pro, with a page call
    assert est.size == preview(app, draft, AT)["size"]
    assert est.timing.library_seconds > 0 and est.timing.with_draft_seconds > 0
    assert est.timing.added_seconds >= 0
    out = est.to_dict()
    assert out["segment_id"] == "pro_browsers" and out["at"].startswith("2026-03-01")
    assert {f["new"] for f in out["features"]} == {True, False}


def test_sizes_share_and_new_trait_rows_are_exact(app: Segflow) -> None:
    draft = parse_segment(
        {
            "id": "buyers",
            "condition": {
                "all": [
                    {"event": "Order Completed"},
                    {"trait": "country", "exists": False},
                    {"trait": "plan", "eq": "pro"},
                ]
            },
        }
    )
    est = estimate(app, draft, AT)
    assert (est.size, est.profiles) == (2, 3) and est.share == pytest.approx(2 / 3)
    shared = {u.description: u.shared_with for u in est.features}
    # an edited segment shares with its saved version; the trait with ``pros`` too
    assert shared["count of Order Completed"] == ["buyers"]
    assert shared["trait plan"] == ["pros"]
    assert shared["trait country"] == []
    assert [(t.key, t.rows) for t in est.traits] == [("country", 1)]
    assert est.events == []

    widened = parse_segment({"id": "any_plan", "condition": {"trait": "plan", "exists": True}})
    est = estimate(app, widened, AT)
    assert (est.size, est.profiles, est.share) == (3, 3, 1.0)
    assert est.traits == [] and [u.shared_with for u in est.features] == [["pros"]]
