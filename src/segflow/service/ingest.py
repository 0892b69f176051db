"""The group-commit writer: one task stores what ingestion queued, one transaction a group.

Shells (the ingestion routes, the edge's link) queue each request's messages, or
its body for the writer to parse with its group, and wait.  The writer takes
everything queued (up to ``max_group_events``), stores it with one
``ingest_messages`` call (one DuckDB transaction), feeds the live evaluator
(``catch_up``) and only then resolves every waiting request: an acknowledged event
is durable and evaluated.  A request the store refuses fails alone, with a
``Refused`` saying why (the rest of its group is committed without it); the shell
turns that into its answer.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from segflow.model.events import IngestError, IngestProblem
from segflow.store.errors import StorageFailed
from segflow.store.protocols import GroupCommitStore
from segflow.store.records.history import StoredEvents

if TYPE_CHECKING:
    from segflow.service.live import LiveEvaluator

log = logging.getLogger("segflow.ingest")

ANSWER_STEP: Final = 1
"""Requests of a committed group answered per event-loop turn (see ``_answer``)."""

Parsed = tuple[list[dict[str, Any]], str, int]
"""A parsed request: (messages kept, problem path prefix, messages dropped as
suppressed)."""


class Refused(Exception):
    """Why the writer did not store a request (the rest of its group is unaffected);
    the shell answers it."""


class Overloaded(Refused):
    """The queue holds ``max_pending_events`` already: retry later."""

    def __init__(self, queued: int) -> None:
        super().__init__(f"ingestion is overloaded ({queued:,} events queued); retry later")
        self.queued = queued


class ShuttingDown(Refused):
    """The writer has stopped (or stopped before committing the request)."""

    def __init__(self) -> None:
        super().__init__("the server is shutting down")


class StoreFailed(Refused):
    """Storing failed for a reason that is not the request's own (I/O, memory, an
    unexpected failure of the whole group): a retry may succeed."""

    def __init__(self) -> None:
        super().__init__("storing the events failed; retry")


class InvalidMessages(Refused):
    """Messages the store refused, each problem with its path in the request
    (``batch[3].timestamp``, or ``timestamp`` for a single message)."""

    def __init__(self, problems: list[IngestProblem], prefix: str) -> None:
        self.errors = [(_path(prefix, p), p.message) for p in problems]
        where, message = self.errors[0]
        where = f"{where}: " if where else ""
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(f"invalid message: {where}{message}{more}")


class Unstorable(Refused):
    """The store raised for this request alone (its input, not the store, is at
    fault: retrying it would fail again)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(f"the request could not be stored: {type(error).__name__}")
        self.error = error


class BodyRefused(Refused):
    """A queued body its parser refused: ``answer`` is the parser's own error, handed
    back to the shell as it was raised."""

    def __init__(self, answer: Exception) -> None:
        super().__init__(str(answer))
        self.answer = answer


class WriterSettings(Protocol):
    """The settings the writer reads (the server's ``Settings`` has them)."""

    max_pending_events: int
    max_group_events: int
    ingest_threads: int | None
    idle_checkpoint_wal_bytes: int
    compact_tail_rows: int | None
    compact_quiet_seconds: float


@dataclass
class _Request:
    """One request's messages waiting for the writer."""

    messages: list[dict[str, Any]]
    prefix: str
    """How a problem's path starts: ``batch`` (then ``batch[i].field``) or ``""``."""
    future: asyncio.Future[None]
    parse: Callable[[], Parsed] | None = None
    """Not parsed yet (then ``messages`` is empty until the writer calls it)."""
    size: int = 0
    """Events counted against the queue limit: ``len(messages)``, or an upper
    estimate for a body not parsed yet."""


RATE_WINDOW_S: Final = 60.0
"""The ingest rate is the events stored over this many seconds, per second."""


@dataclass
class IngestStats:
    """Counters shown by ``GET /v1/ingest/stats`` and used by the benchmark."""

    requests: int = 0
    events: int = 0
    groups: int = 0
    rejected_requests: int = 0
    overloaded: int = 0
    suppressed: int = 0
    commit_seconds: float = 0.0
    evaluate_seconds: float = 0.0
    fast_evaluations: int = 0
    """Groups the live evaluator took from the store's description (not read back)."""
    largest_group: int = 0
    started: float = field(default_factory=time.monotonic)
    recent: deque[tuple[float, int]] = field(default_factory=deque)
    """(monotonic time, events stored) of the group commits of the last RATE_WINDOW_S."""

    def record(self, stored: int, now: float | None = None) -> None:
        """Count a group commit's stored events towards the recent rate."""
        now = time.monotonic() if now is None else now
        self.recent.append((now, stored))
        while self.recent and self.recent[0][0] <= now - RATE_WINDOW_S:
            self.recent.popleft()

    def rate(self, now: float | None = None) -> float:
        """Events stored per second over the last RATE_WINDOW_S (0 when idle)."""
        now = time.monotonic() if now is None else now
        total = sum(n for t, n in list(self.recent) if t > now - RATE_WINDOW_S)
        return total / RATE_WINDOW_S


class Ingestor:
    """The group-commit writer: one task, one transaction per group.  Every store and
    live evaluator call runs under ``lock`` (the server's one store lock);
    ``group_commit=False`` commits one request at a time."""

    def __init__(
        self,
        store: GroupCommitStore,
        live: LiveEvaluator | None,
        lock: threading.RLock,
        settings: WriterSettings,
        *,
        group_commit: bool = True,
    ) -> None:
        self.store = store
        self.live = live
        self.lock = lock
        self.settings = settings
        self.group_commit = group_commit
        self.queue: deque[_Request] = deque()
        self.pending = 0
        self.committing = 0
        """Events in the group being committed now."""
        self.stats = IngestStats()
        self._wake: asyncio.Event | None = None
        self._closed = False
        self._answering: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        """The writer task's event loop (set when it runs)."""
        self.stored_listeners: list[Callable[[StoredEvents | None], None]] = []
        """Called under the lock after each group is stored, before it is evaluated,
        with what was stored (None: not described, e.g. stored request by request)."""
        self._inflight: list[_Request] = []
        """The group being committed (failed with ``ShuttingDown`` if the writer is
        cancelled: the commit may still land, and a retry is harmless thanks to message
        ids)."""

    def _event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    async def submit(self, messages: list[dict[str, Any]], prefix: str) -> None:
        """Queue one request's messages; returns once they are stored and evaluated
        (raises ``Refused`` otherwise)."""
        await self._queue(messages, prefix, None, len(messages))

    async def submit_unparsed(self, parse: Callable[[], Parsed], size: int) -> None:
        """Queue one request to be parsed by the writer, in its thread, with the rest
        of its group (``parse`` raises ``Refused`` to refuse it; ``size`` is an upper
        estimate of its events); returns once they are stored and evaluated (raises
        ``Refused`` otherwise)."""
        await self._queue([], "", parse, size)

    async def _queue(
        self,
        messages: list[dict[str, Any]],
        prefix: str,
        parse: Callable[[], Parsed] | None,
        n: int,
    ) -> None:
        if self._closed:
            raise ShuttingDown
        if self.pending and self.pending + n > self.settings.max_pending_events:
            self.stats.overloaded += 1
            raise Overloaded(self.pending)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.append(_Request(messages, prefix, fut, parse, n))
        self.pending += n
        self._event().set()
        await fut

    def parses(self) -> bool:
        """Whether a request arriving now may be queued unparsed (``submit_unparsed``):
        with group commit, on the writer's own event loop (a request from another loop,
        such as a test's in-process transport, is parsed where it arrives)."""
        return self.group_commit and self._loop is asyncio.get_running_loop()

    async def run(self) -> None:
        """The writer loop (a task for the server's lifetime)."""
        self._loop = asyncio.get_running_loop()
        wake = self._event()
        try:
            while True:
                await wake.wait()
                wake.clear()
                while self.queue:
                    group = self._take()
                    self._inflight = group
                    self.committing = sum(r.size for r in group)
                    collecting = gc.isenabled()
                    # no collection while the group's tens of thousands of objects are
                    # alive: each would traverse them all (holding the GIL, so stalling
                    # look-ups too) and find no garbage
                    gc.disable()
                    try:
                        outcome = await asyncio.to_thread(self._commit, group)
                    except Exception:
                        log.exception("group commit failed")
                        outcome = [StoreFailed()] * len(group)
                    except BaseException:  # cancelled: the thread may still use the group
                        if collecting:
                            gc.enable()
                        raise
                    if collecting:  # now the group's objects are gone: nothing to scan
                        gc.enable()
                    self.committing = 0
                    self._inflight = []
                    # answered by a task: the next group's commit starts at once
                    task = asyncio.create_task(self._answer(group, outcome))
                    self._answering.add(task)
                    task.add_done_callback(self._answering.discard)
                try:  # idle: fold the write-ahead log into the file now, not mid-load
                    await asyncio.to_thread(self._idle)
                except Exception:
                    log.exception("checkpoint failed")
                await self._cluster_when_quiet(wake)
        finally:
            self._closed = True
            for req in [*self._inflight, *self.queue]:
                if not req.future.done():
                    req.future.set_exception(ShuttingDown())
            self.queue.clear()

    async def _answer(self, group: list[_Request], outcome: list[Refused | None]) -> None:
        """Resolve a committed group's requests ``ANSWER_STEP`` per event-loop turn:
        each answer is a trip through the HTTP stack, and answering a whole group at
        once would keep a look-up arriving meanwhile waiting behind all of them."""
        try:
            for k, (req, res) in enumerate(zip(group, outcome, strict=True)):
                if k and k % ANSWER_STEP == 0:
                    await asyncio.sleep(0)
                _resolve(req, res)
        finally:  # cancelled (shutdown): the group is committed, answer the rest now
            for req, res in zip(group, outcome, strict=True):
                _resolve(req, res)

    def _take(self) -> list[_Request]:
        limit = self.settings.max_group_events if self.group_commit else 1
        group: list[_Request] = []
        n = 0
        while self.queue and (not group or n + self.queue[0].size <= limit):
            req = self.queue.popleft()
            group.append(req)
            n += req.size
        self.pending -= n
        return group

    def _commit(self, group: list[_Request]) -> list[Refused | None]:
        """Store a group in one transaction (bad requests taken out), then evaluate."""
        outcome: list[Refused | None] = [None] * len(group)
        for i, req in enumerate(group):
            if req.parse is not None:
                outcome[i] = self._parse(req)
        live = [i for i, req in enumerate(group) if req.messages]
        store = self.store
        # DuckDB stays narrowed until ingestion goes idle (``_idle``; see
        # DuckDBStore.threads): a group usually takes the whole queue, so whether more
        # groups follow is only known once it is committed, and setting the threads
        # back and forth for every group costs more than it gains
        with self.lock, store.threads(self.settings.ingest_threads, keep=True):
            started = time.perf_counter()
            fresh: StoredEvents | None = None
            while live:
                messages: list[dict[str, Any]] = []
                starts: list[int] = []
                for i in live:
                    starts.append(len(messages))
                    messages.extend(group[i].messages)
                try:
                    store.ingest_messages(messages, source="api", json_values=True, describe=True)
                    fresh = store.last_load
                    break
                except IngestError as e:
                    bad = _blame(e.problems, starts, live, group)
                    if not bad:  # nothing attributable: fail the whole group, clearly
                        err = InvalidMessages(e.problems, "")
                        for i in live:
                            outcome[i] = err
                        live = []
                        break
                    for i, err in bad.items():
                        outcome[i] = err
                    live = [i for i in live if i not in bad]
                except Exception:
                    log.exception("group commit failed; storing its requests one by one")
                    live = self._one_by_one(group, live, outcome)
                    break
            committed = time.perf_counter()
            stored = sum(len(group[i].messages) for i in live)
            if stored:
                for fn in self.stored_listeners:
                    try:
                        fn(fresh)
                    except Exception:  # the events are stored; a listener's failure is its own
                        log.exception("a stored-events listener failed")
            if stored and self.live is not None:
                try:
                    # the events just stored, as parsed: no need to read them back
                    fast = self.live.fast_catch_ups
                    self.live.catch_up(fresh)
                    self.stats.fast_evaluations += self.live.fast_catch_ups - fast
                except Exception:  # the events are stored; the evaluator logs and recovers
                    log.exception("live evaluation after ingest failed")
            store.last_load = None  # its messages need not outlive the group
            done = time.perf_counter()
        # Stored (or failed): free the group's objects here, a few hundred at a time.
        # Freeing thousands of nested dicts is one C call holding the GIL; on the event
        # loop (or all at once) it stalled look-ups for milliseconds.
        if fresh is not None:
            rows, fresh = fresh.rows, None
            _free_gradually(rows)
        messages = []  # the group's combined list lets go first
        for req in group:
            _free_gradually(req.messages)
        s = self.stats
        s.groups += 1
        s.requests += len(group)
        s.events += stored
        s.rejected_requests += sum(1 for o in outcome if o is not None)
        s.commit_seconds += committed - started
        s.evaluate_seconds += done - committed
        s.largest_group = max(s.largest_group, stored)
        s.record(stored)
        return outcome

    def _parse(self, req: _Request) -> Refused | None:
        """Parse a queued request in the writer's thread (the event loop only queues
        it: parsing there would make the writer wait for the GIL far longer than the
        parsing takes); its refusal becomes the request's answer."""
        parse = req.parse
        assert parse is not None
        req.parse = None
        try:
            req.messages, req.prefix, suppressed = parse()
        except Refused as e:
            return e
        self.stats.suppressed += suppressed
        return None

    def _idle(self) -> None:
        """Idle upkeep, only if the store lock is free now: the writer awaits this
        before it looks at its queue again, so waiting here for someone else's hold
        would keep a request arriving meanwhile from being committed until then."""
        if not self.lock.acquire(blocking=False):
            return
        try:
            if not self.queue:
                self.store.restore_threads()
                self.store.checkpoint_if(self.settings.idle_checkpoint_wal_bytes)
        finally:
            self.lock.release()

    async def _cluster_when_quiet(self, wake: asyncio.Event) -> None:
        """Once no request has come for ``compact_quiet_seconds``, re-sort the newest
        rows a chunk at a time (``DuckDBStore.compact_tail``) until a request comes or
        the tail is shorter than a chunk.  A chunk holds the writer a while, which
        requests arriving meanwhile wait for: so it waits for a lull, not merely an
        empty queue (under steady load the queue empties between groups)."""
        rows = self.settings.compact_tail_rows
        while rows and not self.queue:
            try:
                await asyncio.wait_for(wake.wait(), self.settings.compact_quiet_seconds)
                return  # a request came: the loop serves it (``wake`` stays set)
            except TimeoutError:
                pass
            try:
                if not await asyncio.to_thread(self._cluster, rows):
                    return
            except Exception:
                log.exception("clustering the newest rows failed")
                return

    def _cluster(self, rows: int) -> bool:
        with self.lock:
            if self.queue:
                return False
            done = self.store.compact_tail(rows)
        if done:
            log.info("clustered the newest rows: %s", done)
        return bool(done)

    def _one_by_one(
        self, group: list[_Request], live: list[int], outcome: list[Refused | None]
    ) -> list[int]:
        """After an unexpected store error: each request in its own transaction, so
        one poisonous request cannot fail (and, retried, keep failing) its group."""
        stored = []
        for i in live:
            try:
                self.store.ingest_messages(group[i].messages, source="api", json_values=True)
            except IngestError as e:
                outcome[i] = InvalidMessages(e.problems, group[i].prefix)
            except (StorageFailed, OSError, MemoryError):
                log.exception("storing a request failed")
                outcome[i] = StoreFailed()
            except Exception as e:  # input-specific: the rest of the group was stored
                log.exception("storing a request failed")
                outcome[i] = Unstorable(e)
            else:
                stored.append(i)
        return stored

    def close(self) -> None:
        self._closed = True


def _resolve(req: _Request, res: Refused | None) -> None:
    if not req.future.done():
        if res is None:
            req.future.set_result(None)
        else:
            req.future.set_exception(res)


def _free_gradually(items: list[Any], step: int = 200) -> None:
    """Empty ``items`` from the end, ``step`` at a time: between two slices another
    thread (the event loop) can take the GIL."""
    while items:
        del items[-step:]


def _blame(
    problems: list[IngestProblem], starts: list[int], live: list[int], group: list[_Request]
) -> dict[int, InvalidMessages]:
    """Which requests of a group the problems belong to (by 1-based position)."""
    per: dict[int, list[IngestProblem]] = {}
    for p in problems:
        if p.line is None:
            continue
        k = bisect.bisect_right(starts, p.line - 1) - 1
        if k < 0:
            continue
        i = live[k]
        per.setdefault(i, []).append(IngestProblem(p.field, p.message, line=p.line - starts[k]))
    return {i: InvalidMessages(ps, group[i].prefix) for i, ps in per.items()}


def _path(prefix: str, p: IngestProblem) -> str:
    if prefix:
        base = f"{prefix}[{(p.line or 1) - 1}]"
        return f"{base}.{p.field}" if p.field else base
    return p.field
