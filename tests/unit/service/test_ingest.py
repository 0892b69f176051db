"""The group-commit writer over a real DuckDB file: groups, per-request refusals, the
queue limit, shutdown, bodies parsed in the writer's thread, and evaluation before
the answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from segflow.model.definition import parse_segment
from segflow.realtime import VirtualClock
from segflow.service.handle import Segflow
from segflow.service.ingest import (
    BodyRefused,
    Ingestor,
    InvalidMessages,
    Overloaded,
    Parsed,
    Refused,
    ShuttingDown,
    Unstorable,
)
from segflow.service.live import LiveEvaluator

T = TypeVar("T")
NOW = "2026-11-20T10:00:00Z"


@dataclass
class Limits:
    """The writer's settings, without the server's."""

    max_pending_events: int = 100_000
    max_group_events: int = 50_000
    ingest_threads: int | None = 1
    idle_checkpoint_wal_bytes: int = 16 * 1024 * 1024
    compact_tail_rows: int | None = None
    compact_quiet_seconds: float = 1.0


def _track(user: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Order Completed",
        "timestamp": NOW,
        "properties": {"revenue": 12.5},
        **extra,
    }


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Segflow]:
    sf = Segflow(tmp_path / "ingest.duckdb")
    yield sf
    sf.close()


def _writer(app: Segflow, live: LiveEvaluator | None = None, **settings: Any) -> Ingestor:
    group_commit = settings.pop("group_commit", True)
    return Ingestor(
        app.store, live, threading.RLock(), Limits(**settings), group_commit=group_commit
    )


def _running(writer: Ingestor, body: Callable[[], Awaitable[T]]) -> T:
    """Run ``body`` while the writer task runs, then stop the writer."""

    async def main() -> T:
        task = asyncio.create_task(writer.run())
        try:
            return await body()
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    return asyncio.run(main())


async def _outcome(call: Awaitable[None]) -> Refused | None:
    try:
        await call
    except Refused as e:
        return e
    return None


def test_a_group_is_one_commit_and_a_bad_request_fails_alone(app: Segflow) -> None:
    writer = _writer(app)
    requests = [
        ([_track("a"), _track("b")], "batch"),
        ([_track("c"), _track("d", timestamp="bad")], "batch"),
        ([_track("e", properties={"x\x00": 1})], ""),
        ([_track("f", timestamp="bad")], ""),
        ([_track("g")], ""),
    ]

    async def body() -> list[Refused | None]:
        calls = [_outcome(writer.submit(m, p)) for m, p in requests]
        return list(await asyncio.gather(*calls))

    outcome = _running(writer, body)
    assert outcome[0] is None and outcome[4] is None
    bad_batch, nul, bad_single = outcome[1], outcome[2], outcome[3]
    assert isinstance(bad_batch, InvalidMessages)
    assert [path for path, _ in bad_batch.errors] == ["batch[1].timestamp"]
    assert str(bad_batch).startswith("invalid message: batch[1].timestamp: ")
    assert isinstance(nul, Unstorable)  # the store's own error, for that request alone
    assert str(nul).startswith("the request could not be stored: ")
    assert isinstance(bad_single, InvalidMessages)
    assert [path for path, _ in bad_single.errors] == ["timestamp"]
    assert app.store.count_events() == 3
    s = writer.stats
    assert (s.requests, s.events, s.rejected_requests, s.largest_group) == (5, 3, 3, 3)
    assert writer.pending == 0 and not writer.queue


def test_without_group_commit_each_request_is_its_own_commit(app: Segflow) -> None:
    writer = _writer(app, group_commit=False)

    async def body() -> None:
        await asyncio.gather(*(writer.submit([_track(u)], "") for u in "abc"))

    _running(writer, body)
    assert (writer.stats.groups, writer.stats.events) == (3, 3)


def test_a_full_queue_refuses_with_overloaded(app: Segflow) -> None:
    writer = _writer(app, max_pending_events=2)

    async def body() -> Refused | None:  # no writer runs: the first request stays queued
        first = asyncio.create_task(writer.submit([_track("a"), _track("b")], "batch"))
        await asyncio.sleep(0)
        assert writer.pending == 2
        refused = await _outcome(writer.submit([_track("c")], ""))
        first.cancel()
        return refused

    refused = asyncio.run(body())
    assert isinstance(refused, Overloaded) and refused.queued == 2
    assert str(refused) == "ingestion is overloaded (2 events queued); retry later"
    assert writer.stats.overloaded == 1


def test_a_stopped_writer_refuses_what_it_holds_and_what_comes(app: Segflow) -> None:
    writer = _writer(app)

    async def stopped() -> list[Refused | None]:
        task = asyncio.create_task(writer.run())
        await asyncio.sleep(0)
        with writer.lock:  # the writer's commit waits for the store: requests queue up
            committing = asyncio.create_task(_outcome(writer.submit([_track("a")], "")))
            while not writer.committing:
                await asyncio.sleep(0.01)
            queued = asyncio.create_task(_outcome(writer.submit([_track("b")], "")))
            await asyncio.sleep(0)
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        return [await committing, await queued, await _outcome(writer.submit([_track("c")], ""))]

    outcome = asyncio.run(stopped())
    assert all(isinstance(o, ShuttingDown) for o in outcome)
    assert app.store.count_events() == 1  # the commit under way lands: a retry is harmless


def test_bodies_are_parsed_by_the_writer_and_a_refused_body_fails_alone(app: Segflow) -> None:
    writer = _writer(app)
    threads: set[str] = set()

    def parse(user: str) -> Callable[[], Parsed]:
        def run() -> Parsed:
            threads.add(threading.current_thread().name)
            if user == "bad":
                raise BodyRefused(ValueError("no write key"))
            return [_track(user)], "", 1  # one more message was dropped (suppressed)

        return run

    async def body() -> list[Refused | None]:
        calls = [_outcome(writer.submit_unparsed(parse(u), 1)) for u in ("a", "bad", "b")]
        return list(await asyncio.gather(*calls))

    outcome = _running(writer, body)
    assert outcome[0] is None and outcome[2] is None
    refused = outcome[1]
    assert isinstance(refused, BodyRefused) and str(refused.answer) == "no write key"
    assert threading.main_thread().name not in threads
    assert app.store.count_events() == 2
    assert writer.stats.suppressed == 2


def test_an_acknowledged_event_is_evaluated(app: Segflow) -> None:
    app.registry.save([parse_segment({"id": "buyers", "condition": {"event": "Order Completed"}})])
    now = datetime(2026, 11, 21)
    live = LiveEvaluator(app, VirtualClock(now))
    live.start()
    writer = _writer(app, live)

    async def body() -> None:
        await writer.submit([_track("a")], "")

    _running(writer, body)
    assert live.segments_of("a") == {"buyers": now}  # an event from the past: entered now
    assert writer.stats.fast_evaluations == 1
