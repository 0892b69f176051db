"""Edge cases shared by the keyed-host tests: definitions that turn on exact instants
(window edges to the microsecond, a negative condition that comes true, an ``Ago``
window, abandonment, a sequence with a span, ``in_segment``) and a few profiles whose
messages sit on those edges, one of them arriving late."""

from __future__ import annotations

from typing import Any, Final

from segflow.model.definition import Segment, parse_segment
from segflow.stream.keyed import Message

MS: Final = 1000
H: Final = 3_600_000_000
D: Final = 24 * H

EDGE_CONDITIONS: Final[dict[str, dict[str, Any]]] = {
    "edge_viewed_7d": {"event": "Product Viewed", "within": "7d"},
    "edge_no_order_30d": {"not": {"event": "Order Completed", "within": "30d"}},
    "edge_view_then_add": {
        "sequence": [{"event": "Product Viewed"}, {"event": "Product Added"}],
        "within": "7d",
        "span": "1h",
    },
    "edge_abandoned_24h": {
        "event": "Product Added",
        "not_followed_by": "Order Completed",
        "for": "24h",
        "within": "7d",
    },
    "edge_ordered_3_to_10d_ago": {
        "event": "Order Completed",
        "within": {"from_ago": "10d", "to_ago": "3d"},
    },
    "edge_pro_viewer": {"all": [{"in_segment": "edge_viewed_7d"}, {"trait": "plan", "eq": "pro"}]},
    "edge_luxury_3_in_48h": {
        "event": "Product Viewed",
        "where": [{"property": "category", "eq": "Luxury Watches"}],
        "within": "48h",
        "gte": 3,
    },
}

LATENESS_MS: Final = 3_600_000
"""How far behind the latest input the watermark runs (the late message is 10 min late)."""


def edge_segments() -> list[Segment]:
    return [parse_segment({"id": sid, "condition": c}) for sid, c in EDGE_CONDITIONS.items()]


def _m(pid: str, ts: int, name: str | None, payload: dict[str, Any], n: int) -> Message:
    return Message(0, pid, ts, name, payload, f"{pid}-{n}")


def edge_messages(t0: int) -> list[tuple[int, Message]]:
    """``(arrival instant, message)`` of the edge profiles, ``t0`` in µs."""
    view = "Product Viewed"
    lux = {"properties.category": "Luxury Watches"}
    rows = [
        _m("edge-a", t0 + 500, None, {"plan": "pro"}, 0),
        _m("edge-a", t0 + 999, view, {}, 1),
        _m("edge-a", t0 + 1000, view, {}, 2),  # exits edge_viewed_7d at t0 + 1000 + 7d
        _m("edge-b", t0, "Order Completed", {"properties.revenue": 10.5}, 0),
        _m("edge-c", t0, "Product Added", {}, 0),
        _m("edge-c", t0 + D - 1, "Order Completed", {}, 1),  # 1 µs before abandoning
        _m("edge-c", t0 + 2 * D, "Product Added", {}, 2),
        _m("edge-c", t0 + 3 * D, "Order Completed", {}, 3),  # on the abandonment instant
        _m("edge-c", t0 + 4 * D, "Product Added", {}, 4),  # abandoned at t0 + 5d
        _m("edge-d", t0, view, {}, 0),
        _m("edge-d", t0 + H, "Product Added", {}, 1),  # span exactly 1 h
        _m("edge-d", t0 + 8 * D, view, {}, 2),
        _m("edge-d", t0 + 8 * D + H + 1, "Product Added", {}, 3),  # 1 µs too late
        _m("edge-e", t0, view, lux, 0),
        _m("edge-e", t0 + H, view, lux, 1),
        _m("edge-e", t0 + 48 * H - 1, view, lux, 2),  # in; out at t0 + 48 h
        _m("edge-f", t0, view, {}, 0),
        _m("edge-f", t0 + 7 * D, view, {}, 1),  # on the expiry: stays in, no exit and enter
    ]
    out = [(m.ts, m) for m in rows]
    late = _m("edge-late", t0 + 10 * 60_000_000, view, {}, 0)
    out.append((late.ts, late))
    early = _m("edge-late", t0, "Product Added", {}, 1)
    out.append((late.ts + 1, early))  # arrives after a message 10 min younger
    return out


def merged(stream: list[Message], extra: list[tuple[int, Message]]) -> list[Message]:
    """``stream`` (arriving in timestamp order) and ``extra`` merged by arrival, numbered."""
    rows = [(m.ts, 0, i, m) for i, m in enumerate(stream)]
    rows += [(at, 1, i, m) for i, (at, m) in enumerate(extra)]
    rows.sort(key=lambda r: r[:3])
    return [r[3]._replace(seq=n) for n, r in enumerate(rows)]


def expected_edges(t0: int) -> set[tuple[str, str, bool, int]]:
    """``(segment, profile, entered, at µs)`` changes the edge profiles must show."""
    return {
        ("edge_viewed_7d", "edge-a", True, t0 + 999),
        ("edge_pro_viewer", "edge-a", True, t0 + 999),
        ("edge_viewed_7d", "edge-a", False, t0 + 1000 + 7 * D),
        ("edge_pro_viewer", "edge-a", False, t0 + 1000 + 7 * D),
        ("edge_ordered_3_to_10d_ago", "edge-b", True, t0 + 3 * D),
        ("edge_ordered_3_to_10d_ago", "edge-b", False, t0 + 10 * D),
        ("edge_no_order_30d", "edge-b", True, t0 + 30 * D),
        ("edge_abandoned_24h", "edge-c", True, t0 + 5 * D),
        ("edge_abandoned_24h", "edge-c", False, t0 + 11 * D),
        ("edge_view_then_add", "edge-d", True, t0 + H),
        ("edge_view_then_add", "edge-d", False, t0 + 7 * D),
        ("edge_luxury_3_in_48h", "edge-e", True, t0 + 48 * H - 1),
        ("edge_luxury_3_in_48h", "edge-e", False, t0 + 48 * H),
        ("edge_viewed_7d", "edge-f", False, t0 + 14 * D),
    }


def absent_edges(t0: int) -> set[tuple[str, str, bool, int]]:
    """Changes the edge profiles must not show: a flip and its undoing at one instant."""
    return {
        ("edge_viewed_7d", "edge-f", False, t0 + 7 * D),
        ("edge_abandoned_24h", "edge-c", True, t0 + 3 * D),
        ("edge_view_then_add", "edge-d", True, t0 + 8 * D + H + 1),
    }
