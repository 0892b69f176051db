"""ESP list sync against a fake provider on 127.0.0.1: a real HTTP server that checks
the wire format (path, auth header, JSON shape) and answers like the provider,
including 429 with Retry-After."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from segflow.service.delivery import DeliverySettings
from segflow.service.destinations import InvalidDestination, parse_destination
from segflow.service.sinks import KLAVIYO_REVISION, EspSink, Record, SinkError
from segflow.store.records.destinations import Destination

KEY = "0123456789abcdef-us6"


@dataclass
class Fake:
    url: str
    seen: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    throttle: int = 0
    """How many requests to answer 429 first."""


@pytest.fixture
def fake() -> Iterator[Fake]:
    state = Fake("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.seen.append((self.path, dict(self.headers), json.loads(body) if body else None))
            if state.throttle > 0:
                state.throttle -= 1
                self._answer(429, {"detail": "slow down"}, {"Retry-After": "0"})
            elif self.path.endswith("/actions/delete-permanent"):
                self.send_response(204)
                self.end_headers()
            elif self.path.startswith("/api/"):
                self._answer(202, {"data": {"id": "job"}})
            else:
                self._answer(200, {"new_members": [], "updated_members": [], "errors": []})

        def _answer(self, code: int, doc: Any, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(doc).encode()
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield state
    server.shutdown()
    server.server_close()


def _dest(provider: str, base_url: str) -> Destination:
    return parse_destination(
        {"type": "esp", "segments": ["s"],
         "config": {"provider": provider, "list_id": "L1", "api_key": KEY,
                    "base_url": base_url, "email_trait": "work_email"}},
        ["s"],
    )  # fmt: skip


def _records() -> list[Record]:
    rows = [
        ("segment.entered", "Ann@Shop.test "),
        ("segment.member", "cy@shop.test"),
        ("segment.exited", "bob@shop.test"),
        ("segment.entered", None),
    ]
    return [
        Record(str(i), f"s:p{i}:{i}", orjson.dumps({"type": t, "traits": {"email": e}}))
        for i, (t, e) in enumerate(rows)
    ]


def test_esp_config_defaults_to_the_email_channel_and_hides_the_key() -> None:
    d = _dest("mailchimp", "http://127.0.0.1:1/3.0")
    assert d.channel == "email" and d.fields == (("work_email", "email"),)
    assert "api_key" not in d.to_dict()["config"]
    with pytest.raises(InvalidDestination) as e:
        parse_destination(
            {"type": "esp", "segments": ["s"], "config": {"provider": "sendgrid",
             "base_url": "ftp://x", "list_id": "L", "api_key": "k"}}, ["s"]
        )  # fmt: skip
    paths = {p.path for p in e.value.problems}
    assert paths == {"config.provider", "config.base_url"}
    with pytest.raises(InvalidDestination) as e:
        parse_destination({"type": "esp", "segments": ["s"], "config": {}}, ["s"])
    paths = {p.path for p in e.value.problems}
    assert paths == {"config.provider", "config.list_id", "config.api_key"}


def test_mailchimp_batch_subscribes_and_unsubscribes_after_a_429(fake: Fake) -> None:
    fake.throttle = 1
    sink = EspSink(_dest("mailchimp", fake.url + "/3.0"), DeliverySettings())
    try:
        sink.send(_records())
    finally:
        sink.close()
    assert len(fake.seen) == 2  # the 429, then the retry
    for path, headers, body in fake.seen:
        assert path == "/3.0/lists/L1"
        assert (
            headers["Authorization"]
            == "Basic " + base64.b64encode(f"segflow:{KEY}".encode()).decode()
        )
        assert headers["Content-Type"] == "application/json"
        assert body == {
            "members": [
                {"email_address": "Ann@Shop.test", "status": "subscribed"},
                {"email_address": "cy@shop.test", "status": "subscribed"},
                {"email_address": "bob@shop.test", "status": "unsubscribed"},
            ],
            "update_existing": True,
        }


def test_klaviyo_bulk_jobs_carry_the_json_api_documents(fake: Fake) -> None:
    sink = EspSink(_dest("klaviyo", fake.url), DeliverySettings())
    try:
        sink.send(_records())
    finally:
        sink.close()
    (create_path, h1, create), (delete_path, h2, delete) = fake.seen
    assert create_path == "/api/profile-subscription-bulk-create-jobs"
    assert delete_path == "/api/profile-subscription-bulk-delete-jobs"
    for h in (h1, h2):
        assert h["Authorization"] == f"Klaviyo-API-Key {KEY}"
        assert h["revision"] == KLAVIYO_REVISION
        assert h["Content-Type"] == "application/vnd.api+json"
    marketing = {"email": {"marketing": {"consent": "SUBSCRIBED"}}}
    assert create == {
        "data": {
            "type": "profile-subscription-bulk-create-job",
            "attributes": {"profiles": {"data": [
                {"type": "profile", "attributes": {"email": e, "subscriptions": marketing}}
                for e in ("Ann@Shop.test", "cy@shop.test")
            ]}},
            "relationships": {"list": {"data": {"type": "list", "id": "L1"}}},
        }
    }  # fmt: skip
    assert delete["data"]["type"] == "profile-subscription-bulk-delete-job"
    assert delete["data"]["attributes"]["profiles"]["data"] == [
        {"type": "profile", "attributes": {"email": "bob@shop.test"}}
    ]
    assert delete["data"]["relationships"]["list"]["data"]["id"] == "L1"


def test_a_provider_that_keeps_throttling_fails_the_batch(fake: Fake) -> None:
    fake.throttle = 100
    sink = EspSink(_dest("klaviyo", fake.url), DeliverySettings())
    try:
        with pytest.raises(SinkError, match="HTTP 429"):
            sink.send(_records()[:1])
    finally:
        sink.close()
    assert len(fake.seen) == 4  # the first try and three waits of Retry-After


def test_unreachable_provider_is_reported_unreachable() -> None:
    sink = EspSink(_dest("mailchimp", "http://127.0.0.1:9/3.0"), DeliverySettings())
    try:
        with pytest.raises(SinkError) as e:
            sink.send(_records()[:1])
        assert e.value.unreachable
    finally:
        sink.close()


def _erasures() -> list[Record]:
    """Exits of erased profiles (reason ``deleted``), one of them sent twice."""
    return [
        Record(str(i), f"s:erased:{i}", orjson.dumps(
            {"type": "segment.exited", "reason": "deleted", "traits": {"email": e}}))
        for i, e in enumerate(["Ann@Shop.test ", "bob@shop.test", "bob@shop.test"])
    ]  # fmt: skip


def test_an_erased_profile_is_deleted_permanently_from_mailchimp(fake: Fake) -> None:
    sink = EspSink(_dest("mailchimp", fake.url + "/3.0"), DeliverySettings())
    try:
        sink.send(_erasures())
    finally:
        sink.close()
    md5 = {e: hashlib.md5(e.encode()).hexdigest() for e in ("ann@shop.test", "bob@shop.test")}
    assert [(path, body) for path, _, body in fake.seen] == [
        (f"/3.0/lists/L1/members/{md5[e]}/actions/delete-permanent", None)
        for e in ("ann@shop.test", "bob@shop.test")
    ]


def test_an_erased_profile_gets_a_klaviyo_data_privacy_deletion_job(fake: Fake) -> None:
    sink = EspSink(_dest("klaviyo", fake.url), DeliverySettings())
    try:
        sink.send(_erasures()[:1])
    finally:
        sink.close()
    ((path, headers, doc),) = fake.seen
    assert path == "/api/data-privacy-deletion-jobs"
    assert headers["revision"] == KLAVIYO_REVISION
    profile = {"type": "profile", "attributes": {"email": "Ann@Shop.test"}}
    assert doc == {
        "data": {"type": "data-privacy-deletion-job", "attributes": {"profile": {"data": profile}}}
    }
