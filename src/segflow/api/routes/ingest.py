"""Segment-compatible ingestion: ``/v1/track|identify|page|screen|alias|group|batch``.

Requests (over HTTP, or handed over by the edge process: ``api/edgelink.py``) are
checked cheaply on the event loop (size limits, gunzip), then queued for the
group-commit writer (``service.ingest.Ingestor``), which answers once they are
stored and evaluated.  Parsing, the write key and each message's shape are checked
here, by the writer's thread for a body queued unparsed.  A message that fails
validation fails its own request only (400 naming ``batch[3].timestamp``); the rest
of the group is committed without it.  A full queue answers 429 with
``Retry-After``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import zlib
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request, Response

from segflow.api.deps import ServerContext, Settings, get_ctx, require_admin
from segflow.api.http import MESSAGE_TYPES, ApiError, read_limited, too_large
from segflow.api.limits import depth_message, too_deep
from segflow.model.events import IngestError, parse_message
from segflow.model.time import utcnow
from segflow.service.ingest import (
    BodyRefused,
    InvalidMessages,
    Overloaded,
    Parsed,
    Refused,
    ShuttingDown,
    StoreFailed,
    Unstorable,
)

router = APIRouter(tags=["ingestion"])

OK: Final = b'{"success":true}'
INLINE_BYTES: Final = 64 * 1024
"""Bodies up to this size are parsed by the writer thread with the rest of its group
(the event loop only queues them): parsing on the loop would make the writer wait for
the GIL several times as long as the parsing takes.  A worker thread of their own
would cost more than it saves (one more thread contending for the GIL)."""
_ID_KEYS: Final = ("userId", "user_id", "anonymousId", "anonymous_id", "previousId", "previous_id")


def refusal(e: Refused, settings: Settings) -> ApiError:
    """The HTTP answer to a request the writer refused."""
    retry = {"Retry-After": str(settings.retry_after_seconds)}
    if isinstance(e, BodyRefused):
        assert isinstance(e.answer, ApiError)
        return e.answer
    if isinstance(e, InvalidMessages):
        return ApiError(400, str(e), [_err(path, message) for path, message in e.errors])
    if isinstance(e, Unstorable):
        return ApiError(400, str(e), [_err("", f"{e}: {e.error}"[:500])])
    if isinstance(e, Overloaded):
        return ApiError(429, str(e), headers=retry)
    if isinstance(e, ShuttingDown | StoreFailed):
        return ApiError(503, str(e), headers=retry)
    raise AssertionError(f"unexpected refusal {type(e).__name__}") from e


# -- request parsing ----------------------------------------------------------------


def body_limit(settings: Settings, kind: str) -> int:
    """Segment's limits: 500 KB a batch, 32 KB a single message."""
    return settings.max_batch_bytes if kind == "batch" else settings.max_message_bytes


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
    key = ctx.key_store.verify(token)
    if key is None:
        raise ApiError(401, "unknown or revoked write key")
    if key.kind == "publishable":
        raise ApiError(403, "a publishable key cannot use this endpoint: it needs a write key")


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
    assert ingestor is not None
    try:
        if len(body) > INLINE_BYTES:
            # A big batch (up to 500 KB) is parsed in a worker thread, so that look-ups
            # do not queue behind it.
            parsed = await asyncio.to_thread(_parse, ctx, authorization, body, kind)
        elif ingestor.parses():  # parsed by the writer, in its thread, with its group
            parse = partial(_parse_queued, ctx, authorization, body, kind, utcnow())
            # a body's messages are at most its "type" keys (one for a single message)
            await ingestor.submit_unparsed(parse, body.count(b'"type"') or 1)
            return
        else:
            parsed = _parse(ctx, authorization, body, kind)
        kept, prefix, suppressed = parsed
        ingestor.stats.suppressed += suppressed
        if kept:
            await ingestor.submit(kept, prefix)
    except Refused as e:
        raise refusal(e, ctx.settings) from None


def _parse_queued(
    ctx: ServerContext, authorization: str | None, body: bytes, kind: str, received: datetime
) -> Parsed:
    """``_parse`` in the writer's thread: a refusal becomes the request's answer."""
    try:
        return _parse(ctx, authorization, body, kind, received)
    except ApiError as e:
        raise BodyRefused(e) from None


def _parse(
    ctx: ServerContext,
    authorization: str | None,
    body: bytes,
    kind: str,
    now: datetime | None = None,
) -> Parsed:
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
        if not isinstance(t, str) or t.lower() not in MESSAGE_TYPES:
            what = "missing" if t is None else f"unknown message type {t!r}"
            errors.append(_err(f"batch[{i}].type", f"{what} ({', '.join(MESSAGE_TYPES)})"))
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
        "type": {"type": "string", "enum": list(MESSAGE_TYPES)},
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


for _kind in (*MESSAGE_TYPES, "batch"):
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
    require_admin(request)
    ingestor = get_ctx(request).ingestor
    assert ingestor is not None
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
