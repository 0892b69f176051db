"""The edge's ASGI app: ingestion handed to the core, look-ups answered here, the
rest passed through.

* ``POST /v1/track|identify|page|screen|alias|group|batch``: the body is read with
  Segment's size limits (413 at once, as the core would) and sent to the core as an
  ``INGEST`` frame; the core's ``REPLY`` is the answer (the core authorizes, parses,
  stores and evaluates, so every other answer is the core's own).
* ``GET /v1/profiles/{id}/segments`` with an active admin key, for a profile in the
  index: answered from the edge's index.  Anything else about it (no key, a write
  key, an alias id, a profile not in the index, the index not loaded yet) goes to
  the core, which answers exactly as it always does.
* ``GET /v1/onsite/segments`` with an active publishable key from an allowed origin
  and a well-formed visitor id, and its ``OPTIONS`` preflight from an allowed origin:
  answered from the edge's index and visitor map (``segflow.service.onsite``).  Any
  other case (no or another key, a refused origin, a malformed cookie, the indexes
  not loaded yet) goes to the core, which answers it with the error.
* Everything else: passed through to the core's HTTP server, streamed both ways
  (Server-Sent Events and exports included).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import httpx
import orjson
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from segflow.api import wire
from segflow.api.http import INGEST, ApiError, bearer_or_basic, lookup_id, problem, read_limited
from segflow.model.keys import digest
from segflow.model.time import format_instant
from segflow.process import tune_gc
from segflow.service import onsite
from segflow.service.onsite import preflight_headers

log = logging.getLogger("segflow.edge")

HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
FROM_CORE_DROPPED: Final = HOP_BY_HOP | {b"date", b"server"}
"""Response headers of the core not passed on (the edge's own server sets these)."""
MAX_PASSED_BODY: Final = 64 * 1024 * 1024
"""The largest request body passed through to the core (segment files, CSV lists)."""
_JSON: Final = (b"content-type", b"application/json")
_ONSITE: Final = (
    (b"cache-control", onsite.CACHE_CONTROL.encode()),
    (b"vary", onsite.VARY.encode()),
)
"""The on-site answer's headers (``segflow.service.onsite.answer_headers``) besides CORS."""
_CREDENTIALS: Final = (b"access-control-allow-credentials", b"true")
KEEP_ALIVE_SECONDS: Final = 60.0
"""How long an idle connection to the core stays in the pool (the core keeps them
open far longer: it never closes one the edge is about to reuse)."""
RETRIED: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
"""Idempotent methods: passed through once more, on a new connection, when the core
closed the connection without an answer."""


@dataclass(frozen=True)
class EdgeSettings:
    link: str
    """The core's link socket (``segflow.api.wire`` frames)."""
    core: str
    """The core's HTTP socket."""
    max_message_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    retry_after_seconds: int = 1


class CoreGone(Exception):
    """The link to the core is down (the request may or may not have been stored)."""


class Edge:
    """The ASGI app of the edge process."""

    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.index: dict[str, dict[str, str]] = {}
        self.ready = False
        """Whether the index is whole (until then look-ups go to the core)."""
        self.admin: dict[str, str] = {}
        self.publishable: dict[str, tuple[str, ...]] = {}
        """Digest -> allowed origins of the active publishable keys."""
        self.by_anonymous: dict[str, str] = {}
        self.moved: dict[str, str] = {}
        """The visitor map (``segflow.service.onsite.VisitorIndex``'s two dicts)."""
        self.public: frozenset[str] | None = None
        """The public segments (None: not told yet; the core answers)."""
        self.pending: dict[int, asyncio.Future[tuple[int, dict[str, str], bytes]]] = {}
        self._next = 0
        self._writer: asyncio.StreamWriter | None = None
        self._linked = asyncio.Event()
        self._link_task: asyncio.Task[None] | None = None
        self.client: httpx.AsyncClient | None = None

    # -- ASGI -------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            method = scope["method"]
            if method == "POST":
                endpoint = INGEST.get(scope["path"])
                if endpoint is not None:
                    await self._ingest(scope, receive, send, endpoint)
                    return
            elif method == "GET":
                path = scope["path"]
                if path == onsite.ROUTE:
                    if await self._onsite(scope, send):
                        return
                else:
                    pid = lookup_id(path)
                    if pid is not None and await self._lookup(scope, send, pid):
                        return
            elif method == "OPTIONS" and scope["path"] == onsite.ROUTE:
                if await self._preflight(scope, send):
                    return
            await self._pass(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # websockets: none in the API (a websocket scope is left unanswered: closed)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client = httpx.AsyncClient(
                    transport=httpx.AsyncHTTPTransport(uds=self.settings.core),
                    base_url="http://segflow-core",
                    timeout=httpx.Timeout(None, connect=10),
                    limits=httpx.Limits(
                        max_connections=None,
                        max_keepalive_connections=64,
                        keepalive_expiry=KEEP_ALIVE_SECONDS,
                    ),
                )
                self._link_task = asyncio.create_task(self._link())
                tune_gc()  # nothing built so far is garbage: no collection re-scans it
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._link_task is not None:
                    self._link_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._link_task
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- the link ---------------------------------------------------------------------
    async def _link(self) -> None:
        """Keep a connection to the core's link socket and read what the core sends."""
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(self.settings.link)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            self._writer = writer
            self._linked.set()
            try:
                while True:
                    rid, op, payload = await wire.read_frame(reader)
                    if op == wire.REPLY:
                        fut = self.pending.pop(rid, None)
                        if fut is not None and not fut.done():
                            fut.set_result(wire.read_reply(payload))
                    elif op == wire.INDEX:
                        self._apply(orjson.loads(payload))
                    elif op == wire.SNAPSHOT:
                        self._load(orjson.loads(payload))
                    elif op == wire.READY:
                        self.ready = True
                    elif op == wire.KEYS:
                        keys = orjson.loads(payload)
                        self.admin = {d: d for d in keys["admin"]}
                        self.publishable = {d: tuple(o) for d, o in keys["publishable"].items()}
                    elif op == wire.VISITORS:
                        onsite.apply_updates(self.by_anonymous, self.moved, orjson.loads(payload))
                    elif op == wire.PUBLIC:
                        self.public = frozenset(orjson.loads(payload))
            except (asyncio.IncompleteReadError, ConnectionError):
                log.warning("the link to the core closed; reconnecting")
            finally:
                self._linked.clear()
                self._writer = None
                self.ready = False
                self.index = {}
                self.by_anonymous = {}
                self.moved = {}
                writer.close()
                for fut in self.pending.values():
                    if not fut.done():
                        fut.set_exception(CoreGone())
                self.pending.clear()

    def _load(self, rows: dict[str, dict[str, str]]) -> None:
        for pid, segs in rows.items():
            self.index[pid] = {s: _instant(t) for s, t in segs.items()}

    def _apply(self, updates: list[tuple[str, str | None, str | None]]) -> None:
        """The core's changes, in order (changed in place: this loop is the only
        reader, and a look-up reads a profile's segments in one step)."""
        index = self.index
        for pid, segment, since in updates:
            if segment is None:
                index.pop(pid, None)
            elif since is None:
                index.setdefault(pid, {}).pop(segment, None)
            else:
                index.setdefault(pid, {})[segment] = _instant(since)

    async def _call(self, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        if self._writer is None:
            try:
                await asyncio.wait_for(self._linked.wait(), timeout=10)
            except TimeoutError:
                raise CoreGone() from None
        writer = self._writer
        if writer is None:
            raise CoreGone()
        self._next = rid = (self._next % 0xFFFFFFFF) + 1
        fut: asyncio.Future[tuple[int, dict[str, str], bytes]] = (
            asyncio.get_running_loop().create_future()
        )
        self.pending[rid] = fut
        writer.write(wire.frame(rid, wire.INGEST, payload))
        try:
            return await fut
        finally:
            self.pending.pop(rid, None)

    # -- the hot paths ----------------------------------------------------------------
    async def _ingest(self, scope: Scope, receive: Receive, send: Send, kind: str) -> None:
        headers = _headers(scope)
        s = self.settings
        limit = s.max_batch_bytes if kind == "batch" else s.max_message_bytes
        try:
            body = await read_limited(receive, headers.get(b"content-length"), limit)
            payload = wire.ingest(
                kind, headers.get(b"authorization"), headers.get(b"content-encoding", ""), body
            )
            status, extra, answer = await self._call(payload)
        except ApiError as e:
            await problem(e.status, e.message, e.errors, e.headers)(scope, receive, send)
            return
        except CoreGone:
            retry = {"Retry-After": str(s.retry_after_seconds)}
            message = "the server's core is not reachable; retry"
            await problem(503, message, headers=retry)(scope, receive, send)
            return
        raw = [_JSON, (b"content-length", str(len(answer)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": answer})

    async def _lookup(self, scope: Scope, send: Send, pid: str) -> bool:
        """Answer a segments look-up from the index; False: the core must answer."""
        if not self.ready:
            return False
        segs = self.index.get(pid)
        if segs is None:
            return False
        try:
            token = bearer_or_basic(Request(scope))
        except ApiError:
            return False
        if token is None:
            return False
        d = digest(token)
        found = self.admin.get(d)
        if found is None or not hmac.compare_digest(found, d):
            return False
        body = orjson.dumps({"profile_id": pid, "segments": dict(sorted(segs.items()))})
        raw = [_JSON, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": body})
        return True

    async def _onsite(self, scope: Scope, send: Send) -> bool:
        """Answer the on-site read from the index; False: the core must answer."""
        public = self.public
        if not self.ready or public is None:
            return False
        token, origin, cookies = _onsite_headers(scope)
        query = onsite.query_values(scope["query_string"])
        token = token or query.get(onsite.KEY_PARAM)
        origins = self.publishable.get(digest(token)) if token else None
        if origins is None or not onsite.origin_allowed(origins, origin):
            return False
        try:
            anonymous = onsite.visitor_id(query.get(onsite.PARAM), cookies)
        except onsite.VisitorError:
            return False
        segments: list[str] = []
        if anonymous is not None:
            pid = onsite.resolve(self.by_anonymous, self.moved, anonymous)
            found = self.index.get(pid) if pid is not None else None
            if found:
                segments = onsite.public_of(found, public)
        body = orjson.dumps({"segments": segments})
        raw = [_JSON, (b"content-length", str(len(body)).encode()), *_ONSITE]
        if origin is not None:
            raw += [(b"access-control-allow-origin", origin.encode("latin-1")), _CREDENTIALS]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": body})
        return True

    async def _preflight(self, scope: Scope, send: Send) -> bool:
        """Answer an allowed origin's CORS preflight; False: the core must answer."""
        if not self.ready:
            return False
        _, origin, _ = _onsite_headers(scope)
        if not origin:
            return False
        token = onsite.query_values(scope["query_string"]).get(onsite.KEY_PARAM)
        if token is not None:
            origins = self.publishable.get(digest(token))
            allowed = origins is not None and onsite.origin_allowed(origins, origin)
        else:
            allowed = any(onsite.origin_allowed(o, origin) for o in self.publishable.values())
        if not allowed:
            return False
        extra = preflight_headers(origin).items()
        raw = [(b"content-length", b"0")]
        raw += [(k.lower().encode(), v.encode("latin-1")) for k, v in extra]
        await send({"type": "http.response.start", "status": 204, "headers": raw})
        await send({"type": "http.response.body", "body": b""})
        return True

    # -- everything else --------------------------------------------------------------
    async def _pass(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass a request through to the core and stream its answer back; stop when
        the client goes away (an endless event stream must not outlive it)."""
        assert self.client is not None
        try:
            body = await read_limited(receive, None, MAX_PASSED_BODY)
        except ApiError as e:
            await problem(e.status, e.message, e.errors)(scope, receive, send)
            return
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        request = self.client.build_request(
            scope["method"], target.decode("latin-1"), headers=headers, content=body
        )
        try:
            try:
                response = await self.client.send(request, stream=True)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                # a pooled connection the core had closed
                if scope["method"] not in RETRIED:
                    raise
                response = await self.client.send(request, stream=True)
        except httpx.TransportError:
            retry = {"Retry-After": str(self.settings.retry_after_seconds)}
            await problem(503, "the server's core is not reachable; retry", headers=retry)(
                scope, receive, send
            )
            return
        try:
            out = [(k, v) for k, v in response.headers.raw if k.lower() not in FROM_CORE_DROPPED]
            status = response.status_code
            await send({"type": "http.response.start", "status": status, "headers": out})
            relay = asyncio.create_task(_relay(response, send))
            gone = asyncio.create_task(_disconnected(receive))
            done, _ = await asyncio.wait({relay, gone}, return_when=asyncio.FIRST_COMPLETED)
            for task in (relay, gone):
                if task not in done:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if relay in done:
                relay.result()
        finally:
            await response.aclose()


async def _relay(response: httpx.Response, send: Send) -> None:
    async for chunk in response.aiter_raw():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


def _instant(text: str) -> str:
    """The core's answer's form of an instant orjson sent (which drops zero µs)."""
    return format_instant(datetime.fromisoformat(text))


def _onsite_headers(scope: Scope) -> tuple[str | None, str | None, str | None]:
    """(X-Segflow-Key, Origin, Cookie) of a request, in one pass (cookies sent on
    several lines joined, as RFC 6265 has them)."""
    key = origin = cookies = None
    for name, value in scope["headers"]:
        if name == b"x-segflow-key":
            key = key or value.decode("latin-1")
        elif name == b"origin":
            origin = origin or value.decode("latin-1")
        elif name == b"cookie":
            text = value.decode("latin-1")
            cookies = text if cookies is None else f"{cookies}; {text}"
    return key, origin, cookies


def _headers(scope: Scope) -> dict[bytes, str]:
    """The request headers this edge reads, as text (latin-1, as HTTP has them)."""
    return {k: v.decode("latin-1") for k, v in scope["headers"]}


__all__ = ["Edge", "EdgeSettings"]
