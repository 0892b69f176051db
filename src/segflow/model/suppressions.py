"""The suppression list in memory: keyed hashes of erased ids, never the ids.

Ingestion tests every message's ids against it (``id in suppressions``) and the
destinations test every profile they would send; the store keeps the hashes (and the
key) and fills this from them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def digest(key: bytes, value: str) -> str:
    """The keyed hash (HMAC-SHA256, hex) an id is kept as."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


class Suppressions:
    """Keyed hashes of suppressed ids, tested with ``id in suppressions``."""

    def __init__(self) -> None:
        self.key: bytes | None = None
        self._digests: set[str] = set()

    def hold(self, key: bytes, digests: Iterable[str]) -> None:
        """Take the store's key and these hashes (added to those held)."""
        self.key = key
        self._digests.update(digests)

    def __contains__(self, value: object) -> bool:
        if self.key is None or not isinstance(value, str):
            return False
        return digest(self.key, value) in self._digests

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)
