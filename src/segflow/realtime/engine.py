"""The real-time evaluator: a pure, deterministic state machine per profile.

``compile_engine(plan)`` compiles the feature plan (the one the batch evaluator
compiles to SQL; see ``segflow.realtime.compile``) into routing tables, kernels and
formula functions.  Per profile the engine then offers ``apply`` (an event),
``set_trait`` (a trait write), ``advance`` (time passes) and ``next_deadline``; each
returns the membership changes it causes, with the exact instant and the reason.  No
I/O, no wall clock.  ``explain`` (``segflow.realtime.explain``) says why a profile is
or is not in a segment.

Instants and order:

* A state has a *watermark*: the latest instant it has been evaluated at (the latest
  in-order input, or the latest deadline it fired).  Changes are emitted in
  non-decreasing ``at`` per profile.
* An event with ``watermark <= ts <= now`` is in order: deadlines before ``ts`` fire
  first (each at its own instant, reason ``window_expired``), then the event is applied
  *at ts*, together with any deadline falling exactly on ts (one evaluation, so no
  exit-and-re-enter pair at one instant).
* A late event (``ts < watermark``) is folded into the state incrementally (every
  kernel can insert out of order, because it keeps whatever can still matter from
  ``now`` on) and memberships are re-evaluated *as of now*, reason ``event``.
* An event from the future (``ts > now``) waits inside its kernels; it takes effect
  at ``ts`` through ``advance`` (reason ``event``; ``window_expired`` when it enters an
  ``Ago`` window later).  Trait writes follow the same rules (reason ``trait_changed``).

``rebuild`` builds a state from a full history as of an instant, for merges and
definition changes; the ``RealtimeRunner`` in ``segflow.realtime.timers`` hosts many
states with a timer queue.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from segflow.model.bucket import bucket_of
from segflow.model.changes import BY_CODE, Reason
from segflow.model.history import Event, TraitWrite
from segflow.model.time import format_instant, from_us, to_us
from segflow.plan.planner import Plan
from segflow.realtime.compile import CompiledPlan
from segflow.realtime.explain import explain_state
from segflow.realtime.kernels.base import R_EVENT, R_REWAKE, R_TRAIT, R_WINDOW
from segflow.realtime.kernels.traits import WriteKey
from segflow.realtime.state import ProfileState
from segflow.realtime.values import NEVER


# The engine's internal record, converted to LoggedChange once at the boundary
# (segflow.service.live).
class Change(NamedTuple):
    """One membership flip: ``at`` is the exact instant the condition flipped."""

    segment_id: str
    profile_id: str
    entered: bool
    at: datetime
    reason: Reason


class ProfileEngine(CompiledPlan):
    """A plan compiled for per-profile incremental evaluation (immutable, shareable),
    with its inputs: events, trait writes and the passing of time."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(plan)
        self._statics: dict[frozenset[str], frozenset[str]] = {}
        self._last_write: WriteKey = (NEVER, "")

    # ------------------------------------------------------------------ states

    def new_state(
        self, profile_id: str, static_segments: Iterable[str] = frozenset()
    ) -> ProfileState:
        """An empty, not yet evaluated state; its first input evaluates every segment."""
        static = frozenset(static_segments)
        vals = self.initial.copy()
        for k, sid in self.static_features.items():
            vals[k] = sid in static
        draws: dict[str, float] = {}
        for (salt, lo, hi), kb in self.buckets.items():
            if salt not in draws:
                draws[salt] = bucket_of(profile_id, salt)
            vals[kb] = lo <= draws[salt] < hi
        static = self._statics.setdefault(static, static)
        return ProfileState(profile_id, vals, static)

    def memberships(self, st: ProfileState) -> set[str]:
        """Segments the profile is in as of its last evaluation."""
        ids = self.segment_ids
        return {ids[i] for i in self.member_indexes(st)}

    def member_indexes(self, st: ProfileState) -> list[int]:
        """Indexes (into ``segment_ids``) of the segments the profile is in."""
        out = []
        m = st.members
        while m:
            low = m & -m
            out.append(low.bit_length() - 1)
            m ^= low
        return out

    def is_member(self, st: ProfileState, segment_id: str) -> bool:
        return bool((st.members >> self.seg_index[segment_id]) & 1)

    def watermark(self, st: ProfileState) -> datetime | None:
        """The latest instant the state has been evaluated at (None: never)."""
        return None if st.fresh else from_us(st.now)

    def next_deadline(self, st: ProfileState) -> datetime | None:
        """Earliest instant at which a membership may change with no new input."""
        d = self.next_deadline_us(st)
        return None if d is None else from_us(d)

    def next_deadline_us(self, st: ProfileState) -> int | None:
        nxt = st.nxt
        return nxt if nxt < NEVER else None

    # ------------------------------------------------------------------ inputs

    def apply(self, st: ProfileState, event: Event, now: datetime) -> list[Change]:
        """Fold one event in (see the module docstring for in-order/late/future)."""
        return self.apply_us(st, to_us(event.timestamp), event.name, event.fields, to_us(now))

    def apply_us(
        self,
        st: ProfileState,
        ts: int,
        name: str | None,
        fields: Mapping[str, Any],
        now: int,
    ) -> list[Change]:
        """``apply`` on int microseconds (the hot path: no datetime unless a change)."""
        now = max(now, st.now)
        routes = self.routes.get(name) if name is not None else None
        out: list[Change] = []
        if ts > now:
            if st.fresh:
                self._step(st, now, out, R_EVENT)
            if routes is not None:
                assert name is not None
                at = st.now
                for pred, targets in routes:
                    if pred is None or pred(fields):
                        for kern, arg in targets:
                            if kern.grouped:
                                kern.insert_into(st, ts, fields, at, {})
                                continue
                            kern.insert(st, ts, name, fields, at, arg)
                            kern.rewake(st, at)
            return out
        if routes is None:
            if st.fresh:
                self._step(st, ts, out, R_EVENT)
            return out
        assert name is not None
        t = ts if ts >= st.now else now
        if st.nxt <= t:
            dirty = self._reach(st, t, out)
        else:
            st.now = t
            dirty = {}
        vals = st.vals
        signature = self.signature
        for pred, targets in routes:
            if pred is None or pred(fields):
                for kern, arg in targets:
                    if kern.grouped:
                        kern.insert_into(st, ts, fields, t, dirty)
                        continue
                    k = kern.k
                    old = vals[k]
                    r = kern.insert(st, ts, name, fields, t, arg)
                    if r:
                        if r & R_REWAKE:
                            kern.rewake(st, t)
                            r &= 3
                            if not r:
                                continue
                        tests = signature[k]
                        if tests is not None:
                            new = vals[k]
                            for test in tests:
                                if test(old) != test(new):
                                    break
                            else:
                                continue
                        if dirty.get(k, 0) < r:
                            dirty[k] = r
        if dirty or st.fresh:
            self._evaluate(st, t, dirty, out, R_EVENT)
        return out

    def _write_key(self, ts: int, message_id: str) -> WriteKey:
        """The key of a trait write; consecutive writes of one message (an identify
        setting five traits) share one tuple, so profiles keep one per message."""
        last = self._last_write
        if last[0] == ts and last[1] == message_id:
            return last
        w = self._last_write = (ts, message_id)
        return w

    def set_trait(self, st: ProfileState, write: TraitWrite, now: datetime) -> list[Change]:
        """Apply one trait write (``value=None`` clears the trait); same timing rules."""
        return self.set_trait_us(
            st, to_us(write.timestamp), write.message_id, write.key, write.value, to_us(now)
        )

    def set_trait_us(
        self, st: ProfileState, ts: int, message_id: str, key: str, value: Any, now: int
    ) -> list[Change]:
        now = max(now, st.now)
        kern = self.traits.get(key)
        out: list[Change] = []
        if ts > now:
            if st.fresh:
                self._step(st, now, out, R_TRAIT)
            if kern is not None:
                kern.write(st, self._write_key(ts, message_id), value, st.now)
                kern.rewake(st, st.now)
            return out
        if kern is None:
            if st.fresh:
                self._step(st, ts, out, R_TRAIT)
            return out
        t = ts if ts >= st.now else now
        if st.nxt <= t:
            dirty = self._reach(st, t, out)
        else:  # nothing due: most writes re-send a value the profile already has
            st.now = t
            dirty = {}
        r = kern.write(st, self._write_key(ts, message_id), value, t)
        if r:
            kern.rewake(st, t)
            r &= 3
            if r and dirty.get(kern.k, 0) < r:
                dirty[kern.k] = r
        if dirty or st.fresh:
            self._evaluate(st, t, dirty, out, R_TRAIT)
        return out

    def advance(self, st: ProfileState, t: datetime) -> list[Change]:
        """Let time pass up to ``t``: every deadline <= t fires at its own instant."""
        return self.advance_us(st, to_us(t))

    def advance_us(self, st: ProfileState, t: int) -> list[Change]:
        out: list[Change] = []
        if st.fresh:
            self._step(st, max(t, st.now), out, R_EVENT)
        else:
            self._fire_until(st, t, out, inclusive=True)
        return out

    def settle_us(self, st: ProfileState, t: int) -> list[Change]:
        """``advance_us`` to ``t``, and make ``t`` the watermark: an input stamped at or
        before ``t`` is late from then on (applied as of its ``now``).  A host that has
        evaluated every profile up to ``t`` settles one before giving it an input stamped
        earlier, so that input changes nothing in the past (a fresh state is only moved:
        its first input evaluates it)."""
        out = [] if st.fresh else self.advance_us(st, t)
        if st.now < t:
            st.now = t
        return out

    # ------------------------------------------------------------------ stepping

    def _step(self, st: ProfileState, t: int, out: list[Change], reason: int) -> None:
        """Evaluate at ``t`` with no input (a fresh state evaluates every segment)."""
        dirty = self._reach(st, t, out)
        if dirty or st.fresh:
            self._evaluate(st, t, dirty, out, reason)

    def _reach(self, st: ProfileState, t: int, out: list[Change]) -> dict[int, int]:
        """Fire deadlines before ``t``, then bring the ones at ``t`` due (returned as dirty
        features, for one evaluation together with the input at ``t``)."""
        nxt = self._fire_until(st, t, out, inclusive=False)
        dirty = self._due(st, t) if nxt == t else {}
        st.now = t
        return dirty

    def _fire_until(self, st: ProfileState, t: int, out: list[Change], *, inclusive: bool) -> int:
        """Fire every wake-up before (or up to) ``t``, each instant evaluated on its own;
        return the next wake-up left."""
        while True:
            d = st.nxt
            if d >= NEVER:
                return NEVER
            if d > t or (d == t and not inclusive):
                return d
            dirty = self._due(st, d)
            st.now = d
            self._evaluate(st, d, dirty, out, R_WINDOW)

    def _due(self, st: ProfileState, d: int) -> dict[int, int]:
        """Advance the features waking at ``d`` (the earliest wake-up); they are dirty."""
        dirty: dict[int, int] = {}
        kernels = self.kernels
        wake = st.wake
        assert wake is not None
        due = []  # the features of the due entries (the i-th entry is the i-th set bit)
        mask = st.wmask
        j = 0
        for i in [i for i, w in enumerate(wake) if w <= d]:
            while j < i:
                mask &= mask - 1
                j += 1
            due.append((mask & -mask).bit_length() - 1)
        for k in due:
            kern = kernels[k]
            r = kern.advance(st, d)
            dirty[k] = r or R_WINDOW
            kern.rewake(st, d)
        return dirty

    def _evaluate(
        self, st: ProfileState, t: int, dirty: Mapping[int, int], out: list[Change], fresh: int
    ) -> None:
        """Re-evaluate the segments that read a dirty feature; emit the flips at ``t``."""
        members = st.members
        vals = st.vals
        formulas = self.formulas
        if len(dirty) == 1 and not st.fresh:
            for k, r in dirty.items():
                for s in self.dependents[k]:
                    if (1 if formulas[s](vals, t) else 0) != (members >> s) & 1:
                        members ^= 1 << s
                if members != st.members:
                    self._emit(st, members, t, r, None, out)
            return
        why: dict[int, int]
        if st.fresh:
            st.fresh = False
            why = dict.fromkeys(range(len(self.segment_ids)), fresh)
        else:
            why = {}
            deps = self.dependents
            for k, r in dirty.items():
                for s in deps[k]:
                    if why.get(s, 0) < r:
                        why[s] = r
        for s in why:
            if (1 if formulas[s](vals, t) else 0) != (members >> s) & 1:
                members ^= 1 << s
        if members != st.members:
            self._emit(st, members, t, 0, why, out)

    def _emit(
        self,
        st: ProfileState,
        members: int,
        t: int,
        r: int,
        why: Mapping[int, int] | None,
        out: list[Change],
    ) -> None:
        """Set the new memberships and log the flips, by segment order, all at ``t``
        (one datetime), with reason ``r`` or the segment's own in ``why``."""
        flips = st.members ^ members
        st.members = members
        at = from_us(t)
        ids = self.segment_ids
        pid = st.profile_id
        while flips:
            low = flips & -flips
            flips ^= low
            s = low.bit_length() - 1
            reason = BY_CODE[r if why is None else why[s]]
            out.append(Change(ids[s], pid, bool(members & low), at, reason))

    # ------------------------------------------------------------------ rebuild

    def rebuild(
        self,
        profile_id: str,
        events: Iterable[Event],
        trait_writes: Iterable[TraitWrite],
        static_segments: Iterable[str],
        now: datetime,
    ) -> ProfileState:
        """A state from a profile's full history, evaluated as of ``now`` (no changes:
        the caller diffs memberships, e.g. after a merge or a definition change)."""
        return self.rebuild_us(
            profile_id,
            ((to_us(e.timestamp), e.name, e.fields) for e in events),
            ((to_us(w.timestamp), w.message_id, w.key, w.value) for w in trait_writes),
            static_segments,
            to_us(now),
        )

    def rebuild_us(
        self,
        profile_id: str,
        events: Iterable[tuple[int, str | None, Mapping[str, Any]]],
        trait_writes: Iterable[tuple[int, str, str, Any]],
        static_segments: Iterable[str],
        now: int,
    ) -> ProfileState:
        """``rebuild`` on raw inputs: events ``(ts, name, fields)``, trait writes
        ``(ts, message_id, key, value)``, instants in µs (bulk bootstrap from a store)."""
        st = self.new_state(profile_id, static_segments)
        t = now
        st.now = t
        routes_of = self.routes
        for ts, name, fields in events:
            routes = routes_of.get(name) if name is not None else None
            if routes is None:
                continue
            for pred, targets in routes:
                if pred is None or pred(fields):
                    for kern, arg in targets:
                        if kern.grouped:
                            kern.insert_into(st, ts, fields, t, None)
                        else:
                            kern.insert(st, ts, name, fields, t, arg)  # type: ignore[arg-type]
        for ts, message_id, key, value in trait_writes:
            kern_t = self.traits.get(key)
            if kern_t is not None:
                kern_t.write(st, self._write_key(ts, message_id), value, t)
        for kern in self.kernels:
            kern.rewake(st, t)
        self._evaluate(st, t, {}, [], R_EVENT)
        return st

    # ------------------------------------------------------------------ explain

    def explain(self, st: ProfileState, segment_id: str, t: datetime) -> dict[str, Any]:
        """Why the profile is (not) in ``segment_id`` at ``t``: the formula tree with each
        node's truth and, at the leaves, the feature values behind it (JSON-ready).

        ``t`` may not precede the watermark; a copy of the state is advanced to ``t`` (the
        given state is never modified)."""
        if segment_id not in self.seg_index:
            raise KeyError(f"unknown segment {segment_id!r}")
        t_us = to_us(t)
        if not st.fresh and t_us < st.now:
            raise ValueError(
                f"the state of {st.profile_id!r} is at {format_instant(from_us(st.now))};"
                f" it cannot explain the earlier instant {format_instant(t)}"
            )
        st = copy.deepcopy(st)
        self.advance_us(st, t_us)
        for kern in self.kernels:
            kern.advance(st, t_us)  # refresh values kept lazily (counts past their expiry)
        return explain_state(self, st, segment_id, t)


def compile_engine(plan: Plan) -> ProfileEngine:
    """Compile a plan for the real-time evaluator."""
    return ProfileEngine(plan)


__all__ = ["Change", "ProfileEngine", "compile_engine"]
