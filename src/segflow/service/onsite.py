"""The on-site read: which public segments the visitor of a shop's web page is in.

A shop's page calls ``GET /v1/onsite/segments`` from the browser with a publishable
key; the visitor is named by the anonymous id Segment's analytics.js keeps in the
first-party cookie ``ajs_anonymous_id`` (or the ``anonymous_id`` parameter).  Both
processes answer it the same way with what this module holds:

* parsing the visitor's id out of the request (``visitor_id``; a malformed one is a
  ``VisitorError`` naming the cookie or parameter, answered 400);
* ``VisitorIndex``: anonymous id -> profile id in memory, kept current as identities
  merge (an anonymous id merged into a user's profile resolves to that profile);
* the CORS and cache headers of the answer (``answer_headers``, ``preflight_headers``).

Only anonymous ids resolve: a user id is often guessable (an e-mail, a number), an
anonymous id is a random UUID the visitor's own browser holds, so the read names no
one but the visitor.  An unknown visitor gets the same answer as a known one in no
public segment (an empty list): the read tells nothing about who exists.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote, unquote_plus

import orjson

if TYPE_CHECKING:
    from segflow.service.handle import Segflow
    from segflow.service.live import LiveEvaluator
    from segflow.store.records.history import StoredEvents

ROUTE: Final = "/v1/onsite/segments"
COOKIE: Final = "ajs_anonymous_id"
"""The cookie analytics.js keeps the visitor's anonymous id in."""
PARAM: Final = "anonymous_id"
KEY_HEADER: Final = "x-segflow-key"
KEY_PARAM: Final = "key"
MAX_AGE_SECONDS: Final = 5
"""How long a browser may reuse an answer (memberships change in real time)."""
MAX_ID: Final = 200
"""The longest anonymous id read (analytics.js makes 36-character UUIDs)."""
PREFLIGHT_MAX_AGE: Final = 600
CACHE_CONTROL: Final = f"private, max-age={MAX_AGE_SECONDS}"
VARY: Final = "Origin, Cookie"

ASSIGNED: Final = 0
"""A ``VisitorIndex`` update: (ASSIGNED, anonymous id, profile id)."""
MOVED: Final = 1
"""(MOVED, from profile, into profile): a profile merged into another."""
FORGOTTEN: Final = 2
"""(FORGOTTEN, anonymous id, ""): the id's profile was erased; the id is dropped."""

VisitorUpdate = tuple[int, str, str]


class VisitorError(ValueError):
    """A malformed visitor id: ``where`` names the cookie or the parameter."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def cookie_value(header: str | None, name: str = COOKIE) -> str | None:
    """The raw value of cookie ``name`` in a ``Cookie`` header (the first, as browsers
    send the most specific first), or None."""
    if not header or name not in header:
        return None
    for part in header.split(";"):
        key, eq, value = part.partition("=")
        if eq and key.strip() == name:
            return value.strip()
    return None


def decode_id(raw: str, where: str, *, percent: bool = True) -> str | None:
    """An anonymous id as analytics.js stores or a page sends it: percent-decoded (a
    cookie; a query parameter arrives decoded), then, when it is JSON-quoted
    (``"abc"``, how analytics.js writes the cookie), unquoted.  Empty -> None (no
    visitor); VisitorError when malformed."""
    text = raw
    if percent and "%" in raw:
        try:
            text = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise VisitorError(where, "not valid percent-encoded UTF-8") from None
    if text.startswith('"') or text.endswith('"'):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise VisitorError(where, "a quoted value that is not a JSON string") from None
        if not isinstance(value, str):
            raise VisitorError(where, "a quoted value that is not a JSON string")
        text = value
    if not text:
        return None
    if len(text) > MAX_ID:
        raise VisitorError(where, f"longer than {MAX_ID} characters")
    if not text.isprintable():
        raise VisitorError(where, "holds control characters")
    return text


def visitor_id(param: str | None, cookies: str | None) -> str | None:
    """The visitor's anonymous id: the ``anonymous_id`` parameter when given, else the
    ``ajs_anonymous_id`` cookie; None when neither names one."""
    if param is not None:
        return decode_id(param, PARAM, percent=False)
    raw = cookie_value(cookies)
    return decode_id(raw, f"cookie {COOKIE}") if raw is not None else None


def query_values(raw: bytes) -> dict[str, str]:
    """The ``key`` and ``anonymous_id`` parameters of a raw query string, decoded as
    Starlette does (the last of a repeated one wins); the others are not decoded."""
    out: dict[str, str] = {}
    if not raw:
        return out
    for part in raw.decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        if name in (KEY_PARAM, PARAM):
            out[name] = unquote_plus(value) if "%" in value or "+" in value else value
    return out


def origin_allowed(origins: Sequence[str], origin: str | None) -> bool:
    """Whether a key limited to ``origins`` (empty: any) may answer a request from
    ``origin`` (None: no ``Origin`` header, not a cross-origin browser request)."""
    return origin is None or not origins or origin in origins


def answer_headers(origin: str | None) -> dict[str, str]:
    """The headers of an answer to ``origin`` (already allowed): short private caching
    and, for a browser, CORS with credentials (the origin echoed, never ``*``)."""
    out = {"Cache-Control": CACHE_CONTROL, "Vary": VARY}
    if origin is not None:
        out["Access-Control-Allow-Origin"] = origin
        out["Access-Control-Allow-Credentials"] = "true"
    return out


def preflight_headers(origin: str) -> dict[str, str]:
    """The answer to an allowed origin's preflight (``OPTIONS``)."""
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": "GET, OPTIONS",
        "Access-Control-Allow-Headers": "X-Segflow-Key",
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
        "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    }


def public_of(segments: Iterable[str], public: frozenset[str] | set[str]) -> list[str]:
    """The public ones of ``segments``, sorted."""
    return sorted(s for s in segments if s in public)


class VisitorIndex:
    """anonymous id -> profile id, in memory; a merged-away profile's ids are followed
    to the profile it went into (``MOVED``).  Updated in the writer's thread under the
    store lock, read anywhere: each step is one dict operation (atomic under the GIL)."""

    MAX_HOPS: Final = 64

    def __init__(self) -> None:
        self.by_anonymous: dict[str, str] = {}
        self.moved: dict[str, str] = {}
        self.ready = False
        self.listeners: list[Callable[[list[VisitorUpdate]], None]] = []
        """Called with each batch of real changes, in the thread that made them (the
        edge link forwards them to the edge process)."""
        self._lock = threading.Lock()

    def seed(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Replace the whole map with the stored (anonymous id, profile id) pairs."""
        with self._lock:
            self.by_anonymous = dict(pairs)
            self.moved = {}
            self.ready = True

    def resolve(self, anonymous_id: str) -> str | None:
        """The profile an anonymous id belongs to now (None: not an anonymous id)."""
        return resolve(self.by_anonymous, self.moved, anonymous_id)

    def apply(self, updates: Sequence[VisitorUpdate]) -> None:
        """Apply ``updates`` and tell the listeners the ones that changed something."""
        with self._lock:
            changed = apply_updates(self.by_anonymous, self.moved, updates)
        if changed and self.listeners:
            for fn in self.listeners:
                fn(changed)

    def forget(self, profile_id: str) -> None:
        """Drop the anonymous ids of an erased profile (one pass over the map)."""
        with self._lock:
            ids = list(self.by_anonymous)
        gone = [a for a in ids if self.resolve(a) == profile_id]
        self.apply([(FORGOTTEN, a, "") for a in gone])

    def snapshot(self) -> list[tuple[str, str]]:
        """Every anonymous id with its profile now (merges followed)."""
        with self._lock:
            ids = list(self.by_anonymous)
        out = []
        for a in ids:
            pid = self.resolve(a)
            if pid is not None:
                out.append((a, pid))
        return out


def resolve(
    by_anonymous: Mapping[str, str], moved: Mapping[str, str], anonymous_id: str
) -> str | None:
    """``VisitorIndex.resolve`` over plain dicts (the edge keeps the same two)."""
    pid = by_anonymous.get(anonymous_id)
    if pid is None:
        return None
    for _ in range(VisitorIndex.MAX_HOPS):
        into = moved.get(pid)
        if into is None:
            break
        pid = into
    return pid


def apply_updates(
    by_anonymous: dict[str, str], moved: dict[str, str], updates: Iterable[VisitorUpdate]
) -> list[VisitorUpdate]:
    """Apply ``updates`` to the two dicts in order; returns those that changed them."""
    changed: list[VisitorUpdate] = []
    for op, a, b in updates:
        if op == ASSIGNED:
            if moved.pop(b, None) is not None or by_anonymous.get(a) != b:
                by_anonymous[a] = b
                changed.append((op, a, b))
        elif op == MOVED:
            if a != b and moved.get(a) != b:
                moved[a] = b
                changed.append((op, a, b))
        elif op == FORGOTTEN and by_anonymous.pop(a, None) is not None:
            changed.append((op, a, b))
    return changed


def load_updates(
    fresh: StoredEvents, merges: Callable[[list[str]], list[tuple[str, str, datetime]]]
) -> list[VisitorUpdate]:
    """What one stored load changes: the profiles merged away (``merges``: the store's
    merges into the loaded profiles) and each anonymous id's profile."""
    out: list[VisitorUpdate] = []
    if fresh.merges:
        pids = sorted({row[1] for row in fresh.rows})
        out += [(MOVED, a, b) for a, b, _ in merges(pids)]
    seen: dict[str, str] = {}
    for _, pid, _, msg in fresh.rows:
        anonymous = msg.anonymous_id
        if anonymous:
            seen[anonymous] = pid
    out += [(ASSIGNED, a, p) for a, p in seen.items()]
    return out


def seed_visitors(app: Segflow, index: VisitorIndex) -> None:
    """Fill ``index`` from the store (under the store lock)."""
    index.seed(app.profiles.anonymous_identities())


def visitors_stored(app: Segflow, index: VisitorIndex, fresh: StoredEvents | None) -> None:
    """Bring ``index`` up to a load just stored (under the store lock); a load that was
    not described is caught up from the store's identities."""
    if fresh is None:
        index.apply([(ASSIGNED, a, p) for a, p in app.profiles.anonymous_identities()])
    else:
        index.apply(load_updates(fresh, app.profiles.merges_naming))


def public_segments(app: Segflow, live: LiveEvaluator | None) -> frozenset[str]:
    """The ids of the public segments (and public priority-group resolutions)."""
    if live is not None:
        return live.public
    return frozenset(s.id for s in app.registry.current().values() if s.public)


def visitor_segments(app: Segflow, live: LiveEvaluator | None, anonymous_id: str) -> list[str]:
    """The public segments of an anonymous id's profile, read from the store (the path
    taken before the in-memory indexes are filled)."""
    pid = app.profiles.by_anonymous(anonymous_id)
    if pid is None:
        return []
    # imported here: the edge process imports this module and stays free of the store
    from segflow.service.profiles import segments_of

    return public_of(segments_of(app, live, pid), public_segments(app, live))


__all__ = [
    "COOKIE",
    "ROUTE",
    "VisitorError",
    "VisitorIndex",
    "answer_headers",
    "origin_allowed",
    "preflight_headers",
    "public_of",
    "visitor_id",
]
