"""Dashboard alerts and the picker's types (pure functions of the store's summaries)."""

from __future__ import annotations

from datetime import datetime, timedelta

from segflow.model.definition import parse_segment
from segflow.service.overview import event_alerts, referenced_events, ui_type
from segflow.store.protocols import NameStats

NOW = datetime(2026, 12, 1, 12, 0)
DAY = timedelta(days=1)


def _kinds(names: list[NameStats], windows: list[tuple[str, int, int]]) -> set[tuple[str, str]]:
    return {(a["kind"], a["event"]) for a in event_alerts(names, windows, {"A", "B", "C"}, NOW)}


def test_a_daily_event_that_stopped() -> None:
    old = NOW - 30 * DAY
    a = NameStats("A", 100, NOW - DAY - timedelta(hours=2), old, old)
    daily = [("A", w, 1) for w in range(1, 15)]
    assert _kinds([a], daily) == {("event_stopped", "A")}
    assert _kinds([a], daily[1:]) == set()  # a day missing: not daily
    fresh = NameStats("A", 100, NOW, old, old)
    assert _kinds([fresh], [*daily, ("A", 0, 1)]) == set()


def test_a_frequent_event_silent_for_three_typical_gaps() -> None:
    old = NOW - 30 * DAY
    # 1400 events over 14 days: a gap of 14.4 minutes; silent 2 hours: over 3 gaps and 1 h
    b = NameStats("B", 1400, NOW - timedelta(hours=2), old, old)
    windows = [("B", 0, 50), *(("B", w, 100) for w in range(1, 15) if w != 7)]
    assert _kinds([b], windows) == {("event_stopped", "B")}
    recent = NameStats("B", 1400, NOW - timedelta(minutes=30), old, old)
    assert _kinds([recent], windows) == set()  # under an hour


def test_a_new_event_no_segment_reads() -> None:
    new = NameStats("New", 3, NOW - DAY, NOW - 2 * DAY, NOW - 2 * DAY)
    assert _kinds([new], []) == {("unknown_event", "New")}
    # old events loaded only now count as new (first received), read ones do not
    late = NameStats("Late", 3, NOW - DAY, NOW - 90 * DAY, NOW - DAY)
    assert _kinds([late], []) == {("unknown_event", "Late")}
    assert _kinds([NameStats("C", 3, NOW - DAY, NOW - 2 * DAY, None)], []) == set()
    gone = NameStats("Gone", 3, NOW - 8 * DAY, NOW - 8 * DAY, NOW - 8 * DAY)
    assert _kinds([gone], []) == set()


def test_referenced_events_at_any_depth() -> None:
    seg = parse_segment(
        {"id": "s", "condition": {"all": [
            {"event": ["A", "B"], "within": "7d"},
            {"not": {"event": "C", "not_followed_by": "D", "for": "1h"}},
            {"sequence": [{"event": "E"}, {"page": "Home"}]},
        ]}}
    )  # fmt: skip
    assert referenced_events([seg]) == {"A", "B", "C", "D", "E"}


def test_ui_types() -> None:
    assert ui_type("DOUBLE", [1.0]) == "number"
    assert ui_type("BOOLEAN", [True]) == "boolean"
    assert ui_type("VARCHAR", ["2026-01-01T00:00:00Z", "2026-02-01"]) == "timestamp"
    assert ui_type("VARCHAR", ["2026-01-01", "soon"]) == "string"
    assert ui_type("JSON:ARRAY", []) == "list"
    assert ui_type("json:OBJECT", []) == "object"
    assert ui_type("string", []) == "string"
