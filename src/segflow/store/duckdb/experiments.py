"""The per-arm outcomes behind an experiment report: each member's orders and revenue
over a period, summed per arm (treatment or holdout) in one query."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import duckdb
import pyarrow as pa

from segflow.store.duckdb.batch import load_catalog, load_event_codes
from segflow.store.duckdb.sql import quote_ident

ORDER_EVENT: Final = "Order Completed"
REVENUE: Final = "properties.revenue"


@dataclass(frozen=True, slots=True)
class ArmOutcome:
    """One arm's members and their outcomes over the period: ``buyers`` had at least
    one order; means and sample standard deviations (n - 1) are per member, a member
    without orders counting as 0."""

    n: int
    buyers: int
    orders_mean: float
    orders_sd: float
    revenue_mean: float
    revenue_sd: float


EMPTY: Final = ArmOutcome(0, 0, 0.0, 0.0, 0.0, 0.0)


class DuckDBExperiments:
    """Experiment reads on the server's connection (callers hold the lock)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def outcomes(
        self, members: list[str], held_out: Collection[str], since: datetime, until: datetime
    ) -> tuple[ArmOutcome, ArmOutcome]:
        """(treatment, holdout): ``members`` split by ``held_out``, each with its
        ``Order Completed`` events at ``since <= timestamp < until`` (revenue is the
        event's ``revenue``; a missing or non-numeric one counts as 0)."""
        con = self.con
        codes = load_event_codes(con)
        if codes is not None:
            is_order = (
                f"event_code = {int(codes[ORDER_EVENT])}" if ORDER_EVENT in codes else "FALSE"
            )
            params: list[object] = []
        else:
            is_order = "event = ?"
            params = [ORDER_EVENT]
        field = load_catalog(con).get(REVENUE)
        revenue = (
            f"TRY_CAST({quote_ident(REVENUE)} AS DOUBLE)"
            if field is not None and not field.overflow
            else "NULL"
        )
        ids = pa.table(
            {
                "profile_id": pa.array(members, pa.string()),
                "held_out": pa.array([m in held_out for m in members], pa.bool_()),
            }
        )
        con.register("_sf_arms", ids)
        try:
            rows = con.execute(
                f"""
                WITH o AS (
                  SELECT profile_id, count(*) AS orders, coalesce(sum({revenue}), 0) AS revenue
                  FROM events SEMI JOIN _sf_arms USING (profile_id)
                  WHERE {is_order} AND "timestamp" >= ? AND "timestamp" < ?
                  GROUP BY profile_id
                ), m AS (
                  SELECT a.held_out, coalesce(o.orders, 0) AS orders,
                         coalesce(o.revenue, 0) AS revenue
                  FROM _sf_arms a LEFT JOIN o USING (profile_id)
                )
                SELECT held_out, count(*), count(*) FILTER (WHERE orders > 0),
                       avg(orders), coalesce(stddev_samp(orders), 0),
                       avg(revenue), coalesce(stddev_samp(revenue), 0)
                FROM m GROUP BY held_out
                """,
                [*params, since, until],
            ).fetchall()
        finally:
            con.unregister("_sf_arms")
        arms = {
            bool(h): ArmOutcome(int(n), int(b), float(om), float(osd), float(rm), float(rsd))
            for h, n, b, om, osd, rm, rsd in rows
        }
        return arms.get(False, EMPTY), arms.get(True, EMPTY)
