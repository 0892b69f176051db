"""What segment analytics read on DuckDB: per-profile aggregates over a period joined to a
batch evaluation's memberships, membership matrices and stage places, first entries and
per-bucket entries and exits from the change log, sizes at batch evaluations.

Every read is set-wise: one query grouped by profile (or by segment and bucket), handed
back as NumPy arrays; the arithmetic is ``segflow.analytics``'s.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import duckdb
import numpy as np
import numpy.typing as npt

from segflow.analytics.metrics import MemberAggregates
from segflow.analytics.transitions import NEVER
from segflow.model.time import to_us
from segflow.store.duckdb.batch import load_catalog, load_event_codes
from segflow.store.duckdb.changes import CHANGES_DDL
from segflow.store.duckdb.numbers import profile_key
from segflow.store.duckdb.schema import LINK_TRAITS
from segflow.store.duckdb.sessions import (
    CLICKED_EVENT,
    DELIVERED_EVENT,
    GAP_US,
    OPENED_EVENT,
    PERIOD_SESSIONS,
    event_is,
    event_match,
    update_sessions,
    visit_condition,
)
from segflow.store.duckdb.sql import quote_ident, quote_str
from segflow.store.protocols import BucketCounts

if TYPE_CHECKING:
    from segflow.store.protocols import Memberships

ORDER_EVENT: Final = "Order Completed"
REVENUE: Final = "properties.revenue"
CLV_KEY: Final = "clv_12m"
CHURN_KEY: Final = "churn_risk"

BoolA: TypeAlias = npt.NDArray[np.bool_]
IntA: TypeAlias = npt.NDArray[np.int64]
FloatA: TypeAlias = npt.NDArray[np.float64]


def _filled(values: Any, fill: float, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """A fetched column with its nulls (a masked array's masked entries) set to ``fill``."""
    if isinstance(values, np.ma.MaskedArray):
        masked: Any = values
        return np.asarray(masked.astype(dtype).filled(fill))
    return np.asarray(values, dtype=dtype)


class DuckDBAnalytics:
    """The analytics reads over one connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def _exists(self, sql: str, params: Sequence[object] = ()) -> bool:
        return self.con.execute(f"SELECT EXISTS ({sql})", list(params)).fetchone() == (True,)

    def period_aggregates(
        self, memberships: Memberships, segment_ids: Sequence[str], start: datetime, end: datetime
    ) -> tuple[BoolA, MemberAggregates]:
        """Membership of ``segment_ids`` in ``memberships`` beside each profile's orders,
        revenue, sessions, page views and email counts with ``start < timestamp <= end``,
        and its CLV and churn-risk scores as of ``end``: one query, every per-profile
        aggregate computed once whatever the number of segments."""
        con = self.con
        catalog = load_catalog(con)
        codes = load_event_codes(con)
        key = profile_key(con)
        events = "SELECT 1 FROM events WHERE "
        has_pages = self._exists(events + "type = 'page'")
        has_email = self._exists(events + event_is(DELIVERED_EVENT, codes))
        traits = "SELECT 1 FROM traits WHERE key = ?"
        score_keys = [k for k in (CLV_KEY, CHURN_KEY) if self._exists(traits, [k])]
        if score_keys:
            con.execute(LINK_TRAITS)
        rev = f"TRY_CAST({quote_ident(REVENUE)} AS DOUBLE)" if REVENUE in catalog else "NULL"
        # FILTER clauses take the comparisons as they are (NULL counts as false): no
        # projected flag per row
        is_order = event_match(ORDER_EVENT, codes)
        email = [event_match(n, codes) for n in (DELIVERED_EVENT, OPENED_EVENT, CLICKED_EVENT)]
        cols = [quote_ident(memberships.columns[s]) for s in segment_ids]
        member_cols = "".join(f"coalesce(r.{c}, FALSE) AS m{i}, " for i, c in enumerate(cols))
        counts = {"orders": is_order}
        if has_pages:
            counts["page_views"] = "type = 'page'"
        if has_email:
            counts |= dict(zip(("delivered", "opened", "clicked"), email, strict=True))
        aggregates = "".join(f", count(*) FILTER (WHERE {c}) AS {n}" for n, c in counts.items())
        counted = "".join(f", coalesce(a.{n}, 0)::DOUBLE AS {n}" for n in counts)
        scores = ", ".join(
            f"max(num) FILTER (WHERE key = {quote_str(k)}) AS {quote_ident(k)}" for k in score_keys
        )
        score_cte = (
            f""", sc AS (SELECT {key}, {scores} FROM traits
                WHERE key IN ({", ".join(map(quote_str, score_keys))}) AND kind = 'number'
                  AND "timestamp" <= $end AND (valid_to IS NULL OR valid_to > $end)
                GROUP BY {key})"""
            if score_keys
            else ""
        )
        score_join = f"LEFT JOIN sc USING ({key})" if score_keys else ""
        score_cols = "".join(f", sc.{quote_ident(k)} AS {quote_ident(k)}" for k in score_keys)
        params: dict[str, object] = {"start": start, "end": end}
        kept = key == "profile_no" and to_us(end) - to_us(start) >= GAP_US
        if kept:
            # the period's sessions from the kept sessions (a table a few times smaller
            # than the period's events): no ordering of the period's visits
            update_sessions(con)
            params |= {"start_us": to_us(start), "end_us": to_us(end)}
            visits = ""
            session_cte = f", s AS ({PERIOD_SESSIONS})"
            session_join = "LEFT JOIN s USING (profile_no)"
            sessions = "coalesce(s.sessions, 0)::DOUBLE"
        else:
            # sessions cut from each profile's sorted visit instants in the period
            visits = (
                f', list_sort(list(epoch_us("timestamp")) FILTER (WHERE {visit_condition(codes)}))'
                " AS v"
            )
            session_cte = session_join = ""
            sessions = f"""coalesce((len(a.v) > 0)::INT + len(list_filter(
           list_zip(a.v[2:], a.v[:len(a.v) - 1]), x -> x[1] - x[2] > {GAP_US})), 0)::DOUBLE"""
        # one scan of the period's rows and one aggregation by the profile key for
        # every aggregate, joined to the memberships once
        sql = f"""
WITH a AS (
  SELECT {key}{aggregates}, coalesce(sum({rev}) FILTER (WHERE {is_order}), 0) AS revenue{visits}
  FROM events WHERE "timestamp" > $start AND "timestamp" <= $end
  GROUP BY {key}
){score_cte}{session_cte}
SELECT {member_cols}coalesce(a.revenue, 0)::DOUBLE AS revenue,
       {sessions} AS sessions{counted}{score_cols}
FROM {memberships.table} r JOIN profiles USING (profile_id)
LEFT JOIN a USING ({key})
{score_join}
{session_join}
"""
        got = con.execute(sql, params).fetchnumpy()
        n = len(got["orders"])
        members = (
            np.column_stack([np.asarray(got[f"m{i}"], np.bool_) for i in range(len(cols))])
            if cols
            else np.zeros((n, 0), np.bool_)
        )

        def num(name: str) -> FloatA:
            return np.asarray(got[name], dtype=np.float64)

        def score(key: str) -> FloatA | None:
            if key not in score_keys:
                return None
            return _filled(got[key], np.nan, np.float64)

        return members.reshape(n, len(cols)), MemberAggregates(
            orders=num("orders"),
            revenue=num("revenue"),
            sessions=num("sessions"),
            page_views=num("page_views") if has_pages else None,
            emails_delivered=num("delivered") if has_email else None,
            emails_opened=num("opened") if has_email else None,
            emails_clicked=num("clicked") if has_email else None,
            clv=score(CLV_KEY),
            churn_risk=score(CHURN_KEY),
        )

    def membership_matrix(self, memberships: Memberships, segment_ids: Sequence[str]) -> BoolA:
        """Profiles (in profile id order) x ``segment_ids``."""
        if not segment_ids:
            raise ValueError("no segments asked")
        cols = ", ".join(
            f"coalesce({quote_ident(memberships.columns[s])}, FALSE) AS m{i}"
            for i, s in enumerate(segment_ids)
        )
        got = self.con.execute(
            f"SELECT {cols} FROM {memberships.table} ORDER BY profile_id"
        ).fetchnumpy()
        return np.column_stack(
            [np.asarray(got[f"m{i}"], np.bool_) for i in range(len(segment_ids))]
        ).reshape(-1, len(segment_ids))

    def places(
        self,
        stages: Sequence[str],
        at: datetime,
        *,
        evaluated: Memberships | None = None,
        logged: Collection[str] = (),
    ) -> IntA:
        """Each profile's place at ``at``: the index of the first of ``stages`` it is a
        member of, or -1; every known profile, in profile number order (profile id
        order in a store without numbers), the same at every instant.  Membership of
        the ``logged`` stages is the change log's state at ``at`` (each pair's latest
        change at or before it, ties by ``seq``); of the others, ``evaluated``'s."""
        if not stages:
            raise ValueError("no stages asked")
        con = self.con
        con.execute(CHANGES_DDL)
        from_log = [s for s in stages if s in logged]
        rest = [s for s in stages if s not in logged]
        if rest and evaluated is None:
            raise ValueError(f"no evaluation for {', '.join(rest)}")
        params: dict[str, object] = {}
        joins = ""
        member: dict[str, str] = {}
        if rest and evaluated is not None:
            joins += f" LEFT JOIN {evaluated.table} r USING (profile_id)"
            for s in rest:
                member[s] = f"r.{quote_ident(evaluated.columns[s])}"
        if from_log:
            params |= {"at": at} | {f"l{i}": s for i, s in enumerate(from_log)}
            listed = ", ".join(f"$l{i}" for i in range(len(from_log)))
            flags = ", ".join(f"bool_or(segment_id = $l{i}) AS l{i}" for i in range(len(from_log)))
            joins += f""" LEFT JOIN (
                SELECT profile_id, {flags} FROM (
                    SELECT segment_id, profile_id, entered FROM membership_changes
                    WHERE segment_id IN ({listed}) AND "at" <= $at
                    QUALIFY row_number() OVER (PARTITION BY segment_id, profile_id
                                               ORDER BY "at" DESC, seq DESC) = 1)
                WHERE entered GROUP BY profile_id) l USING (profile_id)"""
            for i, s in enumerate(from_log):
                member[s] = f"l.l{i}"
        whens = " ".join(f"WHEN {member[s]} THEN {i}" for i, s in enumerate(stages))
        got = con.execute(
            f"SELECT CASE {whens} ELSE -1 END AS place FROM profiles p{joins}"
            f" ORDER BY p.{profile_key(con)}",
            params,
        ).fetchnumpy()
        return np.asarray(got["place"], dtype=np.int64)

    def first_entries(self, segment_ids: Sequence[str], until: datetime) -> IntA:
        """Per profile that entered any of ``segment_ids`` at or before ``until`` (rows),
        its first enter instant in each (columns, microseconds; ``NEVER`` if none)."""
        con = self.con
        con.execute(CHANGES_DDL)
        if not segment_ids:
            raise ValueError("no segments asked")
        cols = ", ".join(
            f'min(epoch_us("at")) FILTER (WHERE segment_id = $s{i}) AS e{i}'
            for i in range(len(segment_ids))
        )
        params: dict[str, object] = {f"s{i}": s for i, s in enumerate(segment_ids)}
        params["until"] = until
        listed = ", ".join(f"$s{i}" for i in range(len(segment_ids)))
        got = con.execute(
            f"SELECT {cols} FROM membership_changes WHERE entered AND segment_id IN ({listed})"
            ' AND "at" <= $until GROUP BY profile_id',
            params,
        ).fetchnumpy()
        out = [_filled(got[f"e{i}"], NEVER, np.int64) for i in range(len(segment_ids))]
        return np.column_stack(out).astype(np.int64).reshape(-1, len(segment_ids))

    def bucket_counts(
        self, segment_ids: Sequence[str], start: datetime, step_us: int, buckets: int
    ) -> BucketCounts:
        """Entries and exits of ``segment_ids`` in the change log per bucket ``b`` (changes
        with ``start + b*step < at <= start + (b+1)*step``), and the log's size of each at
        ``start``: one query grouped by segment and bucket."""
        con = self.con
        con.execute(CHANGES_DDL)
        k = len(segment_ids)
        if not k:
            none = np.zeros((0, buckets), np.int64)
            return BucketCounts(np.zeros(0, np.int64), none, none, np.zeros(0, np.bool_))
        params: dict[str, object] = {f"s{i}": s for i, s in enumerate(segment_ids)}
        params |= {"start": to_us(start), "step": step_us, "buckets": buckets}
        listed = ", ".join(f"$s{i}" for i in range(k))
        rows = con.execute(
            f"""SELECT segment_id, b, count(*) FILTER (WHERE entered),
                       count(*) FILTER (WHERE NOT entered)
                FROM (SELECT segment_id, entered,
                             CASE WHEN epoch_us("at") <= $start THEN -1
                                  ELSE (epoch_us("at") - $start - 1) // $step END AS b
                      FROM membership_changes WHERE segment_id IN ({listed}))
                WHERE b < $buckets GROUP BY ALL""",
            params,
        ).fetchall()
        index = {s: i for i, s in enumerate(segment_ids)}
        entered = np.zeros((k, buckets), np.int64)
        exited = np.zeros((k, buckets), np.int64)
        size_start = np.zeros(k, np.int64)
        logged = np.zeros(k, np.bool_)
        for sid, b, ins, outs in rows:
            i = index[sid]
            logged[i] = True
            if b < 0:
                size_start[i] = max(int(ins) - int(outs), 0)
            else:
                entered[i, b], exited[i, b] = ins, outs
        return BucketCounts(size_start, entered, exited, logged)

    def evaluated_sizes(self, segment_ids: Sequence[str], instants: Sequence[datetime]) -> IntA:
        """Each segment's size (rows) at its latest batch evaluation as of each instant
        (columns); -1 where none was evaluated by then."""
        k, m = len(segment_ids), len(instants)
        out = np.full((k, m), -1, np.int64)
        if not k or not m:
            return out
        params: dict[str, object] = {f"s{i}": s for i, s in enumerate(segment_ids)}
        listed = ", ".join(f"$s{i}" for i in range(k))
        grid = ", ".join(f"($t{j}, {j})" for j in range(m))
        params |= {f"t{j}": t for j, t in enumerate(instants)}
        rows = self.con.execute(
            f"""WITH e AS (SELECT segment_id, as_of, arg_max(size, evaluated_at) AS size
                           FROM evaluations WHERE segment_id IN ({listed}) GROUP BY ALL),
                     g AS (SELECT s.segment_id, t.t, t.j
                           FROM (SELECT DISTINCT segment_id FROM e) s,
                                (VALUES {grid}) t(t, j))
                SELECT g.segment_id, g.j, e.size FROM g
                ASOF JOIN e ON g.segment_id = e.segment_id AND g.t >= e.as_of""",
            params,
        ).fetchall()
        index = {s: i for i, s in enumerate(segment_ids)}
        for sid, j, size in rows:
            out[index[sid], j] = size
        return out


if TYPE_CHECKING:
    from segflow.store.protocols import AnalyticsStore

    def _is_an_analytics_store(store: DuckDBAnalytics) -> AnalyticsStore:
        return store
