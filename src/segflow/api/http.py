"""The HTTP pieces both processes share: the error shape, the key a request carries,
bounded body reading and the fast paths' routes.

Starlette and the standard library only: the edge process imports this and nothing of
the engine, so it starts in a fraction of the core's time.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive

MESSAGE_TYPES: Final = ("track", "identify", "page", "screen", "alias", "group")
"""Segment's message types, each with its own ingestion path."""


class ApiError(Exception):
    """Raise anywhere in a handler: becomes ``problem(status, message, errors)``."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: Sequence[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = list(errors or [])
        self.headers = headers


INTERNAL_ERROR = "internal server error (the server's log has the details)"


def problem(
    status: int,
    message: str,
    errors: Sequence[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The shared JSON error response."""
    body = {"error": {"status": status, "message": message, "errors": list(errors or [])}}
    return JSONResponse(body, status_code=status, headers=headers)


def bearer_or_basic(request: Request) -> str | None:
    """The key a request carries: Bearer token or basic-auth user.  Never a query
    parameter: a key in a URL ends up in access logs, proxies and browser history (the
    change stream takes a short-lived stream token there instead)."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            return value
        if scheme.lower() == "basic" and value:
            try:
                user = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                raise ApiError(401, "malformed basic authorization header") from None
            return user or None
    return None


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


INGEST: Final = {f"/v1/{kind}": kind for kind in (*MESSAGE_TYPES, "batch")}
_PROFILES: Final = "/v1/profiles/"
_SEGMENTS: Final = "/segments"


def lookup_id(path: str) -> str | None:
    """The profile id of a ``/v1/profiles/{id}/segments`` path (None: another path);
    like the route, an id holds no ``/``."""
    if not (path.startswith(_PROFILES) and path.endswith(_SEGMENTS)):
        return None
    pid = path[len(_PROFILES) : -len(_SEGMENTS)]
    return pid if pid and "/" not in pid else None
