"""Membership changes out over real HTTP: the SSE stream (filtered, resumable with
Last-Event-ID) and signed webhooks that retry, dead-letter and replay."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from segflow.service.delivery import SIGNATURE_HEADER, verify
from tests.helpers import EDGE, Receiver, Server, create_viewers, post_view, wait_for

SECRET = "test-secret-0123456789"


def _read_sse(
    server: Server,
    params: dict[str, Any],
    headers: dict[str, str],
    out: queue.Queue[Any],
    stop: threading.Event,
) -> None:
    """Parse the stream into ``out`` until ``stop``; when the stream is quiet for a
    second, reconnect with the last event id seen (as EventSource does)."""
    last: str | None = headers.get("Last-Event-ID")
    while not stop.is_set():
        sent = {**headers, **({"Last-Event-ID": last} if last is not None else {})}
        try:
            with httpx.stream(
                "GET",
                server.base_url + "/v1/changes/stream",
                params=params,
                headers={"Authorization": f"Bearer {server.admin_key}", **sent},
                timeout=httpx.Timeout(30, read=1),
            ) as r:
                out.put(("status", r.status_code))
                event: dict[str, str] = {}
                for line in r.iter_lines():
                    if not line:
                        if "id" in event:
                            last = event["id"]
                        if "data" in event:
                            out.put(("event", event))
                        event = {}
                    elif not line.startswith(":"):
                        key, _, value = line.partition(":")
                        event[key] = value.strip()
        except httpx.ReadTimeout:
            continue
        except httpx.HTTPError:
            return


def _events(out: queue.Queue[Any], n: int, timeout: float = 20) -> list[dict[str, str]]:
    got: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        try:
            kind, item = out.get(timeout=0.2)
        except queue.Empty:
            continue
        if kind == "event":
            got.append(item)
    return got


@EDGE
def test_sse_streams_changes_filtered_and_resumes(server: Server) -> None:
    create_viewers(server)
    create_viewers(server, "other")
    out: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    t = threading.Thread(
        target=_read_sse, args=(server, {"segment_id": "viewers"}, {}, out, stop), daemon=True
    )
    t.start()
    assert out.get(timeout=20) == ("status", 200)
    time.sleep(0.3)
    post_view(server, "ann", 1)
    post_view(server, "bob", 1)
    got = _events(out, 2)
    assert [e["event"] for e in got] == ["entered", "entered"]
    data = [json.loads(e["data"]) for e in got]
    assert [d["profile_id"] for d in data] == ["ann", "bob"]
    assert {d["segment_id"] for d in data} == {"viewers"}
    first = int(got[0]["id"])

    again: queue.Queue[Any] = queue.Queue()
    t2 = threading.Thread(
        target=_read_sse,
        args=(server, {"segment_id": "viewers"}, {"Last-Event-ID": str(first)}, again, stop),
        daemon=True,
    )
    t2.start()
    resumed = _events(again, 1)
    assert [json.loads(e["data"])["profile_id"] for e in resumed] == ["bob"]
    post_view(server, "cid", 1)
    assert [json.loads(e["data"])["profile_id"] for e in _events(out, 1)] == ["cid"]
    stop.set()
    t.join(10)
    t2.join(10)

    r = server.client.get("/v1/changes/stream", params={"segment_id": "nope"})
    assert r.status_code == 404


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGFLOW_WEBHOOK_BACKOFF_S", "0.1")
    monkeypatch.setenv("SEGFLOW_WEBHOOK_MAX_ATTEMPTS", "4")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    yield r
    r.close()


def test_webhook_retries_until_accepted_and_is_signed(
    fast_retries: None, receiver: Receiver, server: Server
) -> None:
    create_viewers(server)
    r = server.client.post(
        "/v1/webhooks",
        json={
            "segment_id": "viewers",
            "url": receiver.url,
            "events": ["entered"],
            "secret": SECRET,
        },
    )
    assert r.status_code == 201, r.text
    hook = r.json()
    assert hook["secret"] == SECRET
    assert "secret" not in server.client.get(f"/v1/webhooks/{hook['id']}").json() or (
        server.client.get(f"/v1/webhooks/{hook['id']}").json()["secret"] is None
    )
    post_view(server, "ann", 1)
    wait_for(lambda: len(receiver.accepted) == 1)
    assert len(receiver.seen) == 3
    body, headers = receiver.accepted[0]
    assert verify(SECRET, body, headers[SIGNATURE_HEADER])
    assert not verify("wrong-secret-000000", body, headers[SIGNATURE_HEADER])
    doc = json.loads(body)
    assert doc["type"] == "segment.entered"
    assert doc["profile_id"] == "ann" and doc["segment_id"] == "viewers"

    def delivered() -> list[int]:
        r = server.client.get("/v1/webhooks/deliveries", params={"status": "delivered"})
        return [d["attempts"] for d in r.json()["deliveries"]]

    wait_for(delivered)  # the 2xx is recorded just after the receiver answers it
    assert delivered() == [3]


def test_dead_letters_are_kept_and_replayed(
    fast_retries: None, receiver: Receiver, server: Server
) -> None:
    receiver.down = True
    create_viewers(server)
    server.client.post("/v1/webhooks", json={"segment_id": "viewers", "url": receiver.url})
    post_view(server, "bob", 1)

    def dead() -> list[dict[str, Any]]:
        r = server.client.get("/v1/webhooks/deliveries", params={"status": "dead"})
        return list(r.json()["deliveries"])

    wait_for(lambda: len(dead()) == 1)
    assert dead()[0]["attempts"] == 4
    assert dead()[0]["last_error"] == "HTTP 503"
    receiver.down = False
    r = server.client.post("/v1/webhooks/deliveries/replay", json={})
    assert r.json() == {"replayed": 1}
    wait_for(lambda: len(receiver.accepted) == 1)
    assert json.loads(receiver.accepted[0][0])["profile_id"] == "bob"
    assert dead() == []


def test_webhook_for_unknown_segment_and_bad_url(server: Server) -> None:
    r = server.client.post("/v1/webhooks", json={"segment_id": "nope", "url": "http://x/"})
    assert r.status_code == 404
    r = server.client.post("/v1/webhooks", json={"segment_id": "nope", "url": "ftp://x/"})
    assert r.status_code == 422
    assert r.json()["error"]["errors"][0]["path"] == "body.url"
    assert server.client.get("/v1/webhooks/wh_nope").status_code == 404


def test_each_destination_gets_its_own_signed_delivery(
    fast_retries: None, receiver: Receiver, server: Server
) -> None:
    other = Receiver(fail_first=0)
    try:
        create_viewers(server)
        secrets = []
        for r in (receiver, other):
            hook = server.client.post(
                "/v1/webhooks", json={"segment_id": "viewers", "url": r.url}
            ).json()
            secrets.append(hook["secret"])
        post_view(server, "dee", 1)
        wait_for(lambda: len(receiver.accepted) == 1 and len(other.accepted) == 1)
        for r, secret in zip((receiver, other), secrets, strict=True):
            body, headers = r.accepted[0]
            assert verify(secret, body, headers[SIGNATURE_HEADER])
            assert json.loads(body)["profile_id"] == "dee"
    finally:
        other.close()


def _quiet(server: Server) -> None:
    seg = {
        "id": "quiet",
        "emit_events": False,
        "condition": {"event": "Product Viewed", "within": "7d"},
    }
    r = server.client.post("/v1/segments", json=seg)
    assert r.status_code == 201, r.text


@pytest.mark.slow
@EDGE
def test_sse_leaves_out_segments_that_emit_no_events(server: Server) -> None:
    _quiet(server)
    create_viewers(server)
    out: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    t = threading.Thread(target=_read_sse, args=(server, {}, {}, out, stop), daemon=True)
    t.start()
    assert out.get(timeout=20) == ("status", 200)
    time.sleep(0.3)
    post_view(server, "ann", 1)
    post_view(server, "bob", 1)
    got = _events(out, 3, timeout=3)
    assert [(json.loads(e["data"])["segment_id"], e["event"]) for e in got] == [
        ("viewers", "entered"),
        ("viewers", "entered"),
    ]
    # from the stored log (a stream resuming from the start) as well
    again: queue.Queue[Any] = queue.Queue()
    t2 = threading.Thread(target=_read_sse, args=(server, {"after": 0}, {}, again, stop))
    t2.daemon = True
    t2.start()
    resumed = _events(again, 3, timeout=3)
    assert {json.loads(e["data"])["segment_id"] for e in resumed} == {"viewers"}
    assert len(resumed) == 2
    stop.set()
    t.join(10)
    t2.join(10)
    # the change log and the memberships are kept
    quiet = server.client.get("/v1/changes", params={"segment_id": "quiet"}).json()["changes"]
    assert sorted(c["profile_id"] for c in quiet) == ["ann", "bob"]
    assert set(server.client.get("/v1/profiles/ann/segments").json()["segments"]) == {
        "quiet",
        "viewers",
    }


def test_webhooks_skip_segments_that_emit_no_events(server: Server) -> None:
    loud, silent = Receiver(fail_first=0), Receiver(fail_first=0)
    try:
        _quiet(server)
        create_viewers(server)
        for sid, r in (("quiet", silent), ("viewers", loud)):
            res = server.client.post("/v1/webhooks", json={"segment_id": sid, "url": r.url})
            assert res.status_code == 201, res.text
        post_view(server, "cy", 1)
        wait_for(lambda: len(loud.accepted) == 1)
        time.sleep(1.5)  # the worker polls every second: the other had its chance
        assert silent.seen == []
        pending = server.client.get("/v1/webhooks/deliveries").json()["deliveries"]
        assert [d["status"] for d in pending] == ["delivered"]
        # turned on, the segment's later changes are sent
        cond = {"event": "Product Viewed", "within": "7d"}
        r = server.client.put(
            "/v1/segments/quiet", json={"id": "quiet", "emit_events": True, "condition": cond}
        )
        assert r.status_code == 200, r.text
        post_view(server, "dot", 1)
        wait_for(lambda: len(silent.accepted) == 1)
        assert json.loads(silent.accepted[0][0])["profile_id"] == "dot"
    finally:
        loud.close()
        silent.close()


@pytest.mark.slow
@EDGE
def test_a_back_dated_event_sends_no_enter_and_exit_long_over(server: Server) -> None:
    create_viewers(server)
    seg = {"id": "buyers", "condition": {"event": "Order Completed", "within": "30d"}}
    assert server.client.post("/v1/segments", json=seg).status_code == 201
    hook = Receiver(fail_first=0)
    out: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    t = threading.Thread(target=_read_sse, args=(server, {}, {}, out, stop), daemon=True)
    try:
        r = server.client.post("/v1/webhooks", json={"segment_id": "viewers", "url": hook.url})
        assert r.status_code == 201, r.text
        t.start()
        assert out.get(timeout=20) == ("status", 200)
        time.sleep(0.3)
        ago = (datetime.now(UTC) - timedelta(days=20)).isoformat().replace("+00:00", "Z")
        for n, event in enumerate(("Product Viewed", "Order Completed")):
            msg = {"userId": "late", "event": event, "messageId": f"late-{n}", "timestamp": ago}
            assert server.ingest("/v1/track", msg).status_code == 200
            # acknowledged means evaluated as of now: the 7-day view is long over
            segs = server.client.get("/v1/profiles/late/segments").json()["segments"]
            assert "viewers" not in segs
        assert set(segs) == {"buyers"}
        post_view(server, "fresh", 1)
        got = _events(out, 3, timeout=5)
        assert [(json.loads(e["data"])["profile_id"], json.loads(e["data"])["segment_id"],
                 e["event"]) for e in got] == [
            ("late", "buyers", "entered"),
            ("fresh", "viewers", "entered"),
        ]  # fmt: skip
        wait_for(lambda: len(hook.accepted) == 1)
        time.sleep(1.5)
        assert [json.loads(b)["profile_id"] for b, _h in hook.seen] == ["fresh"]
        log = server.client.get("/v1/changes", params={"profile_id": "late"}).json()["changes"]
        assert [(c["segment_id"], c["entered"]) for c in log] == [("buyers", True)]
    finally:
        stop.set()
        hook.close()
