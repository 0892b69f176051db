"""What every API module shares: the server context, auth dependencies and the one
JSON error shape.

Every call into ``Segflow`` / DuckDB / the live evaluator goes under ``ctx.lock``
(one DuckDB connection, and ``LiveEvaluator`` is not thread-safe); blocking calls
run in a worker thread (``await ctx.run(fn, *args)`` takes the lock there).

Error bodies always look like::

    {"error": {"status": 401, "message": "...", "errors": [{"path": "...", "message": "..."}]}}

Auth: admin keys go in ``Authorization: Bearer <key>`` (or HTTP basic user), never in
a URL; write keys are the HTTP basic user, as Segment's libraries send them.  An admin
key may also ingest.  Unknown or missing key -> 401, a key of the wrong kind -> 403
(a publishable key, made to sit in a web page, reads ``GET /v1/onsite/segments`` and
nothing else).
The change stream alone also takes a short-lived stream token (``POST
/v1/stream-tokens``) as its ``api_key`` query parameter, for ``EventSource``, which
cannot set headers (``stream_auth``).

A router module may define ``async def background(ctx) -> None``; ``create_app``
runs it as a task for the server's lifetime (cancelled at shutdown).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute

from segflow.api.http import ApiError, bearer_or_basic
from segflow.api.limits import MAX_DEPTH_SETTING, check_setting, request_instant
from segflow.model.consent import UnknownConsent
from segflow.model.definition import Limits
from segflow.model.events import MAX_DEPTH
from segflow.model.suppressions import Suppressions
from segflow.realtime.timers import Clock, WallClock
from segflow.service.handle import Segflow
from segflow.service.ingest import Ingestor
from segflow.service.stream_tokens import PREFIX as STREAM_TOKEN_PREFIX
from segflow.service.stream_tokens import StreamTokens
from segflow.store.duckdb.clustering import TAIL_CHUNK_ROWS
from segflow.store.protocols import ApiKeyStore
from segflow.store.records.keys import ApiKey

if TYPE_CHECKING:
    from segflow.service.live import LiveEvaluator

T = TypeVar("T")


@dataclass
class Settings:
    """Server limits and intervals (the defaults are Segment's HTTP API limits)."""

    max_message_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_pending_events: int = 100_000
    """Events queued for the writer before ingestion answers 429 (overload)."""
    max_group_events: int = 50_000
    """Most events one group commit takes."""
    retry_after_seconds: int = 1
    schedule_interval_seconds: float = 30.0
    timer_max_sleep_seconds: float = 1.0
    ingest_threads: int | None = 1
    """DuckDB threads during a group commit and its evaluation (None: DuckDB's own
    setting): a few thousand rows gain nothing from parallel plans, and the spare core
    keeps the event loop answering look-ups.  Kept while more groups wait (setting it
    restarts DuckDB's thread pool), restored when the queue runs dry."""
    switch_interval_seconds: float = 0.00025
    """GIL switch interval set by ``run_server`` (Python's default is 5 ms): the
    writer thread's Python yields to the event loop sooner, and DuckDB's thread, which
    takes the GIL between a query's tasks, gets it back sooner: look-ups under load
    are answered sooner, and throughput does not suffer."""
    checkpoint_wal_bytes: int = 256 * 1024 * 1024
    """The write-ahead log may grow this large under load before a commit folds it
    into the database file (DuckDB's own default is 16 MB)."""
    idle_checkpoint_wal_bytes: int = 16 * 1024 * 1024
    """When ingestion goes idle with more log than this, the writer checkpoints."""
    compact_tail_rows: int | None = TAIL_CHUNK_ROWS
    """When ingestion has been quiet (``compact_quiet_seconds``) with this many events
    (trait rows) stored since the last compaction, the writer re-sorts them by name
    (key) and profile, a chunk at a time (``DuckDBStore.compact_tail``), so the batch
    evaluator's per-name scans skip the other names' row groups (None: never)."""
    compact_quiet_seconds: float = 1.0
    """How long no request may come before the writer compacts: a chunk holds it for
    a while (requests arriving meanwhile wait), so not between the groups of a steady
    load."""
    edge_niceness: int = -5
    """The edge process's niceness (where it may lower it: root or CAP_SYS_NICE), so
    that on a busy machine it gets a CPU before the core's writer and the rest: a
    shorter look-up tail under load, and no loss of throughput."""
    definition_limits: Limits = field(default_factory=Limits)
    """How large a segment's condition tree may be (``model.definition.Limits``)."""
    scores_cron: str | None = "0 3 * * *"
    """When the scheduler refreshes the value scores (UTC cron; None: never)."""
    allow_internal_webhook_targets: bool = False
    """Accept webhook URLs at link-local / cloud metadata addresses (169.254.0.0/16,
    fe80::/10, metadata host names), unspecified or multicast addresses, or this server
    itself: refused by default, since an admin key could otherwise make the server
    read its own cloud credentials or call itself."""
    allow_private_webhook_targets: bool = True
    """Accept webhook URLs at loopback and private-network addresses (a receiver on the
    same host or network); turn off where admins must reach only public endpoints."""
    max_fields: int = 1000
    """Most distinct fields (dotted paths of properties, context and traits) the
    store may hold; a message bringing a new one past it is refused (400 naming it),
    fields already known are still accepted.  Each field is a column of the events
    table, and every column makes every later insert slower."""
    unknown_consent: UnknownConsent | None = None
    """What a profile that never stated consent on a channel gets, where its
    destination does not say (a rule per region and channel, else a default); None:
    the ``SEGFLOW_UNKNOWN_CONSENT`` configuration (``service.consent``)."""
    max_event_depth: int = MAX_DEPTH
    """Deepest nesting of objects and arrays in an ingested message (its
    ``properties`` are level 1); deeper messages are refused (400).  At most the
    store's own limit, ``segflow.model.events.MAX_DEPTH``."""
    max_definition_depth: int = 64
    """Deepest nesting of objects and arrays in a segment definition sent to the API
    (its ``condition`` is level 1); deeper definitions are refused (422)."""

    def __post_init__(self) -> None:
        check_setting("max_fields", self.max_fields, 10_000_000)
        check_setting("max_event_depth", self.max_event_depth, MAX_DEPTH)
        check_setting("max_definition_depth", self.max_definition_depth, MAX_DEPTH_SETTING)
        if self.scores_cron is not None:
            from segflow.model.schedule import is_valid as is_valid_cron

            if not is_valid_cron(self.scores_cron):
                raise ValueError(
                    f"scores_cron: {self.scores_cron!r} is not a valid cron expression "
                    "(five fields: minute hour day-of-month month day-of-week, e.g. '0 3 * * *')"
                )


@dataclass
class ServerContext:
    """The one server process's state, reachable from any request as ``get_ctx``."""

    app: Segflow
    live: LiveEvaluator | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    clock: Clock = field(default_factory=WallClock)
    settings: Settings = field(default_factory=Settings)
    keys: ApiKeyStore | None = None
    ingestor: Ingestor | None = None
    """The group-commit writer (``create_app`` makes one when none is given)."""
    suppressed: Suppressions = field(default_factory=Suppressions)
    """Profile/user/anonymous ids whose later events ingestion drops (privacy deletes):
    ``id in suppressed`` (keyed hashes, loaded at startup)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Per-module state (webhook dispatcher, SSE hub, ...), keyed by module name."""

    def __post_init__(self) -> None:
        self.app.store.max_fields = self.settings.max_fields
        if self.keys is None:
            with self.lock:
                self.keys = self.app.key_store()

    @property
    def key_store(self) -> ApiKeyStore:
        assert self.keys is not None
        return self.keys

    def part(self, name: str, kind: type[T]) -> T:
        """The per-module state ``extra[name]``, a ``kind()`` made on first use."""
        found = self.extra.get(name)
        if not isinstance(found, kind):
            found = self.extra[name] = kind()
        return found

    def locked(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` under the store lock (in the calling thread)."""
        with self.lock:
            return fn(*args, **kwargs)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` under the store lock in a worker thread (keeps the event loop free)."""
        return await asyncio.to_thread(self.locked, fn, *args, **kwargs)

    def writer(self, *, group_commit: bool = True) -> Ingestor:
        """A group-commit writer over this context's store, live evaluator and lock."""
        return Ingestor(
            self.app.store, self.live, self.lock, self.settings, group_commit=group_commit
        )


def get_ctx(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


def _authenticate(request: Request, kind: str) -> ApiKey:
    token = bearer_or_basic(request)
    what = "an admin key" if kind == "admin" else "a write key"
    how = (
        "Authorization: Bearer <admin key>"
        if kind == "admin"
        else "HTTP basic auth with the write key as user name"
    )
    if token is None:
        if "api_key" in request.query_params:
            raise ApiError(
                401, f"keys are not accepted in the URL (api_key): send {how}",
                [{"path": "api_key", "message": "not accepted here: a key in a URL is logged"}],
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        raise ApiError(
            401, f"missing API key: this endpoint needs {what} ({how})",
            headers={"WWW-Authenticate": "Bearer" if kind == "admin" else 'Basic realm="segflow"'},
        )  # fmt: skip
    key = get_ctx(request).key_store.verify(token)
    if key is None:
        raise ApiError(401, "unknown or revoked API key")
    if key.kind != "admin" and (kind == "admin" or key.kind == "publishable"):
        raise ApiError(403, f"a {key.kind} key cannot use this endpoint: it needs {what}")
    return key


def require_admin(request: Request) -> ApiKey:
    """FastAPI dependency: an admin key (401 missing/unknown, 403 a write key).
    Plain ``def`` so it can also be called directly (an in-memory look-up); wrap it
    in an ``async def`` dependency to skip FastAPI's thread-pool hop."""
    return _authenticate(request, "admin")


def require_write(request: Request) -> ApiKey:
    """FastAPI dependency: a write key (an admin key is accepted too)."""
    return _authenticate(request, "write")


async def admin_key(request: Request) -> ApiKey:
    """``require_admin`` on the event loop: it is a hash and a dict look-up, so a sync
    dependency's thread-pool hop would only add latency."""
    return require_admin(request)


def stream_tokens(ctx: ServerContext) -> StreamTokens:
    """The server's issued stream tokens (made on first use)."""
    return ctx.part("stream_tokens", StreamTokens)


async def stream_auth(request: Request) -> ApiKey | None:
    """The change stream's auth: the admin key in ``Authorization`` (what a client using
    ``fetch`` sends), else a stream token from ``POST /v1/stream-tokens`` as the
    ``api_key`` query parameter (what ``EventSource`` can send); an admin key in the
    URL is refused (401)."""
    if request.headers.get("authorization"):
        return require_admin(request)
    token = request.query_params.get("api_key")
    if not token:
        return require_admin(request)  # 401: missing key
    ctx = get_ctx(request)
    why = stream_tokens(ctx).verify(token, ctx.clock.now(), ctx.key_store.is_active)
    if why is not None:
        if not token.startswith(STREAM_TOKEN_PREFIX):
            why = (
                "api_key takes a stream token from POST /v1/stream-tokens, not a key: "
                "send the admin key as Authorization: Bearer <key>"
            )
        raise ApiError(
            401, why, [{"path": "api_key", "message": why}], headers={"WWW-Authenticate": "Bearer"}
        )
    return None


async def context(request: Request) -> ServerContext:
    return get_ctx(request)


Ctx = Annotated[ServerContext, Depends(context)]
"""A route's server context, as a FastAPI dependency."""


def admin_only(router: APIRouter) -> APIRouter:
    """Declare the admin key on every operation of ``router`` in the OpenAPI document
    (call after the routes are defined)."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            route.openapi_extra = {**(route.openapi_extra or {}), "security": [{"adminKey": []}]}
    return router


def parse_at(value: str | None, name: str = "at") -> datetime | None:
    """An instant query parameter; malformed or out of range -> 422 naming it."""
    try:
        return request_instant(value)
    except ValueError as e:
        message = f"invalid request: {name}: {e}"
        raise ApiError(422, message, [{"path": name, "message": str(e)}]) from None
