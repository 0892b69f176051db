"""At least once through a crash: SIGKILL the server while it is sending changes and a
full sync to a Redis stream, restart it, and every change and every member reaches the
stream (each once: the stream drops a re-sent idempotency key)."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from segflow.model.definition import parse_segment
from segflow.server import ServerProcess, make_context, serve_in_thread
from segflow.service.handle import Segflow
from segflow.store.duckdb.keys import KeyStore
from tests.helpers import wait_for

pytestmark = pytest.mark.slow  # kills and restarts a server process


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return False
    return True


USERS = 1500


@pytest.fixture
def stream() -> Iterator[tuple[Any, str]]:
    if not _redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379 (port closed)")
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    name = f"segflow-crash-{uuid.uuid4().hex[:10]}"
    yield client, name
    client.delete(name)
    for key in client.scan_iter(f"segflow:dedupe:{name}:*"):
        client.delete(key)
    client.close()


def _views(first: int, n: int) -> list[dict[str, Any]]:
    ts = datetime.now(UTC).isoformat()
    return [
        {"type": "track", "userId": f"u{i}", "event": "Product Viewed",
         "messageId": f"view-{i}", "timestamp": ts}
        for i in range(first, first + n)
    ]  # fmt: skip


def _entries(client: Any, name: str) -> list[dict[str, Any]]:
    return [json.loads(f[b"body"]) for _id, f in client.xrange(name)]


def test_every_change_reaches_the_stream_after_a_sigkill_mid_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: tuple[Any, str]
) -> None:
    client, name = stream
    monkeypatch.setenv("SEGFLOW_WEBHOOK_BACKOFF_S", "0.2")
    db = tmp_path / "crash.duckdb"
    sf = Segflow(db)
    keys = KeyStore(sf.store.con)
    admin, write = keys.create("admin").token, keys.create("write").token
    sf.registry.save(
        [parse_segment({"id": "viewers", "condition": {"event": "Product Viewed", "within": "7d"}})]
    )
    sf.close()
    auth = {"Authorization": f"Bearer {admin}"}
    server = ServerProcess(db).start()
    try:
        url = server.base_url
        r = httpx.post(
            url + "/v1/destinations",
            json={"type": "redis", "segments": ["viewers"], "batch_size": 1,
                  "config": {"stream": name}},
            headers=auth,
            timeout=60,
        )  # fmt: skip
        assert r.status_code == 201, r.text
        dest_id = r.json()["id"]
        for first in range(0, USERS, 500):
            batch = {"batch": _views(first, 500)}
            assert httpx.post(url + "/v1/batch", json=batch, auth=(write, ""), timeout=60)
        r = httpx.post(f"{url}/v1/destinations/{dest_id}/sync", headers=auth, timeout=60)
        assert r.status_code == 202, r.text
        wait_for(lambda: client.xlen(name) > 0)
    finally:
        server.kill()
    before = client.xlen(name)  # what got out before the crash (often not all of it)

    with serve_in_thread(make_context(db)) as again:
        base = again.base_url

        def changes() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            after = 0
            while True:
                r = httpx.get(
                    base + "/v1/changes",
                    params={"segment_id": "viewers", "after": after, "limit": 1000},
                    headers=auth,
                    timeout=60,
                )
                page = r.json()["changes"]
                if not page:
                    return out
                out += page
                after = page[-1]["seq"]

        logged = changes()
        assert len(logged) == USERS

        def synced() -> bool:
            r = httpx.get(f"{base}/v1/destinations/{dest_id}/syncs", headers=auth, timeout=60)
            return any(s["status"] == "done" for s in r.json()["syncs"])

        wait_for(synced, timeout=120)
        wanted = {f"viewers:{c['profile_id']}:{c['seq']}" for c in logged}
        wait_for(
            lambda: wanted <= {e["idempotency_key"] for e in _entries(client, name)},
            timeout=120,
        )
        time.sleep(0.5)
    entries = _entries(client, name)
    sent = [e["idempotency_key"] for e in entries if e["type"] == "segment.entered"]
    assert set(sent) == wanted
    assert len(sent) == len(wanted)  # a re-sent change is dropped by its key
    members = {e["profile_id"] for e in entries if e["type"] == "segment.member"}
    assert members == {f"u{i}" for i in range(USERS)}
    assert before <= len(entries)
