"""Each profile's sessions kept as a table: one row per session, its first and last
visit (``visit_sessions``), so that the sessions of a period are read from a table a
few times smaller than the period's events instead of ordering those events by profile
and time.

A **visit** is a ``page``, ``track`` or ``screen`` call other than the email events;
a session is a run of a profile's visits with no gap over ``SESSION_GAP_MINUTES``
(``docs/analytics.md``).  Over all of a profile's visits the sessions are disjoint
intervals more than the gap apart, and a period's sessions (its visits cut the same
way) are then exactly the profile's sessions that hold a visit in the period: for a
period at least as long as the gap, those with ``first <= end`` and ``last > start``.

The table covers the events up to a seq (the ``visit_sessions`` mark in
``seq_marks``) and is brought up to date by ``update_sessions`` before it is read:
the visits stored since are merged into the sessions of their profiles (a visit within
the gap of a session joins it, one between two sessions may join them), which gives
the sessions of the profiles' visits whatever order the visits arrived in.  Without
the mark (a store made before the table, or loaded around ingestion) the table is
built from every stored visit.  A profile merge moves the merged-away profile's
sessions to the profile it merges into, joined with its own (``move_sessions``); an
erasure deletes them (``store.duckdb.profiles``).
"""

from __future__ import annotations

from typing import Final

import duckdb

from segflow.store.duckdb.batch import load_event_codes
from segflow.store.duckdb.marks import events_seq, set_row
from segflow.store.duckdb.sql import quote_str

SESSION_GAP_MINUTES: Final = 30
"""A profile's visits further apart than this start a new session."""
GAP_US: Final = SESSION_GAP_MINUTES * 60_000_000
TABLE: Final = "visit_sessions"
MARK: Final = "visit_sessions"
DELIVERED_EVENT: Final = "Email Delivered"
OPENED_EVENT: Final = "Email Opened"
CLICKED_EVENT: Final = "Email Link Clicked"
EMAIL_EVENTS: Final = (DELIVERED_EVENT, OPENED_EVENT, CLICKED_EVENT)

SESSIONS_DDL: Final = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    profile_no INTEGER NOT NULL,
    first_us   BIGINT NOT NULL,
    last_us    BIGINT NOT NULL
);
"""
"""A session of profile ``profile_no``: its first and last visit (epoch µs)."""


def event_match(name: str, codes: dict[str, int] | None) -> str:
    """Whether a row is the track event ``name``, NULL for a row without an event name
    (a page call); compares the integer code when the store keeps codes."""
    if codes is not None:
        return f"event_code = {codes[name]}" if name in codes else "FALSE"
    return f"event = {quote_str(name)}"


def event_is(name: str, codes: dict[str, int] | None) -> str:
    """``event_match`` never NULL."""
    return f"coalesce({event_match(name, codes)}, FALSE)"


def visit_condition(codes: dict[str, int] | None) -> str:
    """Whether an events row is a visit (never NULL)."""
    email = " OR ".join(event_is(n, codes) for n in EMAIL_EVENTS)
    return f"(NOT ({email}) AND type IN ('page', 'track', 'screen')) IS TRUE"


def _merged(intervals: str) -> str:
    """The sessions of ``intervals`` (a query of ``profile_no, a, b``: sessions and
    runs of visits, each a run with no gap over the gap inside): intervals in the
    order of their first visit, a new session where one starts more than the gap
    after the latest visit of those before it."""
    return f"""
SELECT profile_no, min(a) AS first_us, max(b) AS last_us FROM (
  SELECT profile_no, a, b, sum(fresh::INT) OVER (
      PARTITION BY profile_no ORDER BY a, b ROWS UNBOUNDED PRECEDING) AS run
  FROM (SELECT profile_no, a, b, coalesce(a - max(b) OVER (
            PARTITION BY profile_no ORDER BY a, b
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) > {GAP_US}, TRUE) AS fresh
        FROM ({intervals})))
GROUP BY profile_no, run"""


def _visit_runs(where: str, codes: dict[str, int] | None) -> str:
    """The visits of the events rows ``where`` as runs: per profile and gap-long slot
    of time, its first and last visit (two visits in one slot are never more than the
    gap apart, so only a slot's first visit can start a session)."""
    return f"""
SELECT profile_no, min(ts) AS a, max(ts) AS b
FROM (SELECT profile_no, epoch_us("timestamp") AS ts FROM events
      WHERE {where} AND {visit_condition(codes)})
GROUP BY profile_no, ts // {GAP_US}"""


def _mark(con: duckdb.DuckDBPyConnection) -> int | None:
    row = con.execute("SELECT max(value) FROM seq_marks WHERE name = ?", [MARK]).fetchone()
    return None if not row or row[0] is None else int(row[0])


def _set_mark(con: duckdb.DuckDBPyConnection, top: int) -> None:
    set_row(
        con,
        "UPDATE seq_marks SET value = $top WHERE name = $name",
        "INSERT INTO seq_marks VALUES ($name, $top)",
        {"name": MARK, "top": top},
    )


def _in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        con.execute("BEGIN TRANSACTION")
    except duckdb.TransactionException:
        return True
    con.execute("ROLLBACK")
    return False


def update_sessions(con: duckdb.DuckDBPyConnection) -> None:
    """Bring ``visit_sessions`` up to the stored events (built from every visit when it
    has no mark), in one transaction (the caller's when one is open)."""
    con.execute(SESSIONS_DDL)
    mark = _mark(con)
    top = events_seq(con)
    if mark is not None and mark >= top:
        return
    own = not _in_transaction(con)
    if own:
        con.execute("BEGIN TRANSACTION")
    try:
        codes = load_event_codes(con)
        if mark is None:
            con.execute(f"DELETE FROM {TABLE}")
            runs = _visit_runs("seq <= $top", codes)
            con.execute(f"INSERT INTO {TABLE} {_merged(runs)}", {"top": top})
        else:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _sf_visits AS"
                f" {_visit_runs('seq > $mark AND seq <= $top', codes)}",
                {"mark": mark, "top": top},
            )
            _remerge(con, "SELECT profile_no, a, b FROM _sf_visits")
            con.execute("DROP TABLE _sf_visits")
        _set_mark(con, top)
        if own:
            con.execute("COMMIT")
    except BaseException:
        if own:
            con.execute("ROLLBACK")
        raise


def _remerge(con: duckdb.DuckDBPyConnection, runs: str) -> None:
    """Merge ``runs`` (``profile_no, a, b``) into the sessions of their profiles."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _sf_touched AS SELECT DISTINCT profile_no FROM ({runs})"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _sf_sessions AS"
        + _merged(
            f"SELECT profile_no, first_us AS a, last_us AS b FROM {TABLE}"
            " WHERE profile_no IN (SELECT profile_no FROM _sf_touched)"
            f" UNION ALL {runs}"
        )
    )
    con.execute(f"DELETE FROM {TABLE} WHERE profile_no IN (SELECT profile_no FROM _sf_touched)")
    con.execute(f"INSERT INTO {TABLE} SELECT * FROM _sf_sessions")
    con.execute("DROP TABLE _sf_sessions; DROP TABLE _sf_touched")


def move_sessions(con: duckdb.DuckDBPyConnection, moves: str) -> None:
    """Give the sessions of the profiles ``moves`` names (``from_no, into_no``) to the
    profiles they merge into, joined with theirs; inside the caller's transaction."""
    con.execute(SESSIONS_DDL)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _sf_moved AS"
        f" SELECT m.into_no AS profile_no, s.first_us AS a, s.last_us AS b"
        f" FROM {TABLE} s JOIN ({moves}) m ON s.profile_no = m.from_no"
    )
    con.execute(f"DELETE FROM {TABLE} WHERE profile_no IN (SELECT from_no FROM ({moves}))")
    _remerge(con, "SELECT profile_no, a, b FROM _sf_moved")
    con.execute("DROP TABLE _sf_moved")


PERIOD_SESSIONS: Final = (
    f"SELECT profile_no, count(*) AS sessions FROM {TABLE}"
    " WHERE first_us <= $end_us AND last_us > $start_us GROUP BY profile_no"
)
"""Per profile, its sessions with a visit in ``start < t <= end`` (epoch µs parameters
``$start_us``, ``$end_us``): exact for a period at least as long as the gap (see the
module's docstring); a shorter one is cut from its own visits."""
