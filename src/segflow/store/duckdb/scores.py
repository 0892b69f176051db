"""What the value scores read and write on DuckDB: one aggregate query for the
per-customer features, the bulk append of score rows to the ``traits`` history, the
``score_runs`` reports, and the score traits read back.

The model math (``segflow.traits``) sees Arrow tables and NumPy arrays only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import duckdb
import orjson
import pyarrow as pa

from segflow.store.duckdb.batch import load_catalog, load_event_codes
from segflow.store.duckdb.numbers import has_profile_numbers

ORDER_EVENT: Final = "Order Completed"
OPEN_EVENT: Final = "Email Opened"
CLICK_EVENT: Final = "Email Link Clicked"

RUNS_DDL: Final = """
CREATE TABLE IF NOT EXISTS score_runs (
    computed_at TIMESTAMP NOT NULL,
    as_of       TIMESTAMP NOT NULL,
    report      JSON NOT NULL
)
"""


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
    """The one aggregate query behind ``segflow.traits.features.extract_features``."""
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


def _previous_run(
    con: duckdb.DuckDBPyConnection, at: datetime, *, classifier: bool = False
) -> str | None:
    """Message id of the run whose rows are current at ``at`` (latest as-of, then latest
    computed; with ``classifier``, of the runs that ran it), or None before the first."""
    con.execute(RUNS_DDL)
    ran = " AND json_extract_string(report, '$.config.classifier') = 'true'" if classifier else ""
    row = con.execute(
        f"SELECT computed_at FROM score_runs WHERE as_of <= ?{ran} "
        "ORDER BY as_of DESC, computed_at DESC LIMIT 1",
        [at],
    ).fetchone()
    if row is None:
        return None
    previous: datetime = row[0]
    return f"scores/{previous.isoformat(timespec='microseconds')}"


class DuckDBScores:
    """Value scores over one connection (``store.protocols.ScoreStore``)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def feature_table(self, at: datetime, window_days: int) -> pa.Table:
        """A row per profile with orders, spend or engagement as of ``at``, by
        ``profile_id``: the columns of ``segflow.traits.features.Features``."""
        self.con.execute("SET TimeZone = 'UTC'")
        table: pa.Table = self.con.execute(
            features_sql(self.con, at, window_days)
        ).fetch_arrow_table()
        return table

    def write_scores(
        self,
        rows: pa.Table,
        at: datetime,
        message_id: str,
        *,
        keys: Sequence[str],
        classifier_key: str,
        classifier: bool,
        seconds: dict[str, float],
    ) -> tuple[int, int]:
        """One transaction: clear keys a profile lost, then insert every score row.

        Each run writes every score a profile has, so the keys to clear are the previous
        run's rows (the one current at ``at``) that this run does not repeat: an
        anti-join against one run's rows, not a scan of the whole history.  ``keys``
        are the ones every run writes; ``classifier_key`` is cleared against the last
        run that computed it, and only when this one did (``classifier``).  Returns
        (rows written, keys cleared); ``seconds`` receives the time of each step."""
        con = self.con
        started = time.perf_counter()
        previous = _previous_run(con, at)
        previous_prop = _previous_run(con, at, classifier=True) if classifier else None
        con.register("_scores_long", rows)
        ts = f"TIMESTAMP '{at.isoformat(sep=' ', timespec='microseconds')}'"
        key_list = ", ".join(_lit(k) for k in keys)
        # a row takes its profile's number where the store keeps them (store.numbers); a
        # profile erased since its scores were computed gets no row
        no, prev_no, s_no, numbered = "", "", "", ""
        if has_profile_numbers(con):
            no, prev_no, s_no = ", profile_no", ", prev.profile_no", ", p.profile_no"
            numbered = " JOIN profiles p ON p.profile_id = s.profile_id"
        seconds["write_build"] = seconds.get("write_build", 0.0) + time.perf_counter() - started
        cleared_row: tuple[Any, ...] | None = (0,)
        order = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
        # row order inside the traits table carries no meaning; not keeping it makes the
        # bulk insert faster
        con.execute("SET preserve_insertion_order = false")
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                started = time.perf_counter()
                if previous is not None or previous_prop is not None:
                    cleared_row = con.execute(
                        f"""
                        INSERT INTO traits (profile_id{no}, key, "timestamp", message_id, kind)
                        SELECT prev.profile_id{prev_no}, prev.key, {ts}, ?, 'null'
                        FROM (SELECT profile_id{no}, key FROM traits
                              WHERE ((message_id = ? AND key IN ({key_list}))
                                     OR (message_id = ? AND key = {_lit(classifier_key)}))
                                AND kind <> 'null') prev
                        ANTI JOIN (SELECT profile_id, CAST(key AS VARCHAR) AS key
                                   FROM _scores_long) n
                        USING (profile_id, key)
                        """,
                        [message_id, previous, previous_prop],
                    ).fetchone()
                seconds["write_clear"] = time.perf_counter() - started
                started = time.perf_counter()
                written_row = con.execute(
                    f'INSERT INTO traits (profile_id{no}, key, "timestamp", message_id, kind,'
                    f' num, str) SELECT s.profile_id{s_no}, s.key, s."timestamp", s.message_id,'
                    f" s.kind, s.num, s.str FROM _scores_long s{numbered}"
                ).fetchone()
                con.execute("COMMIT")
                seconds["write_insert"] = time.perf_counter() - started
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.unregister("_scores_long")
            keep = bool(order[0]) if order else True
            con.execute(f"SET preserve_insertion_order = {'true' if keep else 'false'}")
        written = int(written_row[0]) if written_row else 0
        return written, int(cleared_row[0]) if cleared_row else 0

    def record_run(self, computed_at: datetime, at: datetime, report: dict[str, Any]) -> None:
        """Keep a refresh's report (parameters, fit quality, timings)."""
        self.con.execute(RUNS_DDL)
        self.con.execute(
            "INSERT INTO score_runs VALUES (?, ?, ?)",
            [computed_at, at, orjson.dumps(report).decode()],
        )

    def latest_run(self) -> dict[str, Any] | None:
        """The report of the most recent refresh (by computed_at), or None before the
        first."""
        self.con.execute(RUNS_DDL)
        row = self.con.execute(
            "SELECT report FROM score_runs ORDER BY computed_at DESC, as_of DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        out: dict[str, Any] = orjson.loads(row[0])
        return out

    def profile_scores(self, profile_id: str, at: datetime, keys: Sequence[str]) -> dict[str, Any]:
        """One profile's latest value of each of ``keys`` as of ``at`` (cleared ones
        left out)."""
        rows = self.con.execute(
            """SELECT key, arg_max({'k': kind, 'n': num, 's': str}, ("timestamp", message_id))
               FROM traits WHERE profile_id = ? AND "timestamp" <= ?
                 AND key IN (SELECT unnest(?::VARCHAR[]))
               GROUP BY key ORDER BY key""",
            [profile_id, at, list(keys)],
        ).fetchall()
        return {k: (v["n"] if v["k"] == "number" else v["s"]) for k, v in rows if v["k"] != "null"}

    def score_matrix(self, keys: Sequence[str], at: datetime) -> pa.Table:
        """``profile_id`` and one column per numeric trait of ``keys`` as of ``at``, for
        the profiles with any of them, by ``profile_id`` (a missing one is null)."""
        cols = ", ".join(f"max(num) FILTER (WHERE key = {_lit(k)}) AS {_q(k)}" for k in keys)
        listed = ", ".join(_lit(k) for k in keys)
        table: pa.Table = self.con.execute(
            f"""SELECT profile_id, {cols} FROM traits_as_of(?)
                WHERE key IN ({listed}) AND kind = 'number'
                GROUP BY profile_id ORDER BY profile_id""",
            [at],
        ).fetch_arrow_table()
        return table
