"""Computed traits worked by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb
import pytest

from segflow.plan.interpret import Event, ProfileHistory
from segflow.traits.computed import computed_traits

from ..batch.histories import load

T = datetime(2026, 6, 1)
D = timedelta(days=1)


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
