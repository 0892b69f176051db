"""The real-time engine hosted over the store: live memberships, the stored change log,
definition edits with a gapless hand-over, merges, explain and replay.

``segflow.realtime`` is pure; this module does its I/O: it bootstraps every profile's
state from stored history in bulk (one ordered Arrow scan), feeds new events, trait
writes and identity merges through the engine as they are stored, fires timers on a
``Clock``, and records every change in ``membership_changes``.  The HTTP server and
``segflow replay`` use it.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from segflow.model import schedule
from segflow.model.changes import LoggedChange, Reason
from segflow.model.definition import Holdout, Segment, call_name
from segflow.model.groups import Group
from segflow.model.time import from_us, to_us
from segflow.plan.features import (
    CART_PRICE,
    CART_PRODUCT,
    CART_QUANTITY,
    CartTotal,
    EventAggregate,
    SequenceMatch,
)
from segflow.plan.planner import Plan, build_plan, check_references
from segflow.realtime import (
    Change,
    Clock,
    ProfileEngine,
    ProfileState,
    RealtimeRunner,
    VirtualClock,
    compile_engine,
)
from segflow.service.handle import Segflow
from segflow.service.segments import EditDiff, edit_diffs
from segflow.store.protocols import HistoryReads, LiveStore, StoreSnapshot
from segflow.store.records.history import EventRow, StoredEvents, StoredTrait

US = timedelta(microseconds=1)
REPLAY_FLUSH = 20_000
TRAITS_MARK = "live_traits"
"""The change-log mark holding the ``traits.wseq`` watermark of standalone trait writes."""
SCHEDULED_MARK = "scheduled:"
"""Prefix of the change-log marks holding a scheduled segment's last refresh (its
version as the mark's seq, the instant as its at)."""


Subscriber = Callable[[Sequence[LoggedChange]], None]
Rebuild = Callable[
    [
        str,
        Iterable[tuple[int, str | None, Mapping[str, Any]]],
        Iterable[tuple[int, str, str, Any]],
        Iterable[str],
        int,
    ],
    ProfileState,
]
"""``ProfileEngine.rebuild_us``'s shape: a profile's state from its stored inputs."""


def plan_paths(plan: Plan) -> set[str]:
    """Every event field path the plan's features read (filters, ``of``, sequence steps)."""
    out: set[str] = set()
    for feat in plan.features.values():
        if isinstance(feat, EventAggregate):
            out.update(p.path for p in feat.filter.where)
            if feat.of is not None:
                out.add(feat.of)
        elif isinstance(feat, SequenceMatch):
            for step in feat.steps:
                out.update(p.path for p in step.where)
        elif isinstance(feat, CartTotal):
            out.update((CART_PRODUCT, CART_QUANTITY, CART_PRICE))
    return out


def _inputs(engine: ProfileEngine) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """What an engine reads: event names, event field paths and trait keys."""
    return (
        frozenset(engine.routes),
        frozenset(plan_paths(engine.plan)),
        frozenset(engine.traits),
    )


@dataclass
class PreparedSave:
    """A definition save's heavy work done off the store lock over one snapshot
    (``LiveEvaluator.prepare_save``)."""

    segment: Segment
    fingerprints: dict[str, str]
    """The other definitions it was compiled with (by id): stale when they changed."""
    engine: ProfileEngine
    states: dict[str, ProfileState]
    """Every profile's state as of the snapshot's instant."""
    seq: int
    wseq: int
    merges: tuple[datetime | None, frozenset[tuple[str, str]]]
    after: set[str]
    """Members of the segment per the batch evaluator at the snapshot."""


def _by_profile(batches: Iterable[list[EventRow]]) -> Iterator[tuple[str, list[EventRow]]]:
    """Consecutive rows of one profile (the stream is ordered by profile)."""
    pid: str | None = None
    group: list[EventRow] = []
    for batch in batches:
        for row in batch:
            if row[0] != pid:
                if pid is not None:
                    yield pid, group
                pid, group = row[0], []
            group.append(row)
    if pid is not None:
        yield pid, group


def _coalesce(changes: Iterable[Change]) -> list[Change]:
    """Net changes: flips of one (segment, profile) at one instant (several late events
    applied at the same now) cancel in pairs, so the log never holds an enter and an
    exit at one instant (its key is unique)."""
    out: list[Change | None] = []
    last: dict[tuple[str, str], int] = {}
    for c in changes:
        key = (c.segment_id, c.profile_id)
        i = last.get(key)
        prev = out[i] if i is not None else None
        if prev is not None and prev.at == c.at and prev.entered != c.entered:
            out[i] = None  # type: ignore[index]
            del last[key]
            continue
        last[key] = len(out)
        out.append(c)
    return [c for c in out if c is not None]


class LiveEvaluator:
    """Live memberships of every profile, kept exact by the real-time engine over a store.

    Not thread-safe: call it from one thread at a time (the server holds a lock around
    every call).  Every method that logs returns the changes it stored, in ``seq``
    order, after handing them to the subscribers; a change already in the log (a replay
    of the same input) is neither stored again nor published."""

    def __init__(self, app: Segflow, clock: Clock) -> None:
        self.app = app
        self.clock = clock
        self.store: LiveStore = app.stores.live()
        self.reader = self.store.reader
        self.log = self.store.log
        self._subscribers: list[Subscriber] = []
        self._segments: dict[str, Segment] = {}
        self.public: frozenset[str] = frozenset()
        """The public segments (``public: true``), the only ones the on-site read shows."""
        self.definition_listeners: list[Callable[[], None]] = []
        """Called (in the thread that saved) whenever the running definitions change."""
        self._hidden: set[str] = set()
        self._old_versions: dict[str, int] = {}
        self._since: dict[str, dict[str, datetime]] = {}
        self._seq = 0
        self._wseq = 0
        self._wseq_saved: int | None = None
        self._merges: tuple[datetime | None, frozenset[tuple[str, str]]] = (None, frozenset())
        self._runner: RealtimeRunner | None = None
        self._names: frozenset[str] = frozenset()
        self._paths: frozenset[str] = frozenset()
        self._trait_keys: frozenset[str] = frozenset()
        self._evaluated: int | None = None
        """Every profile's memberships are evaluated up to this instant (µs): an input
        stamped at or before it is late (applied as of now, per the design)."""
        self._scheduled: dict[str, str] = {}
        """Scheduled segments -> cron: their memberships change only at its instants."""
        self._refresh: dict[str, datetime | None] = {}
        """Each scheduled segment's next refresh (None: at once, never refreshed)."""
        self._refresh_marks: list[tuple[str, int, datetime]] = []
        """Refreshes made since the last ``_record``: its commit stores them."""
        self.silent: frozenset[str] = frozenset()
        """Segments whose changes are logged but not sent out (``emit_events: false``;
        a deleted one stays as it was): SSE and webhooks skip them."""
        self.holdouts: dict[str, Holdout] = {}
        """Each segment's holdout (a deleted one's stays as it was): SSE and webhooks
        mark the changes of its held-out members."""
        self._unpublished: list[LoggedChange] | None = None
        """Changes stored in the open ``_one_commit`` block, published once committed."""
        self.fast_catch_ups = 0
        """Catch-ups fed from the store's description of a load (not read back)."""

    # ------------------------------------------------------------------ plumbing

    @property
    def runner(self) -> RealtimeRunner:
        if self._runner is None:
            raise RuntimeError("the live evaluator is not started: call start() first")
        return self._runner

    @property
    def engine(self) -> ProfileEngine:
        return self.runner.engine

    def _now(self) -> datetime:
        return self.clock.now()

    def _compile(self, segments: Mapping[str, Segment]) -> ProfileEngine:
        engine = compile_engine(build_plan(segments.values()))
        self._adopt(segments, engine)
        return engine

    def _adopt(self, segments: Mapping[str, Segment], engine: ProfileEngine) -> set[str]:
        """Run ``segments`` (compiled as ``engine``) from here on; returns the scheduled
        segments whose definition did not change (they keep their members until their
        next refresh)."""
        before = {sid: seg.version for sid, seg in self._segments.items()}
        gone = self.silent - set(segments)
        self.silent = frozenset(s.id for s in segments.values() if not s.emit_events) | gone
        kept = {sid: h for sid, h in self.holdouts.items() if sid not in segments}
        self.holdouts = kept | {s.id: s.holdout for s in segments.values() if s.holdout}
        self._segments = dict(segments)
        self.public = frozenset(s.id for s in segments.values() if s.public)
        for fn in self.definition_listeners:
            fn()
        self._scheduled = {
            s.id: s.schedule
            for s in segments.values()
            if s.mode == "scheduled" and s.schedule is not None
        }
        self._refresh = {}
        for sid in self._scheduled:
            mark = self.log.mark(SCHEDULED_MARK + sid)
            fresh = mark is not None and mark[0] == self._version(sid)
            self._refresh[sid] = self._cron_next(sid, mark[1]) if fresh and mark else None
        self._hidden = set()
        self._names, self._paths, self._trait_keys = _inputs(engine)
        return {sid for sid in self._scheduled if before.get(sid) == self._version(sid)}

    def _build(
        self,
        engine: ProfileEngine,
        at: datetime,
        *,
        upto_seq: int,
        upto_wseq: int | None,
        profiles: Iterable[str] | None = None,
        inputs_upto_at: bool = False,
        reader: HistoryReads | None = None,
        entries: dict[str, list[Change]] | None = None,
    ) -> dict[str, ProfileState]:
        """States of every profile (or of ``profiles``) as of ``at`` from stored history:
        one scan of events ordered by profile, traits read alongside (those of events up
        to ``upto_seq`` and those of no event up to ``upto_wseq``).  With
        ``inputs_upto_at`` only inputs stamped at or before ``at`` are read (a replay
        feeds the later ones); otherwise later ones are held as future inputs.  With
        ``entries``, each profile's inputs are applied one by one at their instants
        instead (slower) and it receives, per profile, the change by which it entered
        each segment it is in at ``at``.  ``reader``: read through it instead (another
        connection, for a build that runs without the store lock)."""
        reader = reader if reader is not None else self.reader
        names, paths, trait_keys = _inputs(engine)
        rebuild: Rebuild = engine.rebuild_us
        if entries is not None:
            first_seen = self.store.first_seen()
            rebuild = self._dated(engine, entries, {p: to_us(t) for p, t in first_seen.items()})
        wanted = None if profiles is None else sorted(set(profiles))
        static = reader.static_members()
        t = to_us(at)
        upto_ts = t if inputs_upto_at else None
        traits: dict[str, list[tuple[int, str, str, Any]]] = {}
        for batch in reader.traits(
            trait_keys,
            upto_seq=upto_seq,
            upto_wseq=upto_wseq,
            profiles=wanted,
            upto_ts=upto_ts,
        ):
            for w in batch:
                traits.setdefault(w.profile_id, []).append((w.ts, w.message_id, w.key, w.value))
        states: dict[str, ProfileState] = {}
        stream = reader.events(
            names,
            paths,
            upto_seq=upto_seq,
            profiles=wanted,
            order="profile",
            upto_ts=upto_ts,
        )
        for pid, rows in _by_profile(stream):
            states[pid] = rebuild(
                pid,
                ((ts, name, fields) for _p, ts, name, fields, _m in rows),
                traits.pop(pid, ()),
                static.get(pid, ()),
                t,
            )
        universe = reader.profile_ids() if wanted is None else wanted
        known = set(universe)
        for pid in universe:
            if pid not in states:
                states[pid] = rebuild(pid, (), traits.pop(pid, ()), static.get(pid, ()), t)
        return {pid: st for pid, st in states.items() if pid in known}

    @staticmethod
    def _dated(
        engine: ProfileEngine, entries: dict[str, list[Change]], first_seen: Mapping[str, int]
    ) -> Rebuild:
        """A ``rebuild_us`` that feeds the inputs one by one, each at its own instant
        (events before trait writes at one instant, as a replay does), fires the timers
        in between and up to ``now``, and keeps the change by which the profile entered
        each segment it ends in: the exact instant and reason, which a state rebuilt in
        one step does not know.  A profile is first evaluated when it was first seen
        (it is in "no order in 30 days" from then on)."""

        def rebuild(
            pid: str,
            events: Iterable[tuple[int, str | None, Mapping[str, Any]]],
            writes: Iterable[tuple[int, str, str, Any]],
            static: Iterable[str],
            now: int,
        ) -> ProfileState:
            st = engine.new_state(pid, static)
            inputs: list[tuple[int, int, Any]] = [(e[0], 0, e) for e in events]
            inputs += [(w[0], 1, w) for w in writes]
            inputs.sort(key=lambda x: (x[0], x[1]))
            entered: dict[str, Change] = {}
            flips: list[Change] = []
            seen = first_seen.get(pid)
            if seen is not None and seen <= now and (not inputs or seen < inputs[0][0]):
                flips += engine.advance_us(st, seen)
            for ts, kind, item in inputs:
                t = min(ts, now)  # a later one is held as a future input
                if kind == 0:
                    flips += engine.apply_us(st, ts, item[1], item[2], t)
                else:
                    flips += engine.set_trait_us(st, ts, item[1], item[2], item[3], t)
            flips += engine.advance_us(st, now)
            for c in flips:
                if c.entered:
                    entered[c.segment_id] = c
                else:
                    entered.pop(c.segment_id, None)
            entries[pid] = list(entered.values())
            return st

        return rebuild

    def _install(self, engine: ProfileEngine, states: dict[str, ProfileState]) -> RealtimeRunner:
        runner = RealtimeRunner(
            engine,
            clock=self.clock,
            static_segments=self.reader.static_members(),
            keep_log=False,
        )
        runner.states = states
        for pid, st in states.items():
            runner.timers.schedule(pid, engine.next_deadline_us(st))
        self._runner = runner
        return runner

    def _version(self, segment_id: str) -> int:
        seg = self._segments.get(segment_id)
        return seg.version if seg is not None else self._old_versions.get(segment_id, 0)

    @contextmanager
    def _one_commit(self) -> Iterator[None]:
        """Store the changes and marks logged inside the block in one transaction and
        publish them once it is committed: the log and its marks move together, with
        one commit instead of one per statement.  Inside a transaction of the
        caller's, the block simply joins it."""
        if not self.store.begin():
            yield
            return
        self._unpublished = []
        try:
            yield
            self.store.commit()
        except BaseException:
            self.store.rollback()
            self._unpublished = None
            raise
        stored, self._unpublished = self._unpublished, None
        self._publish(stored)

    def _publish(self, stored: list[LoggedChange]) -> None:
        if stored:
            for fn in list(self._subscribers):
                fn(stored)

    def _record(self, changes: Iterable[Change]) -> list[LoggedChange]:
        """Track current memberships, store the changes, publish the ones stored
        (once committed, inside ``_one_commit``)."""
        rows: list[LoggedChange] = []
        scheduled = self._scheduled
        for c in _coalesce(changes):
            if c.segment_id in self._hidden:
                continue
            if c.segment_id in scheduled and self._held(c):
                continue
            mine = self._since.setdefault(c.profile_id, {})
            if c.entered:
                mine[c.segment_id] = c.at
            else:
                mine.pop(c.segment_id, None)
                if not mine:
                    del self._since[c.profile_id]
            rows.append(
                LoggedChange(
                    c.segment_id,
                    c.profile_id,
                    c.entered,
                    c.at,
                    c.reason,
                    self._version(c.segment_id),
                )
            )
        stored = self.log.append(rows)
        for sid, version, at in self._refresh_marks:
            self.log.set_mark(version, at, SCHEDULED_MARK + sid)
        self._refresh_marks = []
        if self._unpublished is not None:
            self._unpublished += stored
        else:
            self._publish(stored)
        return stored

    def _held(self, c: Change) -> bool:
        """Whether a change of a scheduled segment waits for its next refresh: the
        engine's own (events, windows, traits) and a merge's for a profile that stays."""
        if c.reason in (Reason.EVENT, Reason.WINDOW_EXPIRED, Reason.TRAIT_CHANGED):
            return True
        return c.reason == Reason.MERGED and c.profile_id in self.runner.states

    def _cron_next(self, segment_id: str, after: datetime) -> datetime:
        return schedule.next_after(self._scheduled[segment_id], after)

    def _next_refresh(self) -> datetime | None:
        """The earliest refresh due (``now`` for one never made)."""
        if not self._refresh:
            return None
        return min(self._now() if t is None else t for t in self._refresh.values())

    def _refreshed(self, segment_id: str, at: datetime) -> None:
        """``segment_id`` was evaluated at ``at``: the next refresh is its cron's next
        instant, and the log's commit records it."""
        self._refresh[segment_id] = self._cron_next(segment_id, at)
        self._refresh_marks.append((segment_id, self._version(segment_id), at))

    def _refresh_due(self, upto: datetime) -> list[Change]:
        """Refresh every scheduled segment whose cron instant came by ``upto``: timers
        fire up to the latest such instant, then the members there become the logged
        ones (``scheduled_refresh`` at that instant).  A segment never refreshed is
        evaluated at ``upto``.  Returns the timers' changes and the refreshes'."""
        due: list[tuple[datetime, str]] = []
        for sid, t in self._refresh.items():
            if t is None:
                due.append((upto, sid))
            elif t <= upto:  # the latest instant of the cron by upto (missed ones skipped)
                due.append((schedule.latest_by(self._scheduled[sid], upto), sid))
        if not due:
            return []
        runner = self.runner
        engine = runner.engine
        out: list[Change] = []
        for at, sid in sorted(due):
            out += runner.advance_to(at)
            shown = {pid for pid, mine in self._since.items() if sid in mine}
            there = {pid for pid, st in runner.states.items() if engine.is_member(st, sid)}
            for pid in sorted(there ^ shown):
                out.append(Change(sid, pid, pid in there, at, Reason.SCHEDULED_REFRESH))
            self._refreshed(sid, at)
        return out

    def _cover(self, at: datetime) -> None:
        """The log holds every current segment's memberships from ``at`` on (a segment
        taken on earlier keeps its first instant): analytics read a past instant's
        members from the log where it covers them."""
        self.log.cover({sid: seg.version for sid, seg in self._segments.items()}, at)

    def _set_marks(self, at: datetime) -> None:
        """The log reflects inputs up to ``self._seq`` (events) and ``self._wseq``
        (standalone trait writes) up to ``at``."""
        self.log.set_mark(self._seq, at)
        if self._wseq != self._wseq_saved:
            self.log.set_mark(self._wseq, at, TRAITS_MARK)
            self._wseq_saved = self._wseq

    def _exits(self, profile_id: str, at: datetime, reason: Reason) -> list[Change]:
        return [
            Change(sid, profile_id, False, at, reason)
            for sid in sorted(self._since.get(profile_id, {}))
        ]

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> list[LoggedChange]:
        """Compile the engine from the current definitions and bring every profile's
        state up to ``clock.now()`` from stored history (and the change log up to date).

        The log's mark says which inputs (events by ``seq``, trait writes of no event by
        ``traits.wseq``) it reflects up to which instant: states are rebuilt there from
        those inputs, anything that differs from the log is recorded at that instant
        (``definition_changed`` when the logged version is another, ``deleted``/``merged``
        for segments/profiles gone, else ``event``; a scheduled segment keeps its logged
        members until its next refresh), and what was stored since is caught up, time
        advancing to now (timers fire and scheduled segments refresh at their exact
        instants).  An empty log (a first start) records the current members, each
        entered at the instant and with the reason it entered (every profile's inputs
        applied in time order)."""
        now = self._now()
        engine = self._compile(self.app.registry.current())
        seq = self.reader.max_seq()
        wseq = self.reader.max_wseq()
        mark = self.log.mark()
        wmark = self.log.mark(TRAITS_MARK)
        self._wseq_saved = wmark[0] if wmark is not None else None
        logged = self.log.current()
        if mark is not None and mark[1] <= now and logged:
            upto, t0 = min(mark[0], seq), mark[1]
            wupto = min(wmark[0], wseq) if wmark is not None else wseq
        else:
            upto, t0, wupto = seq, now, wseq
        self._merges = self.reader.merge_mark()
        empty = not logged
        # a first start dates each entry at the instant the profile entered
        entries: dict[str, list[Change]] | None = {} if empty else None
        states = self._build(engine, t0, upto_seq=upto, upto_wseq=wupto, entries=entries)
        self._install(engine, states)
        dated = {(c.segment_id, pid): c for pid, cs in (entries or {}).items() for c in cs}
        self._since = {}
        diff: list[Change] = []
        ids = engine.segment_ids
        for pid, st in states.items():
            for i in engine.member_indexes(st):
                sid = ids[i]
                entry = logged.pop((sid, pid), None)
                if sid in self._scheduled:  # as logged until its next refresh
                    if entry is not None and entry[0]:
                        self._since.setdefault(pid, {})[sid] = entry[2]
                    continue
                if entry is not None and entry[0] and entry[1] == self._version(sid):
                    self._since.setdefault(pid, {})[sid] = entry[2]
                    continue
                if entries is not None:
                    c = dated[(sid, pid)]
                    diff.append(Change(sid, pid, True, c.at, c.reason))
                    continue
                reason: Reason = (
                    Reason.DEFINITION_CHANGED
                    if empty or (entry is not None and entry[1] != self._version(sid))
                    else Reason.EVENT
                )
                diff.append(Change(sid, pid, True, t0, reason))
        for (sid, pid), (was_in, version, since) in sorted(logged.items()):
            if not was_in:
                continue
            self._since.setdefault(pid, {})[sid] = since
            if sid in self._scheduled and pid in states:
                continue
            if sid not in self._segments:
                self._old_versions.setdefault(sid, version)
            gone: Reason
            if sid not in self._segments:
                gone = Reason.DELETED
            elif pid not in states:
                gone = Reason.MERGED
            elif version != self._version(sid):
                gone = Reason.DEFINITION_CHANGED
            else:
                gone = Reason.EVENT
            diff.append(Change(sid, pid, False, t0, gone))
        diff.sort(key=lambda c: (c.profile_id, c.segment_id))
        out = self._record(diff)
        self._cover(t0)
        self._seq = upto
        self._wseq = wupto
        # what was stored after the log's mark is applied at its own instants after it,
        # timers and scheduled refreshes in between, up to now
        self._evaluated = to_us(t0)
        return out + self.catch_up()

    def catch_up(self, fresh: StoredEvents | None = None) -> list[LoggedChange]:
        """Feed everything stored since the last call (new events by seq watermark, their
        trait writes, trait writes of no event such as value scores by ``traits.wseq``,
        identity merges) through the engine; log and return the changes.  The server
        calls this right after each group commit and each scores refresh.

        A trait write takes effect at its timestamp, or now when that is already past
        for the profile (as a late event does); the changes it causes have reason
        ``trait_changed``.

        ``fresh``: what the store's last load stored (``ingest_messages(...,
        describe=True)``).  When it is exactly the events since the last call (no merge,
        nothing else stored in between, every field value reproducible) they are fed
        from it instead of being read back (the same inputs in the same order, so the
        same changes); otherwise, or for anything else, the stored rows are read."""
        runner = self.runner
        engine = runner.engine
        now = self._now()
        now_us = to_us(now)
        seq = self.reader.max_seq()
        wseq = self.reader.max_wseq(self._wseq)
        merges = self.reader.merges_since(self._merges)
        self._merges = self.reader.merge_mark()
        fast = self._fresh_inputs(fresh, seq) if not merges else None
        if fast is not None:
            self.fast_catch_ups += 1
        changes: list[Change] = []
        recorded: list[LoggedChange] = []
        rebuilt: set[str] = set()
        if merges:
            changes += self._refresh_due(now)  # merges apply at now: refreshes due first
            touched = {p for m in merges for p in m}
            targets = {p for p in touched if self.reader.has_profile(p)}
            timers: list[Change] = []
            for pid in sorted(touched):
                old = runner.states.get(pid)
                if old is not None:
                    timers += runner.after_step(pid, old, engine.advance_us(old, now_us))
            recorded += self._record(timers)
            for a in sorted(touched - targets):
                changes += self._exits(a, now, Reason.MERGED)
                runner.states.pop(a, None)
                runner.timers.schedule(a, None)
            built = self._build(engine, now, upto_seq=seq, upto_wseq=wseq, profiles=targets)
            for pid in sorted(built):
                changes += runner.replace_state(pid, built[pid], now, Reason.MERGED)
            rebuilt = set(built)
        if seq > self._seq or wseq > self._wseq:
            inputs: list[tuple[int, int, str, Any]] = []
            if fast is not None:
                inputs.extend(fast)
            elif seq > self._seq:
                for batch in self.reader.events(
                    self._names, self._paths, after_seq=self._seq, upto_seq=seq, order="time"
                ):
                    inputs.extend((r[1], 0, r[0], r) for r in batch if r[0] not in rebuilt)
            if seq > self._seq and (fast is None or fresh is None or fresh.traits):
                for tbatch in self.reader.traits(
                    self._trait_keys,
                    after_seq=self._seq,
                    upto_seq=seq,
                    standalone=False,
                    order="time",
                ):
                    inputs.extend(
                        (w.ts, 1, w.profile_id, w) for w in tbatch if w.profile_id not in rebuilt
                    )
            if wseq > self._wseq:
                for tbatch in self.reader.standalone_traits(
                    self._trait_keys,
                    after_wseq=self._wseq,
                    upto_wseq=wseq,
                    after_seq=self._seq,
                    upto_seq=seq,
                ):
                    inputs.extend(
                        (w.ts, 2, w.profile_id, w) for w in tbatch if w.profile_id not in rebuilt
                    )
            inputs.sort(key=lambda x: (x[0], x[1], x[2]))
            known: dict[str, bool] = {}
            late = self._evaluated if self._evaluated is not None else -1
            refresh = self._next_refresh()
            refresh_us = to_us(refresh) if refresh is not None else None
            for ts, kind, pid, item in inputs:
                if refresh_us is not None and refresh_us < ts:
                    # a scheduled refresh falls before this input: it sees the ones before
                    changes += self._refresh_due(from_us(ts - 1))
                    refresh = self._next_refresh()
                    refresh_us = to_us(refresh) if refresh is not None else None
                if kind == 2 and pid not in runner.states:
                    # a write of no event never brings a profile into the universe
                    if pid not in known:
                        known[pid] = self.reader.has_profile(pid)
                    if not known[pid]:
                        continue
                if ts <= late:
                    # stamped before what was already evaluated: applied as of now, so
                    # it changes nothing in the past (no enter and exit long over)
                    st = runner.state(pid)
                    if st.now < late:
                        changes += runner.after_step(pid, st, engine.settle_us(st, late))
                if kind == 0:
                    _p, _ts, name, fields, _m = item
                    changes += runner.ingest_us(pid, ts, name, fields, now_us)
                    continue
                w: StoredTrait = item
                st = runner.state(pid)
                step = engine.set_trait_us(st, w.ts, w.message_id, w.key, w.value, now_us)
                changes += runner.after_step(pid, st, step)
            if seq > self._seq:
                if fast is not None and fresh is not None:
                    new = sorted({r[1] for r in fresh.rows})
                else:
                    new = self.reader.profiles_after(self._seq, seq)
                for pid in new:
                    if pid not in runner.states:
                        changes += runner.add_profile(pid, now)
            self._seq = seq
            self._wseq = wseq
        # time passed while the inputs were stored: evaluated as of now before the
        # caller acknowledges them
        changes += self._refresh_due(now)
        changes += runner.advance_to(now)
        self._evaluated = now_us
        with self._one_commit():
            out = recorded + self._record(changes)
            self._set_marks(now)
        return out

    def _fresh_inputs(
        self, fresh: StoredEvents | None, seq: int
    ) -> list[tuple[int, int, str, EventRow]] | None:
        """Engine inputs for the events of ``fresh`` as ``catch_up`` would read them back
        (same rows, fields and order: by time, then message id), or None when ``fresh``
        is not exactly the events stored since the last call or a value cannot be
        reproduced from the message."""
        if (
            fresh is None
            or not fresh.plain
            or fresh.merges
            or fresh.after_seq != self._seq
            or fresh.upto_seq != seq
        ):
            return None
        names = self._names
        reader = self.store.message_fields(self._paths, fresh.fields, fresh.columns)
        rows: list[EventRow] = []
        for _seq, pid, ts, msg in fresh.rows:
            name = call_name(msg.type, msg.event)
            if name not in names:
                continue
            fields = reader(
                {"properties": msg.properties, "context": msg.context, "traits": msg.traits}
            )
            if fields is None:
                return None
            rows.append((pid, ts, name, fields, msg.message_id))
        rows.sort(key=lambda r: (r[1], r[4]))
        return [(r[1], 0, r[0], r) for r in rows]

    def tick(self) -> list[LoggedChange]:
        """Fire every timer due up to ``clock.now()``; log and return the changes."""
        now = self._now()
        with self._one_commit():
            out = self._record(self._refresh_due(now) + self.runner.advance_to(now))
            if out:
                self._set_marks(now)
        self._evaluated = to_us(now)
        return out

    def next_deadline(self) -> datetime | None:
        """The next timer or scheduled refresh."""
        times = [t for t in (self.runner.next_deadline(), self._next_refresh()) if t is not None]
        return min(times, default=None)

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """``fn`` gets every batch of logged changes (after they are stored); returns a
        function that unsubscribes it."""
        self._subscribers.append(fn)

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

        return unsubscribe

    # ------------------------------------------------------------------ reads

    def segments_of(self, profile_id: str) -> dict[str, datetime]:
        """Current memberships of a profile, segment id -> since (entered at): dict
        look-ups only (the on-site personalisation path)."""
        mine = self._since.get(profile_id)
        return dict(mine) if mine else {}

    def members(self, segment_id: str) -> list[str]:
        """Live members of a segment, sorted."""
        if segment_id not in self._segments or segment_id in self._hidden:
            raise KeyError(f"unknown segment {segment_id!r}")
        return sorted(p for p, mine in self._since.items() if segment_id in mine)

    def explain(
        self, segment_id: str, profile_id: str, at: datetime | None = None
    ) -> dict[str, Any]:
        """Why ``profile_id`` is (not) in ``segment_id`` at ``at`` (default now): the
        condition tree with each node's value and the feature values behind it.  An
        instant before the profile's watermark is answered from a state rebuilt from
        stored history (what the batch evaluator would say at that instant)."""
        if self._runner is None:
            engine = self._compile(self.app.registry.current())
            states: dict[str, ProfileState] = {}
        else:
            engine = self.engine
            states = self.runner.states
        if segment_id not in self._segments or segment_id in self._hidden:
            raise KeyError(f"unknown segment {segment_id!r}")
        t = at if at is not None else self._now()
        st = states.get(profile_id)
        if st is None and not self.reader.has_profile(profile_id):
            raise KeyError(f"unknown profile {profile_id!r}")
        if st is None or (not st.fresh and to_us(t) < st.now):
            st = self._build(
                engine, t, upto_seq=self.reader.max_seq(), upto_wseq=None, profiles=[profile_id]
            )[profile_id]
        out = engine.explain(st, segment_id, t)
        out["version"] = self._version(segment_id)
        return out

    # ------------------------------------------------------------------ definitions

    def preview_edit(self, segment: Segment) -> EditDiff:
        """Who would enter/leave if this definition were saved now (batch evaluator)."""
        (diff,) = edit_diffs(self.app, [segment], self._now(), self, changed_only=False)
        return diff

    def open_snapshot(self) -> StoreSnapshot:
        """One snapshot of the store, for ``prepare_save`` (call under the store lock;
        read it without; close it after)."""
        return self.store.open_snapshot()

    def prepare_save(self, segment: Segment, snapshot: StoreSnapshot) -> PreparedSave | None:
        """The heavy part of saving ``segment``, done over ``snapshot`` (from
        ``open_snapshot``; rolled back here) without the store lock, so ingestion goes
        on meanwhile: the new engine, every profile's state under it and the batch
        evaluator's members, all from the one snapshot.  ``save(segment, prepared)``
        then only brings the profiles touched since up to date.  None for a static
        segment (its snapshot is taken under the lock).  Touches no state of this
        evaluator."""
        try:
            if segment.mode == "static":
                return None
            saved = {k: v for k, v in snapshot.registry.current().items() if k != segment.id}
            merged = {**saved, segment.id: segment}
            check_references(merged)
            engine = compile_engine(build_plan(merged.values()))
            reader = snapshot.reader
            at = self._now()
            seq, wseq, merges = reader.max_seq(), reader.max_wseq(), reader.merge_mark()
            states = self._build(engine, at, upto_seq=seq, upto_wseq=wseq, reader=reader)
            result = snapshot.batch.evaluate(merged.values(), at, only=[segment.id])
            after = set(result.members(segment.id))
        finally:
            snapshot.rollback()
        fingerprints = {k: v.definition_fingerprint() for k, v in saved.items()}
        return PreparedSave(segment, fingerprints, engine, states, seq, wseq, merges, after)

    def save(
        self, segment: Segment, prepared: PreparedSave | None = None
    ) -> tuple[int, EditDiff, list[LoggedChange]]:
        """Save a new version, backfill it from history, hand over to the live engine
        with no gap, and log enters/exits with reason ``definition_changed`` at the save
        instant.  Returns (version, diff, changes).  With ``prepared`` (from
        ``prepare_save``, still valid when no other definition changed since) only the
        profiles touched since its snapshot are rebuilt here."""
        out = self.catch_up()
        current = self.app.registry.current()
        if prepared is not None and prepared.fingerprints != {
            k: v.definition_fingerprint() for k, v in current.items() if k != segment.id
        }:
            prepared = None
        if prepared is None:
            diff = self.preview_edit(segment)
        else:
            # a deleted segment saved again starts empty (its members left at deletion)
            known = segment.id in self._segments and segment.id not in self._hidden
            before = set(self.members(segment.id)) if known else set()
            diff = EditDiff.between(segment.id, before, prepared.after)
        ((saved, status),) = self.app.registry.save([segment])
        if status == "unchanged":
            return saved.version, replace(diff, entering=[], leaving=[]), out
        if saved.mode == "static":
            self.app.snapshot(saved)
        if prepared is None:
            out += self._reload(Reason.DEFINITION_CHANGED)
        else:
            out += self._hand_over(prepared, Reason.DEFINITION_CHANGED)
        return saved.version, diff, out

    def _hand_over(self, prepared: PreparedSave, reason: Reason) -> list[LoggedChange]:
        """Install ``prepared``'s engine and states, first bringing them from its
        snapshot to now: the profiles with inputs or merges since (or new or gone) are
        rebuilt from history, the others' timers fire up to now."""
        now = self._now()
        seq, wseq = self._seq, self._wseq  # the catch-up just done read up to these
        engine, states = prepared.engine, prepared.states
        reader = self.reader
        universe = set(self.runner.states)
        touched = set(reader.profiles_after(prepared.seq, seq))
        touched.update(reader.profiles_written_after(prepared.wseq, wseq))
        touched.update(p for m in reader.merges_since(prepared.merges) for p in m)
        for pid in set(states) - universe:
            del states[pid]
        touched = (touched | (universe - set(states))) & universe
        now_us = to_us(now)
        for pid, st in states.items():
            if pid not in touched:
                engine.advance_us(st, now_us)
        if touched:
            states.update(self._build(engine, now, upto_seq=seq, upto_wseq=wseq, profiles=touched))
        old = {pid: set(mine) for pid, mine in self._since.items()}
        hidden = set(self._hidden)
        kept = self._adopt(self.app.registry.current(), engine)
        return self._switch(engine, states, old, hidden, kept, now, reason, seq, wseq)

    def delete(self, segment_id: str, *, force: bool = False) -> list[LoggedChange]:
        """Delete a segment (protected or referenced ones refuse, as the registry does);
        its members exit with reason ``deleted``."""
        if segment_id not in self._segments or segment_id in self._hidden:
            raise KeyError(f"unknown segment {segment_id!r}")
        out = self.catch_up()
        self.app.delete(segment_id, force=force)
        now = self._now()
        exits = [
            Change(segment_id, pid, False, now, Reason.DELETED) for pid in self.members(segment_id)
        ]
        out += self._record(exits)
        self._hidden.add(segment_id)
        return out

    def save_group(self, group: Group) -> tuple[Group, str]:
        """Save a priority group and switch to it at once: profiles that move between
        its resolved members are logged now with ``definition_changed`` (a removed
        member's resolution exits with ``deleted``)."""
        self.catch_up()
        ((saved, status),) = self.app.registry.save_groups([group])
        if status != "unchanged":
            self._reload(Reason.DEFINITION_CHANGED)
        return saved, status

    def delete_group(self, group_id: str) -> Group:
        """Delete a priority group (refused while a segment reads its resolution); its
        resolved members' members exit with ``deleted``."""
        self.catch_up()
        group = self.app.registry.delete_group(group_id)
        self._reload(Reason.DEFINITION_CHANGED)
        return group

    def _reload(self, reason: Reason) -> list[LoggedChange]:
        """Recompile from the registry and rebuild every state at now from history; the
        membership differences are logged at now with ``reason``."""
        now = self._now()
        old = {pid: set(mine) for pid, mine in self._since.items()}
        hidden = set(self._hidden)
        segments = self.app.registry.current()
        engine = compile_engine(build_plan(segments.values()))
        # a scheduled segment is evaluated when its definition changes, else it waits
        kept = self._adopt(segments, engine)
        seq = self.reader.max_seq()
        wseq = self.reader.max_wseq()
        states = self._build(engine, now, upto_seq=seq, upto_wseq=wseq)
        return self._switch(engine, states, old, hidden, kept, now, reason, seq, wseq)

    def _switch(
        self,
        engine: ProfileEngine,
        states: dict[str, ProfileState],
        old: dict[str, set[str]],
        hidden: set[str],
        kept: set[str],
        now: datetime,
        reason: Reason,
        seq: int,
        wseq: int,
    ) -> list[LoggedChange]:
        """Run ``engine`` over ``states`` (as of now) from here on, logging at now the
        differences from the memberships ``old`` (less the ``hidden`` segments); the
        scheduled segments ``kept`` (definition unchanged) keep their logged members
        until their next refresh, the other scheduled ones count as refreshed now."""
        old_runner = self._runner
        runner = self._install(engine, states)
        changes: list[Change] = []
        for pid in sorted(set(states) | set(old)):
            st = states.get(pid)
            new = engine.memberships(st) if st is not None else set()
            was = old.get(pid, set()) - hidden
            if kept and st is not None:
                new = (new - kept) | (was & kept)
            for sid in sorted(new - was):
                changes.append(Change(sid, pid, True, now, reason))
            for sid in sorted(was - new):
                gone: Reason = reason if sid in self._segments else Reason.DELETED
                changes.append(Change(sid, pid, False, now, gone))
        del old_runner
        self._seq = seq
        self._wseq = wseq
        self._merges = self.reader.merge_mark()
        for sid in sorted(set(self._scheduled) - kept):
            self._refreshed(sid, now)
        out = self._record(changes)
        self._cover(now)
        out += self._record(runner.advance_to(now))
        self._set_marks(now)
        self._evaluated = to_us(now)
        return out

    def forget_profile(self, profile_id: str) -> list[LoggedChange]:
        """Privacy delete: drop the profile's state; every membership exits (``deleted``)."""
        runner = self.runner
        now = self._now()
        exits = self._exits(profile_id, now, Reason.DELETED)
        runner.states.pop(profile_id, None)
        runner.timers.schedule(profile_id, None)
        return self._record(exits)

    # ------------------------------------------------------------------ replay

    def replay(
        self,
        *,
        start: datetime | None = None,
        until: datetime | None = None,
        speed: float | None = None,
        on_changes: Subscriber | None = None,
    ) -> list[LoggedChange]:
        """Feed stored events through the engine in time order on a ``VirtualClock`` (it
        becomes this evaluator's clock):
        states start as of ``start`` (default: just before the first event), every
        later event and trait write is applied at its own instant and timers fire in
        between.  ``on_changes`` sees every change as it happens (``seq`` 0: not stored
        yet); the log gets them in batches (idempotently) and the stored ones are
        returned and published to subscribers.  ``speed`` paces the replay (2.0: twice
        real time); ``until`` stops it (default: the last input).  Profiles are as
        stored (merges already applied to history)."""
        first = self.store.first_event_at() or self.clock.now()
        t0 = start if start is not None else first - US
        clock = VirtualClock(t0)
        self.clock = clock
        engine = self._compile(self.app.registry.current())
        seq = self.reader.max_seq()
        wseq = self.reader.max_wseq()
        t0_us = to_us(t0)
        states = self._build(engine, t0, upto_seq=seq, upto_wseq=wseq, inputs_upto_at=True)
        self._old_versions = {}
        runner = self._install(engine, states)
        self._since = {}
        for sid in self._scheduled:
            self._refresh[sid] = self._cron_next(sid, t0)
        baseline = [
            Change(sid, pid, True, t0, Reason.DEFINITION_CHANGED)
            for pid in sorted(states)
            for sid in sorted(engine.memberships(states[pid]))
        ]
        self._cover(t0)
        out: list[LoggedChange] = []
        pending: list[Change] = list(baseline)

        def emit(step: list[Change]) -> None:
            if step:
                pending.extend(step)
                if on_changes is not None:
                    on_changes([LoggedChange(*c, self._version(c[0])) for c in step])

        def flush() -> None:
            nonlocal pending
            if pending:
                out.extend(self._record(pending))
                pending = []

        def refresh() -> None:
            """Every scheduled refresh due by now, one cron instant at a time."""
            while (nxt := self._next_refresh()) is not None and nxt <= clock.now():
                flush()
                emit(self._refresh_due(nxt))

        if on_changes is not None and baseline:
            on_changes([LoggedChange(*c, self._version(c[0])) for c in baseline])
        end = to_us(until) if until is not None else None
        wall = time.monotonic()
        for ts, pid, item in self._timeline(t0_us, end, seq, wseq):
            if speed:
                pause = wall + (ts - t0_us) / 1e6 / speed - time.monotonic()
                if pause > 0:
                    flush()
                    time.sleep(pause)
            if ts - 1 > to_us(clock.now()):
                clock.set(from_us(ts - 1))
                refresh()
                emit(runner.advance_to(clock.now()))
            clock.set(from_us(ts))
            if isinstance(item, StoredTrait):
                st = runner.state(pid)
                step = engine.set_trait_us(st, ts, item.message_id, item.key, item.value, ts)
                emit(runner.after_step(pid, st, step))
            else:
                _p, _ts, name, fields, _m = item
                emit(runner.ingest_us(pid, ts, name, fields, ts))
            if len(pending) >= REPLAY_FLUSH:
                flush()
        stop = until if until is not None else clock.now()
        if stop > clock.now():
            clock.set(stop)
        refresh()
        emit(runner.advance_to(clock.now()))
        flush()
        self._evaluated = to_us(clock.now())
        self._seq = seq
        self._wseq = wseq
        self._merges = self.reader.merge_mark()
        mark = self.log.mark()
        if mark is None or mark[1] <= clock.now():
            self._set_marks(clock.now())
        return out

    def _timeline(
        self, after: int, end: int | None, seq: int, wseq: int
    ) -> Iterator[tuple[int, str, EventRow | StoredTrait]]:
        """Events and trait writes with ``after < ts <= end`` in time order, streamed."""

        def events() -> Iterator[tuple[int, int, str, EventRow | StoredTrait]]:
            for batch in self.reader.events(
                self._names, self._paths, upto_seq=seq, order="time", after_ts=after, upto_ts=end
            ):
                for r in batch:
                    yield r[1], 0, r[0], r

        def traits() -> Iterator[tuple[int, int, str, EventRow | StoredTrait]]:
            for batch in self.reader.traits(
                self._trait_keys,
                upto_seq=seq,
                upto_wseq=wseq,
                order="time",
                after_ts=after,
                upto_ts=end,
            ):
                for w in batch:
                    yield w.ts, 1, w.profile_id, w

        for ts, _k, pid, item in heapq.merge(events(), traits(), key=lambda x: (x[0], x[1])):
            yield ts, pid, item


__all__ = [
    "LiveEvaluator",
    "LoggedChange",
    "plan_paths",
]
