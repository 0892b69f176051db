"""API keys as stored: only a key's digest is kept, and both processes compare digests;
a publishable key's allowed origins in their one canonical form."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Final

MAX_ORIGINS: Final = 50
_ORIGIN: Final = re.compile(r"^(https?)://([a-z0-9.\-]+|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$")


def digest(token: str) -> str:
    """The SHA-256 of a key's token, the only form a store keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def normalize_origins(origins: Sequence[str]) -> tuple[str, ...]:
    """Allowed origins as a browser sends them in ``Origin`` (``https://shop.example``,
    scheme and host lower case, a port only when not the scheme's default), without
    repeats; ValueError naming the first bad one (a path, ``*``, another scheme)."""
    if len(origins) > MAX_ORIGINS:
        raise ValueError(f"origins: {len(origins)} origins; at most {MAX_ORIGINS} are allowed")
    out: dict[str, None] = {}
    for i, raw in enumerate(origins):
        text = raw.strip().lower().removesuffix("/") if isinstance(raw, str) else ""
        m = _ORIGIN.match(text)
        if m is None:
            raise ValueError(
                f"origins[{i}]: {raw!r} is not an origin: expected scheme://host[:port] "
                "with scheme http or https and nothing after the host (no path, no *)"
            )
        scheme, host, port = m.groups()
        if port is not None:
            number = int(port[1:])
            if not 0 < number <= 65535:
                raise ValueError(f"origins[{i}]: {raw!r} has no valid port (1 to 65535)")
            if (scheme, number) in (("http", 80), ("https", 443)):
                port = None  # what a browser sends: the default port left out
        out[f"{scheme}://{host}{port or ''}"] = None
    return tuple(out)
