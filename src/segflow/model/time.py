"""Instants: naive UTC datetimes throughout, int microseconds since the epoch on hot paths.

Every module converts, parses and formats instants with these, so that a timestamp
read from a message, a definition, the store or a clock means the same thing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

EPOCH: Final = datetime(1970, 1, 1)
_ONE_US: Final = timedelta(microseconds=1)


def to_us(dt: datetime) -> int:
    """Naive-UTC datetime to int microseconds since the epoch (exact)."""
    return (dt - EPOCH) // _ONE_US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(0, 0, us)  # positional: a third faster than keywords


def utcnow() -> datetime:
    """The wall clock as a naive UTC datetime."""
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(dt: datetime) -> datetime:
    """An aware datetime as naive UTC (a naive one is taken to be UTC already).
    Subtracting the offset is cheaper than ``astimezone(UTC)`` and gives the same instant."""
    if dt.tzinfo is None:
        return dt
    offset = dt.utcoffset()
    return dt.replace(tzinfo=None) - offset if offset else dt.replace(tzinfo=None)


INSTANT_TEXT: Final = (
    r"^[ \t\n\r]*([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?"
    r"(?:([Zz])|([+-])([0-9]{2})(?::?([0-9]{2}))?)?)?[ \t\n\r]*$"
)
"""The texts every engine reads as an instant, one grammar for the interpreter and
each SQL dialect: a date, optionally ``T`` (or ``t`` or a space) and
``HH:MM[:SS[.fraction]]`` (up to 9 digits, cut to the microsecond), then optionally
``Z`` or an offset ``+HH``, ``+HHMM``, ``+HH:MM``; spaces, tabs and line breaks around
it.  Groups: year, month, day, hour, minute, second, fraction, ``Z``, sign, offset
hours, offset minutes.  Spelled with explicit classes (no ``\\d`` or ``\\s``) so that
Python, RE2, PostgreSQL and Java read it alike."""

_INSTANT: Final = re.compile(INSTANT_TEXT)


def _instant_text(text: str) -> datetime | str:
    """The instant ``text`` spells under ``INSTANT_TEXT``, else why it spells none:
    not the grammar, a day its month lacks, hour 24, second 60, an offset of 24 h or
    more, or an offset that moves it out of years 1-9999 UTC."""
    m = _INSTANT.fullmatch(text)
    if m is None:
        return "is not an ISO 8601 timestamp"
    y, mo, d, h, mi, s, frac, _z, sign, oh, om = m.groups()
    try:
        dt = datetime(
            int(y),
            int(mo),
            int(d),
            int(h or 0),
            int(mi or 0),
            int(s or 0),
            int((frac or "0")[:6].ljust(6, "0")),
        )
    except ValueError:
        return "names no such date and time"
    if sign is None:
        return dt
    if int(oh) > 23 or int(om or 0) > 59:
        return "has an offset of 24 hours or more"
    offset = timedelta(hours=int(oh), minutes=int(om or 0))
    try:
        return dt - offset if sign == "+" else dt + offset
    except OverflowError:
        return "is not an instant between years 1 and 9999 UTC"


def read_instant(value: object) -> datetime | None:
    """``parse_instant`` for a value in the data: None when it is no instant (the
    interpreter's reading, which every batch dialect's must equal)."""
    if not isinstance(value, str):
        return None
    dt = _instant_text(value)
    return dt if isinstance(dt, datetime) else None


def parse_instant(value: object) -> datetime:
    """A datetime, or a text of the ``INSTANT_TEXT`` grammar, as a naive UTC datetime;
    ``ValueError`` says why a text is none."""
    if isinstance(value, datetime):
        return naive_utc(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an ISO 8601 timestamp")
    dt = _instant_text(value)
    if isinstance(dt, str):
        raise ValueError(f"{value!r} {dt}")
    return dt


def format_instant(dt: datetime) -> str:
    """Canonical text of a naive-UTC instant."""
    return dt.isoformat(timespec="microseconds") + "Z"


__all__ = [
    "EPOCH",
    "INSTANT_TEXT",
    "format_instant",
    "from_us",
    "naive_utc",
    "parse_instant",
    "read_instant",
    "to_us",
    "utcnow",
]
