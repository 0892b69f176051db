"""The core's side of the link to the edge process (``segflow.edge``).

``segflow serve`` runs two processes: the edge answers HTTP on the public port and
the core (this process) owns DuckDB, the live evaluator and the rest of the API.
The edge hands every Segment ingestion request to the core over a Unix socket
(``segflow.api.wire``); the core stores and evaluates it exactly as it would an
HTTP request and sends back the answer.  The core also keeps the edge's copy of the
segments look-up index current (every change the live evaluator publishes, pushed
before the answers to the requests that caused it) and tells it the active admin
keys, so that the edge answers ``GET /v1/profiles/{id}/segments`` on its own; likewise
the visitor index (anonymous id -> profile), the public segments and the publishable
keys for ``GET /v1/onsite/segments``.

Runs as a background task when the server was started with an edge
(``ctx.extra["edge_link"]`` holds the socket path); otherwise it does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

import orjson

from segflow.api import wire
from segflow.api.deps import ServerContext
from segflow.api.http import INTERNAL_ERROR, ApiError, problem
from segflow.api.routes.ingest import OK, ingest_body
from segflow.api.routes.profiles import IndexUpdate, segment_index, visitor_index
from segflow.service.onsite import ASSIGNED, VisitorUpdate

log = logging.getLogger("segflow.edge")

SNAPSHOT_CHUNK: Final = 20_000
"""Profiles per ``INDEX`` frame while the edge is sent the whole index."""


async def background(ctx: ServerContext) -> None:
    path = ctx.extra.get("edge_link")
    if not path:
        return
    server = await asyncio.start_unix_server(lambda r, w: _Link(ctx, r, w).serve(), path=path)
    async with server:
        await server.serve_forever()


class _Link:
    """One edge connection."""

    def __init__(
        self, ctx: ServerContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.ctx = ctx
        self.reader = reader
        self.writer = writer
        self.loop = asyncio.get_running_loop()
        self.tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        ctx = self.ctx
        index = segment_index(ctx)
        visitors = visitor_index(ctx)
        keys = ctx.key_store
        keys.listeners.append(self._keys_changed)
        live = ctx.live
        if live is not None:
            live.definition_listeners.append(self._definitions_changed)
        feeding = asyncio.create_task(self._feed(index))
        try:
            self._push_keys()
            self._push_public()
            while True:
                try:
                    rid, op, payload = await wire.read_frame(self.reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if op == wire.INGEST:
                    task = asyncio.create_task(self._ingest(rid, payload))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                else:
                    log.warning("edge link: unexpected op %d", op)
        finally:
            feeding.cancel()
            with contextlib.suppress(ValueError):
                keys.listeners.remove(self._keys_changed)
            with contextlib.suppress(ValueError):
                index.listeners.remove(self._index_changed)
            with contextlib.suppress(ValueError):
                visitors.listeners.remove(self._visitors_changed)
            if live is not None:
                with contextlib.suppress(ValueError):
                    live.definition_listeners.remove(self._definitions_changed)
            for task in list(self.tasks):
                task.cancel()
            self.writer.close()

    async def _feed(self, index: Any) -> None:
        """Send the whole index and visitor map once they are seeded, then every update
        as it happens.  The listeners are added before the snapshots are taken: an
        update racing with one is sent twice, harmlessly (each carries a profile's
        whole segment set, or an anonymous id's profile)."""
        visitors = visitor_index(self.ctx)
        while not (index.ready and visitors.ready):
            await asyncio.sleep(0.05)
        index.listeners.append(self._index_changed)
        visitors.listeners.append(self._visitors_changed)
        rows = index.snapshot()
        for at in range(0, len(rows), SNAPSHOT_CHUNK):
            self._send(0, wire.SNAPSHOT, orjson.dumps(dict(rows[at : at + SNAPSHOT_CHUNK])))
            await self.writer.drain()
        pairs = visitors.snapshot()
        for at in range(0, len(pairs), SNAPSHOT_CHUNK):
            chunk = [(ASSIGNED, a, p) for a, p in pairs[at : at + SNAPSHOT_CHUNK]]
            self._send(0, wire.VISITORS, orjson.dumps(chunk))
            await self.writer.drain()
        self._send(0, wire.READY, b"")

    def _index_changed(self, updates: list[IndexUpdate]) -> None:
        """In the thread that changed the index (the writer's, mostly): serialized
        there (one C call), written by the event loop in the order they were made."""
        payload = orjson.dumps(updates)
        self.loop.call_soon_threadsafe(self._send, 0, wire.INDEX, payload)

    def _visitors_changed(self, updates: list[VisitorUpdate]) -> None:
        """As ``_index_changed``, for the visitor index (called before the same load's
        segment changes, so the edge resolves a new visitor before its segments land)."""
        payload = orjson.dumps(updates)
        self.loop.call_soon_threadsafe(self._send, 0, wire.VISITORS, payload)

    def _keys_changed(self) -> None:
        self.loop.call_soon_threadsafe(self._push_keys)

    def _definitions_changed(self) -> None:
        self.loop.call_soon_threadsafe(self._push_public)

    def _push_keys(self) -> None:
        keys = self.ctx.key_store
        body = {"admin": keys.admin_digests(), "publishable": keys.publishable()}
        self._send(0, wire.KEYS, orjson.dumps(body))

    def _push_public(self) -> None:
        live = self.ctx.live
        if live is not None:  # else the edge hands the on-site read to this process
            self._send(0, wire.PUBLIC, orjson.dumps(sorted(live.public)))

    def _send(self, rid: int, op: int, payload: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(wire.frame(rid, op, payload))

    async def _ingest(self, rid: int, payload: bytes) -> None:
        kind, authorization, encoding, body = wire.read_ingest(payload)
        try:
            await ingest_body(self.ctx, kind, body, authorization, encoding)
        except ApiError as e:
            answer = problem(e.status, e.message, e.errors)
            self._send(rid, wire.REPLY, wire.reply(e.status, e.headers, bytes(answer.body)))
            return
        except Exception:
            log.exception("ingestion from the edge failed")
            answer = problem(500, INTERNAL_ERROR)
            self._send(rid, wire.REPLY, wire.reply(500, None, bytes(answer.body)))
            return
        self._send(rid, wire.REPLY, wire.reply(200, None, OK))
