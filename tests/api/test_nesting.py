"""Deeply nested bodies against the two-process server: refused with the path and
the limit, and the server keeps answering (nothing serialises them first)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from segflow.server import ServerProcess
from segflow.service.handle import Segflow
from segflow.store.duckdb.keys import KeyStore

pytestmark = pytest.mark.slow  # a server child process


def _nested(levels: int, key: str = "a") -> dict[str, Any]:
    inner: dict[str, Any] = {"leaf": 1}
    for _ in range(levels):
        inner = {key: inner}
    return inner


def _track(levels: int, message_id: str | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "type": "track",
        "userId": "deep",
        "event": "Deep",
        "timestamp": "2026-11-20T10:00:00Z",
        "properties": _nested(levels),
    }
    if message_id is not None:
        msg["messageId"] = message_id
    return msg


class Running:
    def __init__(self, server: ServerProcess, admin: str, write: str) -> None:
        self.url = server.base_url
        self.admin = admin
        self.write = write

    def post(self, path: str, body: object) -> httpx.Response:
        return httpx.post(self.url + path, json=body, auth=(self.write, ""), timeout=30)

    def admin_post(self, path: str, body: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin}"}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=30)

    def answers_normally(self) -> None:
        r = self.post("/v1/track", {**_track(2, "normal"), "userId": "ok"})
        assert r.status_code == 200, r.text
        assert httpx.get(self.url + "/healthz", timeout=10).status_code == 200


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    db = tmp_path_factory.mktemp("nesting") / "deep.duckdb"
    sf = Segflow(db)
    keys = KeyStore(sf.store.con)
    admin, write = keys.create("admin").token, keys.create("write").token
    sf.close()
    with ServerProcess(db) as server:
        yield Running(server, admin, write)


@pytest.mark.parametrize("levels", [64, 170, 200, 254, 300])
@pytest.mark.parametrize("message_id", [None, "m-deep"], ids=["derived-id", "message-id"])
def test_a_deep_message_is_refused_and_the_server_answers_on(
    running: Running, levels: int, message_id: str | None
) -> None:
    r = running.post("/v1/track", _track(levels, message_id))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    path = error["errors"][0]["path"]
    assert path == "properties" + ".a" * 64
    assert "64 levels" in error["errors"][0]["message"]
    assert path in error["message"]
    running.answers_normally()


def test_a_message_at_the_limit_is_stored(running: Running) -> None:
    r = running.post("/v1/track", _track(62, "at-limit"))  # properties + 62 + leaf's object
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("levels", [170, 255])
def test_a_deep_message_in_a_large_batch_is_refused_by_position(
    running: Running, levels: int
) -> None:
    filler = [
        {**_track(1, f"fill-{levels}-{i}"), "properties": {"pad": "x" * 400}} for i in range(100)
    ]
    batch = [*filler[:50], _track(levels), *filler[50:]]
    r = running.post("/v1/batch", {"batch": batch})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["errors"][0]["path"] == "batch[50].properties" + ".a" * 64
    running.answers_normally()


def test_deep_lists_and_batch_context_are_refused(running: Running) -> None:
    deep_list: Any = []
    for _ in range(200):
        deep_list = [deep_list]
    r = running.post("/v1/track", {**_track(1, "lists"), "properties": {"l": deep_list}})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["errors"][0]["path"].startswith("properties.l[0][0]")
    r = running.post("/v1/batch", {"batch": [_track(1, "ctx")], "context": _nested(200)})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["errors"][0]["path"].startswith("context.a.a")
    running.answers_normally()


def test_a_deep_definition_is_refused_with_422(running: Running) -> None:
    condition: dict[str, Any] = {"event": "Order Completed"}
    for _ in range(100):
        condition = {"all": [condition]}
    r = running.admin_post("/v1/segments", {"id": "deep", "condition": condition})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["errors"][0]["path"] == "condition" + ".all[0]" * 32  # level 65
    assert "64 levels" in error["errors"][0]["message"]
    r = running.admin_post("/v1/segments/validate", {"id": "deep", "condition": condition})
    assert r.json()["valid"] is False and "64 levels" in r.json()["errors"][0]["message"]
    running.answers_normally()
    r = running.admin_post("/v1/segments", {"id": "shallow", "condition": {"event": "X"}})
    assert r.status_code == 201, r.text
