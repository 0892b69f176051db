"""LiveEvaluator over a real DuckDB file: start, catch-up, timers, merges, edits,
deletes, privacy deletes, explain and subscriptions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from segflow.live import LiveEvaluator, StoredChange
from segflow.model.definition import format_instant, parse_segment
from segflow.model.errors import DefinitionError
from segflow.realtime import VirtualClock
from segflow.service import Segflow

T = datetime(2026, 1, 1)


def at(hours: float) -> datetime:
    return T + timedelta(hours=hours)


def track(who: dict[str, str], name: str, hours: float, mid: str, **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        **who,
        "timestamp": format_instant(at(hours)),
        "messageId": mid,
        "properties": props,
    }


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Segflow]:
    sf = Segflow(tmp_path / "live.duckdb")
    sf.registry.save(
        [
            parse_segment(
                {"id": "buyers", "condition": {"event": "Order Completed", "within": "7d"}}
            ),
            parse_segment(
                {
                    "id": "big",
                    "protected": True,
                    "condition": {
                        "event": "Order Completed",
                        "measure": "sum",
                        "of": "properties.revenue",
                        "gte": 100,
                    },
                }
            ),
            parse_segment({"id": "pl", "condition": {"trait": "country", "eq": "PL"}}),
            parse_segment({"id": "quiet", "condition": {"not": {"in_segment": "buyers"}}}),
        ]
    )
    sf.store.ingest_messages(
        [
            track({"userId": "u1"}, "Order Completed", 0, "m1", revenue=60),
            {
                "type": "identify",
                "userId": "u1",
                "timestamp": format_instant(at(1)),
                "messageId": "m2",
                "traits": {"country": "PL"},
            },
            track({"anonymousId": "a1"}, "Product Viewed", 2, "m3"),
        ]
    )
    yield sf
    sf.close()


def kinds(changes: Sequence[StoredChange]) -> list[tuple[str, str, bool, str]]:
    return [(c.segment_id, c.profile_id, c.entered, c.reason) for c in changes]


def test_start_logs_current_members_and_segments_of_is_a_lookup(app: Segflow) -> None:
    live = LiveEvaluator(app, VirtualClock(at(3)))
    got = live.start()
    assert sorted(kinds(got)) == [
        ("buyers", "u1", True, "definition_changed"),
        ("pl", "u1", True, "definition_changed"),
        ("quiet", "a1", True, "definition_changed"),
    ]
    assert live.segments_of("u1") == {"buyers": at(3), "pl": at(3)}
    assert live.segments_of("nobody") == {}
    assert LiveEvaluator(app, VirtualClock(at(4))).start() == []


def test_catch_up_then_window_expires_at_the_exact_instant(app: Segflow) -> None:
    clock = VirtualClock(at(3))
    live = LiveEvaluator(app, clock)
    live.start()
    seen: list[StoredChange] = []
    stop = live.subscribe(seen.extend)
    app.store.ingest_messages([track({"anonymousId": "a1"}, "Order Completed", 4, "m4")])
    clock.set(at(5))
    got = live.catch_up()
    assert kinds(got) == [
        ("buyers", "a1", True, "event"),
        ("quiet", "a1", False, "event"),
    ]
    assert got[0].at == at(4)
    assert live.catch_up() == []
    assert live.next_deadline() == at(7 * 24)
    clock.set(at(8 * 24))
    expired = live.tick()
    assert {(c.profile_id, c.at) for c in expired if c.segment_id == "buyers"} == {
        ("u1", at(7 * 24)),
        ("a1", at(7 * 24 + 4)),
    }
    assert all(c.reason == "window_expired" for c in expired)
    assert seen == got + expired
    stop()
    clock.set(at(9 * 24))
    app.store.ingest_messages([track({"userId": "u1"}, "Order Completed", 9 * 24, "m5")])
    assert live.catch_up() and len(seen) == len(got + expired)


def test_merge_rebuilds_the_target_from_the_union_history(app: Segflow) -> None:
    clock = VirtualClock(at(3))
    live = LiveEvaluator(app, clock)
    live.start()
    app.store.ingest_messages(
        [
            track({"anonymousId": "a1"}, "Order Completed", 4, "m4", revenue=50),
            {
                "type": "identify",
                "userId": "u1",
                "anonymousId": "a1",
                "timestamp": format_instant(at(5)),
                "messageId": "m5",
            },
        ]
    )
    clock.set(at(6))
    got = live.catch_up()
    assert ("big", "u1", True, "merged") in kinds(got)
    assert all(not c.entered for c in got if c.profile_id == "a1")
    assert live.segments_of("a1") == {}
    assert set(live.segments_of("u1")) == {"buyers", "big", "pl"}
    assert app.store.profile_ids() == ["u1"]


def test_save_previews_then_hands_over_without_a_gap(app: Segflow) -> None:
    clock = VirtualClock(at(3))
    live = LiveEvaluator(app, clock)
    live.start()
    edited = parse_segment(
        {"id": "buyers", "condition": {"event": "Product Viewed", "within": "7d"}}
    )
    preview = live.preview_edit(edited)
    assert (preview.entering, preview.leaving) == (["a1"], ["u1"])
    assert live.members("buyers") == ["u1"]
    version, diff, changes = live.save(edited)
    assert version == 2 and diff == preview
    assert sorted(kinds(changes)) == [
        ("buyers", "a1", True, "definition_changed"),
        ("buyers", "u1", False, "definition_changed"),
        ("quiet", "a1", False, "definition_changed"),
        ("quiet", "u1", True, "definition_changed"),
    ]
    assert {c.version for c in changes if c.segment_id == "buyers"} == {2}
    assert all(c.at == at(3) for c in changes)
    clock.set(at(7 * 24 + 3))
    assert kinds(live.tick()) == [
        ("buyers", "a1", False, "window_expired"),
        ("quiet", "a1", True, "window_expired"),
    ]
    again = live.save(edited)
    assert again[0] == 2 and again[2] == []


def test_delete_and_privacy_delete_log_exits(app: Segflow) -> None:
    live = LiveEvaluator(app, VirtualClock(at(3)))
    live.start()
    with pytest.raises(DefinitionError, match="used by: quiet"):
        live.delete("buyers")
    assert kinds(live.delete("pl")) == [("pl", "u1", False, "deleted")]
    with pytest.raises(KeyError):
        live.members("pl")
    assert kinds(live.forget_profile("u1")) == [("buyers", "u1", False, "deleted")]
    assert live.segments_of("u1") == {}


def test_explain_now_and_in_the_past(app: Segflow) -> None:
    live = LiveEvaluator(app, VirtualClock(at(3)))
    assert live.explain("pl", "u1", at(0))["member"] is False
    live.start()
    now = live.explain("buyers", "u1")
    assert now["member"] is True
    assert now["condition"]["feature"]["value"] == 1
    assert live.explain("pl", "u1", at(0.5))["member"] is False
    assert live.explain("pl", "u1", at(1))["member"] is True
    with pytest.raises(KeyError):
        live.explain("nope", "u1")
    with pytest.raises(KeyError):
        live.explain("pl", "nobody")
