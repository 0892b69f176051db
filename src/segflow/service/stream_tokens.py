"""Short-lived tokens for the change stream, for clients that cannot send a header.

A browser's ``EventSource`` cannot set ``Authorization``, so it would have to put the
admin key in the URL, where proxies, access logs and the browser's history keep it.
Instead a client holding the key asks for a token (``POST /v1/stream-tokens``) and puts
that in the URL: it opens the change stream and nothing else, for five minutes, and
dies with the admin key that asked for it.  Only the token's digest is kept, in
memory (a restarted server forgets them: clients ask again).
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from segflow.model.keys import digest

TTL: Final = timedelta(minutes=5)
PREFIX: Final = "sfs_"
SCOPE: Final = "changes.stream"
MAX_LIVE: Final = 10_000
"""Most unexpired tokens kept; past it the oldest are dropped (a client asking in a
loop cannot grow the server's memory)."""


@dataclass(frozen=True)
class StreamToken:
    """A token just issued: ``token`` is shown once."""

    token: str
    expires_at: datetime
    scope: str = SCOPE


@dataclass(frozen=True)
class _Issued:
    digest: str
    key_id: str
    scope: str
    expires_at: datetime


class StreamTokens:
    """Issued stream tokens by digest (thread-safe: requests verify on the event loop
    while others issue in worker threads)."""

    def __init__(self, ttl: timedelta = TTL) -> None:
        self.ttl = ttl
        self._issued: dict[str, _Issued] = {}
        self._lock = threading.Lock()

    def issue(self, key_id: str, now: datetime, scope: str = SCOPE) -> StreamToken:
        """A new token for the admin key ``key_id``, valid until ``now + ttl``."""
        token = PREFIX + secrets.token_urlsafe(32)
        issued = _Issued(digest(token), key_id, scope, now + self.ttl)
        with self._lock:
            self._prune(now)
            while len(self._issued) >= MAX_LIVE:
                del self._issued[next(iter(self._issued))]
            self._issued[issued.digest] = issued
        return StreamToken(token, issued.expires_at, scope)

    def verify(
        self, token: str, now: datetime, active: Callable[[str], bool], scope: str = SCOPE
    ) -> str | None:
        """Why ``token`` does not open ``scope`` now (None: it does); ``active`` says
        whether the admin key that asked for it is still active."""
        if not token.startswith(PREFIX):
            return "not a stream token"
        d = digest(token)
        with self._lock:
            found = self._issued.get(d)
        if found is None or not hmac.compare_digest(found.digest, d):
            return "unknown stream token"
        if found.expires_at <= now:
            with self._lock:
                self._issued.pop(d, None)
            return "the stream token has expired (they last 5 minutes: ask for a new one)"
        if found.scope != scope:
            return f"the stream token is for {found.scope}, not {scope}"
        if not active(found.key_id):
            return "the admin key that asked for this stream token has been revoked"
        return None

    def _prune(self, now: datetime) -> None:
        for d in [d for d, t in self._issued.items() if t.expires_at <= now]:
            del self._issued[d]
