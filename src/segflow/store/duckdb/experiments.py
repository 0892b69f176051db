"""The reads behind an experiment report: who entered the segment during the period
(and under which version) from the change log, and each cohort member's orders and
revenue from its entry to the period's end, summed per arm (treatment or holdout) in
one query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import duckdb
import pyarrow as pa

from segflow.store.duckdb.batch import load_catalog, load_event_codes
from segflow.store.duckdb.changes import CHANGES_DDL
from segflow.store.duckdb.sql import quote_ident
from segflow.store.records.experiments import EMPTY, ArmOutcome, CohortMember

ORDER_EVENT: Final = "Order Completed"
REVENUE: Final = "properties.revenue"


class DuckDBExperiments:
    """Experiment reads on the server's connection (callers hold the lock)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def joiners(
        self, segment_id: str, since: datetime, until: datetime
    ) -> list[tuple[str, datetime, int]]:
        """(profile, instant, version) of each profile's first entry into the segment in
        the change log with ``since < at < until``, by profile id."""
        con = self.con
        con.execute(CHANGES_DDL)
        rows = con.execute(
            'SELECT profile_id, min("at"), arg_min(version, ("at", seq))'
            " FROM membership_changes WHERE segment_id = ? AND entered"
            ' AND "at" > ? AND "at" < ? GROUP BY profile_id ORDER BY profile_id',
            [segment_id, since, until],
        ).fetchall()
        return [(str(p), t, int(v)) for p, t, v in rows]

    def entry_versions(self, segment_id: str, at: datetime) -> dict[str, int]:
        """Profile -> the version of its latest entry into the segment in the change log
        at or before ``at`` (profiles never logged entering are left out)."""
        con = self.con
        con.execute(CHANGES_DDL)
        rows = con.execute(
            'SELECT profile_id, arg_max(version, ("at", seq)) FROM membership_changes'
            ' WHERE segment_id = ? AND entered AND "at" <= ? GROUP BY profile_id',
            [segment_id, at],
        ).fetchall()
        return {str(p): int(v) for p, v in rows}

    def outcomes(
        self, cohort: Sequence[CohortMember], until: datetime
    ) -> tuple[ArmOutcome, ArmOutcome]:
        """(treatment, holdout): the cohort split by ``held_out``, each member with its
        ``Order Completed`` events from its entry (``entered <= timestamp``, or ``<``
        when ``strict``) to ``timestamp < until`` (revenue is the event's ``revenue``; a
        missing or non-numeric one counts as 0)."""
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
            f"TRY_CAST(e.{quote_ident(REVENUE)} AS DOUBLE)"
            if field is not None and not field.overflow
            else "NULL"
        )
        ids = pa.table(
            {
                "profile_id": pa.array([m.profile_id for m in cohort], pa.string()),
                "held_out": pa.array([m.held_out for m in cohort], pa.bool_()),
                "entered": pa.array([m.entered for m in cohort], pa.timestamp("us")),
                "strict": pa.array([m.strict for m in cohort], pa.bool_()),
            }
        )
        con.register("_sf_arms", ids)
        try:
            rows = con.execute(
                f"""
                WITH o AS (
                  SELECT a.profile_id, count(*) AS orders,
                         coalesce(sum({revenue}), 0) AS revenue
                  FROM events e JOIN _sf_arms a USING (profile_id)
                  WHERE {is_order} AND e."timestamp" < ?
                    AND (e."timestamp" > a.entered
                         OR (e."timestamp" = a.entered AND NOT a.strict))
                  GROUP BY a.profile_id
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
                [*params, until],
            ).fetchall()
        finally:
            con.unregister("_sf_arms")
        arms = {
            bool(h): ArmOutcome(int(n), int(b), float(om), float(osd), float(rm), float(rsd))
            for h, n, b, om, osd, rm, rsd in rows
        }
        return arms.get(False, EMPTY), arms.get(True, EMPTY)
