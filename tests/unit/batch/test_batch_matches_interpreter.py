"""Property test: the SQL evaluator equals the plain-Python interpreter of DESIGN.md §2.

Random definitions over every condition kind, random histories with ties, exact
window boundaries, wrong-typed values and cleared traits, random instants.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segflow.model.definition import PAGE_CALLS, SCREEN_CALLS, parse_segment
from segflow.model.groups import Group
from segflow.model.history import Event, ProfileHistory, TraitWrite
from segflow.plan.interpret import Interpreter
from segflow.plan.planner import build_plan
from segflow.store.duckdb.batch import evaluate
from tests.helpers import load, shared_scans
from tests.strategies import T0, conditions, histories, instants


@settings(
    max_examples=int(os.environ.get("SEGFLOW_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    hs=histories(),
    conds=st.lists(conditions, min_size=1, max_size=3),
    at=instants,
    numbered=st.booleans(),
    scans=st.sampled_from([None, 1, 2]),
    order=st.permutations(["vip", "s0", "ref"]),
)
def test_sql_evaluator_equals_interpreter(
    hs: list[ProfileHistory],
    conds: list[dict[str, Any]],
    at: datetime,
    numbered: bool,
    scans: int | None,
    order: list[str],
) -> None:
    """Keyed on profile numbers (as DuckDBStore stores) or on profile ids (a store made
    from the DDL alone), with one scan per event-name set, trait and sequence or with
    scans shared (``scans``, as a plan over many of them shares them): the same
    members every way."""
    segments = [parse_segment({"id": "vip", "mode": "static", "members": ["x"]})]
    segments += [parse_segment({"id": f"s{i}", "condition": c}) for i, c in enumerate(conds)]
    segments.append(parse_segment({"id": "ref", "condition": {"not": {"in_segment": "s0"}}}))
    segments += Group(
        "tiers", "Tiers", (*order, *(f"s{i}" for i in range(1, len(conds))))
    ).resolve()
    con = duckdb.connect()
    load(con, hs, numbered=numbered)
    with shared_scans(scans):
        result = evaluate(con, segments, at)
    plan = build_plan(segments)
    got = result.membership_map()
    for h in hs:
        expected = Interpreter(plan, h, at).segments()
        for sid, member in expected.items():
            assert (h.profile_id in got[sid]) == member, (sid, h.profile_id, at)


def members_with_shared_scans(
    hist: list[ProfileHistory], conds: list[dict[str, Any]], at: datetime
) -> dict[str, set[str]]:
    """Members of segments s0, s1, ... (``conds``) at ``at``, with one shared scan of
    each kind."""
    segments = [parse_segment({"id": f"s{i}", "condition": c}) for i, c in enumerate(conds)]
    con = duckdb.connect()
    load(con, hist, numbered=True)
    with shared_scans(1):
        return evaluate(con, segments, at).membership_map()


def test_shared_scans_keep_each_feature_apart() -> None:
    """Sequences, traits and event names packed into one scan each still answer for
    themselves (their positions inside the shared scan are not mixed up)."""
    hist = [
        ProfileHistory(
            "p0",
            [
                Event(T0, "View", {}, message_id="a"),
                Event(T0 + timedelta(hours=1), "Add", {}, message_id="b"),
            ],
            [TraitWrite(T0, "w0", "country", "PL")],
        ),
        ProfileHistory(
            "p1",
            [
                Event(T0, "Add", {}, message_id="c"),
                Event(T0 + timedelta(hours=1), "View", {}, message_id="d"),
                Event(T0 + timedelta(hours=2), "Order", {}, message_id="e"),
            ],
            [TraitWrite(T0, "w1", "age", 40)],
        ),
    ]
    conds: list[dict[str, Any]] = [
        {"sequence": [{"event": "View"}, {"event": "Add"}]},
        {"sequence": [{"event": "Add"}, {"event": "View"}]},
        {"sequence": [{"event": "View"}, {"event": "Order"}]},
        {"trait": "country", "eq": "PL"},
        {"trait": "age", "gt": 30},
        {"event": "Order"},
        {"event": "View", "gte": 1},
    ]
    got = members_with_shared_scans(hist, conds, T0 + timedelta(days=1))
    assert got == {
        "s0": {"p0"},
        "s1": {"p1"},
        "s2": {"p1"},
        "s3": {"p0"},
        "s4": {"p1"},
        "s5": {"p1"},
        "s6": {"p0", "p1"},
    }


def test_shared_scans_tell_page_and_screen_calls_from_track_events() -> None:
    """Page and screen calls, a track event of a page's name, a ``top`` measure and
    a measure split per name, all in one shared scan, each answer for itself."""
    shoes = {"properties.category": "shoes"}
    hist = [
        ProfileHistory(
            "p0",
            [
                Event(T0, PAGE_CALLS, {"properties.name": "Pricing"}, message_id="a"),
                Event(T0 + timedelta(hours=1), "View", shoes, message_id="b"),
                Event(T0 + timedelta(hours=2), "View", shoes, message_id="c"),
                Event(
                    T0 + timedelta(hours=3),
                    "View",
                    {"properties.category": "watches"},
                    message_id="d",
                ),
            ],
            [],
        ),
        ProfileHistory(
            "p1",
            [
                Event(T0, SCREEN_CALLS, {"properties.name": "Cart"}, message_id="e"),
                Event(T0 + timedelta(hours=1), "Pricing", {}, message_id="f"),
                Event(
                    T0 + timedelta(hours=2),
                    "View",
                    {"properties.category": "watches"},
                    message_id="g",
                ),
            ],
            [],
        ),
    ]
    conds: list[dict[str, Any]] = [
        {"page": "Pricing"},
        {"screen": True},
        {"event": "Pricing"},
        {"page": True, "where": [{"property": "name", "eq": "Cart"}]},
        {"event": "View", "measure": "top", "of": "category", "eq": "shoes"},
        {"event": ["View", "Pricing"], "within": "7d", "gte": 2},
        {"screen": "Cart", "measure": "first_time", "exists": True},
    ]
    got = members_with_shared_scans(hist, conds, T0 + timedelta(days=1))
    assert got == {
        "s0": {"p0"},
        "s1": {"p1"},
        "s2": {"p1"},
        "s3": set(),
        "s4": {"p0"},
        "s5": {"p0", "p1"},
        "s6": {"p1"},
    }
    segments = [parse_segment({"id": f"s{i}", "condition": c}) for i, c in enumerate(conds)]
    plan = build_plan(segments)
    for h in hist:
        for sid, member in Interpreter(plan, h, T0 + timedelta(days=1)).segments().items():
            assert (h.profile_id in got[sid]) == member, (sid, h.profile_id)
