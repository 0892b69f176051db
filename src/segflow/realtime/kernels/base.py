"""The kernel protocol, the reason codes its methods return, and what every
event-aggregate kernel shares."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Final

from segflow.model.changes import REASON_CODES, Reason
from segflow.model.definition import TIME_MEASURES
from segflow.model.history import MISSING
from segflow.model.time import from_us
from segflow.plan.features import EventAggregate
from segflow.realtime.state import ProfileState, set_wake
from segflow.realtime.values import NEVER, make_extractor

R_NONE: Final = 0
R_WINDOW: Final = REASON_CODES[Reason.WINDOW_EXPIRED]
R_TRAIT: Final = REASON_CODES[Reason.TRAIT_CHANGED]
R_EVENT: Final = REASON_CODES[Reason.EVENT]
"""Reason codes (``segflow.model.changes``), by priority: when several causes meet at one
instant the highest wins."""
R_REWAKE: Final = 4
"""Flag or-ed into an insert's result: the kernel's next deadline may have moved."""


class Kernel:
    """Static part of one feature; every method reads/writes ``st.data[self.slot]``/``st.vals[k]``.

    ``offs`` are the durations after the feature's time value (``last_time + 24h`` of an
    abandonment, ``signup + 30d`` of ``within_last``) at which a comparison on it flips
    by itself; they are wake-ups like the kernel's own deadlines."""

    __slots__ = ("empty", "k", "offs", "slot")

    grouped: ClassVar[bool] = False
    """A route target that feeds several features (``insert_into``), not one."""

    def __init__(self, k: int, empty: Any) -> None:
        self.k = k
        self.empty = empty
        self.offs: tuple[int, ...] = ()
        self.slot = -1
        """Index of the kernel's per-profile data in ``ProfileState.data`` (-1: none;
        only kernels that keep data get a slot, so states stay small)."""

    def insert(
        self, st: ProfileState, ts: int, name: str, fields: Mapping[str, Any], now: int, arg: int
    ) -> int:
        """Add one matching event as of ``now``; return the reason code if the value at
        ``now`` changed (else 0), or-ed with ``R_REWAKE`` when the deadline may have moved."""
        return R_NONE

    def insert_into(
        self,
        st: ProfileState,
        ts: int,
        fields: Mapping[str, Any],
        now: int,
        dirty: dict[int, int] | None,
    ) -> None:
        """A grouped target's insert: marks the features it changes in ``dirty``."""
        raise NotImplementedError

    def rewake(self, st: ProfileState, now: int) -> None:
        """Recompute the feature's entry in ``st.wake`` (and ``st.nxt``): the earliest of
        its own deadline and of the self-flipping instants ``time value + off`` still
        after ``now``."""
        self.wake_at(st, now, self.deadline(st, now))

    def wake_at(self, st: ProfileState, now: int, w: int) -> None:
        """Set the feature's wake-up from its own deadline ``w`` (computed by the
        caller, e.g. from bisections it already made), self-flipping instants included."""
        if self.offs:
            w = self.offset_wake(st, now, w)
        set_wake(st, self.k, w)

    def offset_wake(self, st: ProfileState, now: int, w: int) -> int:
        """``w`` or the first self-flipping instant ``time value + off`` after ``now``,
        whichever is earlier."""
        tv = self.time_value(st)
        if tv is not None:
            for off in self.offs:
                c = tv + off
                if c > now:
                    return c if c < w else w
        return w

    def advance(self, st: ProfileState, now: int) -> int:
        """Bring the feature to ``now`` (every own deadline <= now); reason code or 0."""
        return R_NONE

    def deadline(self, st: ProfileState, now: int) -> int:
        """Next instant after ``now`` at which a comparison on the value can change with
        no new input (NEVER: none); earlier is allowed, later never."""
        return NEVER

    def time_value(self, st: ProfileState) -> int | None:
        """The feature's value as an instant, for time comparisons that flip by themselves."""
        return None

    def json_value(self, st: ProfileState) -> Any:
        """The value as JSON-ready data (for explain)."""
        return _json(st.vals[self.k])


def _json(v: Any) -> Any:
    if v is MISSING:
        return None
    if isinstance(v, datetime):
        return v.isoformat(timespec="microseconds") + "Z"
    return v


def json_time(us: int | None) -> str | None:
    """A time-valued feature (µs, None: no value) as JSON data."""
    return None if us is None else from_us(us).isoformat(timespec="microseconds") + "Z"


class AggKernel(Kernel):
    """What every event-aggregate kernel shares: its measure, the extractor of the
    measured value, and how a time-valued measure reads as an instant."""

    __slots__ = ("extract", "measure")

    def __init__(self, k: int, spec: EventAggregate) -> None:
        super().__init__(k, 0 if spec.measure in ("count", "sum", "distinct") else None)
        self.measure = spec.measure
        self.extract = make_extractor(spec.measure, spec.of)

    def time_value(self, st: ProfileState) -> int | None:
        v = st.vals[self.k]
        return v if self.measure in TIME_MEASURES else None

    def json_value(self, st: ProfileState) -> Any:
        v = st.vals[self.k]
        return json_time(v) if self.measure in TIME_MEASURES else v
