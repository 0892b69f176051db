"""Hand-worked behaviour of the real-time evaluator: exact instants, reasons, sharing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from segflow.model.bucket import bucket_of
from segflow.model.definition import PAGE_CALLS, Segment, parse_segment
from segflow.model.history import Event, ProfileHistory, TraitWrite
from segflow.plan.interpret import Interpreter
from segflow.plan.planner import build_plan
from segflow.realtime import (
    Change,
    ProfileEngine,
    RealtimeRunner,
    VirtualClock,
    compile_engine,
)

T = datetime(2026, 6, 1, 12, 0, 0)
US = timedelta(microseconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)


def ev(name: str, at: datetime, **fields: Any) -> Event:
    return Event(at, name, {f"properties.{k}": v for k, v in fields.items()})


def segments(**conditions: Any) -> list[Segment]:
    return [parse_segment({"id": sid, "condition": c}) for sid, c in conditions.items()]


def runner(*segs: Segment, start: datetime = T - D, **kw: Any) -> RealtimeRunner:
    return RealtimeRunner(build_plan(segs), clock=VirtualClock(start), **kw)


def change(sid: str, entered: bool, at: datetime, reason: str, pid: str = "p") -> Change:
    return Change(sid, pid, entered, at, reason)  # type: ignore[arg-type]


def test_member_exits_viewed_window_at_exactly_ts_plus_7d_with_no_event() -> None:
    r = runner(*segments(viewed={"event": "Product Viewed", "within": "7d"}))
    assert r.ingest("p", ev("Product Viewed", T), T) == [change("viewed", True, T, "event")]
    assert r.next_deadline() == T + 7 * D
    assert r.advance_to(T + 7 * D - US) == []
    assert r.segments_of("p") == {"viewed"}
    assert r.advance_to(T + 7 * D) == [change("viewed", False, T + 7 * D, "window_expired")]
    assert r.segments_of("p") == set()
    assert r.next_deadline() is None


def test_cart_abandoner_enters_at_add_plus_24h_and_exits_on_order() -> None:
    cond = {
        "event": "Product Added",
        "not_followed_by": "Order Completed",
        "for": "24h",
        "within": "7d",
    }
    r = runner(*segments(cart=cond))
    assert r.ingest("p", ev("Product Added", T), T) == []
    assert r.next_deadline() == T + 24 * H
    assert r.advance_to(T + 24 * H - US) == []
    assert r.advance_to(T + 24 * H) == [change("cart", True, T + 24 * H, "window_expired")]
    order = T + 30 * H
    assert r.ingest("p", ev("Order Completed", order), order) == [
        change("cart", False, order, "event")
    ]


def test_cart_left_again_after_an_order_waits_24h_from_the_new_add() -> None:
    cond = {"event": "Product Added", "not_followed_by": "Order Completed", "for": "24h"}
    r = runner(*segments(cart=cond))
    r.ingest("p", ev("Product Added", T), T)
    r.ingest("p", ev("Order Completed", T + H), T + H)
    r.ingest("p", ev("Product Added", T + 2 * H), T + 2 * H)
    assert r.advance_to(T + 40 * H) == [change("cart", True, T + 26 * H, "window_expired")]


def test_pure_absence_holds_for_a_profile_that_never_ordered_and_returns_30d_after() -> None:
    r = runner(*segments(no_order={"not": {"event": "Order Completed", "within": "30d"}}))
    assert r.add_profile("never", T - D) == [change("no_order", True, T - D, "event", "never")]
    assert r.add_profile("buyer", T - D) == [change("no_order", True, T - D, "event", "buyer")]
    assert r.ingest("buyer", ev("Order Completed", T), T) == [
        change("no_order", False, T, "event", "buyer")
    ]
    assert r.advance_to(T + 30 * D - US) == []
    assert r.advance_to(T + 30 * D) == [
        change("no_order", True, T + 30 * D, "window_expired", "buyer")
    ]
    assert r.memberships() == {"no_order": {"never", "buyer"}}


def test_count_threshold_exits_when_the_third_most_recent_view_leaves() -> None:
    r = runner(*segments(busy={"event": "View", "within": "7d", "gte": 3}))
    for i in range(5):
        r.ingest("p", ev("View", T + i * H), T + i * H)
    assert r.segments_of("p") == {"busy"}
    # five views, three needed: nothing can flip before the third newest (T + 2h) leaves
    st = r.states["p"]
    assert r.engine.next_deadline(st) == T + 2 * H + 7 * D
    assert r.advance_to(T + 2 * H + 7 * D - US) == []
    assert r.advance_to(T + 2 * H + 7 * D) == [
        change("busy", False, T + 2 * H + 7 * D, "window_expired")
    ]


def test_sequence_with_span() -> None:
    cond = {
        "sequence": [
            {"event": "Products Searched"},
            {"event": "Product Added"},
            {"event": "Order Completed"},
        ],
        "within": "30d",
        "span": "1h",
    }
    r = runner(*segments(quick=cond))
    added = T + 30 * M
    for pid, order_at in (("fast", T + 60 * M), ("slow", T + 61 * M)):
        r.ingest(pid, ev("Products Searched", T), T)
        r.ingest(pid, ev("Product Added", added), added)
        r.ingest(pid, ev("Order Completed", order_at), order_at)
    assert r.segments_of("fast") == {"quick"}
    assert r.segments_of("slow") == set()
    assert r.log == [change("quick", True, T + H, "event", "fast")]
    # the chain's first event leaves the 30 d window first
    assert r.advance_to(T + 31 * D) == [
        change("quick", False, T + 30 * D, "window_expired", "fast")
    ]


def test_sequence_steps_need_strictly_increasing_times() -> None:
    cond = {"sequence": [{"event": "A"}, {"event": "B"}], "within": "1d"}
    r = runner(*segments(seq=cond))
    r.ingest("p", ev("B", T), T)
    r.ingest("p", ev("A", T), T)
    assert r.segments_of("p") == set()
    r.ingest("p", ev("B", T + US), T + US)
    assert r.segments_of("p") == {"seq"}


def test_date_trait_within_last_enters_at_the_date_and_leaves_30d_later() -> None:
    r = runner(*segments(new={"trait": "created_at", "within_last": "30d"}))
    signup = T + 2 * D
    write = TraitWrite(T, "m1", "created_at", "2026-06-03T12:00:00Z")
    assert r.set_trait("p", write, T) == []
    assert r.next_deadline() == signup
    assert r.advance_to(signup) == [change("new", True, signup, "window_expired")]
    assert r.advance_to(signup + 30 * D) == [
        change("new", False, signup + 30 * D, "window_expired")
    ]


def test_trait_changes_clears_and_ties_break_by_message_id() -> None:
    r = runner(
        *segments(
            pl={"trait": "country", "eq": "PL"}, none={"trait": "country", "not_exists": True}
        )
    )
    r.add_profile("p", T - D)
    assert r.set_trait("p", TraitWrite(T, "b", "country", "PL"), T) == [
        change("none", False, T, "trait_changed"),
        change("pl", True, T, "trait_changed"),
    ]
    assert r.set_trait("p", TraitWrite(T, "a", "country", "DE"), T) == []  # older message id
    assert r.set_trait("p", TraitWrite(T + H, "c", "country", None), T + H) == [
        change("none", True, T + H, "trait_changed"),
        change("pl", False, T + H, "trait_changed"),
    ]


def test_first_time_within_last_and_last_time_older_than() -> None:
    r = runner(
        *segments(
            first={"event": "Order Completed", "measure": "first_time", "within_last": "30d"},
            lapsed={"event": "Order Completed", "measure": "last_time", "older_than": "90d"},
        )
    )
    r.ingest("p", ev("Order Completed", T), T)
    r.ingest("p", ev("Order Completed", T + 10 * D), T + 10 * D)
    assert r.advance_to(T + 200 * D) == [
        change("first", False, T + 30 * D, "window_expired"),
        change("lapsed", True, T + 100 * D, "window_expired"),
    ]


def test_relative_range_window_events_enter_at_ts_plus_to_ago() -> None:
    cond = {"event": "Order Completed", "within": {"from_ago": "90d", "to_ago": "30d"}}
    r = runner(*segments(mid=cond))
    assert r.ingest("p", ev("Order Completed", T), T) == []
    assert r.advance_to(T + 100 * D) == [
        change("mid", True, T + 30 * D, "window_expired"),
        change("mid", False, T + 90 * D, "window_expired"),
    ]


def test_absolute_window_is_half_open_and_needs_no_timer() -> None:
    cond = {"event": "A", "within": {"from": "2026-06-01", "to": "2026-06-02"}}
    r = runner(*segments(june1=cond))
    r.ingest("p", ev("A", datetime(2026, 6, 2)), datetime(2026, 6, 2))
    assert r.segments_of("p") == set()
    r.ingest("p", ev("A", datetime(2026, 6, 1)), datetime(2026, 6, 2) + H)
    assert r.segments_of("p") == {"june1"}
    assert r.next_deadline() is None


def test_in_segment_chain_flips_together_with_one_reason() -> None:
    segs = segments(
        buyer={"event": "Order Completed", "within": "7d"},
        not_buyer={"not": {"in_segment": "buyer"}},
        target={"all": [{"in_segment": "not_buyer"}, {"trait": "country", "eq": "PL"}]},
    )
    r = runner(*segs)
    r.set_trait("p", TraitWrite(T, "m", "country", "PL"), T)
    assert r.segments_of("p") == {"not_buyer", "target"}
    assert r.ingest("p", ev("Order Completed", T + H), T + H) == [
        change("buyer", True, T + H, "event"),
        change("not_buyer", False, T + H, "event"),
        change("target", False, T + H, "event"),
    ]
    assert r.advance_to(T + 8 * D) == [
        change("buyer", False, T + H + 7 * D, "window_expired"),
        change("not_buyer", True, T + H + 7 * D, "window_expired"),
        change("target", True, T + H + 7 * D, "window_expired"),
    ]


def test_segments_on_one_feature_share_one_state() -> None:
    segs = segments(
        one={"event": "Order Completed", "within": "30d"},
        two={"event": "Order Completed", "within": "30d", "gte": 2},
        none={"not": {"event": "Order Completed", "within": "30d"}},
    )
    engine = compile_engine(build_plan(segs))
    assert len(engine.kernels) == 1
    st = engine.new_state("p")
    engine.apply(st, ev("Order Completed", T), T)
    engine.apply(st, ev("Order Completed", T + H), T + H)
    (timeline,) = [d for d in st.data[len(engine.kernels) :] if d is not None]
    assert list(timeline) == [
        int((T - datetime(1970, 1, 1)) / US),
        int((T + H - datetime(1970, 1, 1)) / US),
    ]
    assert engine.dependents == [(0, 1, 2)]
    assert engine.memberships(st) == {"one", "two"}


def test_windows_over_one_filter_share_one_timeline() -> None:
    segs = segments(
        week={"event": "Order Completed", "within": "7d"},
        month={"event": "Order Completed", "within": "30d", "gte": 2},
        spent={
            "event": "Order Completed",
            "within": "90d",
            "measure": "sum",
            "of": "properties.revenue",
            "gt": 50,
        },
        lapsed={"event": "Order Completed", "within": {"from_ago": "60d", "to_ago": "30d"}},
    )
    engine = compile_engine(build_plan(segs))
    assert len(engine.kernels) == 4
    st = engine.new_state("p")
    engine.apply(st, ev("Order Completed", T, revenue=40.0), T)
    engine.apply(st, ev("Order Completed", T + H, revenue=20.0), T + H)
    engine.apply(st, ev("Order Completed", T + 2 * H), T + 2 * H)  # no revenue: counts only
    (timeline,) = [d for d in st.data[len(engine.kernels) :] if d is not None]
    times, revenue = timeline  # one times array, one value array for every window
    assert len(times) == 3
    assert list(revenue)[:2] == [40.0, 20.0]
    assert revenue[2] != revenue[2]  # NaN: the event has no number
    assert engine.memberships(st) == {"week", "month", "spent"}
    changes = engine.advance(st, T + timedelta(days=31))
    assert {(c.segment_id, c.entered) for c in changes} == {
        ("week", False),
        ("month", False),
        ("lapsed", True),
    }
    assert engine.memberships(st) == {"spent", "lapsed"}


def test_late_event_is_applied_as_of_now_with_reason_event() -> None:
    r = runner(*segments(viewed={"event": "View", "within": "7d"}))
    r.add_profile("p", T)
    r.ingest("p", ev("Other", T + 2 * H), T + 2 * H)  # read by no feature: state untouched
    r.ingest("p", ev("View", T + D), T + D)
    now = T + D + H
    # ts before the watermark: late; membership re-evaluated at now
    assert r.ingest("p", ev("View", T + H), now) == []
    assert r.engine.watermark(r.states["p"]) == now
    r2 = runner(*segments(few={"event": "View", "within": "7d", "lt": 2}))
    r2.add_profile("p", T)
    r2.ingest("p", ev("View", T + D), T + D)
    assert r2.ingest("p", ev("View", T + H), now) == [change("few", False, now, "event")]


def test_event_from_the_future_takes_effect_at_its_timestamp() -> None:
    r = runner(*segments(viewed={"event": "View", "within": "7d"}))
    r.add_profile("p", T)
    assert r.ingest("p", ev("View", T + 2 * H), T) == []
    assert r.next_deadline() == T + 2 * H
    assert r.advance_to(T + 3 * H) == [change("viewed", True, T + 2 * H, "event")]


def test_lagging_event_in_order_changes_at_its_own_timestamp() -> None:
    r = runner(*segments(viewed={"event": "View", "within": "7d"}))
    r.add_profile("p", T)
    assert r.ingest("p", ev("View", T + H), T + 5 * H) == [change("viewed", True, T + H, "event")]


def test_static_segments_and_buckets_are_fixed_per_profile() -> None:
    segs = [
        parse_segment({"id": "vip", "mode": "static", "members": ["x"]}),
        *segments(
            vip_pl={"all": [{"in_segment": "vip"}, {"trait": "country", "eq": "PL"}]},
            sample={"bucket": {"salt": "s", "from": 0, "to": 50}},
        ),
    ]
    r = runner(*segs, static_segments={"a": ["vip"]})
    r.add_profile("a", T)
    r.add_profile("b", T)
    r.set_trait("a", TraitWrite(T, "m", "country", "PL"), T)
    r.set_trait("b", TraitWrite(T, "m", "country", "PL"), T)
    in_sample = {pid for pid in ("a", "b") if bucket_of(pid, "s") < 50}
    assert r.memberships() == {"vip": {"a"}, "vip_pl": {"a"}, "sample": in_sample}


def test_identical_streams_give_identical_logs() -> None:
    segs = segments(
        viewed={"event": "View", "within": "2d", "gte": 2},
        cart={"event": "Add", "not_followed_by": "Order", "for": "1h"},
    )
    stream = [
        ("p", ev("View", T)),
        ("q", ev("Add", T + H)),
        ("p", ev("View", T + 2 * H)),
        ("q", ev("View", T + 2 * H)),
        ("p", ev("Order", T + 3 * H)),
    ]

    def play() -> list[Change]:
        r = runner(*segs)
        for pid, e in stream:
            r.ingest(pid, e, e.timestamp)
            r.advance_to(e.timestamp)
        r.advance_to(T + 10 * D)
        return r.log

    first = play()
    assert first == play()
    assert first == [
        change("viewed", True, T + 2 * H, "event", "p"),
        change("cart", True, T + 2 * H, "window_expired", "q"),
        change("viewed", False, T + 2 * D, "window_expired", "p"),
    ]


def test_rebuild_equals_incremental_state() -> None:
    segs = segments(
        busy={"event": "View", "within": "7d", "gte": 2},
        ltv={"event": "Order", "measure": "sum", "of": "revenue", "gt": 100},
        pl={"trait": "country", "eq": "PL"},
    )
    engine = compile_engine(build_plan(segs))
    events = [ev("View", T), ev("Order", T + H, revenue=150), ev("View", T + 2 * H)]
    traits = [TraitWrite(T, "m", "country", "PL")]
    st = engine.new_state("p")
    for e in events:
        engine.apply(st, e, e.timestamp)
    engine.set_trait(st, traits[0], T + 2 * H)
    rebuilt = engine.rebuild("p", events, traits, (), T + 2 * H)
    assert engine.memberships(rebuilt) == engine.memberships(st) == {"busy", "ltv", "pl"}
    assert engine.next_deadline(rebuilt) == engine.next_deadline(st) == T + 7 * D


def test_replace_state_reports_differences_with_the_given_reason() -> None:
    r = runner(*segments(viewed={"event": "View", "within": "7d"}))
    r.add_profile("p", T)
    history = ProfileHistory("p", [ev("View", T)])
    assert r.rebuild(history, T + H, reason="merged") == [change("viewed", True, T + H, "merged")]


def test_realtime_matches_interpreter_on_hand_history() -> None:
    segs = segments(
        a={"event": "View", "within": "2d", "measure": "distinct", "of": "category", "gte": 2},
        b={"event": "Order", "within": "7d", "measure": "max", "of": "revenue", "gt": 50},
    )
    plan = build_plan(segs)
    engine = ProfileEngine(plan)
    events = [
        ev("View", T, category="shoes"),
        ev("View", T + H, category="bags"),
        ev("Order", T + 2 * H, revenue=80),
        ev("View", T + D, category="shoes"),
        ev("Order", T + 3 * D, revenue=10),
    ]
    st = engine.new_state("p")
    pending = list(events)
    for t in (T + 2 * D, T + 2 * D + H, T + 3 * D, T + 9 * D + 2 * H, T + 20 * D):
        while pending and pending[0].timestamp <= t:
            e = pending.pop(0)
            engine.apply(st, e, e.timestamp)
        engine.advance(st, t)
        expected = Interpreter(plan, ProfileHistory("p", events), t).segments()
        assert engine.memberships(st) == {s for s, m in expected.items() if m}, t


def test_time_predicate_on_a_property_counts_the_event_only_while_it_holds() -> None:
    cond = {
        "event": "Order",
        "where": [{"property": "delivered_at", "within_last": "2d"}],
        "within": "30d",
    }
    r = runner(*segments(recent_delivery=cond))
    delivered = T + 3 * D
    r.ingest("p", ev("Order", T, delivered_at="2026-06-04T12:00:00Z"), T)
    assert r.segments_of("p") == set()
    assert r.advance_to(T + 10 * D) == [
        change("recent_delivery", True, delivered, "window_expired"),
        change("recent_delivery", False, delivered + 2 * D, "window_expired"),
    ]


def test_pricing_page_visitor_enters_on_the_third_visit_and_exits_as_the_first_ages_out() -> None:
    r = runner(*segments(pricing={"page": "Pricing", "within": "7d", "gte": 3}))
    visits = [T, T + H, T + 2 * H]
    home = Event(T, PAGE_CALLS, {"properties.name": "Home"})
    assert r.ingest("p", home, T) == []
    assert r.ingest("p", Event(T, "Pricing", {}), T) == []  # a track event of that name
    for at in visits:
        got = r.ingest("p", Event(at, PAGE_CALLS, {"properties.name": "Pricing"}), at)
    assert got == [change("pricing", True, T + 2 * H, "event")]
    assert r.advance_to(T + 7 * D) == [change("pricing", False, T + 7 * D, "window_expired")]


def test_top_category_changes_as_views_leave_the_window() -> None:
    top = {"event": "Product Viewed", "within": "1d", "measure": "top", "of": "category"}
    r = runner(*segments(shoes={**top, "eq": "Shoes"}))
    assert r.ingest("p", ev("Product Viewed", T, category="Shoes"), T) == [
        change("shoes", True, T, "event")
    ]
    # one each: the tie goes to Books
    books = [T + H, T + 2 * H]
    assert r.ingest("p", ev("Product Viewed", books[0], category="Books"), books[0]) == [
        change("shoes", False, books[0], "event")
    ]
    assert r.ingest("p", ev("Product Viewed", books[1], category="Books"), books[1]) == []
    assert r.ingest("p", ev("Product Viewed", T + 3 * H, category="Shoes"), T + 3 * H) == []
    # Books views leave at T + 1d + 1h and + 2h; the second Shoes view stays till T + 1d + 3h
    assert r.advance_to(T + D + 2 * H - US) == []
    assert r.advance_to(T + D + 2 * H) == [change("shoes", True, T + D + 2 * H, "window_expired")]
    assert r.advance_to(T + D + 3 * H) == [change("shoes", False, T + D + 3 * H, "window_expired")]


def test_cart_value_follows_adds_removes_and_orders() -> None:
    r = runner(*segments(cart={"computed": "cart_value", "gte": 50}))
    assert r.ingest("p", ev("Product Added", T, product_id="a", price=30.0), T) == []
    assert r.ingest("p", ev("Product Added", T + H, product_id="b", price=20.0), T + H) == [
        change("cart", True, T + H, "event")
    ]
    assert r.ingest("p", ev("Product Removed", T + 2 * H, product_id="a"), T + 2 * H) == [
        change("cart", False, T + 2 * H, "event")
    ]
    assert r.ingest("p", ev("Product Added", T + 3 * H, product_id="a", price=30.0), T + 3 * H)
    order = T + 4 * H
    assert r.ingest("p", ev("Order Completed", order), order) == [
        change("cart", False, order, "event")
    ]
    # an add stamped in the future counts from its own instant
    later = T + 6 * H
    assert r.ingest("p", ev("Product Added", later, product_id="z", price=60.0), T + 5 * H) == []
    assert r.advance_to(later) == [change("cart", True, later, "event")]
