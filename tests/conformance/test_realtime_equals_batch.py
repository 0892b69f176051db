"""Conformance: the real-time evaluator equals the interpreter (hence the SQL evaluator)
at every instant, and every membership change carries the exact instant.

Random plans over every condition kind (the batch property test's strategies, plus
time-relative predicates on event properties), random streams of events and trait
writes arriving in order, with lag, late (before the profile's watermark) or from the
future, and random checkpoints.  After every input and every ``advance_to`` the change
log of each profile is checked against the interpreter at *every* instant where the
interpreter's answer could flip (each ``x + d`` for x an event time or a parsed date and
d a duration of the plan), one microsecond before it and at it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segflow.model.definition import (
    Segment,
)
from segflow.model.history import Event, ProfileHistory, TraitWrite
from segflow.plan.interpret import Interpreter
from segflow.plan.planner import build_plan
from segflow.realtime import Change, RealtimeRunner, VirtualClock, compile_engine
from segflow.store.duckdb.batch import evaluate
from tests.helpers import flip_instants, load, plan_durations
from tests.strategies import (
    END,
    LAGS,
    NAMES,
    START,
    US,
    WHEN,
    dense_events,
    histories,
    instants,
    rt_conditions,
    stream_groups,
    stream_segments,
)

pytestmark = pytest.mark.slow  # long property runs

EXAMPLES = int(os.environ.get("SEGFLOW_EXAMPLES", "200"))

# --------------------------------------------------------------------------- strategies


@dataclass
class Scenario:
    segments: list[Segment]
    histories: list[ProfileHistory]
    inputs: list[tuple[datetime, str, Event | TraitWrite]] = field(default_factory=list)
    checkpoints: list[datetime] = field(default_factory=list)


@st.composite
def scenarios(
    draw: st.DrawFn, conditions: st.SearchStrategy[Any] = rt_conditions, *, dense: int = 12
) -> Scenario:
    conds = draw(st.lists(conditions, min_size=1, max_size=3))
    segments = stream_segments(conds, draw(stream_groups(len(conds))))
    hs: list[ProfileHistory] = []
    inputs: list[tuple[datetime, str, Event | TraitWrite]] = []
    for h in draw(histories()):
        more = draw(st.lists(dense_events, min_size=dense // 4, max_size=dense))
        evs = []
        for j, e in enumerate([*h.events, *more]):
            when = draw(st.sampled_from(WHEN))
            fields = {**e.fields, "properties.when": when} if when else dict(e.fields)
            evs.append(Event(e.timestamp, e.name, fields, f"{h.profile_id}e{j}"))
        hs.append(ProfileHistory(h.profile_id, evs, list(h.traits), h.static_segments))
        items: list[Event | TraitWrite] = [*evs, *h.traits]
        for item in items:
            arrival = max(START, item.timestamp + draw(st.sampled_from(LAGS)))
            inputs.append((arrival, h.profile_id, item))
    order = draw(st.permutations(range(len(inputs))))
    inputs = [inputs[i] for i in order]
    inputs.sort(key=lambda x: x[0])
    last = max([END, *(t for t, _p, _i in inputs)])
    checkpoints = [*sorted(set(draw(st.lists(instants, max_size=5)))), last]
    return Scenario(segments, hs, inputs, checkpoints)


plain_windows = st.sampled_from(["1d", "2d", {"from_ago": "2d", "to_ago": "1h"}])
chains = st.one_of(
    st.builds(
        lambda names, w, span: {
            "sequence": [{"event": n} for n in names],
            "within": w,
            **({"span": span} if span else {}),
        },
        st.lists(st.sampled_from(NAMES), min_size=2, max_size=3),
        plain_windows,
        st.sampled_from([None, "1h", "1d"]),
    ),
    st.builds(
        lambda n, w, k: {"event": n, "within": w, "gte": k},
        st.sampled_from(NAMES),
        plain_windows,
        st.integers(1, 3),
    ),
)
"""Unfiltered sequences and windowed counts: many events share each step, so chains form,
break and re-form as events enter and leave the window."""


# --------------------------------------------------------------------------- checking


class Checker:
    """Replays a scenario through a runner and checks the log against the interpreter."""

    def __init__(self, sc: Scenario) -> None:
        self.plan = build_plan(sc.segments)
        self.durations = plan_durations(self.plan)
        self.engine = compile_engine(self.plan)
        self.clock = VirtualClock(START)
        statics = {h.profile_id: h.static_segments for h in sc.histories}
        self.runner = RealtimeRunner(self.engine, clock=self.clock, static_segments=statics)
        self.known = {
            h.profile_id: ProfileHistory(h.profile_id, [], [], h.static_segments)
            for h in sc.histories
        }
        self.members: dict[str, dict[str, bool]] = {}
        self.last_at: dict[str, datetime] = {}
        self.sc = sc
        self.checks = 0

    def interp(self, h: ProfileHistory, t: datetime) -> dict[str, bool]:
        self.checks += 1
        return Interpreter(self.plan, h, t).segments()

    def watermark(self, pid: str) -> datetime:
        w = self.engine.watermark(self.runner.states[pid])
        assert w is not None
        return w

    def run(self, *, exact: bool = True) -> None:
        for pid in self.known:
            changes = self.runner.add_profile(pid, START)
            expected = self.interp(self.known[pid], START)
            assert {c.segment_id for c in changes} == {s for s, m in expected.items() if m}
            self.members[pid] = expected
        timeline: list[tuple[datetime, int, Any]] = [(t, 0, item) for t, *item in self.sc.inputs]
        timeline += [(t, 1, None) for t in self.sc.checkpoints]
        timeline.sort(key=lambda x: (x[0], x[1]))
        for now, kind, item in timeline:
            self.clock.set(now)
            if kind == 1:
                self.checkpoint(now, exact=exact)
            else:
                self.input(now, item[0], item[1], exact=exact)

    def input(self, now: datetime, pid: str, item: Event | TraitWrite, *, exact: bool) -> None:
        before = self.known[pid]
        w_old = self.watermark(pid)
        statics = before.static_segments
        if isinstance(item, Event):
            after = ProfileHistory(pid, [*before.events, item], before.traits, statics)
            changes = self.runner.ingest(pid, item, now)
        else:
            after = ProfileHistory(pid, before.events, [*before.traits, item], statics)
            changes = self.runner.set_trait(pid, item, now)
        self.known[pid] = after
        ts = item.timestamp
        if ts > now:
            assert changes == [], "an input from the future changes nothing yet"
            return
        t = ts if ts >= w_old else now
        if self.watermark(pid) == w_old and t != w_old:
            assert changes == [], "an input no feature reads leaves the state alone"
            return
        assert self.watermark(pid) == t
        if exact:
            self.verify(pid, before, w_old, t, changes, final=after)
        else:
            self.apply_log(pid, changes)

    def checkpoint(self, now: datetime, *, exact: bool) -> None:
        olds = {pid: self.watermark(pid) for pid in self.known}
        changes = self.runner.advance_to(now)
        for pid, h in self.known.items():
            mine = [c for c in changes if c.profile_id == pid]
            if exact:
                self.verify(pid, h, olds[pid], now, mine, final=None)
            else:
                self.apply_log(pid, mine)
            expected = self.interp(h, now)
            assert self.members[pid] == expected, (pid, now)
            got = self.runner.segments_of(pid)
            assert got == {s for s, m in expected.items() if m}, (pid, now, got)
            assert len([s for s in got if s.startswith("tiers:")]) <= 1, "a group is exclusive"
            nd = self.runner.engine.next_deadline(self.runner.states[pid])
            assert nd is None or nd > now

    def apply_log(self, pid: str, changes: list[Change]) -> None:
        cur = self.members[pid]
        for c in changes:
            assert cur[c.segment_id] != c.entered, c
            cur[c.segment_id] = c.entered

    def verify(
        self,
        pid: str,
        h: ProfileHistory,
        w_old: datetime,
        t: datetime,
        changes: list[Change],
        *,
        final: ProfileHistory | None,
    ) -> None:
        """The log of one step against the interpreter.

        Before ``t`` (and up to ``t`` when no input comes, ``final`` None) the history is
        ``h``: at every candidate flip instant x in the step, the log must say what the
        interpreter says at x - 1µs and at x.  With an input at ``t``, memberships after
        the step must be the interpreter's on ``final`` at ``t``."""
        ats = [c.at for c in changes]
        assert ats == sorted(ats), "changes of one profile come in time order"
        assert not ats or ats[0] >= max(w_old, self.last_at.get(pid, w_old)), (ats, w_old)
        if ats:
            self.last_at[pid] = ats[-1]
        cur = self.members[pid]
        # deadlines fire with window_expired, inputs from the future with their own reason
        assert all(c.reason in ("window_expired", "event", "trait_changed") for c in changes)
        pre = [c for c in changes if final is None or c.at < t]
        limit = t if final is not None else t + US
        cands = {x for x in flip_instants(h, self.durations) if w_old < x < limit}
        cands |= {c.at for c in pre}
        i = 0
        for x in sorted(cands):
            if x - US >= w_old:
                assert self.interp(h, x - US) == cur, (pid, "before", x)
            seen: set[str] = set()
            while i < len(pre) and pre[i].at == x:
                c = pre[i]
                assert c.segment_id not in seen, f"two changes of {c.segment_id} at {x}"
                seen.add(c.segment_id)
                assert cur[c.segment_id] != c.entered, c
                cur[c.segment_id] = c.entered
                i += 1
            assert self.interp(h, x) == cur, (pid, "at", x, pre)
        assert i == len(pre)
        if final is None:
            return
        if t > w_old and t - US >= w_old:
            assert self.interp(h, t - US) == cur, (pid, "before input", t)
        seen = set()
        for c in changes[len(pre) :]:
            assert c.at == t and c.segment_id not in seen, c
            seen.add(c.segment_id)
            assert cur[c.segment_id] != c.entered, c
            cur[c.segment_id] = c.entered
        assert self.interp(final, t) == cur, (pid, "after input", t, changes)


# --------------------------------------------------------------------------- tests


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(sc=scenarios())
def test_realtime_log_is_exact_and_equals_interpreter(sc: Scenario) -> None:
    Checker(sc).run()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(sc=scenarios(chains, dense=20))
def test_sequence_chains_and_counts_are_exact_as_events_come_and_go(sc: Scenario) -> None:
    Checker(sc).run()


@settings(
    max_examples=max(10, EXAMPLES // 8),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(sc=scenarios())
def test_realtime_equals_sql_batch_evaluator(sc: Scenario) -> None:
    checker = Checker(sc)
    checker.run(exact=False)
    con = duckdb.connect()
    load(con, sc.histories)
    got = evaluate(con, sc.segments, sc.checkpoints[-1]).membership_map()
    assert checker.runner.memberships() == got


@settings(max_examples=max(10, EXAMPLES // 8), deadline=None)
@given(sc=scenarios())
def test_replay_is_deterministic_and_rebuild_agrees(sc: Scenario) -> None:
    a, b = Checker(sc), Checker(sc)
    a.run(exact=False)
    b.run(exact=False)
    assert a.runner.log == b.runner.log
    engine = a.engine
    end = sc.checkpoints[-1]
    later = end + timedelta(days=8)
    a.runner.advance_to(later)
    for h in sc.histories:
        rebuilt = engine.rebuild(h.profile_id, h.events, h.traits, h.static_segments, end)
        assert engine.memberships(rebuilt) == b.runner.segments_of(h.profile_id)
        engine.advance(rebuilt, later)
        expected = {s for s, m in Interpreter(a.plan, h, later).segments().items() if m}
        assert engine.memberships(rebuilt) == expected == a.runner.segments_of(h.profile_id)
