"""The ``holdout`` block: parsing, its canonical form and the stable draw it makes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.model.bucket import bucket_of
from segflow.model.definition import Holdout, load_segment_reports, parse_segment
from segflow.model.errors import DefinitionError

COND: dict[str, Any] = {"event": "Order Completed", "within": "30d"}


def _doc(**extra: Any) -> dict[str, Any]:
    return {"id": "buyers", "condition": COND, **extra}


def test_salt_defaults_to_the_segment_id_and_round_trips() -> None:
    seg = parse_segment(_doc(holdout={"percent": 10}))
    assert seg.holdout == Holdout(10.0, "buyers")
    assert seg.to_dict()["holdout"] == {"percent": 10, "salt": "buyers"}
    assert parse_segment(seg.to_dict()) == seg
    salted = parse_segment(_doc(holdout={"percent": 12.5, "salt": "spring"}))
    assert salted.to_dict()["holdout"] == {"percent": 12.5, "salt": "spring"}
    assert parse_segment(salted.to_dict()) == salted


def test_a_holdout_changes_the_fingerprint_but_not_the_condition() -> None:
    plain = parse_segment(_doc())
    held = parse_segment(_doc(holdout={"percent": 10}))
    assert plain.holdout is None and "holdout" not in plain.to_dict()
    assert plain.condition == held.condition
    assert plain.definition_fingerprint() != held.definition_fingerprint()
    other = parse_segment(_doc(holdout={"percent": 10, "salt": "x"}))
    assert other.definition_fingerprint() != held.definition_fingerprint()


@pytest.mark.parametrize(
    ("holdout", "problems"),
    [
        ({"percent": 0}, ["holdout.percent: expected a number in (0, 100), got 0"]),
        ({"percent": 100}, ["holdout.percent: expected a number in (0, 100), got 100"]),
        ({"percent": "10"}, ["holdout.percent: expected a number in (0, 100), got '10'"]),
        ({"percent": True}, ["holdout.percent: expected a number in (0, 100), got True"]),
        ({}, ["holdout.percent: expected a number in (0, 100), got nothing"]),
        ({"percent": 5, "salt": ""}, ["holdout.salt: expected a non-empty string, got ''"]),
        ({"percent": 5, "salt": 3}, ["holdout.salt: expected a non-empty string, got 3"]),
        (
            {"percent": 5, "pct": 5},
            [
                "holdout.pct: unknown key 'pct'"
                " (did you mean 'percent'? allowed here: percent, salt)"
            ],
        ),
        (10, ["holdout: expected an object, got 10"]),
    ],
)
def test_bad_holdouts_name_their_path(holdout: object, problems: list[str]) -> None:
    with pytest.raises(DefinitionError) as e:
        parse_segment(_doc(holdout=holdout))
    assert [str(p) for p in e.value.problems] == problems


def test_a_misspelt_holdout_key_suggests_it() -> None:
    (report,) = load_segment_reports("id: a\ncondition: {trait: x, eq: 1}\nholdot: {percent: 5}")
    assert "did you mean 'holdout'?" in report.problems[0].message


def test_the_draw_is_the_bucket_conditions() -> None:
    h = Holdout(25.0, "salt")
    for i in range(500):
        pid = f"u{i}"
        assert h.holds_out(pid) == (bucket_of(pid, "salt") < 25.0)
    ids = [f"u{i}" for i in range(500)]
    assert h.held_out(ids) == {p for p in ids if h.holds_out(p)}


@settings(max_examples=25, deadline=None)
@given(
    percent=st.sampled_from([1.0, 5.0, 10.0, 33.3, 50.0, 90.0]),
    salt=st.text(min_size=1, max_size=12),
    prefix=st.text(max_size=6),
)
def test_held_out_share_is_close_to_the_percent_and_stable(
    percent: float, salt: str, prefix: str
) -> None:
    ids = [f"{prefix}{i}" for i in range(20_000)]
    h = Holdout(percent, salt)
    held = h.held_out(ids)
    share = len(held) / len(ids)
    p = percent / 100
    # five standard deviations of a binomial share
    assert abs(share - p) <= 5 * (p * (1 - p) / len(ids)) ** 0.5
    assert Holdout(percent, salt).held_out(reversed(ids)) == held
