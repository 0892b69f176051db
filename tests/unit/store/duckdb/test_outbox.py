"""The webhook outbox: enqueue from the change log once per (destination, change),
backoff, dead-letter, replay; signatures that verify only with the right secret."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
from hypothesis import given
from hypothesis import strategies as st

from segflow.model.changes import LoggedChange, Reason
from segflow.service.delivery import sign, verify
from segflow.store.duckdb.outbox import WebhookStore

T0 = datetime(2026, 11, 20, 10, 0, 0)


def _change(seq: int, segment: str = "s", entered: bool = True) -> LoggedChange:
    return LoggedChange(segment, f"p{seq}", entered, T0, Reason.EVENT, 1, seq, T0)


def _store(tmp_path: Path) -> WebhookStore:
    return WebhookStore(duckdb.connect(str(tmp_path / "w.duckdb")))


def test_enqueue_matches_segment_and_direction_and_is_idempotent(tmp_path: Path) -> None:
    ws = _store(tmp_path)
    both = ws.create("s", "http://a/", ["entered", "exited"])
    only_exits = ws.create("s", "http://b/", ["exited"])
    ws.create("other", "http://c/", ["entered"])
    changes = [_change(1), _change(2, entered=False), _change(3, "other")]
    assert ws.enqueue(changes) == 4
    assert ws.enqueue(changes) == 0
    assert ws.cursor() == 3
    rows = ws.deliveries()
    assert sorted((d.webhook_id, d.change_seq) for d in rows) == sorted(
        [(both.id, 1), (both.id, 2), (only_exits.id, 2), (rows[-1].webhook_id, 3)]
    )


def test_destination_gets_only_changes_after_its_creation(tmp_path: Path) -> None:
    ws = _store(tmp_path)
    ws.create("s", "http://a/", ["entered"], from_seq=5)
    assert ws.enqueue([_change(4), _change(6)]) == 1
    assert [d.change_seq for d in ws.deliveries()] == [6]


def test_backoff_then_dead_letter_then_replay(tmp_path: Path) -> None:
    ws = _store(tmp_path)
    ws.create("s", "http://a/", ["entered"])
    ws.enqueue([_change(1)])
    now = T0
    backoff = timedelta(seconds=10)
    due = ws.due(datetime.max)
    ((d, _hook),) = due
    ws.failed(d, "HTTP 500", now, backoff, max_attempts=3)
    assert ws.due(now + timedelta(seconds=9)) == []
    ((d, _),) = ws.due(now + timedelta(seconds=10))
    assert d.attempts == 1
    ws.failed(d, "HTTP 500", now, backoff, max_attempts=3)
    ((d, _),) = ws.due(now + timedelta(seconds=20))
    ws.failed(d, "timeout", now, backoff, max_attempts=3)
    assert ws.due(datetime.max) == []
    (dead,) = ws.deliveries(status="dead")
    assert dead.attempts == 3 and dead.last_error == "timeout"
    assert ws.replay(now=now) == 1
    ((d, _),) = ws.due(now)
    ws.delivered(d.id, now)
    assert ws.count("delivered") == 1 and ws.count("dead") == 0


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


def test_due_takes_a_share_of_each_destination_and_skips_busy_ones(tmp_path: Path) -> None:
    ws = _store(tmp_path)
    backlog = ws.create("s", "http://a/", ["entered"])
    other = ws.create("s", "http://b/", ["entered"])
    ws.enqueue([_change(i) for i in range(1, 21)])
    due = ws.due(datetime.max, limit=5)
    per_hook = {h: sum(1 for _, x in due if x.id == h) for h in (backlog.id, other.id)}
    assert per_hook == {backlog.id: 5, other.id: 5}
    assert {x.id for _, x in ws.due(datetime.max, exclude={backlog.id})} == {other.id}
    assert ws.next_due(exclude={backlog.id, other.id}) is None
    assert ws.next_due(exclude={backlog.id}) is not None
