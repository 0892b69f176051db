"""API keys as stores hand them out: write keys (ingestion only), admin keys
(everything else) and publishable keys (the on-site segments read only, meant to sit
in a shop's web pages; optionally limited to a list of allowed origins)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

KeyKind = Literal["write", "admin", "publishable"]
KINDS: Final = ("write", "admin", "publishable")
PREFIX: Final[dict[str, str]] = {"write": "sfw_", "admin": "sfa_", "publishable": "sfp_"}
"""How a key of each kind begins."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never the secret itself)."""

    id: str
    kind: KeyKind
    name: str
    created_at: datetime
    revoked_at: datetime | None = None
    origins: tuple[str, ...] = ()
    """A publishable key's allowed origins (empty: any origin)."""


@dataclass(frozen=True)
class NewKey:
    """A key just created: ``token`` is shown once and never stored."""

    key: ApiKey
    token: str
