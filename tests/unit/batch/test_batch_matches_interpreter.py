"""Property test: the SQL evaluator equals the plain-Python interpreter of DESIGN.md §2.

Random definitions over every condition kind, random histories with ties, exact
window boundaries, wrong-typed values and cleared traits, random instants.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segflow.batch import compile as compile_mod
from segflow.batch.run import evaluate
from segflow.model.definition import PAGE_CALLS, SCREEN_CALLS, parse_segment
from segflow.model.history import Event, ProfileHistory, TraitWrite
from segflow.plan.interpret import Interpreter
from segflow.plan.planner import build_plan

from .histories import load

T0 = datetime(2026, 1, 1)
NAMES = ["View", "Add", "Order", "Order Completed", "Product Added", "Product Removed"]
DURS = ["1h", "1d", "2d", "7d"]

offsets = st.integers(min_value=0, max_value=10 * 24).map(lambda h: timedelta(hours=h))
field_values: dict[str, Any] = {
    "properties.category": st.sampled_from([None, "shoes", "watches", "Shoes", 3]),
    "properties.price": st.sampled_from([None, 0, 5, 10.5, 100, "12"]),
    "properties.revenue": st.sampled_from([None, None, 20, 99.5, "7"]),
    "properties.product_id": st.sampled_from([None, "a", "a", "b", 3]),
    "properties.quantity": st.sampled_from([None, None, 1, 2, "2"]),
    "properties.flag": st.sampled_from([None, True, False]),
    "context.device.type": st.sampled_from([None, "mobile", "desktop"]),
}


CALLS = [PAGE_CALLS, SCREEN_CALLS]
"""Page and screen calls: named (``properties.name``) or not, with a path."""
call_values: dict[str, Any] = {
    "properties.name": st.sampled_from([None, "Pricing", "Home", "pricing", 7]),
    "properties.path": st.sampled_from([None, "/pricing", "/", "/c/shoes"]),
}


@st.composite
def events(draw: st.DrawFn) -> Event:
    fields = {k: draw(v) for k, v in field_values.items()}
    name = draw(st.sampled_from([*NAMES, *NAMES, *CALLS]))
    if name in CALLS:
        fields.update({k: draw(v) for k, v in call_values.items()})
    return Event(
        T0 + draw(offsets),
        name,
        {k: v for k, v in fields.items() if v is not None},
    )


trait_writes = st.builds(
    lambda off, key, v, n: TraitWrite(T0 + off, f"t{n}", key, v),
    offsets,
    st.sampled_from(["country", "age", "signup"]),
    st.sampled_from(
        [None, "PL", "DE", 30, 35, 45.5, True, "2026-01-03T00:00:00Z", "2026-01-05", "not a date"]
    ),
    st.integers(0, 10_000),
)


@st.composite
def histories(draw: st.DrawFn) -> list[ProfileHistory]:
    n = draw(st.integers(1, 6))
    out = []
    for i in range(n):
        evs = draw(st.lists(events(), max_size=8))
        evs = [
            Event(e.timestamp, e.name, e.fields, message_id=f"p{i}e{j}") for j, e in enumerate(evs)
        ]
        out.append(
            ProfileHistory(
                f"p{i}",
                evs,
                draw(st.lists(trait_writes, max_size=4, unique_by=lambda w: w.message_id)),
                frozenset({"vip"}) if draw(st.booleans()) else frozenset(),
            )
        )
    return out


windows = st.one_of(
    st.none(),
    st.sampled_from(DURS),
    st.sampled_from([{"from_ago": "7d", "to_ago": "1d"}, {"from_ago": "2d", "to_ago": "1h"}]),
    st.sampled_from(
        [{"since": "2026-01-03T00:00:00Z"}, {"from": "2026-01-02T00:00:00Z", "to": "2026-01-06"}]
    ),
)

predicates = st.sampled_from(
    [
        {"property": "category", "eq": "shoes"},
        {"property": "category", "in": ["shoes", "watches", 3]},
        {"property": "category", "starts_with": "S"},
        {"property": "category", "ne": "shoes"},
        {"property": "category", "not_in": ["watches"]},
        {"property": "price", "gt": 5},
        {"property": "price", "between": [1, 20]},
        {"property": "price", "exists": True},
        {"property": "price", "eq": "12"},
        {"property": "flag", "eq": True},
        {"property": "context.device.type", "eq": "mobile"},
        {"property": "context.device.type", "not_exists": True},
        {"property": "missing_prop", "exists": False},
    ]
)


call_predicates = st.sampled_from(
    [
        {"property": "path", "eq": "/pricing"},
        {"property": "path", "starts_with": "/c/"},
        {"property": "name", "in": ["Home", "pricing"]},
        {"property": "name", "exists": False},
    ]
)


@st.composite
def event_filter(draw: st.DrawFn) -> dict[str, Any]:
    """A track filter (``event:``) or, one time in four, a page or screen filter."""
    kind = draw(st.sampled_from(["event", "event", "event", "page", "screen"]))
    if kind != "event":
        pages = draw(st.sampled_from([True, "Pricing", ["Home", "Pricing"], "pricing"]))
        out: dict[str, Any] = {kind: pages}
        where = draw(st.lists(st.one_of(call_predicates, predicates), max_size=2))
        if where:
            out["where"] = where
        return out
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=2, unique=True))
    out = {"event": names[0] if len(names) == 1 else names}
    where = draw(st.lists(predicates, max_size=2))
    if where:
        out["where"] = where
    return out


@st.composite
def event_condition(draw: st.DrawFn) -> dict[str, Any]:
    out = draw(event_filter())
    w = draw(windows)
    if w is not None:
        out["within"] = w
    measure = draw(
        st.sampled_from(
            ["count", "sum", "avg", "min", "max", "distinct", "top", "first_time", "last_time"]
        )
    )
    if measure == "count":
        out.update(draw(st.sampled_from([{}, {"gte": 2}, {"eq": 0}, {"lt": 1}, {"in": [1, 3]}])))
    elif measure in ("first_time", "last_time"):
        out["measure"] = measure
        out.update(
            draw(
                st.sampled_from(
                    [
                        {"within_last": "2d"},
                        {"older_than": "1d"},
                        {"before": "2026-01-04T00:00:00Z"},
                        {"after": "2026-01-03"},
                        {"exists": True},
                        {"not_exists": True},
                    ]
                )
            )
        )
    elif measure == "top":
        out["measure"] = measure
        out["of"] = draw(st.sampled_from(["category", "category", "price", "path"]))
        out.update(
            draw(
                st.sampled_from(
                    [
                        {"eq": "shoes"},
                        {"in": ["Shoes", "watches"]},
                        {"ne": "shoes"},
                        {"starts_with": "s"},
                        {"exists": True},
                        {"not_exists": True},
                        {"eq": 5},
                        {"contains": "/"},
                    ]
                )
            )
        )
    else:
        out["measure"] = measure
        out["of"] = "category" if measure == "distinct" else "price"
        if measure == "distinct" and ("page" in out or "screen" in out):
            out["of"] = draw(st.sampled_from(["path", "name", "category"]))
        out.update(draw(st.sampled_from([{"gt": 5}, {"gte": 0}, {"eq": 10.5}, {"lte": 2}])))
    return out


trait_conditions = st.sampled_from(
    [
        {"trait": "country", "eq": "PL"},
        {"trait": "country", "in": ["PL", "DE"]},
        {"trait": "country", "ne": "PL"},
        {"trait": "country", "exists": True},
        {"trait": "country", "not_exists": True},
        {"trait": "age", "gt": 35},
        {"trait": "age", "between": [30, 40]},
        {"trait": "age", "eq": True},
        {"trait": "signup", "within_last": "3d"},
        {"trait": "signup", "older_than": "1d"},
        {"trait": "signup", "after": "2026-01-04"},
        {"trait": "country", "contains": "L"},
        {"trait": "country", "ends_with": "E"},
    ]
)


@st.composite
def abandonment(draw: st.DrawFn) -> dict[str, Any]:
    out = draw(event_filter())
    out["not_followed_by"] = draw(st.one_of(st.sampled_from(NAMES), event_filter()))
    out["for"] = draw(st.sampled_from(DURS))
    w = draw(windows)
    if w is not None:
        out["within"] = w
    return out


@st.composite
def sequence(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {"sequence": draw(st.lists(event_filter(), min_size=2, max_size=3))}
    w = draw(windows)
    if w is not None:
        out["within"] = w
    if draw(st.booleans()):
        out["span"] = draw(st.sampled_from(DURS))
    return out


computed_conditions = st.builds(
    lambda name_cmp, x: {"computed": name_cmp[0], name_cmp[1]: x},
    st.sampled_from(
        [
            ("ltv", "gt"),
            ("ltv", "eq"),
            ("order_count", "gte"),
            ("aov", "lte"),
            ("days_since_last_order", "gt"),
            ("days_since_last_order", "gte"),
            ("days_since_last_order", "lt"),
            ("days_since_last_order", "lte"),
            ("cart_items", "gte"),
            ("cart_items", "eq"),
            ("cart_value", "gt"),
            ("cart_value", "lte"),
        ]
    ),
    st.sampled_from([0, 1, 2, 1.5, 1 / 24, 3, 10, 20, 99.5, -1]),
) | st.sampled_from(
    [
        {"computed": "days_since_last_order", "between": [1, 2.5]},
        {"computed": "days_since_last_order", "exists": True},
        {"computed": "last_order_at", "within_last": "2d"},
        {"computed": "first_order_at", "older_than": "1d"},
        {"computed": "top_category_30d", "eq": "shoes"},
        {"computed": "wishlist", "contains": "shoes"},
        {"computed": "wishlist", "not_exists": True},
    ]
)
"""Computed traits of the profile view (they plan into event conditions)."""

leaves = st.one_of(
    event_condition(),
    trait_conditions,
    computed_conditions,
    abandonment(),
    sequence(),
    st.builds(lambda lo: {"bucket": {"salt": "s", "from": lo, "to": lo + 40}}, st.integers(0, 60)),
    st.just({"in_segment": "vip"}),
)

conditions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=6,
)

instants = st.integers(0, 11 * 24 * 4).map(lambda q: T0 + timedelta(minutes=15 * q))


@contextmanager
def shared_scans(most: int | None) -> Iterator[None]:
    """Compile with at most ``most`` scans of each kind (None: the default), as a plan
    over more event-name sets, traits or sequences than the limits shares them."""
    names = ("MAX_EVENT_SCANS", "MAX_TRAIT_SCANS", "MAX_SEQUENCE_SCANS")
    limits = {n: getattr(compile_mod, n) for n in names}
    for n in names:
        setattr(compile_mod, n, most or limits[n])
    try:
        yield
    finally:
        for n, v in limits.items():
            setattr(compile_mod, n, v)


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
)
def test_sql_evaluator_equals_interpreter(
    hs: list[ProfileHistory],
    conds: list[dict[str, Any]],
    at: datetime,
    numbered: bool,
    scans: int | None,
) -> None:
    """Keyed on profile numbers (as DuckDBStore stores) or on profile ids (a store made
    from the DDL alone), with one scan per event-name set, trait and sequence or with
    scans shared (``scans``, as a plan over many of them shares them): the same
    members every way."""
    segments = [parse_segment({"id": "vip", "mode": "static", "members": ["x"]})]
    segments += [parse_segment({"id": f"s{i}", "condition": c}) for i, c in enumerate(conds)]
    segments.append(parse_segment({"id": "ref", "condition": {"not": {"in_segment": "s0"}}}))
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
