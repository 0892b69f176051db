"""Durations and instants at the calendar's ends: refused (422, naming the field or
parameter) instead of overflowing inside the evaluators."""

from __future__ import annotations

import pytest

from tests.helpers import SHARED_EDGE, Server

FAR = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z"]


def _segment(server: Server, sid: str, user: str) -> None:
    """Segment ``sid``: ``user``, the one profile with ``sid``'s event."""
    body = {"id": sid, "condition": {"event": f"{sid} Completed", "within": "7d"}}
    assert server.client.post("/v1/segments", json=body).status_code == 201
    r = server.ingest(
        "/v1/track",
        {"userId": user, "event": f"{sid} Completed", "timestamp": "2026-11-20T10:00:00Z"},
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
    shared_server: Server, condition: dict[str, object], path: str
) -> None:
    r = shared_server.client.post("/v1/segments", json={"id": "huge", "condition": condition})
    assert r.status_code == 422, r.text
    [error] = r.json()["error"]["errors"]
    assert error["path"] == path and "longest duration" in error["message"]
    assert shared_server.client.get("/v1/segments/huge").status_code == 404


def test_the_longest_duration_is_accepted(shared_server: Server) -> None:
    body = {"id": "century", "condition": {"event": "Order Completed", "within": "36500d"}}
    r = shared_server.client.post("/v1/segments", json=body)
    assert r.status_code == 201, r.text
    assert shared_server.client.get("/v1/segments/century/members").status_code == 200


@SHARED_EDGE
@pytest.mark.parametrize("at", FAR)
def test_an_instant_parameter_past_the_calendar_is_refused(shared_server: Server, at: str) -> None:
    # the server is shared: a segment, an event and a profile of this instant's own
    sid, user = f"recent{FAR.index(at)}", f"ada{FAR.index(at)}"
    _segment(shared_server, sid, user)
    preview = {"id": "p", "condition": {"event": "Order Completed", "within": "7d"}}
    requests = [
        ("GET", f"/v1/segments/{sid}/members", "at", None),
        ("GET", f"/v1/segments/{sid}/export", "at", None),
        ("GET", f"/v1/segments/{sid}/explain", "at", None),
        ("POST", "/v1/segments/preview", "at", preview),
        ("GET", f"/v1/segments/{sid}/changes", "since", None),
        ("GET", f"/v1/segments/{sid}/changes", "until", None),
        ("GET", f"/v1/profiles/{user}", "at", None),
        ("GET", f"/v1/profiles/{user}/scores", "at", None),
    ]
    for method, path, name, body in requests:
        params = {name: at, **({"profile_id": user} if path.endswith("explain") else {})}
        r = shared_server.client.request(method, path, params=params, json=body)
        assert r.status_code == 422, (path, r.text)
        [error] = r.json()["error"]["errors"]
        assert error["path"] == name and at in error["message"], (path, error)
    at_ok = {"at": "2026-11-21T00:00:00Z"}
    r = shared_server.client.get(f"/v1/segments/{sid}/members", params=at_ok)
    assert r.status_code == 200 and r.json()["members"] == [user]
