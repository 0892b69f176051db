"""Limits checked on untrusted request bodies before anything else reads them.

A JSON document nested hundreds of levels deep parses fine, but every later step that
walks it recursively (serialising it again, hashing it, flattening it) pays for each
level, and a native serialiser may not survive it.  So the depth is checked right
after parsing, with a plain loop, and the request is refused naming the first
object or array that is too deep.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from segflow.model.definition import parse_instant

EARLIEST: Final = datetime(1970, 1, 1)
LATEST: Final = datetime(2999, 12, 31, 23, 59, 59, 999999)
"""The instants a request may evaluate at: windows and durations reach back and
forward from them without leaving the calendar."""
MAX_DEPTH_SETTING: Final = 200
"""The highest configurable nesting limit (orjson refuses to write deeper than 255)."""


def too_deep(value: object, limit: int, path: str = "") -> str | None:
    """The JSON path of the first object or array nested more than ``limit`` levels
    below ``value`` (``value``'s own members are level 1), or None.  ``path`` is
    ``value``'s own path, the prefix of the answer."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, level = stack.pop()
        for x in v.values() if isinstance(v, dict) else v:
            if isinstance(x, dict | list):
                if level >= limit:
                    return _first_too_deep(value, limit, path, 0)
                stack.append((x, level + 1))
    return None


def _first_too_deep(v: Any, limit: int, path: str, level: int) -> str | None:
    """The path ``too_deep`` reports (recursion bounded by ``limit``)."""
    items = v.items() if isinstance(v, dict) else enumerate(v)
    for k, x in items:
        if not isinstance(x, dict | list):
            continue
        where = f"{path}[{k}]" if isinstance(v, list) else f"{path}.{k}" if path else str(k)
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
