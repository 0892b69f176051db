"""Hand-worked members per condition kind, evaluated by the SQL evaluator."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb
import pytest

from segflow.model.bucket import bucket_of
from segflow.model.definition import PAGE_CALLS, SCREEN_CALLS, parse_segment
from segflow.model.history import Event, ProfileHistory, TraitWrite
from segflow.store.duckdb.batch import evaluate
from tests.helpers import load

T = datetime(2026, 6, 1, 12, 0, 0)
D = timedelta(days=1)
H = timedelta(hours=1)
US = timedelta(microseconds=1)


def ev(name: str, at: datetime, **fields: Any) -> Event:
    return Event(at, name, {f"properties.{k}": v for k, v in fields.items()})


def members(
    histories: list[ProfileHistory], condition: dict[str, Any], at: datetime = T
) -> set[str]:
    con = duckdb.connect()
    load(con, histories)
    segs = [parse_segment({"id": "vip", "mode": "static", "members": ["x"]})]
    segs.append(parse_segment({"id": "s", "condition": condition}))
    return set(evaluate(con, segs, at).members("s"))


def test_window_boundary_event_exactly_seven_days_old_is_out() -> None:
    hs = [
        ProfileHistory("edge", [ev("Product Viewed", T - 7 * D)]),
        ProfileHistory("inside", [ev("Product Viewed", T - 7 * D + US)]),
        ProfileHistory("now", [ev("Product Viewed", T)]),
        ProfileHistory("future", [ev("Product Viewed", T + US)]),
    ]
    assert members(hs, {"event": "Product Viewed", "within": "7d"}) == {"inside", "now"}


def test_relative_range_window() -> None:
    hs = [
        ProfileHistory("old", [ev("Order Completed", T - 90 * D)]),
        ProfileHistory("mid", [ev("Order Completed", T - 90 * D + US)]),
        ProfileHistory("edge", [ev("Order Completed", T - 30 * D)]),
        ProfileHistory("recent", [ev("Order Completed", T - 30 * D + US)]),
    ]
    cond = {"event": "Order Completed", "within": {"from_ago": "90d", "to_ago": "30d"}}
    assert members(hs, cond) == {"mid", "edge"}


def test_absolute_window_is_half_open() -> None:
    t0, t1 = datetime(2026, 5, 1), datetime(2026, 5, 10)
    hs = [
        ProfileHistory("start", [ev("A", t0)]),
        ProfileHistory("before", [ev("A", t0 - US)]),
        ProfileHistory("end", [ev("A", t1)]),
    ]
    assert members(hs, {"event": "A", "within": {"from": "2026-05-01", "to": "2026-05-10"}}) == {
        "start"
    }
    assert members(hs, {"event": "A", "within": {"since": "2026-05-01"}}) == {"start", "end"}


def test_empty_set_semantics_and_pure_absence() -> None:
    hs = [
        ProfileHistory("never", []),
        ProfileHistory("buyer", [ev("Order Completed", T - D, revenue=50)]),
    ]
    assert members(hs, {"not": {"event": "Order Completed", "within": "30d"}}) == {"never"}
    sum_zero = {"event": "Order Completed", "measure": "sum", "of": "revenue", "eq": 0}
    assert members(hs, sum_zero) == {"never"}
    count_zero = {"event": "Order Completed", "eq": 0}
    assert members(hs, count_zero) == {"never"}
    # avg of nothing is null: every comparison is false, its negation true
    avg = {"event": "Order Completed", "measure": "avg", "of": "revenue", "lt": 1000}
    assert members(hs, avg) == {"buyer"}
    assert members(hs, {"not": avg}) == {"never"}


def test_measures() -> None:
    hs = [
        ProfileHistory(
            "p",
            [
                ev("Order Completed", T - 3 * D, revenue=100, category="Shoes"),
                ev("Order Completed", T - 2 * D, revenue=300, category="Shoes"),
                ev("Order Completed", T - D, revenue="oops", category="Watches"),
            ],
        )
    ]

    def m(**kw: Any) -> bool:
        return members(hs, {"event": "Order Completed", **kw}) == {"p"}

    assert m(gte=3) and not m(gte=4)
    assert m(measure="sum", of="revenue", eq=400)  # the string value is ignored
    assert m(measure="avg", of="revenue", eq=200)
    assert m(measure="min", of="revenue", eq=100) and m(measure="max", of="revenue", eq=300)
    assert m(measure="distinct", of="category", eq=2)
    assert m(measure="first_time", older_than="3d") and not m(measure="first_time", older_than="4d")
    assert m(measure="last_time", within_last="1d") is False  # exactly 1 d old is out
    assert m(measure="last_time", within_last="25h")
    # thresholds become integer or DOUBLE constants (not DECIMAL): the comparison must
    # still be exact for fractions, for huge numbers and for sums with fractions
    assert m(gt=2.5) and not m(gte=3.5) and m(lt=3.0000001) and not m(lt=3)
    assert not m(gte=2**60) and m(lt=1e300) and not m(eq=3.000000000001)
    assert m(measure="sum", of="revenue", gt=399.99) and not m(measure="sum", of="revenue", gt=400)


def test_first_time_purchasers_and_lapsed() -> None:
    hs = [
        ProfileHistory("first", [ev("Order Completed", T - 10 * D)]),
        ProfileHistory(
            "repeat", [ev("Order Completed", T - 100 * D), ev("Order Completed", T - 10 * D)]
        ),
        ProfileHistory("lapsed", [ev("Order Completed", T - 120 * D)]),
    ]
    first = {"event": "Order Completed", "measure": "first_time", "within_last": "30d"}
    assert members(hs, first) == {"first"}
    lapsed = {"event": "Order Completed", "measure": "last_time", "older_than": "90d"}
    assert members(hs, lapsed) == {"lapsed"}


def test_property_predicates_hold_on_the_same_event() -> None:
    hs = [
        ProfileHistory("same", [ev("Product Viewed", T - H, category="Shoes", price=120)]),
        ProfileHistory(
            "split",
            [
                ev("Product Viewed", T - H, category="Shoes", price=10),
                ev("Product Viewed", T - H, category="Books", price=120),
            ],
        ),
    ]
    cond = {
        "event": "Product Viewed",
        "where": [{"property": "category", "eq": "Shoes"}, {"property": "price", "gt": 100}],
    }
    assert members(hs, cond) == {"same"}


def test_context_fields() -> None:
    hs = [
        ProfileHistory(
            "mobile", [Event(T - H, "Order Completed", {"context.device.type": "mobile"})]
        ),
        ProfileHistory(
            "desktop", [Event(T - H, "Order Completed", {"context.device.type": "desktop"})]
        ),
    ]
    cond = {
        "event": "Order Completed",
        "where": {"property": "context.device.type", "eq": "mobile"},
    }
    assert members(hs, cond) == {"mobile"}


def tw(key: str, value: Any, at: datetime = T - D, mid: str = "m") -> TraitWrite:
    return TraitWrite(at, mid, key, value)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"trait": "age", "gt": 30}, {"old"}),
        ({"trait": "age", "gte": 30}, {"old", "thirty"}),
        ({"trait": "age", "between": [25, 30]}, {"thirty"}),
        ({"trait": "age", "eq": 30}, {"thirty"}),
        ({"trait": "age", "ne": 30}, {"old"}),  # missing and wrong type are false
        ({"not": {"trait": "age", "gt": 30}}, {"thirty", "none", "text"}),
        ({"trait": "age", "exists": True}, {"old", "thirty", "text"}),
        ({"trait": "age", "not_exists": True}, {"none"}),
        ({"trait": "age", "eq": "forty"}, {"text"}),
        ({"trait": "age", "in": [30, "forty"]}, {"thirty", "text"}),
        ({"trait": "age", "not_in": [30]}, {"old"}),
        ({"trait": "age", "contains": "ort"}, {"text"}),
        ({"trait": "age", "starts_with": "fo"}, {"text"}),
        ({"trait": "age", "ends_with": "ty"}, {"text"}),
    ],
)
def test_trait_operators(condition: dict[str, Any], expected: set[str]) -> None:
    hs = [
        ProfileHistory("old", [], [tw("age", 41)]),
        ProfileHistory("thirty", [], [tw("age", 30.0)]),
        ProfileHistory("none", [], []),
        ProfileHistory("text", [], [tw("age", "forty")]),
    ]
    assert members(hs, condition) == expected


def test_trait_last_write_wins_by_timestamp_and_null_clears() -> None:
    hs = [
        ProfileHistory(
            "p", [], [tw("plan", "pro", T - D, "b"), tw("plan", "free", T - 2 * D, "z")]
        ),
        ProfileHistory("cleared", [], [tw("plan", "pro", T - 2 * D), tw("plan", None, T - D, "n")]),
        ProfileHistory("later", [], [tw("plan", "pro", T + H)]),
    ]
    assert members(hs, {"trait": "plan", "eq": "pro"}) == {"p"}
    assert members(hs, {"trait": "plan", "not_exists": True}) == {"cleared", "later"}
    assert members(hs, {"trait": "plan", "eq": "pro"}, at=T + H) == {"p", "later"}


def test_writes_of_one_trait_at_the_same_instant_give_one_value_and_one_row() -> None:
    """The later message id wins a tie (as in the interpreter); each trait's scan is
    joined by profile, so the result must still hold one row per profile."""
    hs = [
        ProfileHistory("tie", [], [tw("plan", "free", T - D, "a"), tw("plan", "pro", T - D, "b")]),
        ProfileHistory("other", [], [tw("plan", "free", T - D)]),
    ]
    con = duckdb.connect()
    load(con, hs)
    seg = parse_segment({"id": "s", "condition": {"trait": "plan", "eq": "pro"}})
    result = evaluate(con, [seg], T)
    assert result.members("s") == ["tie"]
    assert con.execute(f"SELECT count(*) FROM {result.table}").fetchone() == (2,)


def test_broken_trait_links_fail_loudly_instead_of_counting_a_member_twice() -> None:
    con = duckdb.connect()
    load(
        con,
        [
            ProfileHistory(
                "p", [], [tw("plan", "pro", T - 2 * D, "a"), tw("plan", "pro", T - D, "b")]
            )
        ],
    )
    evaluate(con, [parse_segment({"id": "s", "condition": {"trait": "plan", "eq": "pro"}})], T)
    # a writer that left both writes open while marking them linked (a bug)
    con.execute("UPDATE traits SET valid_to = NULL, linked = TRUE")
    seg = parse_segment({"id": "s", "condition": {"trait": "plan", "eq": "pro"}})
    with pytest.raises(RuntimeError, match="2 rows for 1 profiles"):
        evaluate(con, [seg], T)


def test_date_traits() -> None:
    hs = [
        ProfileHistory("recent", [], [tw("signup", "2026-05-30T12:00:00Z")]),
        ProfileHistory("edge", [], [tw("signup", "2026-05-25T12:00:00+00:00")]),
        ProfileHistory("old", [], [tw("signup", "2025-01-01")]),
        ProfileHistory("junk", [], [tw("signup", "last tuesday")]),
    ]
    assert members(hs, {"trait": "signup", "within_last": "7d"}) == {"recent"}
    assert members(hs, {"trait": "signup", "older_than": "7d"}) == {"edge", "old"}
    assert members(hs, {"trait": "signup", "before": "2026-01-01"}) == {"old"}
    assert members(hs, {"trait": "signup", "after": "2026-05-25T12:00:00Z"}) == {"recent"}


def test_abandonment() -> None:
    hs = [
        ProfileHistory("abandoned", [ev("Product Added", T - 25 * H)]),
        ProfileHistory("exactly", [ev("Product Added", T - 24 * H)]),
        ProfileHistory("too_soon", [ev("Product Added", T - 23 * H)]),
        ProfileHistory(
            "bought", [ev("Product Added", T - 30 * H), ev("Order Completed", T - 2 * H)]
        ),
        ProfileHistory(
            "readded",
            [
                ev("Product Added", T - 50 * H),
                ev("Order Completed", T - 40 * H),
                ev("Product Added", T - 30 * H),
            ],
        ),
        ProfileHistory(
            "latest_recent", [ev("Product Added", T - 60 * H), ev("Product Added", T - H)]
        ),
        ProfileHistory("stale", [ev("Product Added", T - 8 * D)]),
        ProfileHistory("tie", [ev("Product Added", T - 30 * H), ev("Order Completed", T - 30 * H)]),
    ]
    cond = {
        "event": "Product Added",
        "not_followed_by": "Order Completed",
        "for": "24h",
        "within": "7d",
    }
    assert members(hs, cond) == {"abandoned", "exactly", "readded", "tie"}


def test_sequence_with_span() -> None:
    hs = [
        ProfileHistory(
            "quick", [ev("Product Viewed", T - 3 * H), ev("Product Added", T - 2.5 * H)]
        ),
        ProfileHistory("slow", [ev("Product Viewed", T - 5 * H), ev("Product Added", T - 3 * H)]),
        ProfileHistory(
            "second_try",
            [
                ev("Product Viewed", T - 9 * H),
                ev("Product Viewed", T - 2 * H),
                ev("Product Added", T - H),
            ],
        ),
        ProfileHistory(
            "reversed", [ev("Product Added", T - 3 * H), ev("Product Viewed", T - 2 * H)]
        ),
        ProfileHistory("same_instant", [ev("Product Viewed", T - H), ev("Product Added", T - H)]),
        ProfileHistory(
            "outside", [ev("Product Viewed", T - 8 * D), ev("Product Added", T - 8 * D + H)]
        ),
    ]
    seq = [{"event": "Product Viewed"}, {"event": "Product Added"}]
    assert members(hs, {"sequence": seq, "within": "7d", "span": "1h"}) == {"quick", "second_try"}
    assert members(hs, {"sequence": seq, "within": "7d"}) == {"quick", "slow", "second_try"}


def test_bucket_matches_python_hash() -> None:
    hs = [ProfileHistory(f"p{i}") for i in range(200)]
    got = members(hs, {"bucket": {"salt": "spring", "from": 0, "to": 10}})
    assert got == {h.profile_id for h in hs if bucket_of(h.profile_id, "spring") < 10}
    assert 5 < len(got) < 40


def test_in_segment_and_static_lists() -> None:
    hs = [
        ProfileHistory("a", [ev("Order Completed", T - D)], static_segments=frozenset({"vip"})),
        ProfileHistory("b", [ev("Order Completed", T - D)]),
        ProfileHistory("c", []),
    ]
    con = duckdb.connect()
    load(con, hs)
    segs = [
        parse_segment({"id": "vip", "mode": "static", "members": ["a"]}),
        parse_segment({"id": "buyers", "condition": {"event": "Order Completed", "within": "30d"}}),
        parse_segment(
            {
                "id": "vip_buyers",
                "condition": {"all": [{"in_segment": "vip"}, {"in_segment": "buyers"}]},
            }
        ),
        parse_segment({"id": "non_buyers", "condition": {"not": {"in_segment": "buyers"}}}),
        parse_segment({"id": "everyone", "condition": {"all": []}}),
        parse_segment({"id": "nobody", "condition": {"any": []}}),
    ]
    got = evaluate(con, segs, T).membership_map()
    assert got["vip_buyers"] == {"a"}
    assert got["non_buyers"] == {"c"}
    assert got["everyone"] == {"a", "b", "c"}
    assert got["nobody"] == set()


def page(at: datetime, name: str | None = None, **fields: Any) -> Event:
    """A page call as the evaluators see it (its name moved into properties)."""
    props = {**fields, **({"name": name} if name is not None else {})}
    return Event(at, PAGE_CALLS, {f"properties.{k}": v for k, v in props.items()})


def test_visited_the_pricing_page_three_times_in_seven_days() -> None:
    hs = [
        ProfileHistory("three", [page(T - i * D, "Pricing", path="/pricing") for i in range(3)]),
        ProfileHistory("old", [page(T - i * D - 5 * D, "Pricing") for i in range(3)]),
        ProfileHistory("other", [page(T - i * H, "Home") for i in range(3)]),
        ProfileHistory("track", [ev("Pricing", T - i * H) for i in range(3)]),
        ProfileHistory(
            "screens",
            [Event(T - i * H, SCREEN_CALLS, {"properties.name": "Pricing"}) for i in range(3)],
        ),
    ]
    assert members(hs, {"page": "Pricing", "within": "7d", "gte": 3}) == {"three"}
    by_path = {"page": True, "where": [{"property": "path", "eq": "/pricing"}], "within": "7d"}
    assert members(hs, {**by_path, "gte": 3}) == {"three"}
    assert members(hs, {"screen": "Pricing", "within": "7d", "gte": 3}) == {"screens"}


def test_visit_depth_counts_distinct_paths_of_any_page() -> None:
    hs = [
        ProfileHistory("deep", [page(T - i * H, path=f"/p{i % 3}") for i in range(6)]),
        ProfileHistory("shallow", [page(T - i * H, path="/") for i in range(6)]),
    ]
    depth = {"page": True, "within": "1d", "measure": "distinct", "of": "path", "gte": 3}
    assert members(hs, depth) == {"deep"}
    assert members(hs, {"page": True, "within": "1d", "gte": 6}) == {"deep", "shallow"}


def test_top_is_the_most_frequent_string_ties_to_the_smallest() -> None:
    hs = [
        ProfileHistory(
            "books",
            [ev("Product Viewed", T - H, category=c) for c in ("Books", "Shoes", "Books")],
        ),
        ProfileHistory(
            "tie", [ev("Product Viewed", T - H, category=c) for c in ("Shoes", "Books")]
        ),
        ProfileHistory(
            "numbers", [ev("Product Viewed", T - H, category=c) for c in (3, 3, "Shoes")]
        ),
        ProfileHistory("old", [ev("Product Viewed", T - 40 * D, category="Books")]),
        ProfileHistory("none", []),
    ]
    top = {"event": "Product Viewed", "within": "30d", "measure": "top", "of": "category"}
    assert members(hs, {**top, "eq": "Books"}) == {"books", "tie"}
    assert members(hs, {**top, "eq": "Shoes"}) == {"numbers"}
    assert members(hs, {**top, "not_exists": True}) == {"old", "none"}
    assert members(hs, {"computed": "top_category_30d", "in": ["Books"]}) == {"books", "tie"}


def test_cart_holds_the_latest_action_per_product_since_the_last_order() -> None:
    add, rm = "Product Added", "Product Removed"
    hs = [
        ProfileHistory(
            "open",
            [
                ev(add, T - 3 * H, product_id="a", price=10.0, quantity=2),
                ev(add, T - 2 * H, product_id="b", price=5.0),
                ev(rm, T - H, product_id="b"),
                ev(add, T - H, product_id="c", price=1.0),
                ev(rm, T - H, product_id="c"),  # a remove wins a tie
            ],
        ),
        ProfileHistory(
            "bought",
            [
                ev(add, T - 2 * D, product_id="a", price=10.0, quantity=2),
                ev("Order Completed", T - D),
            ],
        ),
        ProfileHistory(
            "re-added", [ev(rm, T - 2 * H, product_id="a"), ev(add, T - H, product_id="a")]
        ),
    ]
    assert members(hs, {"computed": "cart_items", "eq": 2}) == {"open"}
    assert members(hs, {"computed": "cart_value", "eq": 20}) == {"open"}
    assert members(hs, {"computed": "cart_items", "eq": 0}) == {"bought"}
    assert members(hs, {"computed": "cart_items", "eq": 1}) == {"re-added"}
    assert members(hs, {"computed": "cart_value", "eq": 0}) == {"bought", "re-added"}
