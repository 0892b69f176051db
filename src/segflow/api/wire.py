"""The link between the edge process and the core process: length-prefixed frames on
a Unix socket.

Every frame is a 9-byte header (payload length, request id, op) and a payload.  The
edge sends ``INGEST`` frames (a Segment request's endpoint kind, ``Authorization``
and ``Content-Encoding`` headers and its body as sent); the core answers each with a
``REPLY`` (status, extra headers, JSON body) and pushes, unasked, what the edge
answers look-ups with: ``SNAPSHOT`` (profiles' segments with since-when, the whole
index in a few frames), ``READY`` (the snapshot is complete), ``INDEX`` (each
change since: entered, exited, profile erased), ``KEYS`` (the digests of the
active admin keys, and of the publishable keys with their allowed origins),
``VISITORS`` (anonymous id -> profile updates for the on-site read: the whole map
before ``READY``, then each change) and ``PUBLIC`` (the public segments' ids).  One
connection carries everything in order, so the index updates a group commit causes
reach the edge before the answers to that group's requests: an acknowledged event's
segment changes are visible to the next look-up.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Final

import orjson

HEADER: Final = struct.Struct("!IIB")
"""Payload length, request id (0: a push), op."""
INGEST: Final = 1
REPLY: Final = 2
INDEX: Final = 3
READY: Final = 4
KEYS: Final = 5
SNAPSHOT: Final = 6
VISITORS: Final = 7
PUBLIC: Final = 8

KINDS: Final = ("track", "identify", "page", "screen", "alias", "group", "batch")
_INGEST: Final = struct.Struct("!BHH")
_REPLY: Final = struct.Struct("!HI")


def frame(rid: int, op: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), rid, op) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    """(request id, op, payload); ``asyncio.IncompleteReadError`` at the end."""
    n, rid, op = HEADER.unpack(await reader.readexactly(HEADER.size))
    return rid, op, await reader.readexactly(n)


def ingest(kind: str, authorization: str | None, encoding: str, body: bytes) -> bytes:
    auth = (authorization or "").encode("latin-1")
    enc = encoding.encode("latin-1")
    return _INGEST.pack(KINDS.index(kind), len(auth), len(enc)) + auth + enc + body


def read_ingest(payload: bytes) -> tuple[str, str | None, str, bytes]:
    """(endpoint kind, Authorization or None, Content-Encoding, body)."""
    k, na, ne = _INGEST.unpack_from(payload)
    at = _INGEST.size
    auth = payload[at : at + na].decode("latin-1")
    enc = payload[at + na : at + na + ne].decode("latin-1")
    return KINDS[k], auth or None, enc, payload[at + na + ne :]


def reply(status: int, headers: dict[str, str] | None, body: bytes) -> bytes:
    extra = orjson.dumps(headers) if headers else b""
    return _REPLY.pack(status, len(extra)) + extra + body


def read_reply(payload: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, extra headers, body)."""
    status, nh = _REPLY.unpack_from(payload)
    at = _REPLY.size
    headers: dict[str, str] = orjson.loads(payload[at : at + nh]) if nh else {}
    return status, headers, payload[at + nh :]


__all__ = [
    "HEADER",
    "INDEX",
    "INGEST",
    "KEYS",
    "KINDS",
    "PUBLIC",
    "READY",
    "REPLY",
    "SNAPSHOT",
    "VISITORS",
    "frame",
]
