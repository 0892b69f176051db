"""Per-customer behavioural features as of an instant: one DuckDB aggregate query.

Everything the value scores and predictions need (orders, spend, recency, the BG/NBD
summary, email and visit engagement) comes out of a single statement, read back as
Arrow and turned into NumPy arrays; the model math never touches SQL rows.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Final, TypeAlias

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from segflow.batch.run import load_catalog, load_event_codes

FloatA: TypeAlias = npt.NDArray[np.float64]
IntA: TypeAlias = npt.NDArray[np.int64]

ORDER_EVENT: Final = "Order Completed"
OPEN_EVENT: Final = "Email Opened"
CLICK_EVENT: Final = "Email Link Clicked"


@dataclass(frozen=True)
class Features:
    """Column arrays aligned on ``profile_id`` (sorted); customers have ``orders >= 1``.

    BG/NBD summary in whole days: ``x`` = distinct order days - 1, ``t_x`` = last - first
    order day, ``T`` = as-of day - first order day; ``m`` = mean revenue of the repeat
    order days (0 without repeats).
    """

    at: datetime
    profile_id: npt.NDArray[np.object_]
    orders: IntA
    monetary: FloatA
    x: FloatA
    t_x: FloatA
    T: FloatA
    m: FloatA
    days_since_last: FloatA
    days_since_first: FloatA
    orders_30d: IntA
    orders_90d: IntA
    orders_182d: IntA
    orders_365d: IntA
    spend_365d: FloatA
    opens: IntA
    clicks: IntA
    visit_days: IntA
    campaigns_sent: int

    @property
    def customers(self) -> npt.NDArray[np.bool_]:
        out: npt.NDArray[np.bool_] = self.orders > 0
        return out

    def __len__(self) -> int:
        return int(self.profile_id.size)


_INTS: Final = frozenset(
    {"orders", "orders_30d", "orders_90d", "orders_182d", "orders_365d", "opens", "clicks"}
    | {"visit_days"}
)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _event_is(name: str, codes: dict[str, int] | None) -> str:
    """Compare the integer event code when the store keeps codes (cheaper than strings)."""
    if codes is not None:
        return f"event_code = {codes[name]}" if name in codes else "FALSE"
    return f"event = {_lit(name)}"


def features_sql(con: duckdb.DuckDBPyConnection, at: datetime, window_days: int = 90) -> str:
    """The one aggregate query behind ``extract_features``."""
    catalog = load_catalog(con)
    codes = load_event_codes(con)
    rev = (
        f"TRY_CAST({_q('properties.revenue')} AS DOUBLE)"
        if "properties.revenue" in catalog
        else "NULL"
    )
    camp = _q("properties.campaign_id") if "properties.campaign_id" in catalog else "message_id"
    ts = f"TIMESTAMP {_lit(at.isoformat(sep=' ', timespec='microseconds'))}"
    is_order = _event_is(ORDER_EVENT, codes)
    is_open = _event_is(OPEN_EVENT, codes)
    is_click = _event_is(CLICK_EVENT, codes)
    since = f"{ts} - INTERVAL {int(window_days)} DAY"

    def recent(days: int, what: str) -> str:
        return f'{what} FILTER (WHERE "timestamp" > {ts} - INTERVAL {days} DAY)'

    return f"""
WITH od AS (
  SELECT profile_id, CAST("timestamp" AS DATE) AS d, count(*) AS n,
         coalesce(sum({rev}), 0) AS rev, min("timestamp") AS first_ts, max("timestamp") AS last_ts,
         {recent(30, "count(*)")} AS n30, {recent(90, "count(*)")} AS n90,
         {recent(182, "count(*)")} AS n182, {recent(365, "count(*)")} AS n365,
         coalesce({recent(365, f"sum({rev})")}, 0) AS rev365
  FROM events WHERE {is_order} AND "timestamp" <= {ts}
  GROUP BY ALL
),
c AS (
  SELECT profile_id, sum(n) AS orders, sum(rev) AS monetary, count(*) - 1 AS x,
         date_diff('day', min(d), max(d)) AS t_x,
         date_diff('day', min(d), CAST({ts} AS DATE)) AS "T",
         CASE WHEN count(*) > 1 THEN (sum(rev) - arg_min(rev, d)) / (count(*) - 1) ELSE 0 END
           AS m,
         (epoch_us({ts}) - epoch_us(max(last_ts))) / 86400e6 AS days_since_last,
         (epoch_us({ts}) - epoch_us(min(first_ts))) / 86400e6 AS days_since_first,
         sum(n30) AS orders_30d, sum(n90) AS orders_90d, sum(n182) AS orders_182d,
         sum(n365) AS orders_365d, sum(rev365) AS spend_365d
  FROM od GROUP BY profile_id
),
vd AS (
  SELECT DISTINCT profile_id, CAST("timestamp" AS DATE) AS d
  FROM events WHERE "timestamp" > {since} AND "timestamp" <= {ts}
    AND ({is_open}) IS NOT TRUE AND ({is_click}) IS NOT TRUE
),
em AS (
  SELECT profile_id, {camp} AS campaign, bool_or({is_open}) AS opened,
         bool_or({is_click}) AS clicked
  FROM events WHERE "timestamp" > {since} AND "timestamp" <= {ts}
    AND (({is_open}) OR ({is_click})) IS TRUE
  GROUP BY ALL
),
e AS (
  SELECT profile_id, coalesce(m.opens, 0) AS opens, coalesce(m.clicks, 0) AS clicks,
         coalesce(v.visit_days, 0) AS visit_days
  FROM (SELECT profile_id, count(*) AS visit_days FROM vd GROUP BY profile_id) v
  FULL OUTER JOIN (SELECT profile_id, count(*) FILTER (WHERE opened) AS opens,
                          count(*) FILTER (WHERE clicked) AS clicks
                   FROM em GROUP BY profile_id) m USING (profile_id)
)
SELECT profile_id,
       coalesce(c.orders, 0) AS orders, coalesce(c.monetary, 0) AS monetary,
       coalesce(c.x, 0) AS x, coalesce(c.t_x, 0) AS t_x, coalesce(c."T", 0) AS "T",
       coalesce(c.m, 0) AS m,
       coalesce(c.days_since_last, 'NaN'::DOUBLE) AS days_since_last,
       coalesce(c.days_since_first, 'NaN'::DOUBLE) AS days_since_first,
       coalesce(c.orders_30d, 0) AS orders_30d, coalesce(c.orders_90d, 0) AS orders_90d,
       coalesce(c.orders_182d, 0) AS orders_182d, coalesce(c.orders_365d, 0) AS orders_365d,
       coalesce(c.spend_365d, 0) AS spend_365d,
       coalesce(e.opens, 0) AS opens, coalesce(e.clicks, 0) AS clicks,
       coalesce(e.visit_days, 0) AS visit_days,
       (SELECT count(DISTINCT campaign) FROM em WHERE opened) AS campaigns_sent
FROM c FULL OUTER JOIN e USING (profile_id)
ORDER BY profile_id
"""


def extract_features(
    con: duckdb.DuckDBPyConnection, at: datetime, window_days: int = 90
) -> Features:
    """Run ``features_sql`` and hand back NumPy columns."""
    con.execute("SET TimeZone = 'UTC'")
    table: pa.Table = con.execute(features_sql(con, at, window_days)).fetch_arrow_table()
    cols: dict[str, object] = {}
    for f in fields(Features):
        if f.name in ("at", "campaigns_sent"):
            continue
        arr = table.column(f.name)
        if f.name == "profile_id":
            cols[f.name] = arr.to_numpy().astype(object)
        else:
            cols[f.name] = arr.to_numpy().astype(np.int64 if f.name in _INTS else np.float64)
    sent = table.column("campaigns_sent")
    campaigns = int(sent[0].as_py()) if table.num_rows else 0
    return Features(at=at, campaigns_sent=campaigns, **cols)  # type: ignore[arg-type]
