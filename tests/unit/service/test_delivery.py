"""Webhook targets refused or accepted by address, and one destination's batch when
it cannot be reached: real sockets on 127.0.0.1, a real DuckDB store."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from segflow.model.changes import LoggedChange, Reason
from segflow.model.time import utcnow
from segflow.service.delivery import DeliverySettings, TargetRefused, check_target
from segflow.service.destinations import DestinationWorker
from segflow.service.handle import Segflow
from segflow.store.duckdb.destinations import DestinationStore
from segflow.store.records.destinations import Destination


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.10.1:8080/",
        "http://[fe80::1%25eth0]/x",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal./computeMetadata/v1/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://239.1.1.1/",
    ],
)
def test_metadata_link_local_unspecified_and_multicast_targets_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused):
        check_target(url)
    check_target(url, allow_internal=True)


def test_the_server_itself_is_refused_on_its_port_only() -> None:
    own = [("127.0.0.1", 8000)]
    for url in ("http://127.0.0.1:8000/v1/track", "http://localhost:8000/", "http://[::1]:8000/"):
        with pytest.raises(TargetRefused, match="this server"):
            check_target(url, own=own)
    check_target("http://127.0.0.1:9000/hook", own=own)
    with pytest.raises(TargetRefused):
        check_target("http://segflow.example:443/", own=[("segflow.example", 443)], resolve=False)


def test_loopback_and_private_targets_are_refused_only_when_not_allowed() -> None:
    for url in (
        "http://127.0.0.1:9/",
        "http://10.1.2.3/",
        "http://[fd00::1]/",
        "http://localhost/",
    ):
        check_target(url)
        with pytest.raises(TargetRefused, match="private"):
            check_target(url, allow_private=False)
    check_target("https://8.8.8.8/hook", allow_private=False)


def _change(seq: int) -> LoggedChange:
    t = utcnow()
    return LoggedChange("s", f"p{seq}", True, t, Reason.EVENT, 1, seq, t)


def _hook(url: str) -> Destination:
    return Destination(
        id="", name="", kind="webhook", segments=("s",), config={"url": url, "secret": "k" * 16},
        events=("entered",), batch_size=1,
    )  # fmt: skip


def _store(tmp_path: Path) -> DestinationStore:
    return Segflow(tmp_path / "w.duckdb").destination_store()


def _settle(worker: DestinationWorker) -> None:
    deadline = time.monotonic() + 20
    while worker.busy():
        assert time.monotonic() < deadline, "delivery thread did not finish"
        time.sleep(0.02)


def test_unreachable_destination_reschedules_its_batch_after_one_try(tmp_path: Path) -> None:
    """A destination that never answers costs one timeout per batch, not one per delivery."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(
        target=lambda: [accepted.append(listener.accept()[0]) for _ in iter(int, 1)],
        daemon=True,
    ).start()
    ws = _store(tmp_path)
    hook = ws.create(_hook(f"http://127.0.0.1:{listener.getsockname()[1]}/"))
    ws.enqueue([_change(1), _change(2), _change(3)])
    settings = DeliverySettings(backoff=timedelta(seconds=60), timeout_s=0.3)
    worker = DestinationWorker(ws, threading.RLock(), None, settings)
    try:
        assert worker.run_once() == 3
        _settle(worker)
    finally:
        worker.stop()
        listener.close()
    rows = ws.deliveries(destination_id=hook.id)
    assert [d.attempts for d in rows] == [1, 1, 1]
    assert all(d.status == "pending" for d in rows)
    assert "not tried" not in (rows[0].last_error or "x not tried")
    assert all("not tried: destination unreachable" in (d.last_error or "") for d in rows[1:])
    assert len(accepted) == 1


def test_delivery_to_a_target_not_allowed_fails_without_a_request(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    ws = _store(tmp_path)
    ws.create(_hook(f"http://127.0.0.1:{listener.getsockname()[1]}/"))
    ws.enqueue([_change(1)])
    worker = DestinationWorker(ws, threading.RLock(), None, DeliverySettings(allow_private=False))
    try:
        worker.run_once()
        _settle(worker)
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        worker.stop()
        listener.close()
    (d,) = ws.deliveries()
    assert d.attempts == 1 and (d.last_error or "").startswith("refused target")
