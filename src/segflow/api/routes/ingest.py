"""Segment-compatible ingestion: ``/v1/track|identify|page|screen|alias|group|batch``.

Requests (over HTTP, or handed over by the edge process: ``api/edgelink.py``) are
checked cheaply on the event loop (size limits, JSON, the batch shape), then queued
for the single writer task.  The writer takes everything queued (group
commit), stores it with one ``ingest_messages`` call (one DuckDB transaction), feeds
the live evaluator (``catch_up``) and only then resolves every waiting request: an
acknowledged event is durable and evaluated.  A message that fails validation fails
its own request only (400 naming ``batch[3].timestamp``); the rest of the group is
committed without it.  A full queue answers 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import logging
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import duckdb
import orjson
from fastapi import APIRouter, Request, Response
from starlette.types import Receive

from segflow.api.deps import ApiError, ServerContext, Settings, get_ctx
from segflow.api.limits import depth_message, too_deep
from segflow.model.events import IngestError, IngestProblem, parse_message
from segflow.model.time import utcnow
from segflow.store.duckdb_store import StoredEvents

log = logging.getLogger("segflow.ingest")

router = APIRouter(tags=["ingestion"])

TYPES: Final = ("track", "identify", "page", "screen", "alias", "group")
OK: Final = b'{"success":true}'
INLINE_BYTES: Final = 64 * 1024
"""Bodies up to this size are parsed by the writer thread with the rest of its group
(the event loop only queues them): parsing on the loop would make the writer wait for
the GIL several times as long as the parsing takes.  A worker thread of their own
would cost more than it saves (one more thread contending for the GIL)."""
ANSWER_STEP: Final = 1
"""Requests of a committed group answered per event-loop turn (see ``_answer``)."""
_ID_KEYS: Final = ("userId", "user_id", "anonymousId", "anonymous_id", "previousId", "previous_id")


@dataclass(frozen=True, slots=True)
class _Body:
    """A request body the writer parses (``_parse``) before storing its group."""

    body: bytes
    kind: str
    authorization: str | None
    received: datetime


@dataclass
class _Request:
    """One HTTP request's messages waiting for the writer."""

    messages: list[dict[str, Any]]
    prefix: str
    """How a problem's path starts: ``batch`` (then ``batch[i].field``) or ``""``."""
    future: asyncio.Future[None]
    body: _Body | None = None
    """Not parsed yet (then ``messages`` is empty until the writer parses it)."""
    size: int = 0
    """Events counted against the queue limit: ``len(messages)``, or an upper
    estimate for a body not parsed yet."""


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


class Ingestor:
    """The group-commit writer: one task, one transaction per group."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.queue: deque[_Request] = deque()
        self.pending = 0
        self.committing = 0
        """Events in the group being committed now."""
        self.stats = IngestStats()
        self.group_commit = True
        self._wake: asyncio.Event | None = None
        self._closed = False
        self._answering: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        """The writer task's event loop (set when it runs)."""
        self._inflight: list[_Request] = []
        """The group being committed (failed with 503 if the writer is cancelled:
        the commit may still land, and a retry is harmless thanks to message ids)."""

    def _event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    async def submit(
        self, messages: list[dict[str, Any]], prefix: str, body: _Body | None = None
    ) -> None:
        """Queue one request's messages (or its ``body``, parsed by the writer); returns
        once they are stored and evaluated (raises ``ApiError`` otherwise)."""
        if self._closed:
            raise ApiError(503, "the server is shutting down", headers=self._retry())
        # a body's messages are at most its "type" keys (one for a single message)
        n = len(messages) if body is None else body.body.count(b'"type"') or 1
        if self.pending and self.pending + n > self.ctx.settings.max_pending_events:
            self.stats.overloaded += 1
            raise ApiError(
                429,
                f"ingestion is overloaded ({self.pending:,} events queued); retry later",
                headers=self._retry(),
            )
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.append(_Request(messages, prefix, fut, body, n))
        self.pending += n
        self._event().set()
        await fut

    def parses(self) -> bool:
        """Whether a body arriving now is queued unparsed for the writer: with group
        commit, on the writer's own event loop (a request from another loop, such as
        a test's in-process transport, is parsed where it arrives)."""
        return self.group_commit and self._loop is asyncio.get_running_loop()

    def _retry(self) -> dict[str, str]:
        return {"Retry-After": str(self.ctx.settings.retry_after_seconds)}

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
                        err = ApiError(
                            503, "storing the events failed; retry", headers=self._retry()
                        )
                        outcome = [err] * len(group)
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
                    req.future.set_exception(
                        ApiError(503, "the server is shutting down", headers=self._retry())
                    )
            self.queue.clear()

    async def _answer(self, group: list[_Request], outcome: list[ApiError | None]) -> None:
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
        limit = self.ctx.settings.max_group_events if self.group_commit else 1
        group: list[_Request] = []
        n = 0
        while self.queue and (not group or n + self.queue[0].size <= limit):
            req = self.queue.popleft()
            group.append(req)
            n += req.size
        self.pending -= n
        return group

    def _commit(self, group: list[_Request]) -> list[ApiError | None]:
        """Store a group in one transaction (bad requests taken out), then evaluate."""
        ctx = self.ctx
        outcome: list[ApiError | None] = [None] * len(group)
        for i, req in enumerate(group):
            if req.body is not None:
                outcome[i] = self._parse(req)
        live = [i for i, req in enumerate(group) if req.messages]
        # DuckDB stays narrowed until ingestion goes idle (``_idle``; see
        # DuckDBStore.threads): a group usually takes the whole queue, so whether more
        # groups follow is only known once it is committed, and setting the threads
        # back and forth for every group costs more than it gains
        with ctx.lock, ctx.app.store.threads(ctx.settings.ingest_threads, keep=True):
            started = time.perf_counter()
            fresh: StoredEvents | None = None
            while live:
                messages: list[dict[str, Any]] = []
                starts: list[int] = []
                for i in live:
                    starts.append(len(messages))
                    messages.extend(group[i].messages)
                try:
                    store = ctx.app.store
                    store.ingest_messages(messages, source="api", json_values=True, describe=True)
                    fresh = store.last_load
                    break
                except IngestError as e:
                    bad = _blame(e.problems, starts, live, group)
                    if not bad:  # nothing attributable: fail the whole group, clearly
                        err = _invalid(e.problems, "")
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
            if stored and ctx.live is not None:
                try:
                    # the events just stored, as parsed: no need to read them back
                    fast = ctx.live.fast_catch_ups
                    ctx.live.catch_up(fresh)
                    self.stats.fast_evaluations += ctx.live.fast_catch_ups - fast
                except Exception:  # the events are stored; the evaluator logs and recovers
                    log.exception("live evaluation after ingest failed")
            ctx.app.store.last_load = None  # its messages need not outlive the group
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
        return outcome

    def _parse(self, req: _Request) -> ApiError | None:
        """Parse a queued body in the writer's thread (the event loop only queues it:
        parsing there would make the writer wait for the GIL far longer than the
        parsing takes); its problems become the request's answer."""
        b = req.body
        assert b is not None
        req.body = None
        try:
            req.messages, req.prefix, suppressed = _parse(
                self.ctx, b.authorization, b.body, b.kind, b.received
            )
        except ApiError as e:
            return e
        self.stats.suppressed += suppressed
        return None

    def _idle(self) -> None:
        ctx = self.ctx
        with ctx.lock:
            if not self.queue:
                ctx.app.store.restore_threads()
                ctx.app.store.checkpoint_if(ctx.settings.idle_checkpoint_wal_bytes)

    async def _cluster_when_quiet(self, wake: asyncio.Event) -> None:
        """Once no request has come for ``compact_quiet_seconds``, re-sort the newest
        rows a chunk at a time (``DuckDBStore.compact_tail``) until a request comes or
        the tail is shorter than a chunk.  A chunk holds the writer a while, which
        requests arriving meanwhile wait for: so it waits for a lull, not merely an
        empty queue (under steady load the queue empties between groups)."""
        rows = self.ctx.settings.compact_tail_rows
        while rows and not self.queue:
            try:
                await asyncio.wait_for(wake.wait(), self.ctx.settings.compact_quiet_seconds)
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
        with self.ctx.lock:
            if self.queue:
                return False
            done = self.ctx.app.store.compact_tail(rows)
        if done:
            log.info("clustered the newest rows: %s", done)
        return bool(done)

    def _one_by_one(
        self, group: list[_Request], live: list[int], outcome: list[ApiError | None]
    ) -> list[int]:
        """After an unexpected store error: each request in its own transaction, so
        one poisonous request cannot fail (and, retried, keep failing) its group."""
        stored = []
        for i in live:
            try:
                self.ctx.app.store.ingest_messages(
                    group[i].messages, source="api", json_values=True
                )
            except IngestError as e:
                outcome[i] = _invalid(e.problems, group[i].prefix)
            except (duckdb.IOException, OSError, MemoryError):
                log.exception("storing a request failed")
                outcome[i] = ApiError(
                    503, "storing the events failed; retry", headers=self._retry()
                )
            except Exception as e:  # input-specific: the rest of the group was stored
                log.exception("storing a request failed")
                msg = f"the request could not be stored: {type(e).__name__}"
                outcome[i] = ApiError(400, msg, [_err("", f"{msg}: {e}"[:500])])
            else:
                stored.append(i)
        return stored

    def close(self) -> None:
        self._closed = True


def _resolve(req: _Request, res: ApiError | None) -> None:
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
) -> dict[int, ApiError]:
    """Which requests of a group the problems belong to (by 1-based position)."""
    import bisect

    per: dict[int, list[IngestProblem]] = {}
    for p in problems:
        if p.line is None:
            continue
        k = bisect.bisect_right(starts, p.line - 1) - 1
        if k < 0:
            continue
        i = live[k]
        per.setdefault(i, []).append(IngestProblem(p.field, p.message, line=p.line - starts[k]))
    return {i: _invalid(ps, group[i].prefix) for i, ps in per.items()}


def _invalid(problems: list[IngestProblem], prefix: str) -> ApiError:
    errors = [{"path": _path(prefix, p), "message": p.message} for p in problems]
    head = errors[0]
    where = f"{head['path']}: " if head["path"] else ""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ApiError(400, f"invalid message: {where}{head['message']}{more}", errors)


def _path(prefix: str, p: IngestProblem) -> str:
    if prefix:
        base = f"{prefix}[{(p.line or 1) - 1}]"
        return f"{base}.{p.field}" if p.field else base
    return p.field


# -- request parsing ----------------------------------------------------------------


def body_limit(settings: Settings, kind: str) -> int:
    """Segment's limits: 500 KB a batch, 32 KB a single message."""
    return settings.max_batch_bytes if kind == "batch" else settings.max_message_bytes


def too_large(limit: int) -> ApiError:
    too_big = f"request body too large: the limit is {limit // 1024} KB"
    return ApiError(413, too_big, [{"path": "", "message": too_big}])


async def read_limited(receive: Receive, declared: str | None, limit: int) -> bytes:
    """An ASGI request body as sent (before any gunzip), refusing (413) past ``limit``
    bytes: at once when ``Content-Length`` says so, else as soon as it is read."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            raise ApiError(400, "the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def decode_body(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip/deflate), refusing (413) past ``limit`` bytes."""
    encoding = encoding.lower()
    if encoding in ("gzip", "deflate"):
        try:
            d = zlib.decompressobj(zlib.MAX_WBITS | 32)
            body = d.decompress(body, limit + 1)
        except zlib.error as e:
            raise ApiError(400, f"body is not valid {encoding}: {e}") from None
        if len(body) > limit or d.unconsumed_tail:
            raise too_large(limit)
    elif encoding not in ("", "identity"):
        raise ApiError(415, f"unsupported content-encoding {encoding!r} (use gzip)")
    return body


def _loads(body: bytes) -> Any:
    if not body.strip():
        raise ApiError(400, "empty body: expected a JSON object", [_err("", "empty body")])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        msg = f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}"
        raise ApiError(400, msg, [_err("", msg)]) from None


def _err(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


def _json_type(v: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(v), "null" if v is None else "a number"
    )


def _basic_user(auth: str | None) -> str | None:
    if not auth:
        return None
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() != "basic":
        raise ApiError(401, f"unsupported authorization scheme {scheme!r}: use basic auth")
    try:
        return base64.b64decode(value.strip(), validate=True).decode().partition(":")[0] or None
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(401, "malformed basic authorization header") from None


def _authorize(ctx: ServerContext, authorization: str | None, body: Any) -> None:
    """Write key from basic auth (user name), else the body's ``writeKey``."""
    token = _basic_user(authorization)
    if token is None and isinstance(body, dict):
        wk = body.get("writeKey")
        token = wk if isinstance(wk, str) and wk else None
    if token is None:
        raise ApiError(
            401,
            "missing write key: send it as the HTTP basic auth user name",
            headers={"WWW-Authenticate": 'Basic realm="segflow"'},
        )
    if ctx.key_store.verify(token) is None:
        raise ApiError(401, "unknown or revoked write key")


def _prepare(
    ctx: ServerContext, msg: dict[str, Any], now: datetime, sent_at: Any, context: Any
) -> bool:
    """Server-side fields (receivedAt, default timestamp, batch context); False when
    the message's ids are suppressed (privacy delete)."""
    msg["receivedAt"] = now
    msg.pop("received_at", None)
    if msg.get("timestamp") is None and msg.get("originalTimestamp") is None:
        msg["timestamp"] = now
    elif msg.get("timestamp") is None:
        msg["timestamp"] = msg["originalTimestamp"]
    if sent_at is not None and "sentAt" not in msg and "sent_at" not in msg:
        msg["sentAt"] = sent_at
    if context is not None and "context" not in msg:
        msg["context"] = context
    if ctx.suppressed:
        for k in _ID_KEYS:
            v = msg.get(k)
            if v is not None and str(v) in ctx.suppressed:
                return False
    return True


async def ingest_request(request: Request, kind: str) -> Response:
    """One ingestion request over HTTP (any endpoint kind): answered once the group
    it joins is stored and evaluated."""
    ctx = get_ctx(request)
    limit = body_limit(ctx.settings, kind)
    headers = request.headers
    body = await read_limited(request.receive, headers.get("content-length"), limit)
    auth, encoding = headers.get("authorization"), headers.get("content-encoding", "")
    await ingest_body(ctx, kind, body, auth, encoding)
    return Response(OK, media_type="application/json")


async def ingest_body(
    ctx: ServerContext, kind: str, body: bytes, authorization: str | None, encoding: str
) -> None:
    """One ingestion request's body, as sent (HTTP or the edge's link): decoded,
    parsed, authorized, queued; returns once it is stored and evaluated (raises
    ``ApiError`` otherwise)."""
    body = decode_body(body, encoding, body_limit(ctx.settings, kind))
    ingestor = ctx.ingestor
    assert isinstance(ingestor, Ingestor)
    if len(body) > INLINE_BYTES:
        # A big batch (up to 500 KB) is parsed in a worker thread, so that look-ups
        # do not queue behind it.
        kept, prefix, suppressed = await asyncio.to_thread(_parse, ctx, authorization, body, kind)
    elif ingestor.parses():  # parsed by the writer, in its thread, with its group
        now = utcnow()
        await ingestor.submit([], "", _Body(body, kind, authorization, now))
        return
    else:
        kept, prefix, suppressed = _parse(ctx, authorization, body, kind)
    ingestor.stats.suppressed += suppressed
    if kept:
        await ingestor.submit(kept, prefix)


def _parse(
    ctx: ServerContext,
    authorization: str | None,
    body: bytes,
    kind: str,
    now: datetime | None = None,
) -> tuple[list[dict[str, Any]], str, int]:
    """Parse, authorize and check a request body received at ``now`` (default: now):
    (messages kept, problem path prefix, messages dropped as suppressed)."""
    data = _loads(body)
    _authorize(ctx, authorization, data)
    if b"\\u0000" in body:
        _no_nul_keys(data, "")
    if now is None:
        now = utcnow()
    # a message can only nest as deep as the body has brackets (strings included)
    depth = ctx.settings.max_event_depth
    if body.count(b"{") + body.count(b"[") <= depth:
        depth = 0
    if kind == "batch":
        messages, errors = _batch(data, body, ctx.settings.max_message_bytes, depth)
        prefix = "batch"
        sent_at, context = data.get("sentAt"), data.get("context")
        if context is not None and not isinstance(context, dict):
            raise ApiError(
                400, "context: expected an object", [_err("context", "expected an object")]
            )
        if errors:
            for m in messages:
                if isinstance(m, dict):
                    _prepare(ctx, m, now, sent_at, context)
            _batch_invalid(errors + _field_errors(messages, {e["path"] for e in errors}))
    else:
        if not isinstance(data, dict):
            msg = f"expected a JSON object, got {_json_type(data)}"
            raise ApiError(400, msg, [_err("", msg)])
        if depth:
            _check_depth([("", data)], depth)
        data["type"] = kind
        messages, prefix, sent_at, context = [data], "", None, None
    kept = [m for m in messages if _prepare(ctx, m, now, sent_at, context)]
    return kept, prefix, len(messages) - len(kept)


def _no_nul_keys(v: Any, path: str) -> None:
    """NUL characters cannot be part of a field name (they become column names);
    only called when the body contains an escaped NUL at all."""
    if isinstance(v, dict):
        for k, x in v.items():
            where = f"{path}.{k}" if path else k
            if "\x00" in k:
                shown = where.replace("\x00", "\\u0000")
                msg = "field names cannot contain NUL characters"
                raise ApiError(400, f"{shown}: {msg}", [_err(shown, msg)])
            _no_nul_keys(x, where)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            _no_nul_keys(x, f"{path}[{i}]")


def _check_depth(messages: list[tuple[str, Any]], limit: int) -> None:
    """Refuse messages nested deeper than ``limit`` (before anything serialises them)."""
    where = too_deep(messages, limit)
    if where is not None:
        msg = depth_message(limit)
        raise ApiError(400, f"invalid message: {where}: {msg}", [_err(where, msg)])


def _batch(
    data: Any, body: bytes, limit: int, depth: int
) -> tuple[list[Any], list[dict[str, str]]]:
    """The messages of a batch body, and the errors of those that are not an object of
    a known type under 32 KB; messages nested over ``depth`` levels are refused at once
    (0: not checked)."""
    if not isinstance(data, dict):
        msg = f"expected a JSON object with a batch array, got {_json_type(data)}"
        raise ApiError(400, msg, [_err("", msg)])
    batch = data.get("batch")
    if not isinstance(batch, list):
        msg = "missing" if batch is None else f"expected an array, got {_json_type(batch)}"
        raise ApiError(400, f"batch: {msg}", [_err("batch", msg)])
    if depth:  # the messages, and the batch's own fields (its context goes into each)
        roots = [(f"batch[{i}]", m) for i, m in enumerate(batch)]
        _check_depth([*roots, ("", {k: v for k, v in data.items() if k != "batch"})], depth)
    errors: list[dict[str, str]] = []
    check_size = len(body) > limit
    for i, m in enumerate(batch):
        if not isinstance(m, dict):
            errors.append(_err(f"batch[{i}]", f"expected an object, got {_json_type(m)}"))
            continue
        t = m.get("type")
        if not isinstance(t, str) or t.lower() not in TYPES:
            what = "missing" if t is None else f"unknown message type {t!r}"
            errors.append(_err(f"batch[{i}].type", f"{what} ({', '.join(TYPES)})"))
        if check_size and len(orjson.dumps(m)) > limit:
            errors.append(
                _err(f"batch[{i}]", f"message too large: the limit is {limit // 1024} KB")
            )
    return batch, errors


def _batch_invalid(errors: list[dict[str, str]]) -> None:
    errors.sort(key=lambda e: _position(e["path"]))
    head = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise ApiError(400, f"invalid batch: {head['path']}: {head['message']}{more}", errors)


def _position(path: str) -> int:
    """The message index of a ``batch[i]...`` path."""
    return int(path[len("batch[") : path.index("]")])


def _field_errors(messages: list[Any], reported: set[str]) -> list[dict[str, str]]:
    """Every invalid field of every message of a batch rejected for its shape, so the
    whole batch is answered at once (paths already ``reported`` are left out)."""
    out: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or f"batch[{i}]" in reported:
            continue
        try:
            parse_message(m, flatten=False)
        except IngestError as e:
            for p in e.problems:
                path = f"batch[{i}].{p.field}" if p.field else f"batch[{i}]"
                if path not in reported:
                    out.append(_err(path, p.message))
    return out


_MESSAGE_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": "A Segment spec message (camelCase or snake_case field names).",
    "properties": {
        "type": {"type": "string", "enum": list(TYPES)},
        "messageId": {"type": "string"},
        "userId": {"type": "string"},
        "anonymousId": {"type": "string"},
        "previousId": {"type": "string"},
        "groupId": {"type": "string"},
        "event": {"type": "string"},
        "name": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "sentAt": {"type": "string", "format": "date-time"},
        "properties": {"type": "object"},
        "traits": {"type": "object"},
        "context": {"type": "object"},
        "integrations": {"type": "object"},
    },
    "additionalProperties": True,
}

_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "Stored and evaluated",
        "content": {"application/json": {"example": {"success": True}}},
    },
    400: {"description": "Invalid message (errors name each field)"},
    401: {"description": "Missing or unknown write key"},
    413: {"description": "Body over 32 KB (one message) or 500 KB (batch)"},
    429: {"description": "Overloaded: retry after Retry-After seconds"},
}


def _endpoint(kind: str) -> Callable[[Request], Any]:
    async def handler(request: Request) -> Response:
        return await ingest_request(request, kind)

    handler.__name__ = f"ingest_{kind}"
    handler.__doc__ = (
        "Ingest a batch of Segment messages (500 KB; 32 KB each)."
        if kind == "batch"
        else f"Ingest one Segment `{kind}` message (32 KB)."
    )
    return handler


for _kind in (*TYPES, "batch"):
    _schema = (
        {
            "type": "object",
            "required": ["batch"],
            "properties": {
                "batch": {"type": "array", "items": _MESSAGE_SCHEMA},
                "sentAt": {"type": "string", "format": "date-time"},
                "context": {"type": "object"},
                "writeKey": {"type": "string"},
            },
        }
        if _kind == "batch"
        else _MESSAGE_SCHEMA
    )
    router.add_api_route(
        f"/v1/{_kind}",
        _endpoint(_kind),
        methods=["POST"],
        response_class=Response,
        responses=_RESPONSES,
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": _schema}}},
            "security": [{"writeKey": []}],
        },
    )


@router.get("/v1/ingest/stats", tags=["ingestion"])
async def ingest_stats(request: Request) -> dict[str, Any]:
    """Ingestion counters since the server started (group commits, events, rejects)."""
    from segflow.api.deps import require_admin

    require_admin(request)
    ingestor = get_ctx(request).ingestor
    assert isinstance(ingestor, Ingestor)
    s = ingestor.stats
    return {
        "requests": s.requests,
        "events": s.events,
        "groups": s.groups,
        "largest_group": s.largest_group,
        "rejected_requests": s.rejected_requests,
        "overloaded": s.overloaded,
        "suppressed": s.suppressed,
        "commit_seconds": round(s.commit_seconds, 3),
        "evaluate_seconds": round(s.evaluate_seconds, 3),
        "fast_evaluations": s.fast_evaluations,
        "queued_events": ingestor.pending,
        "group_commit": ingestor.group_commit,
    }
