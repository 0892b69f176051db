"""Parsing, validation errors with JSON paths, canonical form and fingerprints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from segflow.demo import SEGMENTS_DIR
from segflow.model.definition import (
    DEFAULT_LIMITS,
    PAGE_CALLS,
    SCREEN_CALLS,
    STORED,
    Abandonment,
    Ago,
    All,
    Bucket,
    Comparison,
    ComputedCondition,
    Duration,
    EventCondition,
    EventFilter,
    Limits,
    Not,
    PropertyPredicate,
    SequenceCondition,
    TraitCondition,
    Within,
    canonical,
    fingerprint,
    load_segment_text,
    parse_condition,
    parse_duration,
    parse_segment,
    parse_segment_report,
    reference_problems,
)
from segflow.model.errors import DefinitionError
from tests.strategies import trees

DESIGN_EXAMPLE = """
id: luxury_cart_abandoners
name: High-value luxury cart abandoners
description: Spent over $5,000 in 6 months, viewed Luxury Watches in 48 h, left a cart for 24 h
purpose: Cart recovery email
mode: realtime
emit_events: true
condition:
  all:
    - event: Order Completed
      within: 180d
      measure: sum
      of: revenue
      gt: 5000
    - event: Product Viewed
      where:
        - {property: category, eq: Luxury Watches}
      within: 48h
    - event: Product Added
      not_followed_by: Order Completed
      for: 24h
      within: 7d
"""


def problems(doc: Any) -> list[str]:
    with pytest.raises(DefinitionError) as e:
        parse_condition(doc)
    return [str(p) for p in e.value.problems]


def test_design_example_parses_into_typed_nodes() -> None:
    (seg,) = load_segment_text(DESIGN_EXAMPLE)
    assert seg.id == "luxury_cart_abandoners" and seg.mode == "realtime"
    cond = seg.condition
    assert isinstance(cond, All)
    spend, viewed, abandoned = cond.items
    assert isinstance(spend, EventCondition)
    assert spend.measure == "sum" and spend.of == "properties.revenue"
    assert spend.cmp.op == "gt" and spend.cmp.value == 5000
    assert spend.window == Within(Duration(180 * 86_400_000_000))
    assert isinstance(viewed, EventCondition)
    assert viewed.cmp.op == "gte" and viewed.cmp.value == 1
    assert viewed.filter.where[0].path == "properties.category"
    assert isinstance(abandoned, Abandonment)
    assert abandoned.followed_by.names == ("Order Completed",)


def test_bad_duration_names_its_json_path() -> None:
    errs = problems(
        {"all": [{"trait": "a", "eq": 1}, {"event": "X"}, {"event": "Y", "within": "7x"}]}
    )
    assert errs == [
        "condition.all[2].within: '7x' is not a duration (use a number and one of s m h d w, e.g. 7d)"  # noqa: E501
    ]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"trait": "age", "gt": "thirty"}, "condition.gt: expected a finite number, got 'thirty'"),
        ({"trait": "age", "lt": float("inf")}, "condition.lt: expected a finite number, got inf"),
        ({"trait": "age", "gte": float("nan")}, "condition.gte: expected a finite number, got nan"),
        ({"trait": "a", "between": [0, float("inf")]}, "condition.between: expected [low, high]"),
        ({"trait": "a", "eq": float("nan")}, "condition.eq: expected a string, number or"),
        ({"trait": "a", "in": [1, float("-inf")]}, "condition.in: expected a non-empty list"),
        ({"trait": "age"}, "condition: needs a comparison"),
        ({"trait": "age", "gt": 1, "lt": 5}, "condition: has several comparisons"),
        ({"event": "X", "measure": "median", "of": "p"}, "condition.measure: unknown measure"),
        ({"event": "X", "measure": "sum"}, "condition.of: expected a non-empty string"),
        ({"event": "X", "measure": "last_time", "gt": 3}, "condition.gt: time-valued measures"),
        ({"event": "X", "wher": []}, "condition.wher: unknown key"),
        ({"frobnicate": 1}, "condition: is not a condition"),
        ({"any": {"trait": "a", "exists": True}}, "condition.any: expected a list of conditions"),
        ({"trait": "a", "between": [5, 1]}, "condition.between: expected [low, high]"),
        ({"trait": "a", "in": []}, "condition.in: expected a non-empty list"),
        ({"sequence": [{"event": "A"}]}, "condition.sequence: expected a list of at least two"),
        ({"event": "A", "not_followed_by": "B"}, "condition.for: missing"),
        ({"bucket": {"salt": "s", "from": 50, "to": 10}}, "condition.bucket: 'from' must be below"),
        ({"event": "A", "within": {"from_ago": "1d", "to_ago": "7d"}}, "from_ago must be longer"),
        ({"event": "A", "within": {"since": "yesterday"}}, "is not an ISO 8601 timestamp"),
        (
            {"trait": "signup", "within_last": "1mo"},
            "condition.within_last: '1mo' is not a duration",
        ),
    ],
)
def test_invalid_conditions_name_what_and_where(doc: Any, expected: str) -> None:
    assert any(expected in e for e in problems(doc)), problems(doc)


def test_every_problem_is_reported_at_once() -> None:
    errs = problems({"all": [{"trait": "a", "gt": "x"}, {"event": "B", "within": "soon"}]})
    assert len(errs) == 2


def test_window_forms() -> None:
    ago = parse_condition({"event": "A", "within": {"from_ago": "90d", "to_ago": "30d"}})
    assert isinstance(ago, EventCondition) and isinstance(ago.window, Ago)
    absolute = parse_condition(
        {"event": "A", "within": {"from": "2026-01-01", "to": "2026-02-01T00:00:00+01:00"}}
    )
    assert isinstance(absolute, EventCondition)
    assert canonical(absolute)["within"] == {
        "from": "2026-01-01T00:00:00.000000Z",
        "to": "2026-01-31T23:00:00.000000Z",
    }


def test_durations() -> None:
    assert parse_duration("90s").us == 90_000_000
    assert parse_duration("1.5h").us == 5_400_000_000
    assert parse_duration("2w").canonical() == "2w"
    assert parse_duration("48h").canonical() == "2d"
    for bad in ("", "7", "7x", "-1d", "0d", 7, None, "1 month"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_exists_false_is_not_exists_and_not_wraps() -> None:
    node = parse_condition({"not": {"trait": "email", "exists": False}})
    assert isinstance(node, Not)
    assert isinstance(node.item, TraitCondition) and node.item.cmp.op == "not_exists"


def test_same_meaning_same_fingerprint() -> None:
    a = parse_condition({"event": ["B", "A"], "within": "48h", "where": {"property": "x", "eq": 1}})
    b = parse_condition(
        {"event": ["A", "B"], "within": "2d", "where": [{"property": "properties.x", "eq": 1.0}]}
    )
    c = parse_condition({"event": ["A", "B"], "within": "3d"})
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)


def test_sequence_and_bucket() -> None:
    seq = parse_condition(
        {
            "sequence": [{"event": "Product Viewed"}, {"event": "Product Added"}],
            "within": "7d",
            "span": "1h",
        }
    )
    assert isinstance(seq, SequenceCondition) and len(seq.steps) == 2 and seq.span is not None
    b = parse_condition({"bucket": {"salt": "spring", "from": 0, "to": 10}})
    assert b == Bucket("spring", 0.0, 10.0)


def test_segment_metadata_and_modes() -> None:
    seg = parse_segment(
        {
            "id": "weekly",
            "name": "Weekly",
            "mode": "scheduled",
            "schedule": "0 6 * * 1",
            "tags": ["crm"],
            "protected": True,
            "condition": {"trait": "a", "exists": True},
        }
    )
    assert seg.schedule == "0 6 * * 1" and seg.protected and seg.tags == ("crm",)
    static = parse_segment({"id": "vip_list", "mode": "static", "members": ["u1", "u2", "u1"]})
    assert static.members == ("u1", "u2")
    snap = parse_segment(
        {
            "id": "snap",
            "mode": "static",
            "snapshot_at": "2026-01-01T00:00:00Z",
            "condition": {"all": []},
        }
    )
    assert snap.snapshot_at == datetime(2026, 1, 1)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"name": "x", "condition": {"all": []}}, "id: expected a non-empty string"),
        ({"id": "a b", "condition": {"all": []}}, "is not a valid id"),
        ({"id": "summary", "condition": {"all": []}}, "id: 'summary' is reserved"),
        ({"id": "a", "mode": "sometimes", "condition": {"all": []}}, "mode: unknown mode"),
        (
            {"id": "a", "mode": "scheduled", "schedule": "often", "condition": {"all": []}},
            "schedule:",
        ),
        ({"id": "a", "mode": "static", "condition": {"all": []}}, "snapshot_at: a static segment"),
        ({"id": "a"}, "condition: missing"),
        ({"id": "a", "emit_events": "yes", "condition": {"all": []}}, "emit_events: expected true"),
    ],
)
def test_invalid_segments(doc: Any, expected: str) -> None:
    with pytest.raises(DefinitionError) as e:
        parse_segment(doc)
    assert expected in str(e.value)


def test_yaml_syntax_error_names_the_line() -> None:
    with pytest.raises(DefinitionError) as e:
        load_segment_text("id: a\ncondition: {all: [\n", source="bad.yaml")
    assert "bad.yaml" in str(e.value) and "line" in str(e.value)


def test_canonical_round_trip_of_design_example() -> None:
    (seg,) = load_segment_text(DESIGN_EXAMPLE)
    again = parse_segment(yaml.safe_load(yaml.safe_dump(seg.to_dict())))
    assert again.to_dict() == seg.to_dict()
    assert again.definition_fingerprint() == seg.definition_fingerprint()


@given(trees)
def test_canonical_form_is_a_fixed_point(doc: Any) -> None:
    node = parse_condition(doc)
    again = parse_condition(canonical(node))
    assert again == node
    assert canonical(again) == canonical(node)


junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                ["all", "any", "not", "trait", "event", "page", "screen", "within", "eq", "where"]
            ),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=10,
)


@given(junk)
def test_junk_gives_definition_error_never_a_crash(doc: Any) -> None:
    try:
        parse_condition(doc)
    except DefinitionError as e:
        assert e.problems and all(p.path.startswith("condition") for p in e.problems)


def _problems(doc: object, limits: Limits = DEFAULT_LIMITS) -> dict[str, str]:
    with pytest.raises(DefinitionError) as e:
        parse_segment(doc, limits)
    return {p.path: p.message for p in e.value.problems}


def test_unknown_keys_at_every_level_are_named_with_their_path_and_closest_key() -> None:
    doc = {
        "id": "s",
        "priorty": 3,
        "priority": 1,
        "condition": {
            "all": [
                {"event": "Order Completed", "withn": "7d"},
                {"trait": "country", "eq": "PL", "exsts": True},
                {
                    "event": "Product Viewed",
                    "where": [{"property": "category", "eq": "x", "propery": "y"}],
                    "within": {"from_ago": "7d", "to_agoo": "1d"},
                },
                {"sequence": [{"event": "A", "wher": []}, {"event": "B"}]},
                {"bucket": {"salt": "s", "to": 10, "form": 0}},
                {"evnt": "Order Completed"},
            ]
        },
    }
    got = _problems(doc)
    assert "did you mean 'priority'" not in got["priorty"]  # priority itself is not allowed
    assert got["priority"].startswith("unknown key 'priority'")
    assert "did you mean 'within'?" in got["condition.all[0].withn"]
    assert "did you mean 'exists'?" in got["condition.all[1].exsts"]
    assert "did you mean 'property'?" in got["condition.all[2].where[0].propery"]
    assert "did you mean 'to_ago'?" in got["condition.all[2].within.to_agoo"]
    assert "did you mean 'where'?" in got["condition.all[3].sequence[0].wher"]
    assert "did you mean 'from'?" in got["condition.all[4].bucket.form"]
    assert "did you mean 'event'?" in got["condition.all[5]"]


def test_every_problem_of_a_definition_is_reported_at_once() -> None:
    doc = {
        "id": "s",
        "mode": "sometimes",
        "colour": "red",
        "condition": {
            "any": [
                {"event": "Order Completed", "within": "7x"},
                {"trait": "age", "gt": "old"},
                {"in_segment": "missing"},
            ]
        },
    }
    report = parse_segment_report(doc)
    assert {p.path for p in report.problems} == {
        "mode",
        "colour",
        "condition.any[0].within",
        "condition.any[1].gt",
    }
    refs = reference_problems([report], {})
    assert [(p.path, "unknown segment 'missing'" in p.message) for p in refs] == [
        ("condition.any[2].in_segment", True)
    ]


def test_reference_cycle_is_reported_at_the_reference_with_its_path() -> None:
    a = parse_segment({"id": "a", "condition": {"in_segment": "b"}}, STORED)
    b = parse_segment({"id": "b", "condition": {"trait": "x", "eq": 1}})
    draft = parse_segment_report(
        {"id": "b", "condition": {"all": [{"trait": "x", "eq": 1}, {"in_segment": "a"}]}}
    )
    (p,) = reference_problems([draft], {"a": a})
    assert p.path == "condition.all[1].in_segment"
    assert p.message == "in_segment cycle: b -> a -> b"
    assert reference_problems([parse_segment_report(b.to_dict())], {"a": a}) == []


def _wide(n: int) -> dict[str, Any]:
    return {"any": [{"event": f"E{i}"} for i in range(n)]}


def test_limits_bound_leaves_nodes_and_depth_and_name_themselves() -> None:
    limits = Limits(max_leaves=4, max_nodes=6, max_depth=3)
    parse_segment({"id": "s", "condition": _wide(4)}, limits)
    got = _problems({"id": "s", "condition": _wide(5)}, limits)
    assert "(limit max_leaves)" in got["condition"]
    got = _problems({"id": "s", "condition": {"all": [_wide(2), _wide(2), _wide(1)]}}, limits)
    assert "(limit max_nodes)" in got["condition"]
    deep: dict[str, Any] = {"event": "E"}
    for _ in range(3):
        deep = {"not": deep}
    got = _problems({"id": "s", "condition": deep}, limits)
    assert "(limit max_depth)" in got["condition.not.not.not"]


def test_demo_library_is_within_the_default_limits() -> None:
    from segflow.service.handle import read_segment_files

    assert len(read_segment_files(SEGMENTS_DIR)) > 20


def test_stored_definitions_load_whatever_their_size() -> None:
    doc = {"id": "s", "condition": _wide(DEFAULT_LIMITS.max_leaves + 1)}
    assert parse_segment(doc, STORED).id == "s"


def test_mentions_name_events_traits_properties_and_segments_with_paths() -> None:
    report = parse_segment_report(
        {
            "id": "s",
            "condition": {
                "all": [
                    {"event": ["A", "B"], "where": {"property": "category", "eq": 1}},
                    {"event": "C", "measure": "sum", "of": "revenue", "gt": 1},
                    {"trait": "ltv", "gt": 1},
                    {"in_segment": "t"},
                ]
            },
        }
    )
    assert [(m.kind, m.name, m.path) for m in report.mentions] == [
        ("event", "A", "condition.all[0].event[0]"),
        ("event", "B", "condition.all[0].event[1]"),
        ("property", "properties.category", "condition.all[0].where[0].property"),
        ("event", "C", "condition.all[1].event"),
        ("property", "properties.revenue", "condition.all[1].of"),
        ("trait", "ltv", "condition.all[2].trait"),
        ("segment", "t", "condition.all[3].in_segment"),
    ]


# --------------------------------------------------------------------------- page/screen


def test_page_condition_reads_page_calls_by_page_name() -> None:
    node = parse_condition({"page": "Pricing", "within": "7d", "gte": 3})
    assert isinstance(node, EventCondition)
    assert node.filter == EventFilter(
        (PAGE_CALLS,), (PropertyPredicate("properties.name", Comparison("in", ("Pricing",))),)
    )
    assert (node.window, node.measure, node.cmp) == (
        Within(Duration(7 * 86_400_000_000)),
        "count",
        Comparison("gte", 3.0),
    )
    assert canonical(node) == {"page": "Pricing", "within": "1w", "measure": "count", "gte": 3}


def test_any_page_and_where_predicates_on_page_fields() -> None:
    node = parse_condition(
        {"page": True, "where": [{"property": "path", "eq": "/pricing"}], "within": "7d"}
    )
    assert isinstance(node, EventCondition)
    assert node.filter == EventFilter(
        (PAGE_CALLS,), (PropertyPredicate("properties.path", Comparison("eq", "/pricing")),)
    )
    assert canonical(node)["page"] is True


def test_screen_filters_in_sequences_and_abandonment() -> None:
    seq = parse_condition({"sequence": [{"screen": "Cart"}, {"event": "Order Completed"}]})
    assert isinstance(seq, SequenceCondition)
    assert seq.steps[0].names == (SCREEN_CALLS,)
    ab = parse_condition({"page": "Checkout", "not_followed_by": {"page": "Thanks"}, "for": "1h"})
    assert isinstance(ab, Abandonment)
    assert ab.followed_by.names == (PAGE_CALLS,)
    assert canonical(ab)["not_followed_by"] == {"page": "Thanks"}


def test_page_name_and_name_predicate_are_one_feature() -> None:
    a = parse_condition({"page": ["Pricing", "Home"], "within": "7d"})
    b = parse_condition(
        {"page": True, "where": [{"property": "name", "in": ["Home", "Pricing"]}], "within": "7d"}
    )
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(
        parse_condition({"screen": ["Pricing", "Home"], "within": "7d"})
    )
    assert fingerprint(a) != fingerprint(
        parse_condition({"event": ["Pricing", "Home"], "within": "7d"})
    )


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"page": False}, "condition.page: expected true (any page) or a page name"),
        ({"page": []}, "condition.page: expected true (any page) or a page name"),
        ({"screen": 3}, "condition.screen: expected true (any screen) or a screen name"),
        ({"page": "A", "event": "B"}, "condition: needs exactly one of event, page, screen"),
        ({"page": "A", "wher": []}, "condition.wher: unknown key"),
        ({"event": "\x00page"}, "condition.event: expected an event name"),
        ({"sequence": [{"page": "A", "x": 1}, {"event": "B"}]}, "condition.sequence[0].x"),
        ({"event": "A", "not_followed_by": {"page": 1}, "for": "1h"}, "not_followed_by.page"),
    ],
)
def test_invalid_page_conditions(doc: Any, expected: str) -> None:
    assert any(expected in e for e in problems(doc)), problems(doc)


# --------------------------------------------------------------------------- computed


def test_computed_trait_condition_keeps_its_name_and_comparison() -> None:
    node = parse_condition({"computed": "ltv", "gt": 1000})
    assert node == ComputedCondition("ltv", Comparison("gt", 1000.0))
    assert canonical(node) == {"computed": "ltv", "gt": 1000}
    assert fingerprint(node) != fingerprint(parse_condition({"trait": "ltv", "gt": 1000}))


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            {"computed": "ltvv", "gt": 1},
            "condition.computed: unknown computed trait 'ltvv' (did you mean 'ltv'? one of",
        ),
        ({"computed": 3, "gt": 1}, "condition.computed: unknown computed trait 3"),
        ({"computed": "cart_items", "exists": True}, "condition.exists: is not a comparison"),
        ({"computed": "wishlist", "eq": "x"}, "condition.eq: wishlist compares with contains"),
        ({"computed": "ltv", "within_last": "1d"}, "condition.within_last: is not a comparison"),
        ({"computed": "last_order_at", "gt": 3}, "condition.gt: time-valued measures"),
        ({"computed": "days_since_last_order", "eq": 3}, "condition.eq: days_since_last_order"),
        ({"computed": "ltv", "gt": 1, "of": "x"}, "condition.of: unknown key"),
        ({"computed": "ltv"}, "condition: needs a comparison"),
        ({"event": "V", "measure": "top"}, "condition.of: expected a non-empty string"),
        ({"event": "V", "measure": "top", "of": "c"}, "condition: needs a comparison"),
    ],
)
def test_invalid_computed_conditions(doc: Any, expected: str) -> None:
    assert any(expected in e for e in problems(doc)), problems(doc)


@pytest.mark.parametrize(
    ("condition", "path", "hint"),
    [
        ({"page": "Pricing", "wihtin": "7d"}, "wihtin", "within"),
        ({"screen": True, "were": []}, "were", "where"),
        ({"computed": "ltv", "gt": 1, "gtee": 2}, "gtee", "gte"),
        ({"event": "V", "measure": "top", "off": "category", "eq": "x"}, "off", "of"),
        ({"sequence": [{"page": "A", "evnt": "x"}, {"screen": "B"}]}, "sequence[0].evnt", "event"),
        ({"pgae": "Pricing"}, "", "page"),
        ({"computd": "ltv", "gt": 1}, "", "computed"),
        ({"computed": "lvt", "gt": 1}, "computed", "ltv"),
    ],
)
def test_page_screen_computed_and_top_take_only_their_keys(
    condition: dict[str, Any], path: str, hint: str
) -> None:
    got = _problems({"id": "s", "condition": condition})
    assert f"did you mean {hint!r}?" in got["condition." + path if path else "condition"]


def test_page_and_screen_names_and_computed_traits_are_no_mentions() -> None:
    """Page and screen names are no event names (no catalogue holds them) and computed
    trait names are checked when parsed: neither is a name to warn about."""
    report = parse_segment_report(
        {
            "id": "s",
            "condition": {
                "all": [
                    {"page": ["Pricing", "Home"], "where": {"property": "path", "eq": "/"}},
                    {"screen": "Cart"},
                    {"page": True, "not_followed_by": "Order Completed", "for": "1h"},
                    {"computed": "ltv", "gt": 1},
                    {"event": "V", "measure": "top", "of": "category", "eq": "x"},
                ]
            },
        }
    )
    assert [(m.kind, m.name, m.path) for m in report.mentions] == [
        ("property", "properties.path", "condition.all[0].where[0].property"),
        ("event", "Order Completed", "condition.all[2].not_followed_by"),
        ("event", "V", "condition.all[4].event"),
        ("property", "properties.category", "condition.all[4].of"),
    ]


def test_tags_and_folder_are_metadata_in_canonical_form() -> None:
    cond = {"trait": "plan", "eq": "gold"}
    seg = parse_segment(
        {"id": "g", "tags": [" vip", "crm", "vip", "crm "], "folder": " Lifecycle / Gold/ ",
         "condition": cond}
    )  # fmt: skip
    assert seg.tags == ("crm", "vip")
    assert seg.folder == "Lifecycle/Gold"
    out = seg.to_dict()
    assert out["tags"] == ["crm", "vip"] and out["folder"] == "Lifecycle/Gold"
    assert parse_segment(out) == seg  # the canonical form parses back to itself
    again = parse_segment({"id": "g", "tags": ["vip", "crm"], "folder": "Lifecycle/Gold",
                           "condition": cond})  # fmt: skip
    assert again.definition_fingerprint() == seg.definition_fingerprint()
    plain = parse_segment({"id": "g", "condition": cond})
    assert plain.folder is None and "folder" not in plain.to_dict()
    assert "tags" not in plain.to_dict()


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        ({"tags": "vip"}, "tags", "expected a list of strings"),
        ({"tags": ["vip", 3]}, "tags[1]", "expected a non-empty string"),
        ({"tags": ["  "]}, "tags[0]", "expected a non-empty string"),
        ({"tags": ["x" * 65]}, "tags[0]", "longer than 64"),
        ({"tags": [f"t{i}" for i in range(51)]}, "tags", "at most 50"),
        ({"folder": 7}, "folder", "expected a string"),
        ({"folder": "a//b"}, "folder", "empty part"),
        ({"folder": ""}, "folder", "empty part"),
        ({"folder": "x" * 257}, "folder", "longer than 256"),
        ({"folders": "a"}, "folders", "did you mean 'folder'"),
    ],
)
def test_tags_and_folder_errors_name_their_path(
    doc: dict[str, Any], path: str, message: str
) -> None:
    report = parse_segment_report({"id": "g", "condition": {"all": []}, **doc})
    assert report.segment is None
    assert any(p.path == path and message in p.message for p in report.problems), report.problems


def test_public_is_parsed_and_kept_only_when_true() -> None:
    cond = {"trait": "a", "exists": True}
    seg = parse_segment({"id": "shown", "public": True, "condition": cond})
    assert seg.public and seg.to_dict()["public"] is True
    assert parse_segment(seg.to_dict()) == seg
    hidden = parse_segment({"id": "hidden", "condition": cond})
    assert not hidden.public and "public" not in hidden.to_dict()
    # false spelled out is the default: same definition, same fingerprint
    spelled = parse_segment({"id": "hidden", "public": False, "condition": cond})
    assert spelled.definition_fingerprint() == hidden.definition_fingerprint()
    report = parse_segment_report({"id": "x", "public": "yes", "condition": cond})
    assert [(p.path, p.message) for p in report.problems] == [
        ("public", "expected true or false, got 'yes'")
    ]
