"""Computed traits of the profile view as the event conditions they are.

``{computed: ltv, gt: 1000}`` plans as ``{event: Order Completed, measure: sum, of:
revenue, gt: 1000}``: the same feature (one state, one SQL aggregate) and so the same
value in every evaluator and on the profile, which computes these traits from
``AGGREGATES`` too (``traits.computed``).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Final

from segflow.model.definition import (
    All,
    AnyOf,
    Comparison,
    ComputedCondition,
    Condition,
    Duration,
    EventCondition,
    EventFilter,
    PropertyPredicate,
    Within,
)
from segflow.plan.features import CartTotal, EventAggregate

ORDER: Final = EventFilter(("Order Completed",))
VIEW: Final = EventFilter(("Product Viewed",))
WISH: Final = EventFilter(("Product Added to Wishlist",))
PRODUCT: Final = "properties.product_id"
REVENUE: Final = "properties.revenue"
DAY_US: Final = 86_400_000_000

AGGREGATES: Final[dict[str, EventAggregate]] = {
    "ltv": EventAggregate(ORDER, None, "sum", REVENUE),
    "order_count": EventAggregate(ORDER, None, "count", None),
    "aov": EventAggregate(ORDER, None, "avg", REVENUE),
    "first_order_at": EventAggregate(ORDER, None, "first_time", None),
    "last_order_at": EventAggregate(ORDER, None, "last_time", None),
    "top_category_30d": EventAggregate(
        VIEW, Within(Duration(30 * DAY_US)), "top", "properties.category"
    ),
}
"""The computed traits that are one event measure each."""
CART: Final = {"cart_items": CartTotal("items"), "cart_value": CartTotal("value")}
"""The computed traits that are the open cart (a feature of its own)."""


def expand(node: ComputedCondition) -> Condition:
    """The condition over events that ``node`` means."""
    if node.name == "days_since_last_order":
        return _days_since(node.cmp)
    if node.name == "wishlist":
        return _wishlist(node.cmp)
    a = AGGREGATES[node.name]
    return EventCondition(a.filter, a.window, a.measure, a.of, node.cmp)


def _days_since(cmp: Comparison) -> Condition:
    """``days = (t - last order) / 1 day`` as the profile shows it (microseconds over
    microseconds a day, in floating point) compared with a number, as a comparison of the
    last order's time.  ``days`` never falls as ``d = t - last`` (whole microseconds)
    grows, so ``days > x`` and ``days >= x`` hold from a first ``d`` on (``older_than``
    it) and ``days < x`` and ``days <= x`` below one (``within_last`` it)."""
    op, x = cmp.op, cmp.value
    if op in ("exists", "not_exists"):
        return _last(cmp)
    if op == "between":
        return All((_days_since(Comparison("gte", x[0])), _days_since(Comparison("lte", x[1]))))

    def holds(d: int) -> bool:
        """Whether ``d`` is at or past the bound (for lt/lte: the comparison fails)."""
        days = d / DAY_US
        if op == "gt":
            return bool(days > x)
        if op == "gte":
            return bool(days >= x)
        return not (days < x if op == "lt" else days <= x)

    bound = max(0, math.ceil(Fraction(x) * DAY_US))  # exact; the float may differ by an ulp
    while bound > 0 and holds(bound - 1):
        bound -= 1
    while not holds(bound):
        bound += 1
    if op in ("gt", "gte"):
        if bound == 0:  # every last order is at or before t
            return _last(Comparison("exists"))
        return _last(Comparison("older_than", Duration(bound)))
    if bound == 0:
        return AnyOf(())
    return _last(Comparison("within_last", Duration(bound)))


def _wishlist(cmp: Comparison) -> Condition:
    """The wishlist (the product ids of Product Added to Wishlist) contains an id, or
    is (not) empty."""
    if cmp.op == "contains":
        item = PropertyPredicate(PRODUCT, Comparison("eq", cmp.value))
    else:
        item = PropertyPredicate(PRODUCT, Comparison("exists"))
    some = Comparison("eq", 0.0) if cmp.op == "not_exists" else Comparison("gte", 1.0)
    return EventCondition(EventFilter(WISH.names, (item,)), None, "count", None, some)


def _last(cmp: Comparison) -> EventCondition:
    return EventCondition(ORDER, None, "last_time", None, cmp)
