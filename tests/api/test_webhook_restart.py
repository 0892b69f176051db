"""Pending webhook deliveries survive a crash: SIGKILL the server while a destination is
down, restart it, and every change is delivered (once) when the destination is back."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from segflow.model.definition import parse_segment
from segflow.server import ServerProcess, make_context, serve_in_thread
from segflow.service.handle import Segflow
from segflow.store.duckdb.keys import KeyStore
from tests.helpers import Receiver

pytestmark = pytest.mark.slow  # kills and restarts a server process


def _wait(cond: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def _view(user: str) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Product Viewed",
        "messageId": f"view-{user}",
        "timestamp": datetime.now(UTC).isoformat(),
    }


def test_pending_deliveries_resume_after_sigkill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGFLOW_WEBHOOK_BACKOFF_S", "0.2")
    monkeypatch.setenv("SEGFLOW_WEBHOOK_MAX_ATTEMPTS", "1000")
    db = tmp_path / "hooks.duckdb"
    sf = Segflow(db)
    keys = KeyStore(sf.store.con)
    admin, write = keys.create("admin").token, keys.create("write").token
    sf.registry.save(
        [parse_segment({"id": "viewers", "condition": {"event": "Product Viewed", "within": "7d"}})]
    )
    sf.close()
    receiver = Receiver(fail_first=0)
    receiver.down = True
    auth = {"Authorization": f"Bearer {admin}"}
    try:
        server = ServerProcess(db).start()
        try:
            url = server.base_url
            r = httpx.post(
                url + "/v1/webhooks",
                json={"segment_id": "viewers", "url": receiver.url},
                headers=auth,
            )
            assert r.status_code == 201, r.text
            batch = [_view(f"u{i}") for i in range(5)]
            assert httpx.post(url + "/v1/batch", json={"batch": batch}, auth=(write, "")).is_success

            def pending() -> list[dict[str, Any]]:
                r = httpx.get(url + "/v1/webhooks/deliveries?status=pending", headers=auth)
                return list(r.json()["deliveries"])

            _wait(lambda: len(pending()) == 5 and all(d["attempts"] >= 1 for d in pending()))
        finally:
            server.kill()

        receiver.down = False
        with serve_in_thread(make_context(db)) as again:  # the restart (in-process is quicker)
            _wait(lambda: len(receiver.accepted) >= 5)
            ok = httpx.post(
                again.base_url + "/v1/track", json=_view("late"), auth=(write, "")
            ).is_success
            assert ok
            _wait(lambda: len(receiver.accepted) >= 6)
            time.sleep(0.5)
    finally:
        receiver.close()
    bodies = [json.loads(b) for b, _ in receiver.accepted]
    assert sorted(b["profile_id"] for b in bodies) == ["late", "u0", "u1", "u2", "u3", "u4"]
    assert len({b["seq"] for b in bodies}) == 6
