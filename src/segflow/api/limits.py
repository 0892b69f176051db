"""Limits checked on untrusted request input before anything else reads it.

A JSON document nested hundreds of levels deep parses fine, but every later step that
walks it recursively (serialising it again, hashing it, flattening it) pays for each
level, and a native serialiser may not survive it.  So the depth is checked right
after parsing, without recursion, and the request is refused naming the first
object or array that is too deep.

Instants a request evaluates at (``at``, ``since``, ``until``) are kept to a range
from which every window reaches back and forward inside the calendar: at its ends
date arithmetic overflows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import chain, compress
from typing import Any, Final

from segflow.model.time import parse_instant

EARLIEST: Final = datetime(1970, 1, 1)
LATEST: Final = datetime(2999, 12, 31, 23, 59, 59, 999999)
"""The instants a request may evaluate at (a scores refresh looks years back for
its training windows; a window is at most a century, ``MAX_DURATION_US``)."""
MAX_DEPTH_SETTING: Final = 200
"""The highest configurable nesting limit (orjson refuses to write deeper than 255)."""


def too_deep(roots: Sequence[tuple[str, Any]], limit: int) -> str | None:
    """The JSON path of the first object or array nested more than ``limit`` levels
    below one of ``roots`` (``(path, value)`` pairs; a root's own members are level
    1), or None.  Walks level by level, all roots at once, in C-level iteration:
    ingestion checks every message."""
    level = [v for _, v in roots if type(v) in _CONTAINERS]
    for _ in range(limit + 1):
        if not level:
            return None
        values = list(chain.from_iterable(map(_members, level)))
        level = list(compress(values, map(_CONTAINERS.__contains__, map(type, values))))
    if not level:
        return None
    for path, v in roots:  # rare: find where, depth-first (recursion bounded by limit)
        if type(v) in _CONTAINERS:
            found = _first_too_deep(v, limit, path, 0)
            if found is not None:
                return found
    return None  # pragma: no cover (some root holds the deep container)


_CONTAINERS: Final = frozenset({dict, list})


def _members(v: dict[str, Any] | list[Any]) -> Iterable[Any]:
    return v.values() if type(v) is dict else v


def _first_too_deep(v: Any, limit: int, path: str, level: int) -> str | None:
    """The path ``too_deep`` reports."""
    items = v.items() if type(v) is dict else enumerate(v)
    for k, x in items:
        if type(x) not in _CONTAINERS:
            continue
        where = f"{path}[{k}]" if type(v) is list else f"{path}.{k}" if path else str(k)
        if level >= limit:
            return where
        found = _first_too_deep(x, limit, where, level + 1)
        if found is not None:
            return found
    return None


def depth_message(limit: int) -> str:
    return f"nested more than {limit} levels deep (the limit)"


def check_setting(name: str, value: int, highest: int) -> None:
    """A limit of ``Settings`` is a whole number from 1 to ``highest``."""
    if not 1 <= value <= highest:
        raise ValueError(f"{name}: must be between 1 and {highest}, got {value}")


def request_instant(value: str | None) -> datetime | None:
    """An instant from a request (``at``, ``since``...) as naive UTC; malformed or
    outside ``EARLIEST``..``LATEST``: ``ValueError`` saying why."""
    if value is None:
        return None
    when = parse_instant(value)
    if not EARLIEST <= when <= LATEST:
        raise ValueError(
            f"{value!r} is outside the instants the server evaluates at, "
            f"{EARLIEST.year}-{LATEST.year}"
        )
    return when
