"""Snapshot of the generated SQL: a change in the compiled query is a visible diff.

Set ``SEGFLOW_UPDATE_SNAPSHOTS=1`` to rewrite the snapshot after an intended change.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import sqlglot

from segflow.batch.compile import BatchCompiler, Field
from segflow.model.definition import load_segment_text
from segflow.plan.planner import build_plan

SNAPSHOTS = Path(__file__).parent / "snapshots"
LIBRARY = """
id: luxury_cart_abandoners
name: High-value luxury cart abandoners
condition:
  all:
    - {event: Order Completed, within: 180d, measure: sum, of: revenue, gt: 5000}
    - event: Product Viewed
      where: [{property: category, eq: Luxury Watches}]
      within: 48h
    - {event: Product Added, not_followed_by: Order Completed, for: 24h, within: 7d}
---
id: recent_buyers
name: Recent buyers
condition: {event: Order Completed, within: 30d}
---
id: lapsed_buyers
name: Ordered before, none in 30 days
condition:
  all:
    - {event: Order Completed}
    - {not: {in_segment: recent_buyers}}
---
id: poles
name: "Poles; DROP TABLE events; --"
condition: {trait: country, in: ["PL", "it's"]}
---
id: browse_then_buy
name: Browse then buy
condition:
  sequence: [{event: Product Viewed}, {event: Order Completed}]
  within: 7d
  span: 1h
"""
CATALOG = {
    "properties.revenue": Field("DOUBLE"),
    "properties.category": Field("VARCHAR", overflow=True),
}
AT = datetime(2026, 11, 1, 12, 0)


def compiled() -> str:
    plan = build_plan(load_segment_text(LIBRARY))
    sql = BatchCompiler(plan, CATALOG, AT).compile().sql
    return sqlglot.transpile(sql, read="duckdb", write="duckdb", pretty=True)[0] + "\n"


def test_generated_sql_matches_snapshot() -> None:
    path = SNAPSHOTS / "library.sql"
    sql = compiled()
    if os.environ.get("SEGFLOW_UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(sql)
    assert sql == path.read_text()


def test_shared_features_are_computed_once() -> None:
    sql = compiled()
    # "Order Completed in 30 d" is used by recent_buyers and, inlined, by lapsed_buyers
    assert sql.count("\"timestamp\" > CAST('2026-10-02 12:00:00.000000' AS TIMESTAMP)") == 1


def test_user_values_are_quoted_literals() -> None:
    sql = compiled()
    assert "'it''s'" in sql
    assert "DROP TABLE" not in sql  # names never reach SQL; values are escaped literals


def test_plan_transpiles_to_other_dialects() -> None:
    sql = compiled()
    for dialect in ("postgres", "snowflake", "spark"):
        assert sqlglot.transpile(sql, read="duckdb", write=dialect)
