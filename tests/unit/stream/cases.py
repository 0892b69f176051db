"""Edge cases shared by the keyed-host tests: definitions that turn on exact instants
(window edges to the microsecond, a negative condition that comes true, an ``Ago``
window, abandonment, a sequence with a span, ``in_segment``) and a few profiles whose
messages sit on those edges, one of them arriving late."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any, Final

from segflow.model.definition import Segment, parse_segment
from segflow.model.time import from_us
from segflow.stream.identity import Call, Item
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


def _c(
    ts: int,
    user: str | None,
    anon: str | None,
    name: str | None,
    payload: dict[str, Any],
    mid: str,
    *,
    kind: str | None = None,
    previous: str | None = None,
) -> Call:
    kind = kind or ("identify" if name is None else "track")
    return Call(0, ts, kind, user, anon, previous, name, payload, mid)


def merge_calls(t0: int) -> list[tuple[int, Call]]:
    """``(arrival instant, call)`` of profiles that merge, ``t0`` in µs:

    * ``anon-lux`` browses three luxury watches anonymously, then identifies as the
      existing ``user-lux`` (who has the trait plan=pro): ``user-lux`` enters the
      luxury and viewer segments by the merge, ``anon-lux`` exits them;
    * ``user-ali`` (first seen earlier) and ``user-new`` are linked by an alias naming
      ``user-ali`` as the previous id: ``user-new`` merges into ``user-ali``;
    * ``user-buy`` has never ordered (in ``edge_no_order_30d``); the anonymous
      ``anon-buy`` ordered; the identify linking them makes ``user-buy`` exit;
    * ``anon-exp``'s view expires exactly at the instant it identifies as ``user-exp``
      (whose own view is still in the window), and ``anon-exp2``'s view 1 µs before;
    * ``anon-fresh`` identifies as a user id never seen: ``user-fresh`` enters what
      ``anon-fresh`` was in, by the merge.
    """
    view, lux = "Product Viewed", {"properties.category": "Luxury Watches"}
    rows = [
        _c(t0 - 2 * D, "user-lux", None, None, {"plan": "pro"}, "lux-0"),
        _c(t0 - D, "user-lux", None, "Product Added", {}, "lux-1"),
        _c(t0, None, "anon-lux", view, lux, "lux-2"),
        _c(t0 + H, None, "anon-lux", view, lux, "lux-3"),
        _c(t0 + 2 * H, None, "anon-lux", view, lux, "lux-4"),
        _c(t0 + 3 * H, "user-lux", "anon-lux", None, {"plan": "pro"}, "lux-5"),
        _c(t0 + 4 * H, "user-lux", "anon-lux", view, {}, "lux-6"),
        _c(t0 - 3 * D, "user-ali", None, view, {}, "ali-0"),
        _c(t0, "user-new", None, "Order Completed", {}, "ali-1"),
        _c(t0 + D, "user-new", None, None, {}, "ali-2", kind="alias", previous="user-ali"),
        _c(t0 + D + 1, "user-new", None, view, {}, "ali-3"),
        _c(t0 - 40 * D, "user-buy", None, view, {}, "buy-0"),
        _c(t0, None, "anon-buy", "Order Completed", {}, "buy-1"),
        _c(t0 + 2 * D, "user-buy", "anon-buy", None, {"plan": "free"}, "buy-2"),
        _c(t0, None, "anon-exp", view, {}, "exp-0"),
        _c(t0 + D, "user-exp", None, view, {}, "exp-1"),
        _c(t0 + 7 * D, "user-exp", "anon-exp", None, {"plan": "pro"}, "exp-2"),
        _c(t0 + 1, None, "anon-exp2", view, {}, "exp2-0"),
        _c(t0 + 7 * D + 2, "user-exp", "anon-exp2", view, {}, "exp2-1"),
        _c(t0 + 5 * D, None, "anon-fresh", view, {}, "fresh-0"),
        _c(t0 + 6 * D, "user-fresh", "anon-fresh", None, {"plan": "pro"}, "fresh-1"),
    ]
    return [(c.ts, c) for c in rows]


def with_calls(stream: Sequence[Item], extra: Sequence[tuple[int, Item]]) -> list[Item]:
    """``stream`` (arriving in timestamp order) and ``extra`` merged by arrival, numbered."""
    rows = [(c.ts, 0, i, c) for i, c in enumerate(stream)]
    rows += [(at, 1, i, c) for i, (at, c) in enumerate(extra)]
    rows.sort(key=lambda r: r[:3])
    return [r[3]._replace(seq=n) for n, r in enumerate(rows)]


def expected_merges(t0: int) -> set[tuple[str, str, bool, int]]:
    """``(segment, profile, entered, at µs)`` changes with reason ``merged``."""
    return {
        ("edge_luxury_3_in_48h", "user-lux", True, t0 + 3 * H),
        ("edge_viewed_7d", "user-lux", True, t0 + 3 * H),
        ("edge_pro_viewer", "user-lux", True, t0 + 3 * H),
        ("edge_luxury_3_in_48h", "anon-lux", False, t0 + 3 * H),
        ("edge_viewed_7d", "anon-lux", False, t0 + 3 * H),
        ("edge_no_order_30d", "anon-lux", False, t0 + 3 * H),
        ("edge_no_order_30d", "user-ali", False, t0 + D),
        ("edge_no_order_30d", "user-buy", False, t0 + 2 * D),
        ("edge_no_order_30d", "anon-exp", False, t0 + 7 * D),
        ("edge_no_order_30d", "anon-exp2", False, t0 + 7 * D + 2),
        ("edge_viewed_7d", "user-fresh", True, t0 + 6 * D),
        ("edge_no_order_30d", "user-fresh", True, t0 + 6 * D),
        ("edge_pro_viewer", "user-fresh", True, t0 + 6 * D),
        ("edge_viewed_7d", "anon-fresh", False, t0 + 6 * D),
        ("edge_no_order_30d", "anon-fresh", False, t0 + 6 * D),
    }


def expected_around_merges(t0: int) -> set[tuple[str, str, bool, int]]:
    """Changes of the merging profiles with the engine's own reasons: the anonymous
    view expiring on the merge's instant fires first, the merged profile's windows
    run on from the union history."""
    return {
        ("edge_viewed_7d", "anon-exp", False, t0 + 7 * D),
        ("edge_viewed_7d", "anon-exp2", False, t0 + 7 * D + 1),
        ("edge_viewed_7d", "user-exp", False, t0 + 7 * D + 2 + 7 * D),
        ("edge_ordered_3_to_10d_ago", "user-ali", True, t0 + 3 * D),
        ("edge_ordered_3_to_10d_ago", "user-buy", True, t0 + 3 * D),
    }


def segment_message(c: Call) -> dict[str, Any]:
    """The call as the Segment message a store ingests."""
    ts = from_us(c.ts).replace(tzinfo=UTC).isoformat()
    m: dict[str, Any] = {"type": c.type, "messageId": c.message_id, "timestamp": ts}
    if c.type == "track":
        m["event"] = c.name
        m["properties"] = {k.removeprefix("properties."): v for k, v in c.payload.items()}
    if c.type == "identify":
        m["traits"] = dict(c.payload)
    for k, v in (("userId", c.user_id), ("anonymousId", c.anonymous_id)):
        if v is not None:
            m[k] = v
    if c.previous_id is not None:
        m["previousId"] = c.previous_id
    return m
