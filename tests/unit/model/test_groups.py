"""Priority groups: parsing with paths, resolution into ordinary segments, membership
problems and cycles through a group's resolution."""

from __future__ import annotations

import pytest

from segflow.model.definition import (
    All,
    AnyOf,
    InSegment,
    Not,
    canonical,
    parse_condition,
    parse_segment,
    parse_segment_report,
    reference_problems,
)
from segflow.model.errors import DefinitionError
from segflow.model.groups import (
    Group,
    expand,
    membership_problems,
    parse_group,
    parse_group_report,
    resolved_id,
    split_resolved,
)
from segflow.plan.planner import check_references


def _segs(*ids: str) -> dict[str, object]:
    return {i: parse_segment({"id": i, "condition": {"trait": i, "exists": True}}) for i in ids}


def test_a_group_parses_in_priority_order_and_round_trips() -> None:
    doc = {"group": "lifecycle", "name": "Lifecycle", "segments": ["champions", "loyal", "at_risk"]}
    g = parse_group(doc)
    assert g.segments == ("champions", "loyal", "at_risk")
    assert parse_group(g.to_dict()) == g
    assert g.resolved_ids() == ["lifecycle:champions", "lifecycle:loyal", "lifecycle:at_risk"]


def test_group_problems_name_their_paths_and_the_closest_key() -> None:
    report = parse_group_report(
        {"group": "a:b", "segmnts": ["x"], "segments": ["x", "y", "x", 3], "emit_events": "yes"}
    )
    got = {p.path: p.message for p in report.problems}
    assert set(got) == {"group", "segmnts", "segments[2]", "segments[3]", "emit_events"}
    assert "did you mean 'segments'?" in got["segmnts"]
    assert "listed twice (first at segments[0])" in got["segments[2]"]
    empty = parse_group_report({"group": "g", "segments": []}).problems
    assert [p.path for p in empty] == ["segments"]


def test_a_resolved_member_is_its_segment_and_none_listed_before_it() -> None:
    (first, second, third) = Group("g", "G", ("a", "b", "c")).resolve()
    assert first.condition == InSegment("a")
    assert second.condition == All((InSegment("b"), Not(AnyOf((InSegment("a"),)))))
    assert third.condition == All((InSegment("c"), Not(AnyOf((InSegment("a"), InSegment("b"))))))
    assert third.id == "g:c" and third.group == "g" and third.mode == "realtime"


def test_in_segment_of_a_resolution_has_an_object_and_a_string_form() -> None:
    obj = parse_condition({"in_segment": {"group": "g", "segment": "b"}})
    assert obj == parse_condition({"in_segment": "g:b"}) == InSegment(resolved_id("g", "b"))
    assert canonical(obj) == {"in_segment": {"group": "g", "segment": "b"}}
    assert split_resolved("g:b") == ("g", "b") and split_resolved("b") is None
    with pytest.raises(DefinitionError) as e:
        parse_condition({"in_segment": {"group": "g", "segmnt": "b"}})
    paths = {p.path for p in e.value.problems}
    assert paths == {"condition.in_segment.segmnt", "condition.in_segment.segment"}


def test_unknown_members_and_a_segment_in_two_groups_are_named() -> None:
    segs = _segs("a", "b", "c")
    groups = {"g1": Group("g1", "G1", ("a", "b")), "g2": Group("g2", "G2", ("bb", "b"))}
    got = {p.path: p.message for p in membership_problems(groups, segs)}  # type: ignore[arg-type]
    assert got["g2.segments[0]"] == "unknown segment 'bb' (did you mean 'b'?)"
    assert "'b' is in two groups: 'g1' and 'g2'" in got["g2.segments[1]"]


def test_a_cycle_through_a_groups_resolution_is_rejected_with_its_path() -> None:
    segs = _segs("a", "c")
    segs["b"] = parse_segment(
        {"id": "b", "condition": {"not": {"in_segment": {"group": "g", "segment": "c"}}}}
    )
    merged = expand(segs, [Group("g", "G", ("a", "b", "c"))])  # type: ignore[arg-type]
    with pytest.raises(DefinitionError) as e:
        check_references(merged)
    assert "in_segment cycle: b -> g:c -> b" in str(e.value)
    # reading a higher one's resolution is no cycle
    segs["b"] = parse_segment({"id": "b", "condition": {"in_segment": "g:a"}})
    check_references(expand(segs, [Group("g", "G", ("a", "b", "c"))]))  # type: ignore[arg-type]


def test_a_draft_reading_an_unknown_resolution_is_told_the_closest() -> None:
    saved = expand(_segs("a", "b"), [Group("g", "G", ("a", "b"))])  # type: ignore[arg-type]
    draft = parse_segment_report({"id": "d", "condition": {"in_segment": "g:bb"}})
    (problem,) = reference_problems([draft], saved)
    assert problem.path == "condition.in_segment"
    assert problem.message == "unknown segment 'g:bb' (did you mean 'g:b'?)"


def test_a_group_or_a_priority_given_as_a_segment_is_told_where_it_belongs() -> None:
    (problem,) = parse_segment_report({"group": "g", "segments": ["a"]}).problems
    assert problem.path == "group" and "segflow groups apply" in problem.message
    problems = parse_segment_report({"id": "s", "priority": 1, "condition": {"all": []}}).problems
    assert [p.path for p in problems] == ["priority"]
    assert "its place in a priority group" in problems[0].message


@pytest.mark.parametrize(
    "ref", [":b", "g:", "g:b:c", {"group": "g:h", "segment": "b"}, {"group": "g"}]
)
def test_a_malformed_resolution_reference_is_an_error_at_its_path(ref: object) -> None:
    with pytest.raises(DefinitionError) as e:
        parse_condition({"in_segment": ref})
    assert all(p.path.startswith("condition.in_segment") for p in e.value.problems)


def test_a_resolved_member_keeps_its_segments_name_and_holdout() -> None:
    seg = parse_segment(
        {"id": "a", "name": "Alpha", "holdout": {"percent": 10}, "condition": {"all": []}}
    )
    (resolved,) = Group("g", "G", ("a",)).resolve({"a": seg})
    assert resolved.name == "G: Alpha" and resolved.holdout == seg.holdout
    assert resolved.to_dict()["group"] == "g"


def test_a_resolved_member_is_public_when_its_segment_is() -> None:
    cond = {"trait": "a", "exists": True}
    shown = parse_segment({"id": "shown", "public": True, "condition": cond})
    hidden = parse_segment({"id": "hidden", "condition": cond})
    group = Group("g", "G", ("hidden", "shown"))
    out = expand({"shown": shown, "hidden": hidden}, [group])
    assert out[resolved_id("g", "shown")].public
    assert not out[resolved_id("g", "hidden")].public
