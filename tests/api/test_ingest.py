"""Segment-compatible ingestion over real HTTP: Segment's own Python library, bad
inputs (nothing stored from a rejected request), limits, group commit, overload."""

from __future__ import annotations

import faulthandler
import gzip
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from segflow.api.deps import Settings
from segflow.server import make_context, serve_in_thread
from segflow.store.duckdb.keys import KeyStore
from tests.helpers import EDGE, SHARED_EDGE, Server, create_keys

NOW = "2026-11-20T10:00:00Z"


def _count(server: Server) -> int:
    with server.ctx.lock:
        return server.ctx.app.store.count_events()


def _track(user: str = "u1", **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Order Completed",
        "timestamp": NOW,
        "properties": {"revenue": 12.5},
        **extra,
    }


@EDGE
def test_segment_library_messages_reach_profiles_and_segments(server: Server) -> None:
    from segment.analytics import Client

    seg = {
        "id": "big_spenders",
        "name": "Big spenders",
        "condition": {"event": "Order Completed", "measure": "sum", "of": "revenue", "gte": 100},
    }
    assert server.client.post("/v1/segments", json=seg).status_code == 201
    errors: list[Any] = []
    client = Client(
        server.write_key,
        host=server.base_url,
        sync_mode=True,
        on_error=lambda e, batch: errors.append(e),
        max_retries=1,
    )
    client.identify("ada", {"email": "ada@example.com", "plan": "pro"}, anonymous_id="anon-1")
    client.track("ada", "Order Completed", {"revenue": 70.0, "order_id": "o1"})
    assert server.client.get("/v1/profiles/ada/segments").json()["segments"] == {}
    client.track("ada", "Order Completed", {"revenue": 30.0, "order_id": "o2"})
    client.page("ada", "Shop", "Home", {"url": "https://shop.example/"})
    client.screen("ada", "App", "Cart", {"items": 2})
    client.group("ada", "acme", {"name": "Acme"})
    client.alias("anon-2", "ada")
    client.track(anonymous_id="anon-9", event="Product Viewed", properties={"sku": "s1"})
    client.flush()
    assert errors == []

    # acknowledged means evaluated: the second order made ada a big spender
    segments = server.client.get("/v1/profiles/ada/segments").json()["segments"]
    assert list(segments) == ["big_spenders"]
    view = server.client.get("/v1/profiles/anon-1").json()
    assert view["profile_id"] == "ada"
    assert view["traits"]["email"] == "ada@example.com"
    assert view["computed_traits"]["ltv"] == 100
    assert view["computed_traits"]["order_count"] == 2
    assert {"kind": "anonymous", "value": "anon-1"} in view["identities"]
    members = server.client.get("/v1/segments/big_spenders/members").json()
    assert members["members"] == ["ada"] and members["size"] == 1
    with server.ctx.lock:
        store = server.ctx.app.store
        assert store.count_events() == 8
        assert "anon-2" in {v for _, v in store.identities("ada")}
        events = store.events_for_profile("ada")
        assert sorted(e["type"] for e in events) == [
            "alias", "group", "identify", "page", "screen", "track", "track",
        ]  # fmt: skip
        assert all(e["received_at"] is not None for e in events)


@EDGE
def test_retries_with_the_same_message_id_are_stored_once(server: Server) -> None:
    msg = _track(messageId="m-1")
    for _ in range(3):
        assert server.ingest("/v1/batch", {"batch": [msg, msg]}).status_code == 200
    assert server.ingest("/v1/track", msg).status_code == 200
    assert _count(server) == 1


def test_single_endpoints_set_the_type_and_default_timestamp(server: Server) -> None:
    r = server.ingest("/v1/identify", {"userId": "u7", "traits": {"plan": "free"}})
    assert r.status_code == 200 and r.json() == {"success": True}
    with server.ctx.lock:
        store = server.ctx.app.store
        pid = store.resolve_profile(user_id="u7")
        assert pid is not None
        (event,) = store.events_for_profile(pid)
    assert event["type"] == "identify"
    assert abs((event["timestamp"] - datetime.now(UTC).replace(tzinfo=None)).total_seconds()) < 60


@EDGE
def test_gzip_bodies_are_accepted(server: Server) -> None:
    body = gzip.compress(orjson.dumps({"batch": [_track(), _track("u2")]}))
    r = httpx.post(
        server.base_url + "/v1/batch",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        auth=(server.write_key, ""),
    )
    assert r.status_code == 200, r.text
    assert _count(server) == 2


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["status"] == status
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    err: dict[str, Any] = body["error"]
    return err


@pytest.mark.parametrize(
    ("path", "body", "status", "where"),
    [
        ("/v1/track", b"{not json", 400, ""),
        ("/v1/track", b"", 400, ""),
        ("/v1/track", b"[1, 2]", 400, ""),
        ("/v1/track", orjson.dumps({"userId": "u1", "event": 5}), 400, "event"),
        ("/v1/track", orjson.dumps({"userId": "u1"}), 400, "event"),
        ("/v1/identify", orjson.dumps({"traits": {"a": 1}}), 400, "user_id"),
        ("/v1/track", orjson.dumps(_track(timestamp="yesterday")), 400, "timestamp"),
        ("/v1/track", orjson.dumps(_track(properties=[1])), 400, "properties"),
        ("/v1/batch", orjson.dumps({"batch": {"a": 1}}), 400, "batch"),
        ("/v1/batch", orjson.dumps({"events": []}), 400, "batch"),
        ("/v1/batch", orjson.dumps({"batch": [_track(), 7]}), 400, "batch[1]"),
        ("/v1/batch", orjson.dumps({"batch": [_track(), {"type": "buy"}]}), 400, "batch[1].type"),
        (
            "/v1/batch",
            orjson.dumps({"batch": [_track(), _track(), _track(timestamp=3)]}),
            400,
            "batch[2].timestamp",
        ),
    ],
)
@SHARED_EDGE
def test_bad_input_is_rejected_naming_the_field_and_nothing_is_stored(
    shared_server: Server, path: str, body: bytes, status: int, where: str
) -> None:
    r = httpx.post(
        shared_server.base_url + path,
        content=body,
        headers={"Content-Type": "application/json"},
        auth=(shared_server.write_key, ""),
    )
    err = _error(r, status)
    assert err["errors"], err
    assert err["errors"][0]["path"] == where
    assert _count(shared_server) == 0


@SHARED_EDGE
def test_size_limits(shared_server: Server) -> None:
    big = _track(properties={"blob": "x" * 33_000})
    err = _error(shared_server.ingest("/v1/track", big), 413)
    assert "32 KB" in err["message"]
    err = _error(shared_server.ingest("/v1/batch", {"batch": [_track(), big]}), 400)
    assert err["errors"][0] == {
        "path": "batch[1]",
        "message": "message too large: the limit is 32 KB",
    }
    many = {"batch": [_track(properties={"blob": "y" * 20_000}) for _ in range(30)]}
    err = _error(shared_server.ingest("/v1/batch", many), 413)
    assert "500 KB" in err["message"]
    bomb = gzip.compress(orjson.dumps(many))
    r = httpx.post(
        shared_server.base_url + "/v1/batch",
        content=bomb,
        headers={"Content-Encoding": "gzip"},
        auth=(shared_server.write_key, ""),
    )
    _error(r, 413)
    assert _count(shared_server) == 0


@EDGE
def test_write_key_auth(server: Server) -> None:
    url = server.base_url + "/v1/track"
    err = _error(httpx.post(url, json=_track()), 401)
    assert "write key" in err["message"]
    _error(httpx.post(url, json=_track(), auth=("sfw_nope", "")), 401)
    _error(httpx.post(url, json=_track(), headers={"Authorization": "Basic !!"}), 401)
    assert httpx.post(url, json={**_track(), "writeKey": server.write_key}).status_code == 200
    with server.ctx.lock:
        store = KeyStore(server.ctx.app.store.con)
        revoked = store.create("write", "soon revoked")
        store.revoke(revoked.key.id)
        server.ctx.key_store._reload()
    _error(httpx.post(url, json=_track("u2"), auth=(revoked.token, "")), 401)
    assert _count(server) == 1


@EDGE
def test_admin_endpoints_refuse_write_keys(server: Server) -> None:
    url = server.base_url + "/v1/keys"
    err = _error(httpx.get(url), 401)
    assert "admin key" in err["message"]
    _error(httpx.get(url, headers={"Authorization": "Bearer sfa_unknown"}), 401)
    err = _error(httpx.get(url, headers={"Authorization": f"Bearer {server.write_key}"}), 403)
    assert "write key" in err["message"]
    created = server.client.post("/v1/keys", json={"kind": "write", "name": "shop"})
    assert created.status_code == 201
    token = created.json()["token"]
    assert server.ingest("/v1/track", _track()).status_code == 200
    assert httpx.post(server.base_url + "/v1/track", json=_track("u3"), auth=(token, "")).is_success
    listed = server.client.get("/v1/keys").json()
    assert {k["name"] for k in listed} >= {"shop", "test admin"}
    assert all("token" not in k and "digest" not in k for k in listed)
    assert server.client.delete(f"/v1/keys/{created.json()['id']}").status_code == 200
    _error(httpx.post(server.base_url + "/v1/track", json=_track("u4"), auth=(token, "")), 401)
    _error(server.client.delete("/v1/keys/key_missing"), 404)
    _error(server.client.post("/v1/keys", json={"kind": "root"}), 422)


def test_concurrent_requests_are_group_committed(server: Server) -> None:
    n_threads, per_thread = 8, 10
    statuses: list[int] = []

    def post(t: int) -> None:
        with httpx.Client(auth=(server.write_key, ""), timeout=60) as c:
            for i in range(per_thread):
                batch = [_track(f"u{t}-{i}-{j}", messageId=str(uuid.uuid4())) for j in range(20)]
                statuses.append(
                    c.post(server.base_url + "/v1/batch", json={"batch": batch}).status_code
                )

    threads = [threading.Thread(target=post, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * n_threads * per_thread
    assert _count(server) == n_threads * per_thread * 20
    stats = server.client.get("/v1/ingest/stats").json()
    assert stats["events"] == n_threads * per_thread * 20
    assert stats["groups"] <= stats["requests"]


@EDGE
def test_a_bad_request_does_not_fail_its_group(server: Server) -> None:
    """Requests sharing a group commit with an invalid one are still stored."""
    results: dict[int, int] = {}

    def post(i: int) -> None:
        body = {"batch": [_track(f"g{i}", timestamp="bad" if i == 3 else NOW)]}
        results[i] = server.ingest("/v1/batch", body).status_code

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: 400 if i == 3 else 200 for i in range(8)}
    assert _count(server) == 7


def test_queued_bodies_are_parsed_by_the_writer_and_answered_one_by_one(tmp_path: Any) -> None:
    """The event loop queues bodies unparsed; the writer parses a group's bodies and a
    bad key, bad JSON or a bad field fails its own request only.  ``receivedAt`` is
    the arrival, not the parse."""
    ctx = make_context(tmp_path / "q.duckdb")
    _, write = create_keys(ctx)
    cases = {
        "good": (orjson.dumps({"batch": [_track("q1", messageId="m1")]}), write),
        "key": (orjson.dumps({"batch": [_track("q2")]}), "sfw_nope"),
        "json": (b'{"batch": [', write),
        "field": (orjson.dumps({"batch": [_track("q3", timestamp="bad")]}), write),
        "also good": (orjson.dumps({"batch": [_track("q4", messageId="m4")]}), write),
    }
    results: dict[str, httpx.Response] = {}
    with serve_in_thread(ctx) as running:
        ingestor = ctx.ingestor
        assert ingestor is not None
        url = running.base_url + "/v1/batch"
        _warmed_up(url, write)

        def post(name: str) -> None:
            body, key = cases[name]
            results[name] = httpx.post(url, content=body, auth=(key, ""), timeout=60)

        threads = {name: threading.Thread(target=post, args=(name,)) for name in cases}
        with ctx.lock:  # the writer blocks on the store: the other four queue up
            threads["good"].start()
            _wait_for(lambda: ingestor.committing > 0)
            for name in list(cases)[1:]:
                threads[name].start()
            _wait_for(lambda: len(ingestor.queue) == 4)
            released = datetime.now(UTC).replace(tzinfo=None)
        for t in threads.values():
            t.join()
        with ctx.lock:
            rows = ctx.app.store.con.execute(
                "SELECT user_id, received_at FROM events WHERE user_id != 'warm-up'"
                " ORDER BY user_id"
            ).fetchall()
    statuses = {name: r.status_code for name, r in results.items()}
    assert statuses == {"good": 200, "key": 401, "json": 400, "field": 400, "also good": 200}
    assert "batch[0].timestamp" in results["field"].text
    assert [u for u, _ in rows] == ["q1", "q4"]
    assert rows[1][1] < released
    assert ingestor.stats.rejected_requests == 3


def test_duckdb_gets_its_threads_back_once_ingestion_is_idle(server: Server) -> None:
    """Group commits run DuckDB narrowed to ``ingest_threads`` and keep it so while
    groups follow one another; an idle writer gives the rest of the API its threads."""
    ctx = server.ctx

    def threads() -> int:
        with ctx.lock:
            (n,) = ctx.app.store.con.execute("SELECT current_setting('threads')").fetchone() or (0,)
        return int(n)

    before = threads()
    assert server.ingest("/v1/batch", {"batch": [_track("t1")]}).status_code == 200
    _wait_for(lambda: ctx.app.store._threads_before is None)
    assert threads() == before


def _wait_for(cond: Any) -> None:
    for _ in range(1000):
        if cond():
            return
        threading.Event().wait(0.01)
    faulthandler.dump_traceback(all_threads=True)  # who holds up the server, in the log
    raise AssertionError("condition not reached")


def _warmed_up(url: str, write: str) -> None:
    """One request stored and answered before a test holds the store lock: the server's
    start-up work (which takes the lock too) is done by then."""
    body = {"batch": [_track("warm-up", messageId=f"warm-{uuid.uuid4().hex}")]}
    assert httpx.post(url, json=body, auth=(write, ""), timeout=60).status_code == 200


def test_overload_answers_429_with_retry_after(tmp_path: Any) -> None:
    ctx = make_context(tmp_path / "o.duckdb", settings=Settings(max_pending_events=1))
    _, write = create_keys(ctx)
    ingestor = ctx.ingestor
    with serve_in_thread(ctx) as running:
        ingestor = ctx.ingestor
        assert ingestor is not None
        url = running.base_url + "/v1/batch"
        _warmed_up(url, write)
        done: list[int] = []

        def post(u: str) -> None:
            body = {"batch": [_track(u), _track(u + "b")]}
            done.append(httpx.post(url, json=body, auth=(write, ""), timeout=60).status_code)

        first = threading.Thread(target=post, args=("a",))
        second = threading.Thread(target=post, args=("b",))
        with ctx.lock:  # the writer blocks on the store, so requests queue up
            first.start()
            _wait_for(lambda: ingestor.committing > 0)
            second.start()
            _wait_for(lambda: ingestor.pending > 0)
            r = httpx.post(url, json={"batch": [_track("c")]}, auth=(write, ""), timeout=10)
        first.join()
        second.join()
    err = _error(r, 429)
    assert r.headers["Retry-After"] == "1"
    assert "overloaded" in err["message"]
    assert done == [200, 200]


@EDGE
def test_nul_in_a_field_name_is_a_400_naming_it(server: Server) -> None:
    body = {"batch": [_track(), _track(properties={"ok": 1, "bad\x00key": 2})]}
    err = _error(server.ingest("/v1/batch", body), 400)
    assert err["errors"][0]["path"] == "batch[1].properties.bad\\u0000key"
    assert server.ingest("/v1/track", _track(properties={"note": "nul \x00 in a value"})).is_success
    assert _count(server) == 1


def test_a_request_the_store_cannot_take_fails_alone(tmp_path: Any) -> None:
    """An unexpected store error on one request (here a NUL in a field name, which
    the HTTP layer normally refuses first) fails only that request."""
    import asyncio
    from contextlib import suppress

    from segflow.api.http import ApiError
    from segflow.api.routes.ingest import refusal
    from segflow.service.ingest import Refused

    ctx = make_context(tmp_path / "p.duckdb", live=False)
    requests = [
        ([_track("a")], "batch"),
        ([_track("b", properties={"x\x00": 1})], "batch"),
        ([_track("c", timestamp="bad")], ""),
        ([_track("d")], ""),
    ]

    async def commit() -> list[ApiError | None]:
        writer = ctx.writer()
        task = asyncio.create_task(writer.run())

        async def one(messages: list[dict[str, Any]], prefix: str) -> ApiError | None:
            try:
                await writer.submit(messages, prefix)
            except Refused as e:
                return refusal(e, ctx.settings)
            return None

        try:
            return await asyncio.gather(*(one(m, p) for m, p in requests))
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    try:
        outcome = asyncio.run(commit())
        assert outcome[0] is None and outcome[3] is None
        assert outcome[1] is not None and outcome[1].status == 400
        assert outcome[2] is not None and outcome[2].errors[0]["path"] == "timestamp"
        assert ctx.app.store.count_events() == 2
    finally:
        ctx.app.close()


def test_the_write_ahead_log_is_folded_in_when_ingestion_goes_idle(tmp_path: Any) -> None:
    """Under load the log may grow to ``checkpoint_wal_bytes`` (no commit stalls to
    checkpoint it); once the queue is empty the writer checkpoints it."""
    settings = Settings(checkpoint_wal_bytes=1 << 30, idle_checkpoint_wal_bytes=0)
    ctx = make_context(tmp_path / "w.duckdb", settings=settings)
    _, write = create_keys(ctx)
    store = ctx.app.store
    with serve_in_thread(ctx) as running:
        with ctx.lock:  # the server's threads share the connection: never use it unlocked
            threshold = store.con.execute(
                "SELECT current_setting('checkpoint_threshold')"
            ).fetchone()
        assert threshold == ("1.0 GiB",)
        body = {"batch": [_track(f"u{i}") for i in range(50)]}
        r = httpx.post(running.base_url + "/v1/batch", json=body, auth=(write, ""), timeout=30)
        assert r.status_code == 200
        _wait_for(lambda: store.wal_bytes() == 0)
        with ctx.lock:
            (n,) = store.con.execute("SELECT count(*) FROM events").fetchone() or (0,)
        assert n == 50


def test_the_rows_of_group_commits_are_clustered_when_ingestion_goes_idle(
    tmp_path: Any,
) -> None:
    """Each request is its own small group commit, in arrival order; once no request
    has come for ``compact_quiet_seconds`` the writer re-sorts a chunk of them by
    event name and profile, so the batch evaluator's per-name scans can skip the
    other names' row groups."""
    settings = Settings(compact_tail_rows=120, compact_quiet_seconds=2.0)
    ctx = make_context(tmp_path / "c.duckdb", settings=settings)
    _, write = create_keys(ctx)
    store = ctx.app.store
    names = ("Product Viewed", "Order Completed", "Product Added")
    with serve_in_thread(ctx) as running:
        for r in range(3):
            body = {
                "batch": [
                    _track(f"u{(r * 50 + i) % 7}", event=names[i % 3], messageId=f"m{r}.{i}")
                    for i in range(50)
                ]
            }
            got = httpx.post(
                running.base_url + "/v1/batch", json=body, auth=(write, ""), timeout=30
            )
            assert got.status_code == 200

        def mark() -> int:
            with ctx.lock:
                row = store.con.execute(
                    "SELECT value FROM seq_marks WHERE name = 'events_clustered'"
                ).fetchone()
            return int(row[0]) if row else 0

        assert mark() == 0  # not while requests may still be coming
        _wait_for(lambda: mark() >= 120)
        with ctx.lock:
            run = store.con.execute(
                "SELECT event_code, profile_no FROM events WHERE seq <= 120 ORDER BY rowid"
            ).fetchall()
            (n,) = store.con.execute("SELECT count(*) FROM events").fetchone() or (0,)
        assert len(run) == 120
        assert run == sorted(run)
        assert n == 150


@SHARED_EDGE
def test_every_invalid_field_of_every_message_of_a_batch_is_reported(
    shared_server: Server,
) -> None:
    bad_type_and_time = {**_track(timestamp="yesterday"), "type": "trak"}
    bad_event_and_props = _track(event=5, properties=[1])
    body = {"batch": [_track(), bad_type_and_time, _track(), bad_event_and_props]}
    err = _error(shared_server.ingest("/v1/batch", body), 400)
    assert [e["path"] for e in err["errors"]] == [
        "batch[1].type",
        "batch[1].timestamp",
        "batch[3].event",
        "batch[3].properties",
    ]
    body = {"batch": [_track(timestamp="nope", event=[]), _track(), _track(properties=3)]}
    err = _error(shared_server.ingest("/v1/batch", body), 400)
    assert {e["path"] for e in err["errors"]} == {
        "batch[0].timestamp",
        "batch[0].event",
        "batch[2].properties",
    }
    assert _count(shared_server) == 0
