"""Priority groups in the real-time evaluator: a profile moves between a group's
resolved members at the exact instant, and agrees with the interpreter."""

from __future__ import annotations

from datetime import datetime, timedelta

from segflow.model.definition import Segment, parse_segment
from segflow.model.groups import Group
from segflow.model.history import Event, ProfileHistory
from segflow.plan.interpret import Interpreter
from segflow.plan.planner import build_plan
from segflow.realtime import Change, RealtimeRunner, VirtualClock

T = datetime(2026, 6, 1, 12)
US = timedelta(microseconds=1)
D = timedelta(days=1)
TIERS = Group("tiers", "Tiers", ("buyer", "viewer"))


def library() -> list[Segment]:
    segs = [
        parse_segment({"id": "buyer", "condition": {"event": "Order", "within": "2d"}}),
        parse_segment({"id": "viewer", "condition": {"event": "View", "within": "7d"}}),
    ]
    return [*segs, *TIERS.resolve()]


def runner() -> RealtimeRunner:
    return RealtimeRunner(build_plan(library()), clock=VirtualClock(T - D))


def resolved(changes: list[Change]) -> list[tuple[str, bool, datetime, str]]:
    return [(c.segment_id, c.entered, c.at, c.reason) for c in changes if ":" in c.segment_id]


def test_moves_up_on_an_event_and_down_at_the_exact_window_expiry() -> None:
    r = runner()
    assert resolved(r.ingest("p", Event(T, "View", {}), T)) == [("tiers:viewer", True, T, "event")]
    order = T + D
    assert resolved(r.ingest("p", Event(order, "Order", {}), order)) == [
        ("tiers:buyer", True, order, "event"),
        ("tiers:viewer", False, order, "event"),
    ]
    assert r.segments_of("p") == {"buyer", "viewer", "tiers:buyer"}
    assert r.advance_to(order + 2 * D - US) == []
    assert resolved(r.advance_to(order + 2 * D)) == [
        ("tiers:buyer", False, order + 2 * D, "window_expired"),
        ("tiers:viewer", True, order + 2 * D, "window_expired"),
    ]
    assert resolved(r.advance_to(T + 7 * D)) == [
        ("tiers:viewer", False, T + 7 * D, "window_expired")
    ]
    assert r.segments_of("p") == set()


def test_a_profile_qualifying_for_none_is_in_no_resolved_member() -> None:
    r = runner()
    r.ingest("p", Event(T, "Signup", {}), T)
    assert r.segments_of("p") == set()
    h = ProfileHistory("p", [Event(T, "Signup", {})], [], frozenset())
    got = Interpreter(build_plan(library()), h, T).segments()
    assert got == {"buyer": False, "viewer": False, "tiers:buyer": False, "tiers:viewer": False}


def test_at_most_one_resolved_member_holds_at_every_instant() -> None:
    plan = build_plan(library())
    h = ProfileHistory(
        "p",
        [Event(T, "View", {}), Event(T + D, "Order", {}), Event(T + 2 * D, "View", {})],
        [],
        frozenset(),
    )
    for hours in range(0, 24 * 12, 6):
        got = Interpreter(plan, h, T + timedelta(hours=hours)).segments()
        held = [s for s in TIERS.resolved_ids() if got[s]]
        assert len(held) <= 1
        assert bool(held) == (got["buyer"] or got["viewer"])
