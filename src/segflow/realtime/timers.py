"""Time for the real-time evaluator: a timer queue, clocks, and an in-memory runner.

The engine is pure; something has to tell it that time passed.  ``TimerQueue`` keeps
each profile's next deadline (in slots of ~67 s); ``RealtimeRunner`` routes inputs to
profile states, reschedules after every step and fires due deadlines in time order
with ``advance_to``.  A ``VirtualClock`` makes tests and replays deterministic; the
service wraps the runner with a ``WallClock`` and a store.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from segflow.model.changes import Reason
from segflow.model.history import Event, ProfileHistory, TraitWrite
from segflow.model.time import from_us, to_us, utcnow
from segflow.plan.planner import Plan
from segflow.realtime.engine import Change, ProfileEngine, compile_engine
from segflow.realtime.state import ProfileState
from segflow.realtime.values import NEVER


class Clock(Protocol):
    """Where "now" comes from (naive UTC)."""

    def now(self) -> datetime: ...


class WallClock:
    """The machine's clock, as naive UTC."""

    def now(self) -> datetime:
        return utcnow()


class VirtualClock:
    """A clock moved by hand; it never goes backwards (the engine's order relies on it)."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, t: datetime) -> None:
        if t < self._now:
            raise ValueError(f"a clock cannot go back from {self._now} to {t}")
        self._now = t

    def advance(self, delta: timedelta) -> datetime:
        self.set(self._now + delta)
        return self._now


_SLOT_SHIFT: Final = 26
"""Deadlines are grouped in slots of 2**26 µs (~67 s)."""


class TimerQueue:
    """Each key's next deadline (int µs since the epoch), fired in ``(deadline, key)``
    order.

    Entries are kept in slots of ~67 s by deadline: appended to their slot's list, and
    made a heap only when the slot comes first (a small heap holds the slot numbers in
    use).  With a million keys, scheduling touches one short list instead of ~20
    levels of a million-entry heap scattered over memory.  Rescheduling leaves the old
    entry in place; stale entries are skipped when they surface (lazy invalidation),
    and all is rebuilt from the live deadlines when stale entries outnumber them."""

    __slots__ = ("_current", "_entries", "_open", "_order", "_slots")

    def __init__(self) -> None:
        self._current: dict[str, int] = {}
        self._slots: dict[int, list[tuple[int, str]]] = {}
        self._order: list[int] = []
        """A heap of the slot numbers in ``_slots``."""
        self._open: int | None = None
        """The slot whose list is a heap now (the first, once looked at)."""
        self._entries = 0
        """Entries in all slots, stale ones included."""

    def __len__(self) -> int:
        return len(self._current)

    def schedule(self, key: str, deadline: int | None) -> None:
        """Set (or with None, clear) the deadline of ``key``."""
        if deadline is None:
            self._current.pop(key, None)
            return
        if self._current.get(key) == deadline:
            return
        self._current[key] = deadline
        slot = deadline >> _SLOT_SHIFT
        entries = self._slots.get(slot)
        if entries is None:
            self._slots[slot] = [(deadline, key)]
            heapq.heappush(self._order, slot)
        elif slot == self._open:
            heapq.heappush(entries, (deadline, key))
        else:
            entries.append((deadline, key))
        self._entries += 1
        if self._entries > 2 * len(self._current) + 1024:
            self._rebuild()

    def _rebuild(self) -> None:
        slots: dict[int, list[tuple[int, str]]] = {}
        for key, deadline in self._current.items():
            slots.setdefault(deadline >> _SLOT_SHIFT, []).append((deadline, key))
        self._slots = slots
        self._order = list(slots)
        heapq.heapify(self._order)
        self._open = None
        self._entries = len(self._current)

    def _first(self) -> list[tuple[int, str]] | None:
        """The first slot's entries as a heap whose top is live; None: no deadlines."""
        order, slots, current = self._order, self._slots, self._current
        while order:
            slot = order[0]
            entries = slots[slot]
            if slot != self._open:
                heapq.heapify(entries)
                self._open = slot
            while entries and current.get(entries[0][1]) != entries[0][0]:
                heapq.heappop(entries)
                self._entries -= 1
            if entries:
                return entries
            del slots[slot]
            heapq.heappop(order)
            self._open = None
        return None

    def deadline(self, key: str) -> int | None:
        return self._current.get(key)

    def peek(self) -> int | None:
        """The earliest live deadline."""
        entries = self._first()
        return entries[0][0] if entries else None

    def pop_due(self, t: int) -> tuple[int, str] | None:
        """Remove and return the earliest live ``(deadline, key)`` with deadline <= t."""
        entries = self._first()
        if entries is None or entries[0][0] > t:
            return None
        deadline, key = heapq.heappop(entries)
        self._entries -= 1
        del self._current[key]
        return deadline, key


class RealtimeRunner:
    """Profile states in a dict, one timer queue, one change log; pure and in-memory.

    Profiles are created on their first input (or ``add_profile``); static segment
    members come from ``static_segments`` (profile id -> static segment ids).
    ``advance_to(t)`` fires every deadline <= t in time order across profiles."""

    def __init__(
        self,
        engine: ProfileEngine | Plan,
        *,
        clock: Clock | None = None,
        static_segments: Mapping[str, Iterable[str]] | None = None,
        keep_log: bool = True,
    ) -> None:
        self.engine = engine if isinstance(engine, ProfileEngine) else compile_engine(engine)
        self.clock: Clock = clock if clock is not None else WallClock()
        self._static = {pid: frozenset(s) for pid, s in (static_segments or {}).items()}
        self.states: dict[str, ProfileState] = {}
        self.timers = TimerQueue()
        self.log: list[Change] = []
        self.keep_log = keep_log

    def _now(self, now: datetime | None) -> int:
        return to_us(now if now is not None else self.clock.now())

    def state(self, profile_id: str) -> ProfileState:
        """The profile's state, created empty when it is new."""
        st = self.states.get(profile_id)
        if st is None:
            st = self.engine.new_state(profile_id, self._static.get(profile_id, frozenset()))
            self.states[profile_id] = st
        return st

    def after_step(self, profile_id: str, st: ProfileState, changes: list[Change]) -> list[Change]:
        """Log the changes; move the profile's timer only when its deadline came earlier.

        A deadline that moved later (the common case: a new event pushes an expiry out)
        keeps its earlier timer, which then fires early and reschedules; firing early
        is harmless (nothing is due) and far cheaper than a heap push per event."""
        nxt = st.nxt
        if nxt < NEVER:
            cur = self.timers.deadline(profile_id)
            if cur is None or nxt < cur:
                self.timers.schedule(profile_id, nxt)
        if changes and self.keep_log:
            self.log.extend(changes)
        return changes

    def add_profile(self, profile_id: str, now: datetime | None = None) -> list[Change]:
        """Make a profile known (it joins the universe: "no order in 30 d" holds)."""
        st = self.state(profile_id)
        return self.after_step(profile_id, st, self.engine.advance_us(st, self._now(now)))

    def ingest(self, profile_id: str, event: Event, now: datetime | None = None) -> list[Change]:
        return self.ingest_us(
            profile_id, to_us(event.timestamp), event.name, event.fields, self._now(now)
        )

    def ingest_us(
        self,
        profile_id: str,
        ts: int,
        name: str | None,
        fields: Mapping[str, Any],
        now: int,
    ) -> list[Change]:
        st = self.states.get(profile_id)
        if st is None:
            st = self.state(profile_id)
        return self.after_step(profile_id, st, self.engine.apply_us(st, ts, name, fields, now))

    def set_trait(
        self, profile_id: str, write: TraitWrite, now: datetime | None = None
    ) -> list[Change]:
        return self.set_trait_us(
            profile_id,
            to_us(write.timestamp),
            write.message_id,
            write.key,
            write.value,
            self._now(now),
        )

    def set_trait_us(
        self, profile_id: str, ts: int, message_id: str, key: str, value: Any, now: int
    ) -> list[Change]:
        st = self.state(profile_id)
        changes = self.engine.set_trait_us(st, ts, message_id, key, value, now)
        return self.after_step(profile_id, st, changes)

    def advance_to(self, t: datetime | None = None) -> list[Change]:
        """Fire every deadline <= t (default: the clock), earliest first."""
        t_us = self._now(t)
        out: list[Change] = []
        while (due := self.timers.pop_due(t_us)) is not None:
            d, pid = due
            st = self.states[pid]
            out += self.after_step(pid, st, self.engine.advance_us(st, d))
        return out

    def next_deadline(self) -> datetime | None:
        d = self.timers.peek()
        return None if d is None else from_us(d)

    def replace_state(
        self, profile_id: str, st: ProfileState, now: datetime, reason: Reason
    ) -> list[Change]:
        """Swap in a rebuilt state; the membership differences become changes at ``now``."""
        old = self.states.get(profile_id)
        before = self.engine.memberships(old) if old is not None else set()
        after = self.engine.memberships(st)
        self.states[profile_id] = st
        changes = [
            Change(sid, profile_id, sid in after, now, reason)
            for sid in self.engine.segment_ids
            if (sid in before) != (sid in after)
        ]
        return self.after_step(profile_id, st, changes)

    def rebuild(
        self, history: ProfileHistory, now: datetime, reason: Reason = Reason.MERGED
    ) -> list[Change]:
        """Rebuild one profile from its full history (after a merge, a definition change)."""
        st = self.engine.rebuild(
            history.profile_id, history.events, history.traits, history.static_segments, now
        )
        return self.replace_state(history.profile_id, st, now, reason)

    def segments_of(self, profile_id: str) -> set[str]:
        st = self.states.get(profile_id)
        return set() if st is None else self.engine.memberships(st)

    def memberships(self) -> dict[str, set[str]]:
        """Segment id -> member profile ids, as of the last inputs and ``advance_to``."""
        out: dict[str, set[str]] = {sid: set() for sid in self.engine.segment_ids}
        ids = self.engine.segment_ids
        for pid, st in self.states.items():
            for i in self.engine.member_indexes(st):
                out[ids[i]].add(pid)
        return out
