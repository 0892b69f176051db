"""Destinations over real HTTP against the real things on 127.0.0.1: a Redis stream read
by a consumer group, a NATS JetStream subject read by a pull consumer, file drops with
their manifest.  Each sends enter/exit changes with mapped traits and full syncs, and
never sends a held-out member.  Redis and NATS tests skip only when their port is
closed."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from segflow.model.bucket import bucket_of
from tests.helpers import Server, now_iso, post_view, wait_for
from tests.kafka import KAFKA_PARTITIONS, create_topic, kafka_broker

SALT = "hold"
USERS = [f"user{i}" for i in range(12)]
HELD = {u for u in USERS if bucket_of(u, SALT) < 50}
SENT = set(USERS) - HELD
SEGMENT = {
    "id": "viewers",
    "condition": {"event": "Product Viewed", "within": "7d"},
    "holdout": {"percent": 50, "salt": SALT},
}


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


needs_redis = pytest.mark.skipif(
    not _port_open(6379), reason="no Redis on 127.0.0.1:6379 (port closed)"
)
needs_nats = pytest.mark.skipif(
    not _port_open(4222), reason="no NATS JetStream on 127.0.0.1:4222 (port closed)"
)


def _shop(server: Server) -> None:
    """The held-out segment, and every user identified with an email and a plan."""
    assert HELD and SENT
    r = server.client.post("/v1/segments", json=SEGMENT)
    assert r.status_code == 201, r.text
    batch = [
        {"type": "identify", "userId": u, "messageId": f"id-{u}", "timestamp": now_iso(),
         "traits": {"email": f"{u}@shop.test", "plan": "pro"}}
        for u in USERS
    ]  # fmt: skip
    assert server.ingest("/v1/batch", {"batch": batch}).status_code == 200


def _create(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    r = server.client.post("/v1/destinations", json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def _views_delivered(server: Server, dest_id: str) -> None:
    """Every user views a product; wait until the destination got each entry it wants."""
    for u in USERS:
        post_view(server, u, 1)
    wait_for(
        lambda: server.client.get(f"/v1/destinations/{dest_id}").json()["deliveries"]["delivered"]
        == len(SENT)
    )


def _sync(server: Server, dest_id: str) -> dict[str, Any]:
    r = server.client.post(f"/v1/destinations/{dest_id}/sync")
    assert r.status_code == 202, r.text
    sync_id = r.json()["id"]

    def done() -> dict[str, Any] | None:
        syncs = server.client.get(f"/v1/destinations/{dest_id}/syncs").json()["syncs"]
        found = [s for s in syncs if s["id"] == sync_id and s["status"] in ("done", "failed")]
        return found[0] if found else None

    wait_for(done)
    out = done()
    assert out is not None and out["status"] == "done", out
    return out


# --------------------------------------------------------------------------- Redis


@pytest.fixture
def redis_stream() -> Iterator[tuple[Any, str]]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    stream = f"segflow-test-{uuid.uuid4().hex[:10]}"
    client.xgroup_create(stream, "readers", id="0", mkstream=True)
    yield client, stream
    client.delete(stream)
    for key in client.scan_iter(f"segflow:dedupe:{stream}:*"):
        client.delete(key)
    client.close()


def _read_group(client: Any, stream: str, into: list[dict[str, Any]]) -> int:
    """Read (and acknowledge) what the group has not seen yet; returns how many."""
    got = client.xreadgroup("readers", "test", {stream: ">"}, count=1000) or []
    n = 0
    for _name, entries in got:
        for entry_id, fields in entries:
            into.append(json.loads(fields[b"body"]))
            assert fields[b"idempotency_key"].decode() == into[-1]["idempotency_key"]
            client.xack(stream, "readers", entry_id)
            n += 1
    return n


@needs_redis
def test_redis_stream_gets_changes_and_syncs_without_held_out_members(
    server: Server, redis_stream: tuple[Any, str]
) -> None:
    client, stream = redis_stream
    _shop(server)
    dest = _create(
        server,
        {"type": "redis", "name": "crm stream", "segments": ["viewers"],
         "fields": {"email": "email_address"}, "batch_size": 5,
         "config": {"url": "redis://127.0.0.1:6379/0", "stream": stream}},
    )  # fmt: skip
    for u in USERS:
        post_view(server, u, 1)
    read: list[dict[str, Any]] = []
    wait_for(lambda: _read_group(client, stream, read) >= 0 and len(read) >= len(SENT))
    assert {r["profile_id"] for r in read} == SENT
    for r in read:
        assert r["type"] == "segment.entered" and r["destination_id"] == dest["id"]
        assert r["traits"] == {"email_address": f"{r['profile_id']}@shop.test"}
        assert r["idempotency_key"] == f"viewers:{r['profile_id']}:{r['seq']}"

    sync = _sync(server, dest["id"])
    assert (sync["members"], sync["held_out"], sync["sent"]) == (12, len(HELD), len(SENT))
    synced: list[dict[str, Any]] = []
    wait_for(lambda: _read_group(client, stream, synced) >= 0 and len(synced) >= len(SENT))
    assert {r["profile_id"] for r in synced} == SENT
    assert {r["type"] for r in synced} == {"segment.member"}
    info = server.client.get(f"/v1/destinations/{dest['id']}").json()
    assert info["deliveries"]["delivered"] == len(SENT)
    assert info["syncs"][0]["id"] == sync["id"]


@needs_redis
def test_a_resent_record_is_added_to_the_stream_once(redis_stream: tuple[Any, str]) -> None:
    from segflow.service.delivery import DeliverySettings
    from segflow.service.sinks import Record, RedisSink
    from segflow.store.records.destinations import Destination

    client, stream = redis_stream
    dest = Destination(id="d", name="", kind="redis", segments=("s",), config={"stream": stream})
    sink = RedisSink(dest, DeliverySettings())
    try:
        batch = [Record("1", "s:p1:1", b'{"a": 1}'), Record("2", "s:p2:2", b'{"a": 2}')]
        sink.send(batch)
        sink.send(batch)  # a batch re-sent after a crash
    finally:
        sink.close()
    assert client.xlen(stream) == 2


# --------------------------------------------------------------------------- NATS


async def _nats_read(subject: str, stream: str, want: int) -> list[dict[str, Any]]:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, durable="test", stream=stream)
        out: list[dict[str, Any]] = []
        for _ in range(100):
            if len(out) >= want:
                break
            try:
                msgs = await sub.fetch(100, timeout=0.5)
            except TimeoutError:
                continue
            for m in msgs:
                out.append(json.loads(m.data))
                await m.ack()
        return out
    finally:
        await nc.close()


async def _nats_drop(stream: str) -> None:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


@needs_nats
def test_nats_jetstream_subject_gets_changes_and_syncs_without_held_out_members(
    server: Server,
) -> None:
    tag = uuid.uuid4().hex[:10]
    subject, stream = f"segflow.test.{tag}", f"SEGFLOW_TEST_{tag}"
    _shop(server)
    dest = _create(
        server,
        {"type": "nats", "segments": ["viewers"], "fields": ["plan"], "events": ["entered"],
         "config": {"url": "nats://127.0.0.1:4222", "subject": subject, "stream": stream}},
    )  # fmt: skip
    try:
        _views_delivered(server, dest["id"])
        sync = _sync(server, dest["id"])
        assert sync["sent"] == len(SENT) and sync["held_out"] == len(HELD)
        got = asyncio.run(_nats_read(subject, stream, 2 * len(SENT)))
    finally:
        asyncio.run(_nats_drop(stream))
    changes = [g for g in got if g["type"] == "segment.entered"]
    members = [g for g in got if g["type"] == "segment.member"]
    assert {g["profile_id"] for g in changes} == SENT
    assert {g["profile_id"] for g in members} == SENT
    assert all(g["traits"] == {"plan": "pro"} for g in got)


# --------------------------------------------------------------------------- Kafka


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    """A Kafka-protocol broker of its own (Tansu, in memory) on a free port."""
    with kafka_broker() as bootstrap:
        yield bootstrap


def _kafka_read(bootstrap: str, topic: str, want: int) -> list[tuple[bytes, Any, list[Any]]]:
    """(key, record, headers) of the topic's first ``want`` messages, every partition."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": topic, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(KAFKA_PARTITIONS)])
    got: list[tuple[bytes, Any, list[Any]]] = []
    try:
        for _ in range(200):
            if len(got) >= want:
                break
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append((msg.key(), json.loads(msg.value()), msg.headers() or []))
    finally:
        consumer.close()
    return got


def test_kafka_topic_gets_changes_and_syncs_keyed_by_profile(server: Server, kafka: str) -> None:
    topic = f"segflow.test.{uuid.uuid4().hex[:10]}"
    create_topic(kafka, topic, KAFKA_PARTITIONS)
    _shop(server)
    dest = _create(
        server,
        {"type": "kafka", "segments": ["viewers"], "fields": ["plan"], "events": ["entered"],
         "config": {"bootstrap_servers": kafka, "topic": topic}},
    )  # fmt: skip
    _views_delivered(server, dest["id"])
    sync = _sync(server, dest["id"])
    assert sync["sent"] == len(SENT) and sync["held_out"] == len(HELD)
    got = _kafka_read(kafka, topic, 2 * len(SENT))
    assert len(got) == 2 * len(SENT)
    for key, record, headers in got:
        assert key == record["profile_id"].encode()
        assert headers == [("idempotency-key", record["idempotency_key"].encode())]
        assert record["traits"] == {"plan": "pro"}
    assert {r["profile_id"] for _, r, _ in got if r["type"] == "segment.entered"} == SENT
    assert {r["profile_id"] for _, r, _ in got if r["type"] == "segment.member"} == SENT


def test_a_kafka_sasl_password_is_never_shown_back_and_kept_on_update(server: Server) -> None:
    _shop(server)
    sasl = {"bootstrap_servers": "broker.example:9093", "topic": "t",
            "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "segflow", "sasl_password": "s3cret-pw"}  # fmt: skip
    dest = _create(server, {"type": "kafka", "segments": ["viewers"], "config": sasl})
    assert "sasl_password" not in dest["config"] and dest["config"]["sasl_username"] == "segflow"
    resent = {k: v for k, v in sasl.items() if k != "sasl_password"}
    r = server.client.put(
        f"/v1/destinations/{dest['id']}",
        json={"type": "kafka", "segments": ["viewers"], "config": {**resent, "topic": "t2"}},
    )
    assert r.status_code == 200, r.text  # valid: the password it had is kept
    assert "s3cret-pw" not in r.text and r.json()["config"]["topic"] == "t2"
    plain = {"bootstrap_servers": "broker.example:9092", "topic": "t2"}
    r = server.client.put(
        f"/v1/destinations/{dest['id']}",
        json={"type": "kafka", "segments": ["viewers"], "config": plain},
    )
    assert r.status_code == 200, r.text  # SASL dropped: the password goes with it


def test_a_kafka_destination_without_a_broker_is_retried_not_lost(server: Server) -> None:
    _shop(server)
    dead = _create(
        server,
        {"type": "kafka", "segments": ["viewers"],
         "config": {"bootstrap_servers": "127.0.0.1:1", "topic": "t"}},
    )  # fmt: skip
    post_view(server, sorted(SENT)[0], 1)

    def tried() -> list[dict[str, Any]] | None:
        rows = server.client.get(f"/v1/destinations/{dead['id']}/deliveries").json()
        found = [d for d in rows["deliveries"] if d["attempts"] >= 1]
        return found or None

    wait_for(tried)
    rows = tried() or []
    assert all(d["status"] == "pending" for d in rows)
    assert all("Kafka" in (d["last_error"] or "") for d in rows)


# --------------------------------------------------------------------------- files


def _check_manifest(folder: Path) -> list[dict[str, Any]]:
    manifest = json.loads((folder / "manifest.json").read_text())
    for f in manifest["files"]:
        data = (folder / f["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        assert len(data) == f["bytes"]
    assert not [p for p in folder.iterdir() if ".tmp-" in p.name]  # renamed into place
    files: list[dict[str, Any]] = manifest["files"]
    return files


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_file_drops_list_changes_and_syncs_in_a_manifest(
    server: Server, tmp_path: Path, fmt: str
) -> None:
    folder = tmp_path / "drops"
    _shop(server)
    dest = _create(
        server,
        {"type": "files", "segments": ["viewers"], "fields": {"email": "email", "plan": "tier"},
         "batch_size": 100, "config": {"path": str(folder), "format": fmt}},
    )  # fmt: skip
    _views_delivered(server, dest["id"])
    sync = _sync(server, dest["id"])
    files = _check_manifest(folder)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for f in files:
        by_kind.setdefault(f["kind"], []).append(f)
    assert sum(f["rows"] for f in by_kind["changes"]) == len(SENT)
    (synced,) = by_kind["sync"]
    assert synced["rows"] == len(SENT) and synced["sync_id"] == sync["id"]
    rows = _rows(folder / synced["name"], fmt)
    assert {r["profile_id"] for r in rows} == SENT
    assert all(r["tier"] == "pro" and r["email"] == f"{r['profile_id']}@shop.test" for r in rows)
    changed = [r for f in by_kind["changes"] for r in _rows(folder / f["name"], fmt)]
    assert {r["profile_id"] for r in changed} == SENT
    assert all(r["idempotency_key"].startswith("viewers:") for r in changed)


def _rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        return [{**r, **r.pop("traits", {})} for r in rows]
    if fmt == "csv":
        return list(csv.DictReader(path.open()))
    out: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return out


# --------------------------------------------------------------------------- guarantees


def test_a_dead_destination_does_not_delay_another(server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "drops"
    _shop(server)
    dead = _create(
        server,
        {"type": "redis", "segments": ["viewers"],
         "config": {"url": "redis://127.0.0.1:1/0", "stream": "nowhere"}},
    )  # fmt: skip
    alive = _create(
        server, {"type": "files", "segments": ["viewers"], "config": {"path": str(folder)}}
    )
    for u in USERS:
        post_view(server, u, 1)

    def counts(d: dict[str, Any]) -> dict[str, int]:
        out: dict[str, int] = server.client.get(f"/v1/destinations/{d['id']}").json()["deliveries"]
        return out

    wait_for(lambda: counts(alive)["delivered"] == len(SENT))

    def tried() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = server.client.get(
            f"/v1/destinations/{dead['id']}/deliveries", params={"status": "pending"}
        ).json()["deliveries"]
        return rows if len(rows) == len(SENT) and all(d["attempts"] for d in rows) else None

    wait_for(tried)
    assert all((d["last_error"] or "").startswith("ConnectionError") for d in tried() or [])


def test_bad_destinations_answer_422_naming_each_problem(server: Server) -> None:
    _shop(server)
    r = server.client.post(
        "/v1/destinations",
        json={"type": "ftp", "segments": ["viewers", "nope"], "batch_size": 0,
              "schedule": "every day", "colour": "red"},
    )  # fmt: skip
    assert r.status_code == 422, r.text
    paths = {e["path"] for e in r.json()["error"]["errors"]}
    assert paths == {
        "body.type", "body.segments[1]", "body.batch_size", "body.schedule", "body.colour"
    }  # fmt: skip
    r = server.client.post(
        "/v1/destinations",
        json={"type": "files", "segments": ["viewers"], "config": {"path": "rel/dir",
              "format": "xml"}},
    )  # fmt: skip
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["error"]["errors"]}
    assert paths == {"body.config.path", "body.config.format"}
    r = server.client.post(
        "/v1/destinations",
        json={"type": "kafka", "segments": ["viewers"], "config": {"topic": "a topic",
              "bootstrap_servers": "127.0.0.1:9092,broker", "sasl_username": "u"}},
    )  # fmt: skip
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["error"]["errors"]}
    assert paths == {
        "body.config.topic", "body.config.bootstrap_servers[1]", "body.config.security_protocol"
    }  # fmt: skip
    assert server.client.get("/v1/destinations").json()["destinations"] == []
    assert server.client.get("/v1/destinations/dst_nope").status_code == 404


# --------------------------------------------------------------------------- consent


def test_a_channel_destination_gets_consented_profiles_and_the_profile_shows_consent(
    server: Server, tmp_path: Path
) -> None:
    plain = {k: v for k, v in SEGMENT.items() if k != "holdout"}
    assert server.client.post("/v1/segments", json=plain).status_code == 201
    said = {"ann": True, "bob": False}
    batch = [
        {"type": "identify", "userId": u, "messageId": f"c-{u}", "timestamp": now_iso(),
         "traits": {"consent": {"email": yes}}}
        for u, yes in said.items()
    ] + [
        {"type": "track", "event": "Consent Updated", "userId": "cy", "messageId": "c-cy",
         "timestamp": now_iso(), "properties": {"channel": "sms", "granted": True}}
    ]  # fmt: skip
    assert server.ingest("/v1/batch", {"batch": batch}).status_code == 200
    folder = tmp_path / "email"
    dest = _create(
        server,
        {"type": "files", "segments": ["viewers"], "channel": "email",
         "config": {"path": str(folder)}},
    )  # fmt: skip
    for n, u in enumerate(("ann", "bob", "cy")):
        post_view(server, u, n)
    sync = _sync(server, dest["id"])
    assert sync["sent"] == 1 and sync["detail"][0]["not_consented"] == 2
    rows = [
        json.loads(line)
        for f in _check_manifest(folder)
        for line in (folder / f["name"]).read_text().splitlines()
    ]
    assert {r["profile_id"] for r in rows} == {"ann"}  # the change and the sync member
    view = server.client.get("/v1/profiles/cy").json()
    assert view["consent"]["sms"]["granted"] is True
    assert view["consent"]["sms"]["source"] == "event Consent Updated"
    export = server.client.get("/v1/profiles/bob/export").json()
    assert export["consent"]["email"] == {
        "granted": False, "source": "trait consent.email", "at": export["consent"]["email"]["at"]
    }  # fmt: skip


# --------------------------------------------------------------------------- webhook


def test_webhook_destination_sends_signed_batches_without_held_out_members(
    server: Server,
) -> None:
    from segflow.service.delivery import SIGNATURE_HEADER, verify
    from tests.helpers import Receiver

    _shop(server)
    receiver = Receiver(fail_first=0)
    secret = "s" * 32
    try:
        dest = _create(
            server,
            {"type": "webhook", "segments": ["viewers"], "batch_size": 50,
             "fields": {"plan": "plan"}, "config": {"url": receiver.url, "secret": secret}},
        )  # fmt: skip
        assert dest["config"]["secret"] == secret
        assert "secret" not in server.client.get(f"/v1/destinations/{dest['id']}").json()["config"]
        server.ingest(
            "/v1/batch",
            {"batch": [
                {"type": "track", "userId": u, "event": "Product Viewed",
                 "messageId": f"v-{u}", "timestamp": now_iso()}
                for u in USERS
            ]},
        )  # fmt: skip
        records: list[dict[str, Any]] = []

        def got() -> bool:
            records.clear()
            for body, headers in receiver.accepted:
                assert verify(secret, body, headers[SIGNATURE_HEADER])
                doc = json.loads(body)
                records.extend(doc.get("batch", [doc]))
            return len(records) >= len(SENT)

        wait_for(got)
    finally:
        receiver.close()
    assert {r["profile_id"] for r in records} == SENT
    assert all(r["traits"] == {"plan": "pro"} and not r["held_out"] for r in records)


def test_a_destination_updated_sends_by_its_new_configuration(
    server: Server, tmp_path: Path
) -> None:
    _shop(server)
    first, second = tmp_path / "a", tmp_path / "b"
    dest = _create(
        server, {"type": "files", "segments": ["viewers"], "config": {"path": str(first)}}
    )
    new = {"type": "files", "name": "lake", "segments": ["viewers"], "fields": ["plan"],
           "config": {"path": str(second), "format": "csv"}}  # fmt: skip
    r = server.client.put(f"/v1/destinations/{dest['id']}", json=new)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "lake" and r.json()["config"]["format"] == "csv"
    for u in USERS:
        post_view(server, u, 1)

    def written() -> int:
        if not (second / "manifest.json").exists():
            return 0
        return sum(f["rows"] for f in _check_manifest(second))

    wait_for(lambda: written() == len(SENT))
    assert not first.exists()
    rows = [r for f in _check_manifest(second) for r in _rows(second / f["name"], "csv")]
    assert {r["profile_id"] for r in rows} == SENT
    assert all(r["plan"] == "pro" for r in rows)
    bad = server.client.put(f"/v1/destinations/{dest['id']}", json={"type": "files"})
    assert bad.status_code == 422
    assert server.client.put("/v1/destinations/dst_nope", json=new).status_code == 404


# --------------------------------------------------------------------------- settings page


def test_types_list_each_settings_and_a_destination_shows_channel_and_status(
    server: Server, tmp_path: Path
) -> None:
    types = server.client.get("/v1/destinations/types").json()
    by_type = {t["type"]: {s["name"]: s for s in t["settings"]} for t in types["types"]}
    assert set(by_type) == {"webhook", "redis", "nats", "kafka", "files", "ad_audience", "esp"}
    assert by_type["files"]["format"]["choices"] == ["jsonl", "csv", "parquet"]
    assert by_type["redis"]["stream"]["required"] is True
    assert by_type["esp"]["api_key"]["input"] == "secret"
    assert "email" in types["channels"] and types["unknown_consent"] == ["deny", "allow"]
    _shop(server)
    dest = _create(
        server,
        {"type": "files", "segments": ["viewers"], "channel": "email",
         "unknown_consent": "allow", "config": {"path": str(tmp_path / "d")}},
    )  # fmt: skip
    assert (dest["channel"], dest["unknown_consent"]) == ("email", "allow")
    (listed,) = server.client.get("/v1/destinations").json()["destinations"]
    assert listed["channel"] == "email" and listed["status"] == "ok"
    assert listed["deliveries"] == {"pending": 0, "delivered": 0, "dead": 0}
    assert listed["last_error"] is None


@pytest.fixture
def one_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGFLOW_WEBHOOK_BACKOFF_S", "0.1")
    monkeypatch.setenv("SEGFLOW_WEBHOOK_MAX_ATTEMPTS", "1")


def test_a_failing_destination_is_listed_failing_until_its_dead_letters_are_replayed(
    one_attempt: None, server: Server, tmp_path: Path
) -> None:
    _shop(server)
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the directory should be")
    dest = _create(
        server, {"type": "files", "segments": ["viewers"], "config": {"path": str(blocker)}}
    )
    for u in USERS:
        post_view(server, u, 1)

    def failing() -> dict[str, Any] | None:
        d: dict[str, Any] = server.client.get(f"/v1/destinations/{dest['id']}").json()
        return d if d["status"] == "failing" else None

    wait_for(failing)
    got = failing()
    assert got is not None and got["last_error"] and got["deliveries"]["dead"] >= 1
    blocker.unlink()
    blocker.mkdir()
    r = server.client.post(f"/v1/destinations/{dest['id']}/replay", json={})
    assert r.status_code == 200
    wait_for(lambda: server.client.get(f"/v1/destinations/{dest['id']}").json()["status"] == "ok")
