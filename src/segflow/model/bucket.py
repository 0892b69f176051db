"""Stable bucketing of profiles for samples and holdouts."""

from __future__ import annotations

import hashlib


def bucket_of(profile_id: str, salt: str) -> float:
    """A pure hash of (profile id, salt) into [0, 100) with 0.01 resolution.

    The batch compiler emits the same arithmetic in SQL; both must stay in step.
    """
    digest = hashlib.md5(f"{profile_id}:{salt}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:8], 16) % 10000 / 100.0
