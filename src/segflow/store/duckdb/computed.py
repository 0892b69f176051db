"""Named computed traits (LTV, order count, AOV, cart, wishlist, ...) as of an instant.

The scalar ones are the features ``{computed: NAME}`` conditions plan into
(``plan.computed.AGGREGATES``), compiled by the same compiler, so a profile shows the
value a condition compares; the cart is its own feature (``CartTotal``) compiled by the
same compiler, and the wishlist a small query of its own.  Everything is set-based: one
query for all profiles.  What each trait means: ``segflow.traits.computed.DOCS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from segflow.batch.compile import BatchCompiler, Catalog
from segflow.plan.computed import AGGREGATES, CART
from segflow.plan.planner import Plan
from segflow.store.duckdb.batch import load_catalog


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def computed_traits_sql(catalog: Catalog, at: datetime) -> str:
    """One query: a row per profile with every computed trait as of ``at``."""
    plan = Plan()
    compiler = BatchCompiler(plan, catalog, at)
    aggs = ",\n  ".join(
        f"{compiler.aggregate(a).sql(dialect=compiler.dialect)} AS {_q(name)}"
        for name, a in AGGREGATES.items()
    )
    prod = _q("properties.product_id") if "properties.product_id" in catalog else "NULL"
    items = compiler.cart_cte(CART["cart_items"]).sql(dialect=compiler.dialect)
    value = compiler.cart_cte(CART["cart_value"]).sql(dialect=compiler.dialect)
    ts = f"CAST('{at.isoformat(sep=' ', timespec='microseconds')}' AS TIMESTAMP)"
    return f"""
WITH agg AS (
  SELECT profile_id,
  {aggs}
  FROM events WHERE "timestamp" <= {ts}
    AND event IN ('Order Completed', 'Product Viewed')
  GROUP BY profile_id
),
cart_items AS ({items}),
cart_value AS ({value}),
wish AS (
  SELECT profile_id, list(DISTINCT {prod} ORDER BY {prod}) AS wishlist
  FROM events WHERE "timestamp" <= {ts} AND event = 'Product Added to Wishlist'
    AND {prod} IS NOT NULL
  GROUP BY profile_id
)
SELECT p.profile_id,
       coalesce(agg.ltv, 0) AS ltv,
       coalesce(agg.order_count, 0) AS order_count,
       agg.aov,
       agg.first_order_at, agg.last_order_at,
       date_diff('microsecond', agg.last_order_at, {ts}) / 86400000000.0
         AS days_since_last_order,
       coalesce(cart_items.total, 0) AS cart_items,
       coalesce(cart_value.total, 0) AS cart_value,
       coalesce(wish.wishlist, []) AS wishlist,
       agg.top_category_30d
FROM profiles p
LEFT JOIN agg USING (profile_id) LEFT JOIN cart_items USING (profile_id)
LEFT JOIN cart_value USING (profile_id)
LEFT JOIN wish USING (profile_id)
"""


def computed_traits(
    con: duckdb.DuckDBPyConnection, at: datetime, profile_ids: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Computed traits for some (or all) profiles as of ``at``."""
    sql = computed_traits_sql(load_catalog(con), at)
    if profile_ids is None:
        cur = con.execute(sql + " ORDER BY profile_id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    # a few profiles: every read of ``events`` and ``profiles`` is narrowed to them (CTEs
    # of those names shadow the tables), so the cost follows their events, not the store's
    con.register("_sf_wanted", pa.table({"profile_id": pa.array(profile_ids, pa.string())}))
    try:
        scoped = (
            "WITH events AS (SELECT * FROM main.events WHERE profile_id IN"
            " (SELECT profile_id FROM _sf_wanted)),"
            " profiles AS (SELECT * FROM main.profiles WHERE profile_id IN"
            " (SELECT profile_id FROM _sf_wanted)),"
        )
        cur = con.execute(sql.replace("WITH", scoped, 1))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.unregister("_sf_wanted")


class DuckDBComputedTraits:
    """The computed traits over one connection: what the service holds to read them."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def computed_traits(
        self, at: datetime, profile_ids: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Computed traits for some (or all) profiles as of ``at``."""
        return computed_traits(self.con, at, profile_ids)
