"""Named computed traits (LTV, order count, AOV, cart, wishlist, ...) as of an instant.

What each one means; ``segflow.store.duckdb.computed`` computes them: the scalar ones
are the features ``{computed: NAME}`` conditions plan into (``plan.computed.AGGREGATES``),
compiled by the batch compiler, so a profile shows the value a condition compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class ComputedTraitDoc:
    name: str
    description: str


DOCS: Final = (
    ComputedTraitDoc("ltv", "sum of revenue of Order Completed, all time"),
    ComputedTraitDoc("order_count", "number of Order Completed, all time"),
    ComputedTraitDoc("aov", "average revenue of Order Completed (null without orders)"),
    ComputedTraitDoc("first_order_at", "time of the first Order Completed"),
    ComputedTraitDoc("last_order_at", "time of the latest Order Completed"),
    ComputedTraitDoc(
        "days_since_last_order", "(as_of - last_order_at) in days, to the microsecond"
    ),
    ComputedTraitDoc(
        "cart_items / cart_value",
        "products whose latest Product Added/Removed since the last order is an add (a"
        " remove wins a tie); items sum their quantity (default 1), value sums price x"
        " quantity",
    ),
    ComputedTraitDoc("wishlist", "distinct product_ids of Product Added to Wishlist"),
    ComputedTraitDoc(
        "top_category_30d",
        "most viewed category in Product Viewed over 30 days (ties: alphabetical; the top measure)",
    ),
)
