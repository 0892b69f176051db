"""Conformance of the hosted engine: ``LiveEvaluator`` over a real DuckDB file equals the
batch SQL evaluator, and its stored change log is exact.

Random definitions over every condition kind; random streams of Segment messages
(events, trait writes through identify, identify/alias merges of an anonymous profile
into a user profile) ingested through the store in a few group commits, each followed
by ``catch_up``; some trait writes are stored with no event (as a scores refresh
writes them); inputs arrive in order, late, or from the future.  At random
checkpoints (after ``tick``) every live membership equals ``segflow.store.duckdb.batch.evaluate``
on the store at that instant.  At the end the log is checked instant by instant against
the interpreter (itself checked against SQL elsewhere): wherever the engine knew every
input stamped up to an instant, the log's membership at that instant, and one
microsecond before it, is the interpreter's on the profile's history (the union after
a merge), so every change's ``at`` is the first instant the batch evaluator sees it.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from segflow.model.changes import LoggedChange
from segflow.model.history import Event, ProfileHistory, TraitWrite
from segflow.plan.interpret import Interpreter
from segflow.plan.planner import build_plan
from segflow.realtime import VirtualClock
from segflow.service.live import LiveEvaluator
from segflow.store.duckdb.batch import evaluate
from tests.helpers import Run, flip_instants, plan_durations
from tests.strategies import (
    END,
    LIVE_BASE_EXAMPLES,
    LIVE_EXAMPLES,
    START,
    US,
    Input,
    LiveScenario,
    live_scenarios,
)

pytestmark = pytest.mark.slow  # long property runs over DuckDB files


@dataclass
class Epoch:
    """A span of a profile's life with one history: [lo, hi) and every input in it
    (arrival, input) -- its own, plus its merged sources' after a merge."""

    profile_id: str
    lo: datetime
    hi: datetime | None
    inputs: list[tuple[datetime, Input]] = field(default_factory=list)
    static: frozenset[str] = frozenset()
    end: datetime = END

    def history(self) -> ProfileHistory:
        return ProfileHistory(
            self.profile_id,
            [i for _a, i in self.inputs if isinstance(i, Event)],
            [i for _a, i in self.inputs if isinstance(i, TraitWrite)],
            self.static,
        )

    def complete(self, x: datetime) -> bool:
        """The engine knew every input stamped up to ``x`` by ``x``."""
        if x < self.lo or x > self.end or (self.hi is not None and x >= self.hi):
            return False
        return all(a <= x for a, i in self.inputs if i.timestamp <= x)


def epochs(sc: LiveScenario, start: datetime) -> list[Epoch]:
    """Each profile's epochs, split where a merge arrived (with the store's commit
    instants: an input is known from the commit that ingests it)."""

    def committed(a: datetime) -> datetime:
        return next(c for c in sc.commits if c >= a)

    merged_at = {m.source: committed(a) for a, m in sc.merges}
    # A source first stored by the merge's own commit never was a profile of its own:
    # the store gives its inputs to the target directly, as the target's late inputs
    # (known from that commit), so the target's history has no cut there.
    existed = {
        m.source
        for _a, m in sc.merges
        if any(committed(a) < merged_at[m.source] for a, _i in sc.own.get(m.source, []))
    }
    end = max(sc.checkpoints[-1], sc.commits[-1])
    out: list[Epoch] = []
    for pid, items in sc.own.items():
        if pid in merged_at:
            mine = [(committed(a), i) for a, i in items]
            first = min((a for a, _i in mine), default=None)
            if first is not None and first < merged_at[pid]:
                lo = max(first, start)
                out.append(Epoch(pid, lo, merged_at[pid], mine, sc.statics[pid], end))
            continue
        cuts = sorted(
            {merged_at[m.source] for _a, m in sc.merges if m.target == pid and m.source in existed}
        )
        inputs = [(committed(a), i) for a, i in items]
        firsts = [a for a, _i in inputs] + [committed(a) for a, m in sc.merges if m.target == pid]
        if not firsts:
            continue
        lo = max(min(firsts), start)
        bounds = [lo, *[c for c in cuts if c > lo], None]
        for b_lo, b_hi in itertools.pairwise(bounds):
            assert b_lo is not None
            hist = list(inputs)
            for _a, m in sc.merges:
                if m.target == pid and (m.source not in existed or merged_at[m.source] <= b_lo):
                    hist += [
                        (max(committed(a), merged_at[m.source]), i) for a, i in sc.own[m.source]
                    ]
            out.append(Epoch(pid, b_lo, b_hi, hist, sc.statics[pid], end))
    return out


def log_value(log: list[LoggedChange], pid: str, x: datetime) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for c in log:
        if c.profile_id == pid and c.at <= x:
            out[c.segment_id] = c.entered
    return out


def check_log(run: Run) -> None:
    """Per (segment, profile) the log alternates enter/exit in time order, and at every
    instant the engine had complete knowledge of, it says what the interpreter says."""
    log = run.log
    seqs = [c.seq for c in log]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    state: dict[tuple[str, str], tuple[bool, datetime]] = {}
    for c in log:
        prev = state.get((c.segment_id, c.profile_id))
        if prev is not None:
            assert prev[0] != c.entered, c
            assert prev[1] <= c.at, c
        else:
            assert c.entered, c
        state[(c.segment_id, c.profile_id)] = (c.entered, c.at)
    plan = build_plan(run.sc.segments)
    durations = plan_durations(plan)
    ids = sorted(plan.formulas)
    for ep in epochs(run.sc, run.start):
        h = ep.history()
        cands = {x for x in flip_instants(h, durations)}
        cands |= {c.at for c in log if c.profile_id == ep.profile_id}
        cands |= {ep.lo}
        for x in sorted(cands | {x - US for x in cands}):
            if not ep.complete(x):
                continue
            got = log_value(log, ep.profile_id, x)
            expected = Interpreter(plan, h, x).segments()
            assert {s: got.get(s, False) for s in ids} == expected, (ep.profile_id, x)


@contextmanager
def _store(sc: LiveScenario) -> Iterator[Run]:
    """A run over a fresh DuckDB file, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="segflow-live-"))
    run = Run(sc, root / "live.duckdb")
    try:
        yield run
    finally:
        run.close()
        shutil.rmtree(root, ignore_errors=True)


@settings(
    max_examples=LIVE_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(sc=live_scenarios())
def test_live_equals_batch_through_merges_traits_and_late_events(sc: LiveScenario) -> None:
    with _store(sc) as run:
        run.run()
        check_log(run)


@settings(
    max_examples=max(10, LIVE_BASE_EXAMPLES // 20),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(sc=live_scenarios())
def test_catch_up_restart_and_replay_are_idempotent(sc: LiveScenario) -> None:
    with _store(sc) as run:
        run.run(sql_checks=False)
        logged = run.live.log.query()
        assert run.live.catch_up() == []
        assert run.live.tick() == []
        again = LiveEvaluator(run.app, VirtualClock(run.clock.now()))
        assert again.start() == []
        assert run.live.log.query() == logged
        end = run.clock.now()
        first = LiveEvaluator(run.app, VirtualClock(START - timedelta(days=1)))
        replayed = first.replay(until=end)
        second = LiveEvaluator(run.app, VirtualClock(START - timedelta(days=1)))
        assert second.replay(until=end) == []
        after = run.live.log.query()
        assert len(after) == len(logged) + len(replayed)
        keys = [(c.segment_id, c.profile_id, c.at, c.entered, c.version) for c in after]
        assert len(set(keys)) == len(keys)
        res = evaluate(run.app.store.con, run.segments.values(), end)
        for sid in run.segments:
            assert first.members(sid) == second.members(sid) == res.members(sid), sid
