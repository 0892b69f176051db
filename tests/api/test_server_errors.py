"""An unexpected failure in a handler: a 500 in the shared JSON error shape, and
every request after it answered normally (through the edge too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter

from segflow.api.deps import Settings
from segflow.server import make_context, serve_in_thread
from tests.helpers import SERVER_KINDS, create_keys

failing = APIRouter()


@failing.get("/v1/test/fail")
async def fail() -> None:
    raise RuntimeError("a bug in a handler")


@pytest.fixture(params=SERVER_KINDS)
def client(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    ctx = make_context(tmp_path / "e.duckdb", settings=Settings(schedule_interval_seconds=3600))
    ctx.extra["routers"] = [failing]
    admin, _ = create_keys(ctx)
    headers = {"Authorization": f"Bearer {admin}"}
    with (
        serve_in_thread(ctx, edge=request.param) as running,
        httpx.Client(base_url=running.base_url, headers=headers, timeout=30) as http,
    ):
        yield http


def test_a_500_has_the_json_error_shape(client: httpx.Client) -> None:
    r = client.get("/v1/test/fail")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["status"] == 500 and error["errors"] == []
    assert "internal server error" in error["message"]
    assert "a bug" not in r.text  # the details go to the log, not to the client


def test_every_request_after_a_500_is_answered(client: httpx.Client) -> None:
    definition = {"id": "viewers", "condition": {"event": "Product Viewed"}}
    for _ in range(15):
        assert client.get("/v1/test/fail").status_code == 500
        r = client.post("/v1/segments/validate", json=definition)
        assert r.status_code == 200, r.text
        assert client.get("/v1/test/fail").status_code == 500
        r = client.get("/v1/segments")
        assert r.status_code == 200, r.text
