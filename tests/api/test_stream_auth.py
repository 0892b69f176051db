"""The change stream's auth: the admin key in the Authorization header (fetch), or a
short-lived stream token in the URL (EventSource); never an API key in a URL."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx

from segflow.model.time import parse_instant, utcnow
from tests.helpers import Server, create_viewers, post_view


def _first_change(server: Server, params: dict[str, str], headers: dict[str, str]) -> dict:
    """Open the stream, cause one change, and return it."""
    with httpx.stream(
        "GET",
        server.base_url + "/v1/changes/stream",
        params=params,
        headers=headers,
        timeout=httpx.Timeout(30, read=20),
    ) as r:
        assert r.status_code == 200, r.read()
        event: dict[str, str] = {}
        for line in r.iter_lines():
            if line.startswith(": segflow"):  # the stream is open: cause a change
                post_view(server, "ann", len(params))
            elif not line:
                if "data" in event:
                    return json.loads(event["data"])
                event = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                event[key] = value.strip()
    raise AssertionError("stream ended")


def test_stream_with_the_admin_key_in_the_header(server: Server) -> None:
    create_viewers(server)
    change = _first_change(
        server, {"segment_id": "viewers"}, {"Authorization": f"Bearer {server.admin_key}"}
    )
    assert change["profile_id"] == "ann" and change["entered"] is True


def test_stream_with_a_stream_token_in_the_url(server: Server) -> None:
    create_viewers(server)
    r = server.client.post("/v1/stream-tokens")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["token"].startswith("sfs_") and body["scope"] == "changes.stream"
    assert body["expires_at"].endswith("Z")
    left = parse_instant(body["expires_at"]) - utcnow()
    assert timedelta(minutes=4) < left <= timedelta(minutes=5)
    change = _first_change(server, {"segment_id": "viewers", "api_key": body["token"]}, {})
    assert change["profile_id"] == "ann"


def test_no_key_in_a_url(shared_server: Server) -> None:
    admin = shared_server.admin_key
    url = shared_server.base_url
    r = httpx.get(url + "/v1/changes/stream", params={"api_key": admin})
    assert r.status_code == 401
    err = r.json()["error"]
    assert "POST /v1/stream-tokens" in err["message"]
    assert err["errors"][0]["path"] == "api_key"
    r = httpx.get(url + "/v1/segments", params={"api_key": admin})
    assert r.status_code == 401
    assert "not accepted in the URL" in r.json()["error"]["message"]
    r = httpx.get(url + "/v1/changes", params={"api_key": admin})
    assert r.status_code == 401


def test_a_stream_token_opens_the_stream_only(shared_server: Server) -> None:
    url = shared_server.base_url
    token = shared_server.client.post("/v1/stream-tokens").json()["token"]
    assert httpx.get(url + "/v1/segments", params={"api_key": token}).status_code == 401
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(url + "/v1/segments", headers=bearer).status_code == 401
    assert httpx.post(url + "/v1/stream-tokens", headers=bearer).status_code == 401
    r = httpx.get(url + "/v1/changes/stream", params={"api_key": "sfs_nope"})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "unknown stream token"


def test_stream_tokens_need_an_admin_key_and_die_with_it(shared_server: Server) -> None:
    url = shared_server.base_url
    r = httpx.post(url + "/v1/stream-tokens", auth=(shared_server.write_key, ""))
    assert r.status_code == 403
    assert httpx.post(url + "/v1/stream-tokens").status_code == 401
    ctx = shared_server.ctx
    with ctx.lock:
        other = ctx.key_store.create("admin", "short-lived")
    token = httpx.post(
        url + "/v1/stream-tokens", headers={"Authorization": f"Bearer {other.token}"}
    ).json()["token"]
    with ctx.lock:
        ctx.key_store.revoke(other.key.id)
    r = httpx.get(url + "/v1/changes/stream", params={"api_key": token})
    assert r.status_code == 401
    assert "revoked" in r.json()["error"]["message"]
