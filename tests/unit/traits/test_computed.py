"""Computed traits worked by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from segflow.model.definition import parse_segment
from segflow.model.history import Event, ProfileHistory
from segflow.model.time import format_instant, parse_instant
from segflow.plan.interpret import Interpreter
from segflow.plan.planner import build_plan
from segflow.realtime import VirtualClock
from segflow.service.handle import Segflow
from segflow.service.live import LiveEvaluator
from segflow.service.profiles import profile_view
from segflow.store.duckdb.batch import evaluate
from segflow.store.duckdb.computed import computed_traits
from tests.helpers import load

T = datetime(2026, 6, 1)
D = timedelta(days=1)
H = timedelta(hours=1)
US = timedelta(microseconds=1)


def ev(name: str, at: datetime, **props: Any) -> Event:
    return Event(at, name, {f"properties.{k}": v for k, v in props.items()})


@pytest.fixture
def rows() -> dict[str, dict[str, Any]]:
    hs = [
        ProfileHistory(
            "buyer",
            [
                ev("Order Completed", T - 40 * D, revenue=100.0),
                ev("Order Completed", T - 10 * D, revenue=50.0),
                ev("Product Added", T - 20 * D, product_id="old", price=1.0, quantity=1),
                ev("Product Added", T - 5 * D, product_id="a", price=10.0, quantity=2),
                ev("Product Added", T - 4 * D, product_id="b", price=99.0, quantity=1),
                ev("Product Removed", T - 3 * D, product_id="b", price=99.0, quantity=1),
                ev("Product Added to Wishlist", T - 2 * D, product_id="w2"),
                ev("Product Added to Wishlist", T - 2 * D, product_id="w1"),
                ev("Product Viewed", T - D, category="Shoes"),
                ev("Product Viewed", T - D, category="Books"),
                ev("Product Viewed", T - 2 * D, category="Books"),
                ev("Product Viewed", T - 31 * D, category="Shoes"),
                ev("Product Viewed", T - 31 * D, category="Shoes"),
            ],
        ),
        ProfileHistory("visitor", []),
    ]
    con = duckdb.connect()
    load(con, hs)
    return {r["profile_id"]: r for r in computed_traits(con, T)}


def test_order_value_traits(rows: dict[str, dict[str, Any]]) -> None:
    b = rows["buyer"]
    assert b["ltv"] == 150 and b["order_count"] == 2 and b["aov"] == 75
    assert b["first_order_at"] == T - 40 * D and b["last_order_at"] == T - 10 * D
    assert b["days_since_last_order"] == 10


def test_cart_wishlist_and_top_category(rows: dict[str, dict[str, Any]]) -> None:
    b = rows["buyer"]
    assert b["cart_items"] == 2 and b["cart_value"] == 20  # "b" removed, "old" bought
    assert b["wishlist"] == ["w1", "w2"]
    assert b["top_category_30d"] == "Books"


def test_profile_without_events(rows: dict[str, dict[str, Any]]) -> None:
    v = rows["visitor"]
    assert v["ltv"] == 0 and v["order_count"] == 0 and v["aov"] is None
    assert v["cart_items"] == 0 and v["wishlist"] == [] and v["top_category_30d"] is None


def test_aov_averages_the_orders_that_carry_a_revenue() -> None:
    """The value ``{computed: aov}`` compares: an order without revenue adds no value."""
    hs = [
        ProfileHistory(
            "p",
            [
                ev("Order Completed", T - 2 * D, revenue=100.0),
                ev("Order Completed", T - D, revenue=50.0),
                ev("Order Completed", T - D),
            ],
        )
    ]
    con = duckdb.connect()
    load(con, hs)
    (row,) = computed_traits(con, T)
    assert (row["ltv"], row["order_count"], row["aov"]) == (150, 3, 75)


def test_days_since_last_order_counts_to_the_microsecond() -> None:
    con = duckdb.connect()
    load(con, [ProfileHistory("p", [ev("Order Completed", T - 10 * D - 3 * H - US)])])
    (row,) = computed_traits(con, T)
    assert row["days_since_last_order"] == (10 * D + 3 * H + US) / D


# ----------------------------------------------------------- shown on the profile = compared

ORDERS = [(T - 40 * D, 100.0), (T - 10 * D - 3 * H, 25.0), (T - 20 * D, None)]
VIEWS = [(T - 2 * D, "Shoes"), (T - D, "Books"), (T - H, "Shoes"), (T - 31 * D, "Books")]
WISHES = [(T - 3 * D, "w1"), (T - 2 * D, "w2")]
CART: list[tuple[datetime, str, dict[str, Any]]] = [
    (T - 3 * H, "Product Added", {"product_id": "a", "price": 12.5, "quantity": 2}),
    (T - 2 * H, "Product Added", {"product_id": "b", "price": 4.0}),
    (T - H, "Product Removed", {"product_id": "b"}),
    (T - 15 * D, "Product Added", {"product_id": "old", "price": 1.0}),  # before an order
]
EVENTS: list[tuple[datetime, str, dict[str, Any]]] = [
    *((at, "Order Completed", {} if r is None else {"revenue": r}) for at, r in ORDERS),
    *((at, "Product Viewed", {"category": c}) for at, c in VIEWS),
    *((at, "Product Added to Wishlist", {"product_id": p}) for at, p in WISHES),
    *CART,
]
NOW = T


def _conditions(shown: dict[str, Any]) -> dict[str, tuple[dict[str, Any], bool]]:
    """Segment id -> (condition comparing a computed trait with its shown value, whether
    the profile is a member)."""
    out: dict[str, tuple[dict[str, Any], bool]] = {}
    for name in ("ltv", "order_count", "aov", "days_since_last_order", "cart_items", "cart_value"):
        v = shown[name]
        for op, member in (("gte", True), ("gt", False), ("lte", True), ("lt", False)):
            out[f"{name}_{op}"] = ({"computed": name, op: v}, member)
        if name != "days_since_last_order":
            out[f"{name}_eq"] = ({"computed": name, "eq": v}, True)
    for name in ("first_order_at", "last_order_at"):
        at = parse_instant(shown[name])
        out[f"{name}_before"] = ({"computed": name, "before": format_instant(at + US)}, True)
        out[f"{name}_after"] = ({"computed": name, "after": shown[name]}, False)
    for item in shown["wishlist"]:
        out[f"wish_{item}"] = ({"computed": "wishlist", "contains": item}, True)
    out["wish_other"] = ({"computed": "wishlist", "contains": "w3"}, False)
    out["wish_some"] = ({"computed": "wishlist", "exists": True}, True)
    out["wish_none"] = ({"computed": "wishlist", "exists": False}, False)
    top = shown["top_category_30d"]
    out["top_eq"] = ({"computed": "top_category_30d", "eq": top}, True)
    out["top_ne"] = ({"computed": "top_category_30d", "ne": top}, False)
    return out


def test_profile_shows_the_value_every_evaluator_compares(tmp_path: Path) -> None:
    sf = Segflow(tmp_path / "p.duckdb")
    sf.store.ingest_messages(
        [
            {
                "type": "track",
                "event": name,
                "userId": "u1",
                "timestamp": format_instant(at),
                "messageId": f"m{i}",
                "properties": props,
            }
            for i, (at, name, props) in enumerate(EVENTS)
        ]
    )
    shown = profile_view(sf, None, "u1", NOW)["computed_traits"]
    assert shown["days_since_last_order"] == 10.125
    assert (shown["ltv"], shown["order_count"], shown["aov"]) == (125, 3, 62.5)
    assert shown["top_category_30d"] == "Shoes"
    assert shown["wishlist"] == ["w1", "w2"]
    assert (shown["cart_items"], shown["cart_value"]) == (2, 25)
    cases = _conditions(shown)
    segs = [parse_segment({"id": sid, "condition": c}) for sid, (c, _m) in cases.items()]
    expected = {sid for sid, (_c, member) in cases.items() if member}
    sf.registry.save(segs)
    batch = evaluate(sf.store.con, segs, NOW)
    assert {sid for sid in cases if batch.members(sid) == ["u1"]} == expected
    live = LiveEvaluator(sf, VirtualClock(NOW))
    live.start()
    assert set(live.segments_of("u1")) == expected
    history = ProfileHistory(
        "u1",
        [
            Event(at, name, {f"properties.{k}": v for k, v in props.items()})
            for at, name, props in EVENTS
        ],
    )
    got = Interpreter(build_plan(segs), history, NOW).segments()
    assert {sid for sid, member in got.items() if member} == expected
    sf.close()


def test_computed_trait_shares_the_feature_of_its_event_condition() -> None:
    ltv = parse_segment({"id": "a", "condition": {"computed": "ltv", "gt": 1000}})
    same = parse_segment(
        {
            "id": "b",
            "condition": {
                "event": "Order Completed",
                "measure": "sum",
                "of": "revenue",
                "gt": 1000,
            },
        }
    )
    plan = build_plan([ltv, same])
    assert len(plan.features) == 1


@pytest.mark.parametrize(
    ("cmp", "members_at"),
    [
        ({"gt": 2}, [(2 * D, False), (2 * D + US, True)]),
        ({"gte": 2}, [(2 * D - US, False), (2 * D, True)]),
        ({"lt": 2}, [(2 * D - US, True), (2 * D, False)]),
        ({"lte": 2}, [(2 * D, True), (2 * D + US, False)]),
        ({"gt": 1 / 3}, [(D // 3, False), (D // 3 + US, True)]),
        ({"lte": -1}, [(0 * D, False)]),
        ({"gte": -1}, [(0 * D, True)]),
        ({"between": [1, 2]}, [(D - US, False), (D, True), (2 * D, True), (2 * D + US, False)]),
    ],
)
def test_days_since_last_order_flips_at_the_exact_microsecond(
    cmp: dict[str, Any], members_at: list[tuple[timedelta, bool]]
) -> None:
    seg = parse_segment({"id": "s", "condition": {"computed": "days_since_last_order", **cmp}})
    plan = build_plan([seg])
    order = T - 5 * D
    history = ProfileHistory("p", [ev("Order Completed", order)])
    for since, member in members_at:
        assert Interpreter(plan, history, order + since).segments()["s"] is member, since
    none = ProfileHistory("q", [])
    assert Interpreter(plan, none, T).segments()["s"] is False
