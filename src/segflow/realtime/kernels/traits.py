"""Trait values (the latest write wins, writes stamped in the future wait) and
per-profile constants (static-segment membership, bucket draws)."""

from __future__ import annotations

from bisect import insort
from typing import Any

from segflow.model.history import MISSING
from segflow.model.time import to_us
from segflow.plan.interpret import as_time
from segflow.realtime.kernels.base import R_NONE, R_REWAKE, R_TRAIT, Kernel
from segflow.realtime.state import ProfileState
from segflow.realtime.values import NEVER, same_value

WriteKey = tuple[int, str]
"""``(timestamp µs, message id)``: the order of trait writes (last wins)."""


class _Trait:
    """A trait with writes stamped in the future waiting (otherwise the slot holds just
    the ``WriteKey`` of the write in effect, shared by every trait of one message)."""

    __slots__ = ("pending", "w")

    def __init__(self, w: WriteKey | None) -> None:
        self.w = w
        self.pending: list[tuple[WriteKey, Any]] = []


def _pending_write(p: tuple[WriteKey, Any]) -> WriteKey:
    return p[0]


class TraitKernel(Kernel):
    """Latest write by (timestamp, message id) at or before now, plus writes stamped
    in the future.  Per profile the slot holds the write key in effect (or a ``_Trait``
    while future writes wait), the value lives in ``vals``."""

    __slots__ = ("name",)

    def __init__(self, k: int, name: str) -> None:
        super().__init__(k, MISSING)
        self.name = name

    def write(self, st: ProfileState, w: WriteKey, value: Any, now: int) -> int:
        d = st.data[self.slot]
        if w[0] > now:
            if d.__class__ is not _Trait:
                d = st.data[self.slot] = _Trait(d)
            insort(d.pending, (w, value), key=_pending_write)
            return R_REWAKE
        # a write that changes nothing (an identify re-sending a trait) leaves the
        # wake-up as it was: it is still the first instant the value can flip after now
        r = self._take(st, d, w, value)
        return r | R_REWAKE if r else R_NONE

    def _take(self, st: ProfileState, d: Any, w: WriteKey, value: Any) -> int:
        pending = d.__class__ is _Trait
        cur = d.w if pending else d
        if cur is not None and w <= cur:
            return R_NONE
        if pending:
            d.w = w
        else:
            st.data[self.slot] = w
        k = self.k
        old = st.vals[k]
        new = st.vals[k] = MISSING if value is None else value
        return R_NONE if same_value(old, new) else R_TRAIT

    def advance(self, st: ProfileState, now: int) -> int:
        d = st.data[self.slot]
        if d.__class__ is not _Trait:
            return R_NONE
        r = R_NONE
        p = d.pending
        while p and p[0][0][0] <= now:
            w, value = p.pop(0)
            r = max(r, self._take(st, d, w, value))
        if not p:
            st.data[self.slot] = d.w
        return r

    def deadline(self, st: ProfileState, now: int) -> int:
        d = st.data[self.slot]
        if d.__class__ is not _Trait or not d.pending:
            return NEVER
        first: int = d.pending[0][0][0]
        return first

    def time_value(self, st: ProfileState) -> int | None:
        """The value read as an instant (parsed on demand: a trait's value rarely changes,
        and keeping the parsed instant would cost every profile memory)."""
        t = as_time(st.vals[self.k])
        return None if t is None else to_us(t)


class ConstantKernel(Kernel):
    """Static-segment membership and bucket draws: fixed when the state is created."""

    __slots__ = ()
