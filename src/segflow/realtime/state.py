"""One profile's state: the kernels' per-profile data, the feature values, memberships
and wake-ups, and the watermark.

Kernels (``segflow.realtime.kernels``) hold only static facts; what they fold per
profile lives in ``ProfileState.data[slot]`` (``None`` while the feature has seen
nothing) and the feature's current value in ``ProfileState.vals[k]``, so ten segments
that use one feature share one state.  Time is int microseconds since the epoch.
"""

from __future__ import annotations

import pickle
import sys
from array import array
from typing import Any, Final

from segflow.model.history import MISSING
from segflow.realtime.values import NEVER

BEFORE_TIME: Final = -(1 << 62)
"""Watermark of a state that has never been evaluated."""


class ProfileState:
    """Everything the engine knows of one profile: feature data and values, memberships,
    the next wake-up instant of each feature that has one, and the watermark ``now``
    (the latest instant it has been evaluated at; inputs before it are late)."""

    __slots__ = (
        "data",
        "fresh",
        "members",
        "now",
        "nxt",
        "profile_id",
        "static",
        "vals",
        "wake",
        "wmask",
    )

    def __init__(self, profile_id: str, vals: list[Any], static: frozenset[str]) -> None:
        self.profile_id = profile_id
        self.now = BEFORE_TIME
        self.vals = vals
        self.data: list[Any] = vals
        """The kernels' data slots, which follow the values in the same list (one list
        per profile instead of two)."""
        self.members = 0
        """Bit s set: the profile is in segment s (of the engine's sorted segment ids)."""
        self.wmask = 0
        """Bit k set: feature k has a wake-up, kept in ``wake``."""
        self.wake: array[int] | None = None
        """The wake-ups of the features in ``wmask``, in feature order (sparse: most
        features of a profile have none)."""
        self.nxt = NEVER
        """``min(wake)``, kept exact: the profile's next deadline."""
        self.static = static
        self.fresh = True

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, v in zip(self.__slots__, state, strict=True):
            setattr(self, name, v)


def state_size_bytes(st: ProfileState) -> int:
    """Serialised size of a state (pickle, highest protocol): what a keyed state store
    would hold per profile.  In-process memory is larger (Python object headers),
    see ``state_memory_bytes``."""
    return len(pickle.dumps(st, protocol=pickle.HIGHEST_PROTOCOL))


def state_memory_bytes(st: ProfileState) -> int:
    """Approximate in-process memory of a state: ``sys.getsizeof`` summed over the
    objects it owns, skipping shared singletons (small ints, None, MISSING, interned
    names, the shared static-segment set)."""
    seen: set[int] = set()
    total = 0
    stack: list[object] = [st]
    shared = (None, True, False, MISSING, st.static)
    while stack:
        o = stack.pop()
        if id(o) in seen or any(o is s for s in shared):
            continue
        if isinstance(o, int) and -5 <= o <= 256 and not isinstance(o, bool):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, list | tuple | set | frozenset):
            stack.extend(o)
        elif hasattr(o, "__slots__"):
            for name in o.__slots__:
                if hasattr(o, name):
                    stack.append(getattr(o, name))
    return total


def set_wake(st: ProfileState, k: int, w: int) -> None:
    """Set feature ``k``'s wake-up to ``w`` (NEVER: none) and keep ``st.nxt`` exact."""
    bit = 1 << k
    mask = st.wmask
    wake = st.wake
    if mask & bit:
        assert wake is not None
        i = (mask & (bit - 1)).bit_count()
        old = wake[i]
        if w == old:
            return
        if w < NEVER:
            wake[i] = w
        else:  # changed in place: a new array per change would be one more object
            del wake[i]  # for the collector's young generation to scan (at 1M profiles,
            st.wmask = mask ^ bit  # each one a cache miss)
    else:
        if w >= NEVER:
            return
        old = NEVER
        if wake is None:
            wake = st.wake = array("q", (w,))
        else:
            wake.insert((mask & (bit - 1)).bit_count(), w)
        st.wmask = mask | bit
    nxt = st.nxt
    if w < nxt:
        st.nxt = w
    elif old == nxt:
        st.nxt = min(wake) if wake else NEVER
