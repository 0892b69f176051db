"""The destinations' outbox: enqueue from the change log once per (destination,
change), holdouts left out, mapped traits, backoff, dead-letter, replay, syncs; and
signatures that verify only with the right secret.  A real DuckDB store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segflow.model.bucket import bucket_of
from segflow.model.changes import LoggedChange, Reason
from segflow.model.definition import Holdout
from segflow.service.delivery import sign, verify
from segflow.service.handle import Segflow
from segflow.store.duckdb.destinations import DestinationStore
from segflow.store.records.destinations import MARK, Destination

T0 = datetime(2026, 11, 20, 10, 0, 0)


def _change(seq: int, segment: str = "s", entered: bool = True, pid: str = "") -> LoggedChange:
    return LoggedChange(segment, pid or f"p{seq}", entered, T0, Reason.EVENT, 1, seq, T0)


def _dest(
    segment: str = "s", events: tuple[str, ...] = ("entered", "exited"), **kw: Any
) -> Destination:
    base = Destination(
        id="", name="", kind="redis", segments=(segment,), config={"stream": "x"}, events=events
    )
    return replace(base, **kw)


@pytest.fixture
def sf(tmp_path: Path) -> Iterator[Segflow]:
    app = Segflow(tmp_path / "d.duckdb")
    yield app
    app.close()


def test_enqueue_matches_segment_and_direction_and_is_idempotent(sf: Segflow) -> None:
    ds = sf.destination_store()
    both = ds.create(_dest())
    only_exits = ds.create(_dest(events=("exited",)))
    other = ds.create(_dest("other", events=("entered",)))
    changes = [_change(1), _change(2, entered=False), _change(3, "other")]
    assert ds.enqueue(changes) == 4
    assert ds.enqueue(changes) == 0
    assert ds.cursor() == 3
    rows = ds.deliveries()
    assert sorted((d.destination_id, d.change_seq) for d in rows) == sorted(
        [(both.id, 1), (both.id, 2), (only_exits.id, 2), (other.id, 3)]
    )
    assert {d.idempotency_key for d in rows if d.change_seq == 1} == {"s:p1:1"}
    assert all(orjson.loads(d.body)["idempotency_key"] == d.idempotency_key for d in rows)


def test_destination_gets_only_changes_after_its_creation(sf: Segflow) -> None:
    ds = sf.destination_store()
    ds.create(_dest(from_seq=5))
    assert ds.enqueue([_change(4), _change(6)]) == 1
    assert [d.change_seq for d in ds.deliveries()] == [6]


def test_held_out_members_are_left_out_or_marked(sf: Segflow) -> None:
    holdout = Holdout(50, "h")
    ds = sf.destination_store(holdouts=lambda: {"s": holdout})
    skip = ds.create(_dest())
    mark = ds.create(_dest(held_out=MARK))
    pids = [f"u{i}" for i in range(20)]
    held = {p for p in pids if bucket_of(p, "h") < 50}
    assert held and held != set(pids)
    ds.enqueue([_change(i + 1, pid=p) for i, p in enumerate(pids)])
    sent = {orjson.loads(d.body)["profile_id"] for d in ds.deliveries(destination_id=skip.id)}
    assert sent == set(pids) - held
    marked = {
        (b := orjson.loads(d.body))["profile_id"]: b["held_out"]
        for d in ds.deliveries(destination_id=mark.id, limit=100)
    }
    assert marked == {p: p in held for p in pids}


def test_mapped_traits_are_read_when_enqueued(sf: Segflow, tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    traits = {"email": "a@x.io", "plan": "pro"}
    msg = {"type": "identify", "userId": "p1", "messageId": "i1",
           "timestamp": "2026-11-01T00:00:00Z", "traits": traits}  # fmt: skip
    events.write_bytes(orjson.dumps(msg) + b"\n")
    sf.ingest([events])
    ds = sf.destination_store()
    d = ds.create(_dest(fields=(("email", "email_address"),)))
    ds.enqueue([_change(1), _change(2)])
    bodies = {b["profile_id"]: b for b in (orjson.loads(x.body) for x in ds.deliveries())}
    assert bodies["p1"]["traits"] == {"email_address": "a@x.io"}
    assert bodies["p2"]["traits"] == {"email_address": None}
    assert all(b["destination_id"] == d.id for b in bodies.values())


def test_backoff_then_dead_letter_then_replay(sf: Segflow) -> None:
    ds = sf.destination_store()
    dest = ds.create(_dest())
    ds.enqueue([_change(1)])
    now = T0
    backoff = timedelta(seconds=10)
    (d,) = ds.due(datetime.max)[dest.id]
    ds.failed([d], "HTTP 500", now, backoff, max_attempts=3)
    assert ds.due(now + timedelta(seconds=9)) == {}
    (d,) = ds.due(now + timedelta(seconds=10))[dest.id]
    assert d.attempts == 1
    ds.failed([d], "HTTP 500", now, backoff, max_attempts=3)
    (d,) = ds.due(now + timedelta(seconds=20))[dest.id]
    ds.failed([d], "timeout", now, backoff, max_attempts=3)
    assert ds.due(datetime.max) == {}
    (dead,) = ds.deliveries(status="dead")
    assert dead.attempts == 3 and dead.last_error == "timeout"
    assert ds.replay(now=now) == 1
    (d,) = ds.due(now)[dest.id]
    ds.delivered([d.id], now)
    assert ds.counts(dest.id) == {"pending": 0, "delivered": 1, "dead": 0}


def test_a_sync_cut_short_is_requested_again(sf: Segflow) -> None:
    ds = sf.destination_store()
    dest = ds.create(_dest())
    s = ds.request_sync(dest.id, "manual")
    assert ds.request_sync(dest.id, "manual").id == s.id  # one waiting at a time
    ds.start_sync(s.id, T0)
    assert ds.requested_syncs() == {}
    assert ds.resume_syncs() == 1
    assert ds.requested_syncs()[dest.id].id == s.id
    ds.finish_sync(s.id, T0, members=3, held=1, sent=2)
    assert ds.sync(s.id).status == "done" and ds.sync(s.id).sent == 2


def test_an_older_stores_webhooks_move_over(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute(
        "CREATE TABLE webhooks (id VARCHAR, segment_id VARCHAR, url VARCHAR, events VARCHAR,"
        " secret VARCHAR, created_at TIMESTAMP, from_seq BIGINT, deleted BOOLEAN);"
        "CREATE TABLE webhook_deliveries (id BIGINT, webhook_id VARCHAR, change_seq BIGINT,"
        " body JSON, status VARCHAR, attempts INTEGER, next_attempt_at TIMESTAMP,"
        " last_error VARCHAR, created_at TIMESTAMP, delivered_at TIMESTAMP);"
        "CREATE TABLE webhook_cursor (name VARCHAR, seq BIGINT);"
        "INSERT INTO webhooks VALUES ('wh_1', 's', 'http://a/', 'entered', 'k', now(), 0, false);"
        "INSERT INTO webhook_deliveries VALUES (1, 'wh_1', 7,"
        ' \'{"segment_id": "s", "profile_id": "p"}\', \'pending\', 0, now(), NULL, now(), NULL);'
        "INSERT INTO webhook_cursor VALUES ('changes', 7);"
    )
    ds = DestinationStore(con)
    (hook,) = ds.destinations()
    assert (hook.id, hook.kind, hook.segments, hook.held_out) == ("wh_1", "webhook", ("s",), MARK)
    assert hook.config == {"url": "http://a/", "secret": "k"}
    (d,) = ds.deliveries()
    assert (d.destination_id, d.change_seq, d.idempotency_key) == ("wh_1", 7, "s:p:7")
    assert ds.cursor() == 7
    DestinationStore(con)  # opening again moves nothing twice
    assert len(ds.deliveries()) == 1


@given(st.text(max_size=200), st.text(min_size=1, max_size=40))
def test_signature_verifies_only_with_its_secret(body: str, secret: str) -> None:
    raw = body.encode()
    ts = int(time.time())
    header = sign(secret, raw, ts)
    assert verify(secret, raw, header)
    assert not verify(secret + "x", raw, header)
    assert not verify(secret, raw + b"x", header)
    assert not verify(secret, raw, sign(secret, raw, ts - 3600))
    assert not verify(secret, raw, "garbage")


def test_due_takes_a_share_of_each_destination_and_skips_busy_ones(sf: Segflow) -> None:
    ds = sf.destination_store()
    backlog = ds.create(_dest(events=("entered",)))
    other = ds.create(_dest(events=("entered",)))
    ds.enqueue([_change(i) for i in range(1, 21)])
    due = ds.due(datetime.max, limit=5)
    assert {k: len(v) for k, v in due.items()} == {backlog.id: 5, other.id: 5}
    assert set(ds.due(datetime.max, exclude={backlog.id})) == {other.id}
    assert ds.next_due(exclude={backlog.id, other.id}) is None
    assert ds.next_due(exclude={backlog.id}) is not None


def test_a_schedule_requests_a_sync_once_per_instant(sf: Segflow) -> None:
    from segflow.service.destinations import DestinationWorker

    ds = sf.destination_store()
    dest = ds.create(_dest(schedule="0 * * * *", changes=False))
    worker = DestinationWorker(ds, threading.RLock(), None, members=lambda _s: [])
    # a minute past the next full hour, so that five minutes later is the same hour
    later = dest.created_at.replace(minute=1, second=0, microsecond=0) + timedelta(hours=1)
    (work,) = worker.collect(later)
    assert work.sync is not None and work.sync.trigger == "schedule"
    assert worker.collect(later)[0].sync == work.sync  # still the one waiting, not a second
    ds.start_sync(work.sync.id, later)
    assert worker.collect(later + timedelta(minutes=5)) == []  # no new instant yet
    (again,) = worker.collect(later + timedelta(hours=1))
    assert again.sync is not None and again.sync.id != work.sync.id
