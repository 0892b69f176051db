"""The fast lane (ingestion and the segments look-up before FastAPI's routing) answers
exactly what the FastAPI routes answer: compared on the same server context."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from segflow.api.app import create_app
from segflow.api.http import INGEST, lookup_id
from tests.helpers import Server


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/profiles/u1/segments", "u1"),
        ("/v1/profiles/a b%2F/segments", "a b%2F"),
        ("/v1/profiles//segments", None),
        ("/v1/profiles/a/b/segments", None),
        ("/v1/profiles/u1", None),
        ("/v1/profiles/u1/segments/", None),
        ("/v1/segments/x/segments", None),
    ],
)
def test_lookup_id(path: str, expected: str | None) -> None:
    assert lookup_id(path) == expected


def test_ingest_paths_are_the_segment_endpoints() -> None:
    assert set(INGEST) == {
        f"/v1/{k}" for k in ("track", "identify", "page", "screen", "alias", "group", "batch")
    }


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def test_fast_lane_answers_as_the_routes_do(server: Server) -> None:
    ok = server.ingest(
        "/v1/track",
        {"userId": "u1", "event": "Order Completed", "properties": {"revenue": 5}},
    )
    assert ok.status_code == 200
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    write = {"Authorization": _basic(server.write_key)}
    cases: list[tuple[str, str, dict[str, str], bytes | None]] = [
        ("GET", "/v1/profiles/u1/segments", admin, None),
        ("GET", "/v1/profiles/nobody/segments", admin, None),
        ("GET", "/v1/profiles/u1/segments", {}, None),
        ("GET", "/v1/profiles/u1/segments", write, None),
        ("GET", "/v1/profiles/u1/segments", {"Authorization": "Bearer nope"}, None),
        ("POST", "/v1/track", {}, b'{"userId": "u1", "event": "x"}'),
        ("POST", "/v1/track", write, b'{"userId": '),
        ("POST", "/v1/batch", write, b'{"batch": [{"type": "nope"}, 3]}'),
        ("POST", "/v1/batch", write, b"[]"),
        ("POST", "/v1/identify", write, b""),
        ("POST", "/v1/page", write, b"x" * (40 * 1024)),
    ]

    async def routes() -> list[tuple[int, bytes]]:
        transport = httpx.ASGITransport(app=create_app(server.ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            out = []
            for method, path, headers, body in cases:
                r = await c.request(method, path, headers=headers, content=body)
                out.append((r.status_code, r.content))
            return out

    expected = asyncio.run(routes())
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        got = [
            (r.status_code, r.content)
            for r in (c.request(m, p, headers=h, content=b) for m, p, h, b in cases)
        ]
    assert [s for s, _ in got] == [200, 200, 401, 403, 401, 401, 400, 400, 400, 400, 413]
    assert got == expected
    assert b'"profile_id":"u1"' in got[0][1]
