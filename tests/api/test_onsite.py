"""The on-site read over real HTTP, in one process and behind the edge: publishable
keys read it and nothing else, only public segments show, anonymous ids resolve
through identity merges, CORS for the key's origins, the analytics.js cookie."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.helpers import EDGE, SHARED_EDGE, Server, now_iso

ROUTE = "/v1/onsite/segments"
SHOP = "https://shop.example"


def _eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _key(server: Server, kind: str = "publishable", origins: list[str] | None = None) -> str:
    body: dict[str, Any] = {"kind": kind, "name": f"{kind} key"}
    if origins is not None:
        body["origins"] = origins
    r = server.client.post("/v1/keys", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def _segment(server: Server, doc: dict[str, Any], *, update: bool = False) -> None:
    if update:
        r = server.client.put(f"/v1/segments/{doc['id']}", json=doc)
    else:
        r = server.client.post("/v1/segments", json=doc)
    assert r.status_code in (200, 201), r.text


def _track(server: Server, mid: str, event: str = "Product Viewed", **ids: str) -> None:
    msg = {"type": "track", "event": event, "messageId": mid, "timestamp": now_iso(), **ids}
    r = server.ingest("/v1/track", msg)
    assert r.status_code == 200, r.text


def _read(
    server: Server,
    key: str | None,
    *,
    anonymous_id: str | None = None,
    cookie: str | None = None,
    origin: str | None = None,
    in_url: bool = False,
) -> httpx.Response:
    params: dict[str, str] = {}
    headers: dict[str, str] = {}
    if key is not None:
        if in_url:
            params["key"] = key
        else:
            headers["X-Segflow-Key"] = key
    if anonymous_id is not None:
        params["anonymous_id"] = anonymous_id
    if cookie is not None:
        headers["Cookie"] = cookie
    if origin is not None:
        headers["Origin"] = origin
    return httpx.get(server.base_url + ROUTE, params=params, headers=headers, timeout=30)


def _segments(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return list(r.json()["segments"])


@pytest.fixture
def shop(server: Server) -> Server:
    """Public ``viewers`` and ``gold``, private ``recent_viewers``, and a priority
    group over them (its ``gold`` resolution public, its ``recent_viewers`` one not)."""
    viewed = {"event": "Product Viewed", "within": "7d"}
    _segment(server, {"id": "viewers", "public": True, "condition": viewed})
    _segment(server, {"id": "recent_viewers", "condition": viewed})
    gold = {"trait": "plan", "eq": "gold"}
    _segment(server, {"id": "gold", "public": True, "condition": gold})
    r = server.client.post(
        "/v1/groups", json={"group": "tier", "segments": ["gold", "recent_viewers"]}
    )
    assert r.status_code in (200, 201), r.text
    return server


@EDGE
def test_only_public_segments_are_shown(shop: Server) -> None:
    key = _key(shop)
    _track(shop, "m1", anonymousId="anon-1")
    assert _segments(_read(shop, key, anonymous_id="anon-1")) == ["viewers"]
    # the admin look-up sees the private ones; the on-site read never does
    admin = shop.client.get("/v1/profiles/anon-1/segments").json()["segments"]
    assert set(admin) == {"viewers", "recent_viewers", "tier:recent_viewers"}
    # a segment made private disappears; made public, it shows
    viewed = {"event": "Product Viewed", "within": "7d"}
    _segment(shop, {"id": "viewers", "condition": viewed}, update=True)
    _eventually(lambda: _segments(_read(shop, key, anonymous_id="anon-1")) == [])
    _segment(shop, {"id": "recent_viewers", "public": True, "condition": viewed}, update=True)
    _eventually(
        lambda: _segments(_read(shop, key, anonymous_id="anon-1"))
        == ["recent_viewers", "tier:recent_viewers"]
    )


@EDGE
def test_an_anonymous_id_resolves_to_the_profile_it_merged_into(shop: Server) -> None:
    key = _key(shop)
    _track(shop, "v1", anonymousId="anon-a")
    ident = {"type": "identify", "userId": "ada", "traits": {"plan": "gold"}}
    assert shop.ingest("/v1/identify", {**ident, "messageId": "i0"}).status_code == 200
    assert _segments(_read(shop, key, anonymous_id="anon-a")) == ["viewers"]
    # the visitor logs in: anon-a's profile merges into ada's
    link = {**ident, "anonymousId": "anon-a", "messageId": "i1", "timestamp": now_iso()}
    assert shop.ingest("/v1/identify", link).status_code == 200
    assert _segments(_read(shop, key, anonymous_id="anon-a")) == ["gold", "tier:gold", "viewers"]
    # an anonymous id first seen with the user id resolves too
    _track(shop, "v2", anonymousId="anon-b", userId="ada")
    assert _segments(_read(shop, key, anonymous_id="anon-b")) == ["gold", "tier:gold", "viewers"]
    # a user id is not an anonymous id: no answer names a user by a guessable id
    assert _segments(_read(shop, key, anonymous_id="ada")) == []


@EDGE
def test_unknown_and_absent_visitors_get_an_empty_list(shop: Server) -> None:
    key = _key(shop)
    assert _segments(_read(shop, key, anonymous_id="nobody")) == []
    assert _segments(_read(shop, key)) == []
    assert _segments(_read(shop, key, cookie="ajs_anonymous_id=")) == []


@EDGE
def test_the_analytics_js_cookie_is_read(shop: Server) -> None:
    key = _key(shop)
    anon = "5a1c8e0b-2f7e-4c1d-9d3b-0a6f2f1e7c11"
    _track(shop, "c1", anonymousId=anon)
    for cookie in (
        f"ajs_anonymous_id={quote(chr(34) + anon + chr(34))}",  # %22...%22, as analytics.js
        f'ajs_user_id=null; ajs_anonymous_id="{anon}"; other=1',  # JSON-quoted
        f"ajs_anonymous_id={anon}",  # plain
    ):
        assert _segments(_read(shop, key, cookie=cookie)) == ["viewers"], cookie
    # the parameter wins over the cookie
    r = _read(shop, key, cookie=f"ajs_anonymous_id={anon}", anonymous_id="nobody")
    assert _segments(r) == []
    # a malformed cookie is refused, naming it
    for bad in ('ajs_anonymous_id="unterminated', "ajs_anonymous_id=%ff%fe", 'ajs_anonymous_id="1'):
        r = _read(shop, key, cookie=bad)
        assert r.status_code == 400, bad
        assert r.json()["error"]["errors"][0]["path"] == "cookie ajs_anonymous_id"
    r = _read(shop, key, anonymous_id="x" * 300)
    assert r.status_code == 400 and r.json()["error"]["errors"][0]["path"] == "anonymous_id"


@EDGE
def test_cors_for_the_keys_origins(shop: Server) -> None:
    key = _key(shop, origins=[SHOP, "http://localhost:3000"])
    _track(shop, "o1", anonymousId="anon-o")
    r = _read(shop, key, anonymous_id="anon-o", origin=SHOP)
    assert _segments(r) == ["viewers"]
    assert r.headers["access-control-allow-origin"] == SHOP
    assert r.headers["access-control-allow-credentials"] == "true"
    assert r.headers["cache-control"].startswith("private, max-age=")
    assert r.headers["vary"] == "Origin, Cookie"
    # the key in the URL: a simple request, same answer
    assert _segments(_read(shop, key, anonymous_id="anon-o", origin=SHOP, in_url=True)) == [
        "viewers"
    ]
    # another origin: refused, and no CORS header lets its page read anything
    r = _read(shop, key, anonymous_id="anon-o", origin="https://evil.example")
    assert r.status_code == 403, r.text
    assert "access-control-allow-origin" not in r.headers
    assert "https://evil.example" in r.json()["error"]["message"]
    # the preflight (no key in it: the header is what it asks about)
    ask = {
        "Origin": SHOP,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-segflow-key",
    }
    pre = httpx.options(shop.base_url + ROUTE, headers=ask, timeout=30)
    assert pre.status_code == 204, pre.text
    assert pre.headers["access-control-allow-origin"] == SHOP
    assert pre.headers["access-control-allow-credentials"] == "true"
    assert "x-segflow-key" in pre.headers["access-control-allow-headers"].lower()
    assert "GET" in pre.headers["access-control-allow-methods"]
    evil = httpx.options(
        shop.base_url + ROUTE, headers={**ask, "Origin": "https://evil.example"}, timeout=30
    )
    assert evil.status_code == 403
    assert "access-control-allow-origin" not in evil.headers
    keyed = httpx.options(
        shop.base_url + ROUTE,
        params={"key": key},
        headers={**ask, "Origin": "http://localhost:3000"},
    )
    assert keyed.status_code == 204
    assert keyed.headers["access-control-allow-origin"] == "http://localhost:3000"


@EDGE
def test_a_key_without_origins_echoes_the_origin_never_a_star(shop: Server) -> None:
    key = _key(shop)
    r = _read(shop, key, anonymous_id="anyone", origin="https://other.example")
    assert _segments(r) == []
    assert r.headers["access-control-allow-origin"] == "https://other.example"
    # no Origin (not a browser's cross-origin call): no CORS headers at all
    assert "access-control-allow-origin" not in _read(shop, key, anonymous_id="x").headers


@SHARED_EDGE
def test_keys_other_than_publishable_are_refused(shared_server: Server) -> None:
    s = shared_server
    r = _read(s, None, anonymous_id="x")
    assert r.status_code == 401 and "missing publishable key" in r.json()["error"]["message"]
    assert _read(s, "sfp_nope", anonymous_id="x").status_code == 401
    for kind, token in (("write", s.write_key), ("admin", s.admin_key)):
        r = _read(s, token, anonymous_id="x")
        assert r.status_code == 403, kind
        assert f"a {kind} key cannot use this endpoint" in r.json()["error"]["message"]


@SHARED_EDGE
def test_a_publishable_key_reads_nothing_else(shared_server: Server) -> None:
    s = shared_server
    key = _key(s)
    bearer = {"Authorization": f"Bearer {key}"}
    for path in ("/v1/segments", "/v1/profiles/x/segments", "/v1/keys", "/v1/changes"):
        r = httpx.get(s.base_url + path, headers=bearer, timeout=30)
        assert r.status_code == 403, path
        assert "a publishable key cannot use this endpoint" in r.json()["error"]["message"]
    msg = {"type": "track", "event": "E", "anonymousId": "a", "messageId": "pk-1"}
    r = httpx.post(s.base_url + "/v1/track", json=msg, auth=(key, ""), timeout=30)
    assert r.status_code == 403 and "publishable key" in r.json()["error"]["message"]
    r = httpx.post(s.base_url + "/v1/track", json={**msg, "writeKey": key}, timeout=30)
    assert r.status_code == 403
    token = httpx.post(s.base_url + "/v1/stream-tokens", headers=bearer, timeout=30)
    assert token.status_code == 403


@SHARED_EDGE
def test_publishable_keys_are_created_with_their_origins(shared_server: Server) -> None:
    s = shared_server
    body = {"kind": "publishable", "origins": ["HTTPS://Shop.Example/", "https://shop.example:443"]}
    r = s.client.post("/v1/keys", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["origins"] == [SHOP] and r.json()["token"].startswith("sfp_")
    listed = {k["id"]: k for k in s.client.get("/v1/keys").json()}
    assert listed[r.json()["id"]]["origins"] == [SHOP]
    bad = s.client.post(
        "/v1/keys", json={"kind": "publishable", "origins": ["https://a.example/x"]}
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["errors"][0]["path"] == "origins[0]"
    wrong = s.client.post("/v1/keys", json={"kind": "write", "origins": [SHOP]})
    assert wrong.status_code == 422 and "only publishable keys" in wrong.text


@pytest.mark.parametrize("server", [pytest.param(True, marks=pytest.mark.slow)], indirect=True)
def test_the_edge_answers_from_its_index(shop: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind the edge, an acknowledged event's visitor and segments are already in the
    edge's copy: the read and the preflight are answered without the core."""
    from segflow.api.routes import onsite

    key = _key(shop, origins=[SHOP])
    _track(shop, "e1", anonymousId="anon-e")

    async def core_read(*args: object) -> list[str]:
        raise RuntimeError("the core was asked")

    monkeypatch.setattr(onsite, "_segments", core_read)
    monkeypatch.setattr(onsite, "preflight_headers", core_read)
    assert _segments(_read(shop, key, anonymous_id="anon-e", origin=SHOP)) == ["viewers"]
    assert _segments(_read(shop, key, anonymous_id="nobody", origin=SHOP)) == []
    ask = {"Origin": SHOP, "Access-Control-Request-Method": "GET"}
    assert httpx.options(shop.base_url + ROUTE, headers=ask, timeout=30).status_code == 204
    # a refused origin is left to the core, which answers the error
    assert _read(shop, key, anonymous_id="x", origin="https://evil.example").status_code == 403


@EDGE
def test_an_erased_visitor_is_forgotten(shop: Server) -> None:
    from segflow.api.routes.profiles import visitor_index

    key = _key(shop)
    _track(shop, "d1", anonymousId="anon-d")
    assert _segments(_read(shop, key, anonymous_id="anon-d")) == ["viewers"]
    assert shop.client.delete("/v1/profiles/anon-d").status_code == 200
    assert visitor_index(shop.ctx).resolve("anon-d") is None
    _eventually(lambda: _segments(_read(shop, key, anonymous_id="anon-d")) == [])


def test_openapi_declares_the_publishable_key(shared_server: Server) -> None:
    doc = httpx.get(shared_server.base_url + "/openapi.json", timeout=30).json()
    ops = doc["paths"][ROUTE]
    for method in ("get", "options"):
        assert ops[method]["security"] == [{"publishableKey": []}, {"publishableKeyParam": []}]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["publishableKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Segflow-Key",
        "description": schemes["publishableKey"]["description"],
    }
    assert "publishable" in str(doc["components"]["schemas"]["KeyCreate"])
