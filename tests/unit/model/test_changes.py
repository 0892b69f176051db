from __future__ import annotations

from datetime import datetime

import pytest

from segflow.model.changes import BY_CODE, REASON_CODES, LoggedChange, Reason

T = datetime(2026, 1, 1, 12)


def test_reason_text_and_codes_stay_as_stored() -> None:
    assert {r.value: r.code for r in Reason} == {
        "window_expired": 1,
        "trait_changed": 2,
        "event": 3,
        "merged": 8,
        "definition_changed": 9,
        "deleted": 10,
        "scheduled_refresh": 11,
    }
    assert all(BY_CODE[c] is r for r, c in REASON_CODES.items())


def test_engine_reasons_rank_event_over_trait_over_window() -> None:
    assert Reason.WINDOW_EXPIRED.code < Reason.TRAIT_CHANGED.code < Reason.EVENT.code <= 3


def test_reason_parses_its_text_and_refuses_other_text() -> None:
    assert Reason.parse("merged") is Reason.MERGED
    with pytest.raises(ValueError, match="bad reason 'because'"):
        Reason.parse("because")


def test_changes_differing_only_in_recording_time_are_equal() -> None:
    a = LoggedChange("s", "p", True, T, Reason.EVENT, 1, 7, T)
    b = LoggedChange("s", "p", True, T, Reason.EVENT, 1, 7, None)
    assert a == b and hash(a) == hash(b)
    assert a != LoggedChange("s", "p", True, T, Reason.EVENT, 1, 8, T)


def test_change_json_is_what_the_api_shows() -> None:
    c = LoggedChange("s", "p", False, T, Reason.WINDOW_EXPIRED, 2, 5)
    assert c.to_json() == {
        "seq": 5,
        "segment_id": "s",
        "profile_id": "p",
        "entered": False,
        "at": "2026-01-01T12:00:00.000000Z",
        "reason": "window_expired",
        "version": 2,
        "held_out": False,
        "group": None,
        "group_segment": None,
    }
    assert c.to_json(held_out=True)["held_out"] is True
