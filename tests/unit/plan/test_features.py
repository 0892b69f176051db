"""Features in plain words, and the event names each reads (what an estimate shows)."""

from __future__ import annotations

from segflow.model.definition import PAGE_CALLS, parse_segment
from segflow.plan.features import describe, event_names, feature_kind
from segflow.plan.planner import build_plan


def test_every_kind_is_described_with_the_names_it_reads() -> None:
    condition = {
        "all": [
            {"event": "Order Completed", "within": "30d", "measure": "sum",
             "of": "properties.revenue", "gt": 100,
             "where": [{"property": "properties.coupon", "exists": True}]},
            {"page": "Pricing", "within": {"from_ago": "14d", "to_ago": "7d"}},
            {"trait": "plan", "eq": "pro"},
            {"sequence": [{"event": "Signed Up"}, {"event": "Order Completed"}],
             "within": "30d", "span": "2d"},
            {"computed": "cart_items", "gt": 0},
            {"in_segment": "vips"},
        ]
    }  # fmt: skip
    segs = [
        parse_segment({"id": "s", "condition": condition}),
        parse_segment({"id": "vips", "mode": "static", "members": ["u1"]}),
    ]
    plan = build_plan(segs)
    got = {
        (feature_kind(f), describe(f), event_names(f))
        for k, f in plan.features.items()
        if k in plan.features_of("s")
    }
    assert got == {
        ("event",
         "sum of properties.revenue of Order Completed where properties.coupon exists True"
         " in the last 30d",
         ("Order Completed",)),
        ("event", "count of page calls named Pricing from 2w to 1w ago", (PAGE_CALLS,)),
        ("trait", "trait plan", ()),
        ("sequence",
         "sequence Signed Up then Order Completed in the last 30d within 2d of each other",
         ("Order Completed", "Signed Up")),
        ("cart", "open cart items", ("Order Completed", "Product Added", "Product Removed")),
        ("static", "stored member list of vips", ()),
    }  # fmt: skip
