"""The kept sessions (``visit_sessions``) against the sessions cut from the stored
visits by hand: on a hand-computed store; after loads in any order (late visits that
extend or join sessions), identity merges, an erasure, a reopen, a JSON Lines load and a
store that never had the table; and the period's sessions the metrics read from them
against a plain count, shorter periods than the gap included."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segflow.model.definition import parse_segment
from segflow.model.time import format_instant, to_us
from segflow.service.handle import Segflow
from segflow.service.profiles import erase
from segflow.store.duckdb.marks import events_seq
from segflow.store.duckdb.sessions import MARK, TABLE, update_sessions

T0 = datetime(2026, 3, 1)
MIN = 60_000_000


def _message(mid: str, pid: str, kind: str, minute: int, *, anon: bool = False) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "anonymousId" if anon else "userId": pid,
        "messageId": mid,
        "timestamp": format_instant(T0 + timedelta(minutes=minute)),
    }
    if kind == "page":
        return {**msg, "type": "page", "name": "Home"}
    if kind == "screen":
        return {**msg, "type": "screen", "name": "Home"}
    if kind == "identify":
        return {**msg, "type": "identify", "traits": {"plan": "pro"}}
    name = "Product Viewed" if kind == "track" else kind
    return {**msg, "type": "track", "event": name, "properties": {"revenue": 5}}


def _at(a: int, b: int) -> tuple[int, int]:
    """A session from minute ``a`` to minute ``b`` after T0, in epoch µs."""
    return to_us(T0) + a * MIN, to_us(T0) + b * MIN


def _visits(app: Segflow) -> dict[str, list[int]]:
    rows = app.store.con.execute(
        'SELECT profile_id, epoch_us("timestamp") FROM events'
        " WHERE type IN ('page', 'track', 'screen') AND event IS DISTINCT FROM 'Email Opened'"
        " AND event IS DISTINCT FROM 'Email Delivered'"
        " AND event IS DISTINCT FROM 'Email Link Clicked'"
    ).fetchall()
    out: dict[str, list[int]] = {}
    for pid, ts in rows:
        out.setdefault(pid, []).append(ts)
    return out


def _cut(visits: list[int]) -> list[tuple[int, int]]:
    """Runs of the sorted visits with no gap over 30 minutes: (first, last)."""
    out: list[tuple[int, int]] = []
    for t in sorted(visits):
        if out and t - out[-1][1] <= 30 * MIN:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


def _kept(app: Segflow) -> dict[str, list[tuple[int, int]]]:
    update_sessions(app.store.con)
    rows = app.store.con.execute(
        f"SELECT p.profile_id, s.first_us, s.last_us FROM {TABLE} s"
        " LEFT JOIN profiles p USING (profile_no) ORDER BY 1, 2"
    ).fetchall()
    out: dict[str, list[tuple[int, int]]] = {}
    for pid, a, b in rows:
        out.setdefault(pid, []).append((a, b))
    return out


def _assert_kept(app: Segflow) -> None:
    want = {p: _cut(v) for p, v in _visits(app).items()}
    assert _kept(app) == want


def _period_sessions(app: Segflow, start: datetime, end: datetime) -> list[int]:
    """The profiles' sessions in ``start < t <= end`` as the metrics read them, sorted
    (the aggregates come in no particular profile order)."""
    segs = app.registry.current()
    if not segs:
        app.registry.save([parse_segment({"id": "all", "condition": {"not": {"event": "x"}}})])
        segs = app.registry.current()
    result = app.batch(segs.values(), end, only=["all"])
    _, agg = app.analytics.period_aggregates(result, ["all"], start, end)
    return sorted(np.asarray(agg.sessions).astype(int).tolist())


def _plain_period_sessions(app: Segflow, start: datetime, end: datetime) -> list[int]:
    lo, hi = to_us(start), to_us(end)
    visits = _visits(app)
    ids = app.store.profile_ids()
    return sorted(len(_cut([t for t in visits.get(p, []) if lo < t <= hi])) for p in ids)


def test_a_hand_computed_store(tmp_path: Path) -> None:
    app = Segflow(tmp_path / "s.duckdb")
    try:
        day = [("p1", "page", 0), ("p1", "track", 10), ("p1", "Email Opened", 35)]
        day += [("p1", "screen", 40), ("p1", "page", 71), ("p1", "Email Delivered", 100)]
        day += [("p1", "Order Completed", 200), ("p2", "page", 20), ("p2", "identify", 90)]
        app.store.ingest_messages([_message(f"m{i}", *h) for i, h in enumerate(day)])
        # p1: 0, 10, 40 (30 minutes after 10: the same session), 71 (31 after), 200
        assert _kept(app) == {
            "p1": [_at(0, 40), _at(71, 71), _at(200, 200)],
            "p2": [_at(20, 20)],
        }
        at = T0.__add__
        # 35 < t <= 300: 40 (the session from 0 has a visit in it), 71, 200
        assert _period_sessions(app, at(timedelta(minutes=35)), at(timedelta(minutes=300))) == [
            0,
            3,
        ]
        # shorter than the gap, cut from its own visits: 10 < t <= 39 holds none of p1's
        # visits although a session runs through it; 9 < t <= 30 holds 10 and p2's 20
        assert _period_sessions(app, at(timedelta(minutes=10)), at(timedelta(minutes=39))) == [0, 1]
        assert _period_sessions(app, at(timedelta(minutes=9)), at(timedelta(minutes=30))) == [1, 1]
    finally:
        app.close()


visits = st.lists(
    st.tuples(
        st.sampled_from(["p1", "p2", "p3"]),
        st.sampled_from(["page", "track", "screen", "Email Opened", "Order Completed"]),
        st.integers(min_value=0, max_value=400),
    ),
    min_size=1,
    max_size=30,
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=visits,
    cuts=st.lists(st.integers(min_value=0, max_value=30), max_size=4),
    period=st.tuples(st.integers(-10, 400), st.integers(1, 420)),
)
def test_loads_in_any_order_keep_the_sessions_of_all_visits(
    tmp_path_factory: Any,
    history: list[tuple[str, str, int]],
    cuts: list[int],
    period: tuple[int, int],
) -> None:
    app = Segflow(tmp_path_factory.mktemp("kept") / "s.duckdb")
    try:
        messages = [_message(f"m{i}", *h) for i, h in enumerate(history)]
        bounds = [0, *sorted(c for c in cuts if c < len(messages)), len(messages)]
        for a, b in itertools.pairwise(bounds):
            if a < b:
                app.store.ingest_messages(messages[a:b])
                _assert_kept(app)  # brought up to date after each load
        start = T0 + timedelta(minutes=period[0])
        end = start + timedelta(minutes=period[1])
        assert _period_sessions(app, start, end) == _plain_period_sessions(app, start, end)
    finally:
        app.close()


def test_merged_profiles_join_their_sessions(tmp_path: Path) -> None:
    app = Segflow(tmp_path / "s.duckdb")
    try:
        app.store.ingest_messages(
            [
                _message("a", "anon", "page", 0, anon=True),
                _message("b", "anon", "page", 50, anon=True),
                _message("c", "u1", "track", 25),
                _message("d", "u1", "track", 120),
            ]
        )
        _assert_kept(app)  # anon: 0, 50; u1: 25, 120
        merge = _message("e", "u1", "identify", 130)
        merge["anonymousId"] = "anon"
        report = app.store.ingest_messages([merge])
        assert report.merges
        assert app.store.profile_ids() == ["u1"]
        # 0, 25, 50 now one session; 120 another
        assert _kept(app) == {
            "u1": [(to_us(T0), to_us(T0) + 50 * MIN), (to_us(T0) + 120 * MIN,) * 2]
        }
        _assert_kept(app)
    finally:
        app.close()


def test_an_erased_profile_leaves_no_session(tmp_path: Path) -> None:
    app = Segflow(tmp_path / "s.duckdb")
    try:
        app.store.ingest_messages(
            [_message(f"m{i}", p, "page", m) for i, (p, m) in enumerate([("p1", 0), ("p2", 5)])]
        )
        _assert_kept(app)
        erase(app, None, "p1")
        assert set(_kept(app)) == {"p2"}
        _assert_kept(app)
    finally:
        app.close()


def test_the_sessions_survive_a_reopen_and_follow_later_loads(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    app = Segflow(db)
    app.store.ingest_messages([_message("m1", "p1", "page", 0), _message("m2", "p1", "page", 100)])
    before = _kept(app)
    app.close()
    app = Segflow(db)
    try:
        con = app.store.con
        assert con.execute("SELECT value FROM seq_marks WHERE name = ?", [MARK]).fetchone() == (
            events_seq(con),
        )
        assert _kept(app) == before
        # a late visit between the two sessions joins neither (gaps of 50 minutes) ...
        app.store.ingest_messages([_message("m3", "p1", "track", 50)])
        _assert_kept(app)
        assert len(_kept(app)["p1"]) == 3
        # ... and two more make one session of them all
        app.store.ingest_messages(
            [_message("m4", "p1", "track", 25), _message("m5", "p1", "track", 75)]
        )
        assert _kept(app) == {"p1": [_at(0, 100)]}
    finally:
        app.close()


def test_a_jsonl_load_and_a_store_without_the_table(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    rows = [("p1", "page", 0), ("p1", "track", 45), ("p2", "screen", 10), ("p1", "page", 60)]
    path.write_text("".join(json.dumps(_message(f"m{i}", *r)) + "\n" for i, r in enumerate(rows)))
    db = tmp_path / "s.duckdb"
    app = Segflow(db)
    try:
        app.store.ingest_jsonl(path)
        _assert_kept(app)
        start, end = T0 - timedelta(hours=1), T0 + timedelta(hours=2)
        assert _period_sessions(app, start, end) == [1, 2]
        # a store whose events were loaded around ingestion has no mark: built from all
        con = app.store.con
        con.execute(f"DROP TABLE {TABLE}")
        con.execute("DELETE FROM seq_marks WHERE name = ?", [MARK])
        _assert_kept(app)
        assert _period_sessions(app, start, end) == [1, 2]
    finally:
        app.close()
