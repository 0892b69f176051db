"""API keys in DuckDB (their kinds and what a key is: ``store.records.keys``).

Only the SHA-256 of a key is stored (keys are 256 random bits, so a plain hash is
enough: nothing to brute-force); a presented key is hashed and its digest compared
with ``hmac.compare_digest``.  The verified keys are cached in memory, so
authenticating a request costs one hash and one dict look-up, no SQL.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final, cast

import duckdb

from segflow.model.keys import digest, normalize_origins
from segflow.store.records.keys import KINDS, PREFIX, ApiKey, KeyKind, NewKey

DDL: Final = """
CREATE TABLE IF NOT EXISTS api_keys (
    id         VARCHAR PRIMARY KEY,
    kind       VARCHAR NOT NULL,
    name       VARCHAR NOT NULL,
    digest     VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS origins VARCHAR[];
"""


class KeyStore:
    """Create, list, revoke and verify keys in the ``api_keys`` table."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        con.execute(DDL)
        self._active: dict[str, tuple[str, ApiKey]] = {}
        self.listeners: list[Callable[[], None]] = []
        """Called after every change of the active keys (the edge link)."""
        self._reload()

    def _reload(self) -> None:
        rows = self.con.execute(
            "SELECT id, kind, name, digest, created_at, origins FROM api_keys"
            " WHERE revoked_at IS NULL"
        ).fetchall()
        self._active = {
            d: (d, ApiKey(i, cast(KeyKind, k), n, c, None, tuple(o or ())))
            for i, k, n, d, c, o in rows
        }
        for fn in self.listeners:
            fn()

    def admin_digests(self) -> list[str]:
        """The digests of the active admin keys (what the edge checks look-ups with)."""
        return [d for d, (_, key) in self._active.items() if key.kind == "admin"]

    def publishable(self) -> dict[str, list[str]]:
        """The digests of the active publishable keys with their allowed origins (what
        the edge answers the on-site read with)."""
        active = self._active.items()
        return {d: list(key.origins) for d, (_, key) in active if key.kind == "publishable"}

    def create(self, kind: str, name: str = "", origins: Sequence[str] = ()) -> NewKey:
        """A new key; ``origins`` (publishable keys only) limits the web pages that may
        use it (ValueError naming the bad one)."""
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
        allowed = normalize_origins(origins)
        if allowed and kind != "publishable":
            raise ValueError(f"origins: only publishable keys take origins, not a {kind} key")
        token = PREFIX[kind] + secrets.token_urlsafe(32)
        key = ApiKey(
            id="key_" + secrets.token_hex(6),
            kind=cast(KeyKind, kind),
            name=name or f"{kind} key",
            created_at=datetime.now(UTC).replace(tzinfo=None, microsecond=0),
            origins=allowed,
        )
        self.con.execute(
            "INSERT INTO api_keys (id, kind, name, digest, created_at, origins)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [key.id, key.kind, key.name, digest(token), key.created_at, list(allowed) or None],
        )
        self._reload()
        return NewKey(key, token)

    def list(self) -> list[ApiKey]:
        rows = self.con.execute(
            "SELECT id, kind, name, created_at, revoked_at, origins FROM api_keys"
            " ORDER BY created_at, id"
        ).fetchall()
        return [ApiKey(i, cast(KeyKind, k), n, c, r, tuple(o or ())) for i, k, n, c, r, o in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by id (or by the key itself); KeyError when unknown."""
        row = self.con.execute(
            "SELECT id FROM api_keys WHERE (id = ? OR digest = ?) AND revoked_at IS NULL",
            [key_id, digest(key_id)],
        ).fetchone()
        if row is None:
            raise KeyError(f"unknown or already revoked key {key_id!r}")
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        self.con.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", [now, row[0]])
        self._reload()
        return next(k for k in self.list() if k.id == row[0])

    def is_active(self, key_id: str) -> bool:
        """Whether the key with this id exists and is not revoked (no SQL)."""
        return any(key.id == key_id for _, key in self._active.values())

    def verify(self, token: str) -> ApiKey | None:
        """The active key ``token`` is, or None (constant-time digest comparison)."""
        d = digest(token)
        found = self._active.get(d)
        if found is None or not hmac.compare_digest(found[0], d):
            return None
        return found[1]
