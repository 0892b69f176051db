"""Conformance of the hosted engine: ``LiveEvaluator`` over a real DuckDB file equals the
batch SQL evaluator, and its stored change log is exact.

Random definitions over every condition kind; random streams of Segment messages
(events, trait writes through identify, identify/alias merges of an anonymous profile
into a user profile) ingested through the store in a few group commits, each followed
by ``catch_up``; some trait writes are stored with no event (as a scores refresh
writes them); inputs arrive in order, late, or from the future.  At random
checkpoints (after ``tick``) every live membership equals ``segflow.batch.run.evaluate``
on the store at that instant.  At the end the log is checked instant by instant against
the interpreter (itself checked against SQL elsewhere): wherever the engine knew every
input stamped up to an instant, the log's membership at that instant, and one
microsecond before it, is the interpreter's on the profile's history (the union after
a merge), so every change's ``at`` is the first instant the batch evaluator sees it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segflow.batch.run import evaluate
from segflow.live import LiveEvaluator
from segflow.model.changes import LoggedChange
from segflow.model.definition import CALL_TYPES, Segment, parse_segment
from segflow.model.history import Event, ProfileHistory, TraitWrite
from segflow.model.time import format_instant
from segflow.plan.interpret import Interpreter
from segflow.plan.planner import build_plan
from segflow.realtime import VirtualClock
from segflow.service import Segflow
from tests.conformance.test_realtime_equals_batch import (
    END,
    LAGS,
    START,
    WHEN,
    dense_events,
    flip_instants,
    plan_durations,
    rt_conditions,
)
from tests.unit.batch.test_batch_matches_interpreter import histories, instants, offsets

US = timedelta(microseconds=1)
EXAMPLES = int(
    os.environ.get("SEGFLOW_EXAMPLES")
    or (settings.default.max_examples if settings.get_current_profile_name() == "long" else 200)
)
LIVE_EXAMPLES = max(20, EXAMPLES // 4)
"""Each example ingests through the store and runs SQL, so fewer of them are run."""

Input = Event | TraitWrite


@dataclass
class Merge:
    source: str
    target: str
    kind: str  # identify | alias
    timestamp: datetime
    message_id: str


@dataclass
class Scenario:
    segments: list[Segment]
    own: dict[str, list[tuple[datetime, Input]]]  # profile -> (arrival, input)
    statics: dict[str, frozenset[str]]
    anonymous: set[str]
    merges: list[tuple[datetime, Merge]]
    commits: list[datetime]
    checkpoints: list[datetime]
    standalone: frozenset[str] = frozenset()
    """Message ids of trait writes stored straight into ``traits`` (no event) when their
    profile exists and was not merged away by then (else sent as identify calls)."""


def _nest(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, v in fields.items():
        node = out
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    conds = draw(st.lists(rt_conditions, min_size=1, max_size=3))
    segments = [parse_segment({"id": "vip", "mode": "static", "members": ["x"]})]
    segments += [parse_segment({"id": f"s{i}", "condition": c}) for i, c in enumerate(conds)]
    segments.append(parse_segment({"id": "ref", "condition": {"not": {"in_segment": "s0"}}}))
    chain = {"all": [{"in_segment": "ref"}, {"in_segment": f"s{len(conds) - 1}"}]}
    segments.append(parse_segment({"id": "chain", "condition": chain}))
    hs = draw(histories())
    own: dict[str, list[tuple[datetime, Input]]] = {}
    statics: dict[str, frozenset[str]] = {}
    standalone: set[str] = set()
    for h in hs:
        more = draw(st.lists(dense_events, max_size=4))
        items: list[Input] = []
        for j, e in enumerate([*h.events, *more]):
            when = draw(st.sampled_from(WHEN))
            fields = {**e.fields, "properties.when": when} if when else dict(e.fields)
            items.append(Event(e.timestamp, e.name, fields, f"{h.profile_id}e{j}"))
        for w in h.traits:
            items.append(TraitWrite(w.timestamp, f"{h.profile_id}-{w.message_id}", w.key, w.value))
            if draw(st.booleans()):
                standalone.add(items[-1].message_id)
        own[h.profile_id] = [
            (max(START, i.timestamp + draw(st.sampled_from(LAGS))), i) for i in items
        ]
        statics[h.profile_id] = h.static_segments
    pids = sorted(own)
    anonymous: set[str] = set()
    merges: list[tuple[datetime, Merge]] = []
    if len(pids) >= 2:
        sources = draw(st.lists(st.sampled_from(pids[1:]), max_size=2, unique=True))
        users = [p for p in pids if p not in sources]
        for src in sources:
            tgt = draw(st.sampled_from(users))
            ts = START + timedelta(days=1) + draw(offsets)
            arrival = max(START, ts + draw(st.sampled_from(LAGS)))
            kind = draw(st.sampled_from(["identify", "alias"]))
            merges.append((arrival, Merge(src, tgt, kind, ts, f"merge-{src}")))
            anonymous.add(src)
    arrivals = sorted(
        {a for items in own.values() for a, _i in items} | {a for a, _m in merges} | {START}
    )
    cuts = sorted(set(draw(st.lists(st.sampled_from(arrivals), min_size=1, max_size=3))))
    commits = [*cuts, arrivals[-1]] if cuts[-1] < arrivals[-1] else cuts
    last = max([END, *commits])
    checkpoints = [*sorted(set(draw(st.lists(instants, max_size=3)))), last]
    return Scenario(
        segments, own, statics, anonymous, merges, commits, checkpoints, frozenset(standalone)
    )


def messages(sc: Scenario, pid: str, item: Input) -> dict[str, Any]:
    who = {"anonymousId" if pid in sc.anonymous else "userId": pid}
    ts = format_instant(item.timestamp)
    if isinstance(item, Event) and item.name in CALL_TYPES:
        # a page/screen call: its name as the spec sends it (ingestion moves it into
        # properties), a name that is no string stays in properties
        fields = dict(item.fields)
        name = fields.get("properties.name")
        if isinstance(name, str):
            del fields["properties.name"]
        return {
            "type": CALL_TYPES[item.name],
            **({"name": name} if isinstance(name, str) else {}),
            **who,
            "timestamp": ts,
            "messageId": item.message_id,
            **_nest(fields),
        }
    if isinstance(item, Event):
        return {
            "type": "track",
            "event": item.name,
            **who,
            "timestamp": ts,
            "messageId": item.message_id,
            **_nest(dict(item.fields)),
        }
    return {
        "type": "identify",
        **who,
        "timestamp": ts,
        "messageId": item.message_id,
        "traits": {item.key: item.value},
    }


def trait_row(pid: str, w: TraitWrite) -> list[Any]:
    """A ``traits`` row of no event: (profile, key, timestamp, message id, kind, num, str,
    bool)."""
    v = w.value
    if v is None:
        return [pid, w.key, w.timestamp, w.message_id, "null", None, None, None]
    if isinstance(v, bool):
        return [pid, w.key, w.timestamp, w.message_id, "bool", None, None, v]
    if isinstance(v, int | float):
        return [pid, w.key, w.timestamp, w.message_id, "number", float(v), None, None]
    return [pid, w.key, w.timestamp, w.message_id, "string", None, str(v), None]


def merge_message(m: Merge) -> dict[str, Any]:
    ts = format_instant(m.timestamp)
    if m.kind == "identify":
        return {
            "type": "identify",
            "userId": m.target,
            "anonymousId": m.source,
            "timestamp": ts,
            "messageId": m.message_id,
        }
    return {
        "type": "alias",
        "userId": m.target,
        "previousId": m.source,
        "timestamp": ts,
        "messageId": m.message_id,
    }


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


def epochs(sc: Scenario, start: datetime) -> list[Epoch]:
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


class Run:
    """Ingests a scenario commit by commit into a DuckDB file, driving a LiveEvaluator."""

    def __init__(self, sc: Scenario, path: Path) -> None:
        self.sc = sc
        self.app = Segflow(path)
        self.app.registry.save(sc.segments)
        vip = [p for p, s in sc.statics.items() if "vip" in s]
        self.app.registry.set_static_members("vip", vip)
        self.clock = VirtualClock(START)
        self.live = LiveEvaluator(self.app, self.clock)
        self.segments = self.app.registry.current()
        self.log: list[LoggedChange] = []

    def close(self) -> None:
        self.app.close()

    def batches(self) -> Iterator[tuple[datetime, list[dict[str, Any]], list[list[Any]]]]:
        """Per commit: the messages it ingests and the trait rows of no event it writes."""
        sc = self.sc
        pending: list[tuple[datetime, int, dict[str, Any]]] = []
        alone: list[tuple[datetime, str, TraitWrite]] = []
        for pid, items in sc.own.items():
            for a, i in items:
                if isinstance(i, TraitWrite) and i.message_id in sc.standalone:
                    alone.append((a, pid, i))
                else:
                    pending.append((a, 1, messages(sc, pid, i)))
        for a, m in sc.merges:
            pending.append((a, 0, merge_message(m)))
        alone.sort(key=lambda x: (x[0], x[2].message_id))
        merged_at = {m.source: next(c for c in sc.commits if c >= a) for a, m in sc.merges}
        exists: set[str] = set()
        for c in sc.commits:
            now = [(k, msg) for a, k, msg in pending if a <= c]
            pending = [p for p in pending if p[0] > c]
            for _k, msg in now:
                exists.add(str(msg.get("userId") or msg["anonymousId"]))
            rows: list[list[Any]] = []
            for _a, pid, w in [x for x in alone if x[0] <= c]:
                if pid in exists and merged_at.get(pid, c + US) > c:
                    rows.append(trait_row(pid, w))
                else:  # no profile to write to yet, or merged away: an identify call
                    now.append((1, messages(sc, pid, w)))
                    exists.add(pid)
            alone = [x for x in alone if x[0] > c]
            yield c, [msg for _k, msg in now], rows

    def ingest(self, msgs: list[dict[str, Any]]) -> None:
        """Store one commit's messages (a hook: ``test_live_fast`` stores them as the
        HTTP API does)."""
        self.app.store.ingest_messages(msgs)

    def catch_up(self) -> list[LoggedChange]:
        """Let the live evaluator catch up after a commit (a hook, as ``ingest``)."""
        return self.live.catch_up()

    def run(self, *, sql_checks: bool = True) -> None:
        started = False
        timeline: list[tuple[datetime, int, list[dict[str, Any]], list[list[Any]]]] = [
            (c, 0, msgs, rows) for c, msgs, rows in self.batches()
        ]
        timeline += [(t, 1, [], []) for t in self.sc.checkpoints]
        timeline.sort(key=lambda x: (x[0], x[1]))
        for t, kind, msgs, rows in timeline:
            self.clock.set(t)
            if kind == 0:
                if msgs:
                    self.ingest(msgs)
                if rows:
                    self.app.con.executemany(
                        'INSERT INTO traits (profile_id, profile_no, key, "timestamp",'
                        " message_id, kind, num, str, bool) SELECT $1, (SELECT profile_no"
                        " FROM profiles WHERE profile_id = $1), $2, $3, $4, $5, $6, $7, $8",
                        rows,
                    )
                if not started:
                    self.log += self.live.start()
                    self.start = t
                    started = True
                else:
                    self.log += self.catch_up()
            elif started:
                self.log += self.live.tick()
                if sql_checks:
                    self.check_sql(t)

    def check_sql(self, t: datetime) -> None:
        res = evaluate(self.app.con, self.segments.values(), t)
        members = {sid: set(res.members(sid)) for sid in self.segments}
        for sid in self.segments:
            live = set(self.live.members(sid))
            assert live == members[sid], (sid, t, live - members[sid], members[sid] - live)
        for pid in self.app.store.profile_ids():
            expected = {sid for sid, ms in members.items() if pid in ms}
            assert set(self.live.segments_of(pid)) == expected, (pid, t)


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
def _store(sc: Scenario) -> Iterator[Run]:
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
@given(sc=scenarios())
def test_live_equals_batch_through_merges_traits_and_late_events(sc: Scenario) -> None:
    with _store(sc) as run:
        run.run()
        check_log(run)


@settings(
    max_examples=max(10, EXAMPLES // 20),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(sc=scenarios())
def test_catch_up_restart_and_replay_are_idempotent(sc: Scenario) -> None:
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
        res = evaluate(run.app.con, run.segments.values(), end)
        for sid in run.segments:
            assert first.members(sid) == second.members(sid) == res.members(sid), sid
