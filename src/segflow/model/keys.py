"""API keys as stored: only a key's digest is kept, and both processes compare digests."""

from __future__ import annotations

import hashlib


def digest(token: str) -> str:
    """The SHA-256 of a key's token, the only form a store keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
