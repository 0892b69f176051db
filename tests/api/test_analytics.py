"""Segment analytics over real HTTP: metrics, overlap and transitions on segments of
their own (the module's shared server), a 404 for an unknown segment and a 422 naming
each parameter that cannot be used."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import Server

PERIOD = {"from": "2026-11-15T00:00:00Z", "to": "2026-11-25T00:00:00Z"}


def _track(user: str, n: int, ts: str, event: str, **props: Any) -> dict[str, Any]:
    return {
        "type": "track", "userId": user, "messageId": f"an-{user}-{n}", "timestamp": ts,
        "event": event, "properties": props,
    }  # fmt: skip


@pytest.fixture(scope="module")
def shop(shared_server: Server) -> Server:
    """an1 buys twice (10 + 30) in the period, an2 once (20) before it, an3 only views."""
    messages = [
        _track("an1", 1, "2026-11-20T10:00:00Z", "Order Completed", revenue=10),
        _track("an1", 2, "2026-11-22T10:00:00Z", "Order Completed", revenue=30),
        _track("an2", 1, "2026-11-10T10:00:00Z", "Order Completed", revenue=20),
        _track("an3", 1, "2026-11-20T10:00:00Z", "Product Viewed"),
    ]
    for m in messages:
        assert shared_server.ingest("/v1/track", m).status_code == 200
    segments = {
        "an_buyers": {"event": "Order Completed"},
        "an_viewers": {"event": "Product Viewed"},
        "an_big": {"event": "Order Completed", "measure": "count", "gte": 2},
    }
    for sid, condition in segments.items():
        r = shared_server.client.post("/v1/segments", json={"id": sid, "condition": condition})
        assert r.status_code in (200, 201), r.text
    return shared_server


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    return error


def test_metrics(shop: Server) -> None:
    params = {"segment": ["an_buyers", "an_big"], **PERIOD}
    r = shop.client.get("/v1/analytics/metrics", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["from"], body["to"], body["bucket"]) == (
        "2026-11-15T00:00:00.000000Z", "2026-11-25T00:00:00.000000Z", "day",
    )  # fmt: skip
    buyers, big = body["segments"]
    assert (buyers["segment"], buyers["size"], buyers["orders"], buyers["revenue"]) == (
        "an_buyers", 2, 2, 40.0,
    )  # fmt: skip
    assert buyers["conversion_rate"]["value"] == 0.5  # an2 bought before the period
    assert buyers["aov"]["value"] == 20.0
    assert (big["size"], big["repeat_buyers"]) == (1, 1)
    assert len(buyers["series"]) == 10 and buyers["series_source"] in ("changes", "evaluation")
    assert body["everyone"]["segment"] is None

    weekly = shop.client.get("/v1/analytics/metrics", params={**params, "bucket": "week"})
    assert weekly.status_code == 200, weekly.text
    assert len(weekly.json()["segments"][0]["series"]) == 2


def test_overlap(shop: Server) -> None:
    params = {"segment": ["an_buyers", "an_viewers", "an_big"], "min_size": 0}
    r = shop.client.get("/v1/analytics/overlap", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sizes"] == [2, 1, 1]
    assert body["intersections"] == [[2, 0, 1], [0, 1, 0], [1, 0, 1]]
    assert body["exclusive"] == [1, 1, 0] and body["in_any"] == 3
    assert [w["kind"] for w in body["warnings"]] == ["contained"]  # an_big in an_buyers
    early = shop.client.get(
        "/v1/analytics/overlap", params={**params, "at": "2026-11-21T00:00:00Z"}
    ).json()
    assert early["sizes"] == [2, 1, 0]


def test_transitions(shop: Server) -> None:
    params = {"segment": ["an_big", "an_buyers"], **PERIOD}
    r = shop.client.get("/v1/analytics/transitions", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    # at A: an2 a buyer, an1 and an3 outside; at B: an1 in both, placed in the first of
    # the group's order (an_big), an2 a buyer, an3 outside
    assert body["stages"] == ["an_big", "an_buyers"]
    assert body["at_a"][:2] == [0, 1] and body["at_b"][:2] == [1, 1]
    assert {"source": None, "target": "an_big", "value": 1} in body["flows"]
    assert {"source": "an_buyers", "target": "an_buyers", "value": 1} in body["flows"]
    (pair,) = body["time_to_enter"]
    assert (pair["source"], pair["target"]) == ("an_big", "an_buyers")
    assert body["every"] is None and body["periods"] is None
    weekly = shop.client.get(
        "/v1/analytics/transitions", params={**params, "every": "week", "source": "evaluation"}
    ).json()
    # 10 days: a week, then the 3 days left; the weeks chain from A to B
    assert [(p["from"], p["to"]) for p in weekly["periods"]] == [
        ("2026-11-15T00:00:00.000000Z", "2026-11-22T00:00:00.000000Z"),
        ("2026-11-22T00:00:00.000000Z", "2026-11-25T00:00:00.000000Z"),
    ]
    assert weekly["periods"][0]["at_a"] == body["at_a"]
    assert weekly["periods"][-1]["at_b"] == body["at_b"]
    assert [s["at"] for s in weekly["sources"]] == [
        "2026-11-15T00:00:00.000000Z", "2026-11-22T00:00:00.000000Z",
        "2026-11-25T00:00:00.000000Z",
    ]  # fmt: skip


def test_unknown_segment_is_404(shop: Server) -> None:
    for path in ("metrics", "overlap", "transitions"):
        r = shop.client.get(f"/v1/analytics/{path}", params={"segment": ["an_buyers", "nope"]})
        assert _error(r, 404)["message"] == "unknown segment 'nope'"


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("metrics", {"from": "yesterday"}, "from"),
        ("metrics", {"to": "2999-01-01T00:00:00Z"}, "to"),
        ("metrics", {"from": "2026-11-25T00:00:00Z", "to": "2026-11-15T00:00:00Z"}, "from"),
        ("metrics", {"from": "2001-01-01T00:00:00Z", "to": "2026-11-15T00:00:00Z"}, "bucket"),
        ("metrics", {"bucket": "month"}, "bucket"),
        ("overlap", {"at": "not an instant"}, "at"),
        ("overlap", {"contained": "1.5"}, "contained"),
        ("transitions", {"segment": "an_buyers", "to": "2026-13-01"}, "to"),
        ("transitions", {}, "segment"),
        ("transitions", {"segment": "an_buyers", "every": "month"}, "every"),
        ("transitions", {"segment": "an_buyers", "source": "guess"}, "source"),
    ],
)
def test_bad_parameters_are_422_naming_them(
    shop: Server, path: str, params: dict[str, str], name: str
) -> None:
    error = _error(shop.client.get(f"/v1/analytics/{path}", params=params), 422)
    assert name in error["message"]
    assert any(e["path"].endswith(name) for e in error["errors"]), error


def test_analytics_need_the_admin_key(shop: Server) -> None:
    r = httpx.get(shop.base_url + "/v1/analytics/overlap", auth=(shop.write_key, ""))
    assert r.status_code in (401, 403), r.text
