"""Webhook destinations do not wait on each other, and URLs at metadata / link-local
addresses or at the server itself are refused: real receivers on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from segflow.api.deps import Settings
from segflow.server import make_context, serve_in_thread
from tests.helpers import EDGE, Receiver, Server, create_keys, create_viewers, post_view, wait_for


class Blackhole:
    """A destination that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.connections: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)  # held open, never read from or answered

    def close(self) -> None:
        self._closed = True
        self.sock.close()
        for c in self.connections:
            c.close()


@pytest.fixture
def stuck_for_long(monkeypatch: pytest.MonkeyPatch) -> None:
    """A timeout far longer than the test: the dead destination stays stuck throughout."""
    monkeypatch.setenv("SEGFLOW_WEBHOOK_TIMEOUT_S", "120")
    monkeypatch.setenv("SEGFLOW_WEBHOOK_BACKOFF_S", "0.1")


def test_dead_destination_does_not_hold_up_a_healthy_one(
    stuck_for_long: None, server: Server
) -> None:
    dead, healthy = Blackhole(), Receiver(fail_first=0)
    try:
        create_viewers(server)
        hooks = {}
        for name, url in (("dead", dead.url), ("healthy", healthy.url)):
            r = server.client.post("/v1/webhooks", json={"segment_id": "viewers", "url": url})
            assert r.status_code == 201, r.text
            hooks[name] = r.json()["id"]
        for n, user in enumerate(("ann", "bob", "cy")):
            post_view(server, user, n)
            wait_for(lambda k=n + 1: len(healthy.accepted) == k)
        assert dead.connections  # the dead one was tried and is still waiting
        pending = server.client.get(
            "/v1/webhooks/deliveries",
            params={"webhook_id": hooks["dead"], "status": "pending"},
        ).json()["deliveries"]
        assert len(pending) == 3 and all(d["attempts"] == 0 for d in pending)
        delivered = server.client.get(
            "/v1/webhooks/deliveries",
            params={"webhook_id": hooks["healthy"], "status": "delivered"},
        ).json()["deliveries"]
        assert len(delivered) == 3
    finally:
        dead.close()
        healthy.close()


REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://0.0.0.0:8080/hook",
    "http://224.0.0.1/hook",
]


@EDGE
def test_urls_at_metadata_link_local_or_the_server_itself_are_refused(server: Server) -> None:
    create_viewers(server)
    for url in [*REFUSED, server.base_url + "/v1/track"]:
        r = server.client.post("/v1/webhooks", json={"segment_id": "viewers", "url": url})
        assert r.status_code == 422, (url, r.text)
        assert r.json()["error"]["errors"][0]["path"] == "body.url"
    receiver = Receiver(fail_first=0)
    try:
        r = server.client.post("/v1/webhooks", json={"segment_id": "viewers", "url": receiver.url})
        assert r.status_code == 201, r.text  # loopback receivers are allowed by default
    finally:
        receiver.close()
    listed = server.client.get("/v1/webhooks").json()["webhooks"]
    assert [h["url"] for h in listed] == [receiver.url]  # nothing refused was stored


@pytest.fixture
def permissive(tmp_path: Path) -> Iterator[tuple[httpx.Client, str]]:
    settings = Settings(schedule_interval_seconds=3600, allow_internal_webhook_targets=True)
    ctx = make_context(tmp_path / "p.duckdb", settings=settings)
    admin, _ = create_keys(ctx)
    with (
        serve_in_thread(ctx) as running,
        httpx.Client(
            base_url=running.base_url, headers={"Authorization": f"Bearer {admin}"}, timeout=30
        ) as client,
    ):
        yield client, running.base_url


def test_internal_targets_are_accepted_when_allowed(permissive: tuple[httpx.Client, str]) -> None:
    client, base_url = permissive
    seg = {"id": "viewers", "condition": {"event": "Product Viewed", "within": "7d"}}
    assert client.post("/v1/segments", json=seg).status_code == 201
    for url in [*REFUSED, base_url + "/hook"]:
        r = client.post("/v1/webhooks", json={"segment_id": "viewers", "url": url})
        assert r.status_code == 201, (url, r.text)
