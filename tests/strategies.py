"""Hypothesis strategies shared by the evaluator tests: segment definitions over every
condition kind, profile histories with ties, exact window boundaries, wrong-typed values
and cleared traits, and the streams the real-time and live conformance suites replay."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from segflow.model.definition import PAGE_CALLS, SCREEN_CALLS, Segment, parse_segment
from segflow.model.groups import Group
from segflow.model.history import Event, ProfileHistory, TraitWrite

# --------------------------------------------------------------------------- histories

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


def nested(
    leaves: st.SearchStrategy[dict[str, Any]], max_leaves: int
) -> st.SearchStrategy[dict[str, Any]]:
    """Conditions: ``leaves`` nested in ``all``, ``any`` and ``not``."""
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(lambda xs: {"all": xs}, st.lists(inner, max_size=3)),
            st.builds(lambda xs: {"any": xs}, st.lists(inner, max_size=3)),
            st.builds(lambda x: {"not": x}, inner),
        ),
        max_leaves=max_leaves,
    )


conditions = nested(leaves, 6)

instants = st.integers(0, 11 * 24 * 4).map(lambda q: T0 + timedelta(minutes=15 * q))


# --------------------------------------------------------------------------- trees

leaf_docs = st.sampled_from(
    [
        {"trait": "country", "in": ["PL", "DE"]},
        {"event": "Order Completed", "within": "30d"},
        {"event": "Product Viewed", "within": {"from_ago": "9d", "to_ago": "2d"}, "gte": 3},
        {"event": "Order Completed", "measure": "last_time", "older_than": "90d"},
        {"event": "A", "not_followed_by": {"event": "B"}, "for": "1h"},
        {"sequence": [{"event": "A"}, {"event": "B"}], "span": "1h"},
        {"bucket": {"salt": "s", "from": 0, "to": 10}},
        {"in_segment": "other"},
        {"page": "Pricing", "within": "7d", "gte": 3},
        {"computed": "ltv", "gt": 1000},
        {"computed": "days_since_last_order", "between": [1, 2.5]},
        {
            "page": True,
            "where": [{"property": "path", "eq": "/p"}],
            "measure": "distinct",
            "of": "path",
            "gte": 2,
        },
        {"screen": ["Cart", "Home"], "not_followed_by": {"page": True}, "for": "1h"},
        {"sequence": [{"page": "Pricing"}, {"event": "B"}], "span": "1h"},
    ]
)
trees = nested(leaf_docs, 8)


# --------------------------------------------------------------------------- streams

US = timedelta(microseconds=1)
START = T0 - timedelta(days=1)
END = T0 + timedelta(days=12)

time_predicates = st.sampled_from(
    [
        {"property": "when", "within_last": "2d"},
        {"property": "when", "within_last": "7d"},
        {"property": "when", "older_than": "1d"},
        {"property": "when", "after": "2026-01-04"},
    ]
)


@st.composite
def with_time_predicate(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> Any:
    """A condition from ``base`` with a time-relative predicate added to one filter."""
    c = dict(draw(base))
    pred = draw(time_predicates)
    if "sequence" in c:
        steps = [dict(s) for s in c["sequence"]]
        i = draw(st.integers(0, len(steps) - 1))
        steps[i]["where"] = [*steps[i].get("where", []), pred]
        c["sequence"] = steps
    else:
        c["where"] = [*c.get("where", []), pred]
    return c


relative_sequences = st.builds(
    lambda s, w: {**s, "within": w},
    sequence(),
    st.sampled_from(["1d", "2d", "7d", {"from_ago": "2d", "to_ago": "1h"}]),
)
"""Sequences whose events leave the window (the chain must be recomputed as they do)."""

extra_leaves = st.one_of(
    relative_sequences,
    with_time_predicate(event_condition()),
    with_time_predicate(sequence()),
    with_time_predicate(abandonment()),
    st.sampled_from(
        [
            {"trait": "signup", "within_last": "12h"},
            {"trait": "signup", "older_than": "2d"},
            {"trait": "signup", "before": "2026-01-04"},
            {"trait": "age", "lte": 35},
            {"event": "View", "within": {"from_ago": "2d", "to_ago": "1d"}, "gte": 2},
            {"event": "Add", "measure": "last_time", "within_last": "1d"},
            {"event": "Order", "measure": "first_time", "older_than": "2d", "within": "7d"},
        ]
    ),
)

rt_conditions = nested(st.one_of(leaves, extra_leaves), 6)

WHEN = [None, None, "2026-01-03T00:00:00Z", "2026-01-05", "2026-01-02T12:00:00Z", "nope"]
LAGS = [timedelta(0)] * 3 + [
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=3),
    -timedelta(hours=1),
    -timedelta(days=1),
]


dense_events = st.builds(
    lambda e, h: Event(T0 + timedelta(hours=h), e.name, e.fields),
    events(),
    st.sampled_from([0, 1, 2, 23, 24, 25, 48, 49, 72, 168, 169, 192]),
)
"""Events on a grid where the plan's durations (1h, 1d, 2d, 7d) separate them exactly."""


def stream_segments(conds: list[Any], group: Group | None = None) -> list[Segment]:
    """The segments a stream is replayed against: a static ``vip``, ``s<i>`` for each
    condition, ``ref`` (not ``s0``) and ``chain`` (``ref`` and the last ``s<i>``); with
    a priority ``group``, its resolved members and ``picked`` (not the group's second
    resolved member, or its first), which reads a resolution with ``in_segment``."""
    segments = [parse_segment({"id": "vip", "mode": "static", "members": ["x"]})]
    segments += [parse_segment({"id": f"s{i}", "condition": c}) for i, c in enumerate(conds)]
    segments.append(parse_segment({"id": "ref", "condition": {"not": {"in_segment": "s0"}}}))
    chain = {"all": [{"in_segment": "ref"}, {"in_segment": f"s{len(conds) - 1}"}]}
    segments.append(parse_segment({"id": "chain", "condition": chain}))
    if group is not None:
        segments += group.resolve()
        ref = {"group": group.id, "segment": group.segments[min(1, len(group.segments) - 1)]}
        segments.append(parse_segment({"id": "picked", "condition": {"not": {"in_segment": ref}}}))
    return segments


@st.composite
def stream_groups(draw: st.DrawFn, n_conds: int) -> Group | None:
    """A priority group over some of ``stream_segments``' segments in a random order
    (or none)."""
    ids = ["vip", *(f"s{i}" for i in range(n_conds)), "ref", "chain"]
    order = draw(st.one_of(st.none(), st.permutations(ids)))
    if order is None:
        return None
    size = draw(st.integers(min_value=1, max_value=len(ids)))
    return Group("tiers", "Tiers", tuple(order[:size]))


# --------------------------------------------------------------------------- live

LIVE_BASE_EXAMPLES = int(
    os.environ.get("SEGFLOW_EXAMPLES")
    or (settings.default.max_examples if settings.get_current_profile_name() == "long" else 200)
)
LIVE_EXAMPLES = max(20, LIVE_BASE_EXAMPLES // 4)
"""Each live example ingests through the store and runs SQL, so fewer of them are run."""

Input = Event | TraitWrite


@dataclass
class Merge:
    source: str
    target: str
    kind: str  # identify | alias
    timestamp: datetime
    message_id: str


@dataclass
class LiveScenario:
    segments: list[Segment]
    own: dict[str, list[tuple[datetime, Input]]]  # profile -> (arrival, input)
    statics: dict[str, frozenset[str]]
    anonymous: set[str]
    merges: list[tuple[datetime, Merge]]
    commits: list[datetime]
    checkpoints: list[datetime]
    standalone: frozenset[str] = frozenset()
    """Message ids of trait writes stored straight into ``traits`` (no event) when their
    profile exists and was not merged away by then (else sent as identify calls)."""
    group: Group | None = None
    """A priority group, whose resolved members are among ``segments``."""


@st.composite
def live_scenarios(draw: st.DrawFn) -> LiveScenario:
    conds = draw(st.lists(rt_conditions, min_size=1, max_size=3))
    group = draw(stream_groups(len(conds)))
    segments = stream_segments(conds, group)
    hs = draw(histories())
    own: dict[str, list[tuple[datetime, Input]]] = {}
    statics: dict[str, frozenset[str]] = {}
    standalone: set[str] = set()
    for h in hs:
        more = draw(st.lists(dense_events, max_size=4))
        items: list[Input] = []
        for j, e in enumerate([*h.events, *more]):
            when = draw(st.sampled_from(WHEN))
            fields = {**e.fields, "properties.when": when} if when else dict(e.fields)
            items.append(Event(e.timestamp, e.name, fields, f"{h.profile_id}e{j}"))
        for w in h.traits:
            items.append(TraitWrite(w.timestamp, f"{h.profile_id}-{w.message_id}", w.key, w.value))
            if draw(st.booleans()):
                standalone.add(items[-1].message_id)
        own[h.profile_id] = [
            (max(START, i.timestamp + draw(st.sampled_from(LAGS))), i) for i in items
        ]
        statics[h.profile_id] = h.static_segments
    pids = sorted(own)
    anonymous: set[str] = set()
    merges: list[tuple[datetime, Merge]] = []
    if len(pids) >= 2:
        sources = draw(st.lists(st.sampled_from(pids[1:]), max_size=2, unique=True))
        users = [p for p in pids if p not in sources]
        for src in sources:
            tgt = draw(st.sampled_from(users))
            ts = START + timedelta(days=1) + draw(offsets)
            arrival = max(START, ts + draw(st.sampled_from(LAGS)))
            kind = draw(st.sampled_from(["identify", "alias"]))
            merges.append((arrival, Merge(src, tgt, kind, ts, f"merge-{src}")))
            anonymous.add(src)
    arrivals = sorted(
        {a for items in own.values() for a, _i in items} | {a for a, _m in merges} | {START}
    )
    cuts = sorted(set(draw(st.lists(st.sampled_from(arrivals), min_size=1, max_size=3))))
    commits = [*cuts, arrivals[-1]] if cuts[-1] < arrivals[-1] else cuts
    last = max([END, *commits])
    checkpoints = [*sorted(set(draw(st.lists(instants, max_size=3)))), last]
    return LiveScenario(
        segments,
        own,
        statics,
        anonymous,
        merges,
        commits,
        checkpoints,
        frozenset(standalone),
        group,
    )
