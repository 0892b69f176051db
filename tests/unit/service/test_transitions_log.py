"""Transitions read from the change log and by evaluating instants: on a store whose
live evaluator replayed the history, both give the same matrices, per week too, and so
does an independent count from ``members`` at each instant (for random histories)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segflow.model.definition import parse_segment
from segflow.model.time import format_instant
from segflow.realtime import VirtualClock
from segflow.service.analytics import BadRequest, transitions_report
from segflow.service.handle import Segflow
from segflow.service.live import LiveEvaluator

T0 = datetime(2026, 1, 1)
END = T0 + timedelta(days=28)
NOW = datetime(2026, 12, 1)
STAGES = ["vip", "buyers", "browsers"]
SEGMENTS: dict[str, dict[str, Any]] = {
    "vip": {
        "event": "Order Completed",
        "within": "14d",
        "measure": "sum",
        "of": "properties.revenue",
        "gte": 100,
    },
    "buyers": {"event": "Order Completed", "within": "7d"},
    "browsers": {"event": "Product Viewed", "within": "5d"},
}


def _track(user: str, n: int, name: str, hours: float, revenue: float = 0) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": name,
        "messageId": f"{user}-{n}",
        "timestamp": format_instant(T0 + timedelta(hours=hours)),
        "properties": {"revenue": revenue},
    }


def _store(root: Path, messages: list[dict[str, Any]]) -> Segflow:
    """A store holding ``messages`` whose live evaluator replayed them from ``T0`` to
    ``END``: its change log covers every stage over the whole period."""
    app = Segflow(root / "s.duckdb")
    app.registry.save(
        [parse_segment({"id": k, "name": k, "condition": c}) for k, c in SEGMENTS.items()]
    )
    app.store.ingest_messages(messages)
    LiveEvaluator(app, VirtualClock(T0)).replay(start=T0, until=END)
    return app


MESSAGES = [
    # u1: views on day 1, buys 150 on day 9: browsers then vip; vip until day 23
    _track("u1", 0, "Product Viewed", 24),
    _track("u1", 1, "Order Completed", 9 * 24, 150),
    # u2: buys 20 on day 3 (buyers to day 10), views on day 12 (browsers to day 17)
    _track("u2", 0, "Order Completed", 3 * 24, 20),
    _track("u2", 1, "Product Viewed", 12 * 24),
    # u3: views on day 6 and day 20
    _track("u3", 0, "Product Viewed", 6 * 24),
    _track("u3", 1, "Product Viewed", 20 * 24),
    # u4: seen only before the period's weeks matter (day 0.5)
    _track("u4", 0, "Product Viewed", 12),
]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Segflow]:
    sf = _store(tmp_path_factory.mktemp("journeys"), MESSAGES)
    try:
        yield sf
    finally:
        sf.close()


def _matrices(report: dict[str, Any]) -> list[Any]:
    return [report["counts"], *[p["counts"] for p in report["periods"] or []]]


def test_the_log_and_evaluation_give_the_same_weekly_matrices(app: Segflow) -> None:
    start = T0 + timedelta(hours=1)
    logged = transitions_report(app, STAGES, start, END, every="week", now=NOW)
    assert all(s["changes"] == STAGES and s["evaluation"] == [] for s in logged["sources"])
    forced = transitions_report(app, STAGES, start, END, every="week", source="changes", now=NOW)
    evaluated = transitions_report(
        app, STAGES, start, END, every="week", source="evaluation", now=NOW
    )
    assert all(s["evaluation"] == STAGES for s in evaluated["sources"])
    assert _matrices(logged) == _matrices(forced) == _matrices(evaluated)
    assert logged["periods"] == evaluated["periods"]
    # instants: day 0, 7, 14, 21 (each + 1h) and 28; places (vip, buyers, browsers,
    # outside = 0, 1, 2, 3):
    #   u1: outside, outside (view day 1-6), vip (day 9-23), vip, outside
    #   u2: outside, buyers (day 3-10), browsers (day 12-17), outside, outside
    #   u3: outside, browsers (day 6-11), outside, browsers (day 20-25), outside
    #   u4: outside at every instant (browsers from 12h to 5d 12h)
    weeks = [p["counts"] for p in logged["periods"]]
    assert [(p["from"], p["to"]) for p in logged["periods"]][-1] == (
        "2026-01-22T01:00:00.000000Z",
        "2026-01-29T00:00:00.000000Z",
    )
    assert len(weeks) == 4
    assert weeks[0] == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 2]]
    assert weeks[1] == [[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 1]]
    assert weeks[2] == [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1]]
    assert weeks[3] == [[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 2]]
    assert logged["counts"][-1] == [0, 0, 0, 4]
    assert logged["periods"][1]["forward"] == 1  # u2: buyers -> browsers is later in order
    assert logged["periods"][1]["entered"] == 1 and logged["periods"][1]["exited"] == 1


def test_instants_the_log_does_not_cover_are_evaluated(app: Segflow) -> None:
    before = T0 - timedelta(days=3)
    report = transitions_report(app, STAGES, before, END, every="week", now=NOW)
    first, *rest = report["sources"]
    assert (first["changes"], first["evaluation"]) == ([], STAGES)
    assert all(s["changes"] == STAGES for s in rest)
    with pytest.raises(BadRequest) as e:
        transitions_report(app, STAGES, before, END, source="changes", now=NOW)
    assert e.value.param == "source" and "does not cover" in str(e.value)
    with pytest.raises(BadRequest) as e:
        transitions_report(app, STAGES, T0, END, every="month", now=NOW)
    assert e.value.param == "every"
    with pytest.raises(BadRequest) as e:
        transitions_report(app, STAGES, T0, END, source="guess", now=NOW)
    assert e.value.param == "source"


def _by_members(app: Segflow, stages: Sequence[str], a: datetime, b: datetime) -> Counter[Any]:
    """The matrix counted independently: each profile's place from ``members``."""
    k = len(stages)

    def places(t: datetime) -> dict[str, int]:
        member = [set(app.members(s, t)) for s in stages]
        return {
            p: next((i for i, m in enumerate(member) if p in m), k) for p in app.store.profile_ids()
        }

    pa, pb = places(a), places(b)
    return Counter((pa[p], pb[p]) for p in pa)


histories = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "u3", "a1"]),
        st.sampled_from(["Product Viewed", "Order Completed"]),
        st.integers(0, 27 * 24),
        st.sampled_from([10, 60, 120]),
    ),
    min_size=1,
    max_size=14,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=histories, a=st.integers(0, 27 * 24), span=st.integers(1, 28 * 24))
def test_log_matrices_match_an_independent_count_from_members(
    tmp_path_factory: pytest.TempPathFactory,
    events: list[tuple[str, str, int, float]],
    a: int,
    span: int,
) -> None:
    messages = [_track(u, n, name, h, rev) for n, (u, name, h, rev) in enumerate(events)]
    app = _store(tmp_path_factory.mktemp("h"), messages)
    try:
        start = T0 + timedelta(hours=a)
        end = min(start + timedelta(hours=span), END)
        if end <= start:
            return
        report = transitions_report(app, STAGES, start, end, every="day", now=NOW)
        assert all(s["evaluation"] == [] for s in report["sources"])
        want = _by_members(app, STAGES, start, end)
        got = report["counts"]
        assert {(i, j): n for i, row in enumerate(got) for j, n in enumerate(row) if n} == want
        for period in report["periods"]:
            t_a = datetime.fromisoformat(period["from"].rstrip("Z"))
            t_b = datetime.fromisoformat(period["to"].rstrip("Z"))
            cells = {(i, j): n for i, row in enumerate(period["counts"]) for j, n in enumerate(row)}
            assert {c: n for c, n in cells.items() if n} == _by_members(app, STAGES, t_a, t_b)
    finally:
        app.close()
