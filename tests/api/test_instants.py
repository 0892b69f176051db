"""Durations and instants at the calendar's ends: refused (422, naming the field or
parameter) instead of overflowing inside the evaluators."""

from __future__ import annotations

import pytest

from tests.helpers import EDGE, Server

FAR = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z"]


def _segment(server: Server) -> None:
    body = {"id": "recent", "condition": {"event": "Order Completed", "within": "7d"}}
    assert server.client.post("/v1/segments", json=body).status_code == 201
    r = server.ingest(
        "/v1/track",
        {"userId": "ada", "event": "Order Completed", "timestamp": "2026-11-20T10:00:00Z"},
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("condition", "path"),
    [
        ({"event": "Order Completed", "within": "800000d"}, "condition.within"),
        ({"event": "Order Completed", "within": "100000w"}, "condition.within"),
        (
            {"event": "Product Added", "not_followed_by": "Order Completed", "for": "800000d"},
            "condition.for",
        ),
        (
            {"event": "Order Completed", "measure": "last_time", "older_than": "800000d"},
            "condition.older_than",
        ),
        (
            {"all": [{"trait": "signed_up", "within_last": "3650001d"}]},
            "condition.all[0].within_last",
        ),
    ],
)
def test_a_duration_past_the_calendar_is_refused(
    server: Server, condition: dict[str, object], path: str
) -> None:
    r = server.client.post("/v1/segments", json={"id": "huge", "condition": condition})
    assert r.status_code == 422, r.text
    [error] = r.json()["error"]["errors"]
    assert error["path"] == path and "longest duration" in error["message"]
    assert server.client.get("/v1/segments/huge").status_code == 404


def test_the_longest_duration_is_accepted(server: Server) -> None:
    body = {"id": "century", "condition": {"event": "Order Completed", "within": "36500d"}}
    r = server.client.post("/v1/segments", json=body)
    assert r.status_code == 201, r.text
    assert server.client.get("/v1/segments/century/members").status_code == 200


@EDGE
@pytest.mark.parametrize("at", FAR)
def test_an_instant_parameter_past_the_calendar_is_refused(server: Server, at: str) -> None:
    _segment(server)
    preview = {"id": "p", "condition": {"event": "Order Completed", "within": "7d"}}
    requests = [
        ("GET", "/v1/segments/recent/members", "at", None),
        ("GET", "/v1/segments/recent/export", "at", None),
        ("GET", "/v1/segments/recent/explain", "at", None),
        ("POST", "/v1/segments/preview", "at", preview),
        ("GET", "/v1/segments/recent/changes", "since", None),
        ("GET", "/v1/segments/recent/changes", "until", None),
        ("GET", "/v1/profiles/ada", "at", None),
        ("GET", "/v1/profiles/ada/scores", "at", None),
    ]
    for method, path, name, body in requests:
        params = {name: at, **({"profile_id": "ada"} if path.endswith("explain") else {})}
        r = server.client.request(method, path, params=params, json=body)
        assert r.status_code == 422, (path, r.text)
        [error] = r.json()["error"]["errors"]
        assert error["path"] == name and at in error["message"], (path, error)
    r = server.client.get("/v1/segments/recent/members", params={"at": "2026-11-21T00:00:00Z"})
    assert r.status_code == 200 and r.json()["members"] == ["ada"]
