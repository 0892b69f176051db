"""The keyed step: a host that keeps state as bytes and fires timers at a watermark gets
the single-process host's change log, to the microsecond, merges and plan changes
included."""

from __future__ import annotations

import pickle
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.model.changes import LoggedChange, Reason
from segflow.model.definition import parse_segment
from segflow.model.time import from_us
from segflow.plan.planner import build_plan
from segflow.realtime import ProfileEngine, compile_engine
from segflow.stream.identity import Call, IdentityGraph, Item, PlanChange, Resolver, as_calls
from segflow.stream.keyed import (
    KeyedStep,
    Merge,
    MergedAway,
    Message,
    Record,
    decode_payload,
    encode_payload,
    fired_upto,
    timer_ms,
)
from segflow.stream.reference import run_in_process
from tests.unit.stream.cases import (
    D,
    H,
    absent_edges,
    edge_messages,
    edge_segments,
    expected_around_merges,
    expected_edges,
    expected_merges,
    merge_calls,
    merged,
    with_calls,
)

T0 = 1_767_225_600_000_000 + 123_456  # 2026-01-01T00:00:00.123456
ENGINE = compile_engine(build_plan(edge_segments()))
NAMES = ("Product Viewed", "Product Added", "Order Completed", None, "alias")
OFFSETS = (0, 1, 999, 1000, H - 1, H, H + 1, 12 * H)


def _changed_plans() -> tuple[ProfileEngine, ProfileEngine, ProfileEngine]:
    """Plan 0: the edge segments; plan 1: ``edge_viewed_7d`` narrowed to 2 days (a new
    version) and a new segment; plan 2: plan 0 with ``edge_luxury_3_in_48h`` deleted."""
    segs = {s.id: s for s in edge_segments()}
    narrowed = parse_segment(
        {
            "id": "edge_viewed_7d",
            "condition": {"event": "Product Viewed", "within": "2d"},
            "version": 1,
        }
    )
    added = parse_segment({"id": "edge_ordered_ever", "condition": {"event": "Order Completed"}})
    one = {**segs, narrowed.id: narrowed, added.id: added}
    two = {k: v for k, v in segs.items() if k != "edge_luxury_3_in_48h"}
    return (
        ENGINE,
        compile_engine(build_plan(one.values())),
        compile_engine(build_plan(two.values())),
    )


PLANS = _changed_plans()


def hosted(
    records: Sequence[Record],
    chunks: list[int],
    marks: list[int],
    end: int,
    engines: Sequence[ProfileEngine] = (ENGINE,),
) -> list[LoggedChange]:
    """Records fed per profile in chunks (``chunks``: the first index of each later
    chunk), a watermark passed after each chunk firing timers before it, as a keyed
    processor does; a key whose step leaves no state is cleared with its timer."""
    step = KeyedStep(engines)
    kept: dict[str, bytes] = {}
    deadlines: dict[str, int] = {}
    out: list[LoggedChange] = []
    bounds = [0, *chunks, len(records)]

    def keep(pid: str, state: bytes | None, deadline: int | None) -> None:
        if state is None:
            kept.pop(pid, None)
        else:
            kept[pid] = state
        if deadline is None:
            deadlines.pop(pid, None)
        else:
            deadlines[pid] = deadline

    def fire(upto: int) -> None:
        for pid in sorted(deadlines):
            if deadlines[pid] <= upto:
                s = step.timer(pid, kept[pid], upto)
                out.extend(s.changes)
                keep(pid, s.state, s.deadline)

    for k in range(len(bounds) - 1):
        part = records[bounds[k] : bounds[k + 1]]
        for pid in sorted({r.profile_id for r in part}):
            s = step.inputs(pid, kept.get(pid), [r for r in part if r.profile_id == pid])
            out.extend(s.changes)
            keep(pid, s.state, s.deadline)
        if k < len(marks):
            fire(marks[k] - 1)  # a watermark in µs: deadlines strictly before it
    fire(end)
    return out


def resolved(items: Sequence[Item]) -> list[Record]:
    return list(Resolver().run(items))


def latest_marks(records: Sequence[Record]) -> tuple[list[int], list[int]]:
    """One record per chunk, each watermark the latest a later record allows."""
    ts = [r.ts for r in records]
    chunks = list(range(1, len(records)))
    return chunks, [min(ts[c:]) for c in chunks]


def key(c: LoggedChange) -> tuple[str, object, str, bool]:
    return (c.profile_id, c.at, c.segment_id, c.entered)


def test_edge_profiles_change_at_their_exact_instants() -> None:
    calls = as_calls(merged([], edge_messages(T0)))
    changes = run_in_process(ENGINE, calls, T0 + 40 * D)
    seen = {(c.segment_id, c.profile_id, c.entered, c.at) for c in changes}
    want = {(s, p, e, from_us(at)) for s, p, e, at in expected_edges(T0)}
    assert want <= seen
    assert not {(s, p, e, from_us(at)) for s, p, e, at in absent_edges(T0)} & seen
    assert not any(
        c.profile_id == "edge-c" and c.at < from_us(T0 + 5 * D)
        for c in changes
        if c.segment_id == "edge_abandoned_24h"
    )


def test_hosted_in_chunks_equals_one_process_on_the_edge_profiles() -> None:
    calls = as_calls(merged([], edge_messages(T0)))
    end = T0 + 40 * D
    records = resolved(calls)
    assert all(isinstance(r, Message) for r in records)  # no identities linked
    chunks, marks = latest_marks(records)
    got = hosted(records, chunks, marks, end)
    assert sorted(got, key=key) == sorted(run_in_process(ENGINE, calls, end), key=key)


def _merge_case() -> list[Item]:
    return with_calls(as_calls(merged([], edge_messages(T0))), merge_calls(T0))


def test_merges_log_what_the_single_process_host_logs() -> None:
    calls = _merge_case()
    end = T0 + 40 * D
    want = run_in_process(ENGINE, calls, end)
    seen = {(c.segment_id, c.profile_id, c.entered, c.at): c.reason for c in want}
    for s, p, e, at in expected_merges(T0):
        assert seen.get((s, p, e, from_us(at))) == Reason.MERGED, (s, p, e)
    for s, p, e, at in expected_around_merges(T0):
        assert seen.get((s, p, e, from_us(at))) in (Reason.WINDOW_EXPIRED, Reason.EVENT), (s, p)
    gone = {"anon-lux", "user-new", "anon-buy", "anon-exp", "anon-exp2", "anon-fresh"}
    last = {}
    for c in want:
        last[(c.profile_id, c.segment_id)] = c
    for (pid, _sid), c in last.items():  # every merged-away membership ended
        assert pid not in gone or not c.entered
    records = resolved(calls)
    assert {r.profile_id for r in records if isinstance(r, MergedAway)} == gone
    chunks, marks = latest_marks(records)
    got = hosted(records, chunks, marks, end)
    assert sorted(got, key=key) == sorted(want, key=key)
    one = hosted(records, [], [], end)  # one chunk: every record of a key at once
    assert sorted(one, key=key) == sorted(want, key=key)


def test_ignoring_merge_records_gives_another_log() -> None:
    calls = _merge_case()
    end = T0 + 40 * D
    records = resolved(calls)
    plain: list[Record] = [r for r in records if not isinstance(r, (Merge, MergedAway))]
    chunks, marks = latest_marks(plain)
    assert sorted(hosted(plain, chunks, marks, end), key=key) != sorted(
        run_in_process(ENGINE, calls, end), key=key
    )


def test_identity_graph_links_as_the_store_does() -> None:
    g = IdentityGraph()

    def call(ts: int, user: str | None, anon: str | None, prev: str | None = None) -> Call:
        kind = "alias" if prev is not None else "identify"
        return Call(0, ts, kind, user, anon, prev, None, {}, f"m{ts}")

    assert g.resolve(call(5, None, "a1")) == ("a1", ())
    assert g.resolve(call(9, "u1", "a1")) == ("u1", ("a1",))  # a user id wins
    assert g.resolve(call(3, "u2", None)) == ("u2", ())
    assert g.resolve(call(10, "u1", None, "u2")) == ("u2", ("u1",))  # seen first wins
    assert g.profile_of("anonymous", "a1") == "u2"
    assert g.resolve(call(11, "u3", None, "x9")) == ("u3", ())
    assert g.resolve(call(1, None, "x9")) == ("u3", ())  # the alias's previous id arrives
    assert g.resolve(call(0, "u4", None, "u3")) == ("u4", ("u3",))
    with pytest.raises(ValueError, match="no user id"):
        g.resolve(call(1, None, None))


def test_a_plan_change_rebuilds_and_logs_as_a_save_does() -> None:
    calls = _merge_case()
    end = T0 + 40 * D
    items: list[Item] = [*calls]
    gone, back = T0 + 3 * H + 5, T0 + 2 * D  # luxury deleted, then saved again
    at = next(i for i, c in enumerate(calls) if c.ts >= back)
    items.insert(at, PlanChange(0, back, 1))
    at = next(i for i, c in enumerate(calls) if c.ts >= gone)
    items.insert(at, PlanChange(0, gone, 2))
    want = run_in_process(PLANS, items, end)
    why = {(c.segment_id, c.profile_id, c.entered, c.at): c for c in want}
    deleted = why[("edge_luxury_3_in_48h", "user-lux", False, from_us(gone))]
    assert (deleted.reason, deleted.version) == (Reason.DELETED, 0)
    assert not [
        c
        for c in want
        if c.segment_id == "edge_luxury_3_in_48h" and from_us(gone) < c.at < from_us(back)
    ]
    narrowed = why[("edge_viewed_7d", "edge-d", False, from_us(back))]
    assert (narrowed.reason, narrowed.version) == (Reason.DEFINITION_CHANGED, 1)
    ever = why[("edge_ordered_ever", "edge-b", True, from_us(back))]
    assert ever.reason == Reason.DEFINITION_CHANGED
    records = resolved(items)
    chunks, marks = latest_marks(records)
    got = hosted(records, chunks, marks, end, PLANS)
    assert sorted(got, key=key) == sorted(want, key=key)
    stale = hosted([r for r in records if r.plan == 0], [], [], end, PLANS)
    assert sorted(stale, key=key) != sorted(want, key=key)


USERS = ("u1", "u1", "u2", "u3", None)
ANONS = ("a1", "a2", "a3", None)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Item], list[int], list[int]]:
    n = draw(st.integers(1, 30))
    items: list[Item] = []
    for i in range(n):
        name = draw(st.sampled_from(NAMES))
        ts = T0 + draw(  # whole days plus a few offsets: deadlines meet inputs exactly
            st.one_of(
                st.builds(lambda d, o: d * D + o, st.integers(0, 12), st.sampled_from(OFFSETS)),
                st.integers(0, 12 * D),
            )
        )
        if draw(st.integers(0, 9)) == 0:
            items.append(PlanChange(i, ts, draw(st.integers(0, 2))))
            continue
        user = draw(st.sampled_from(USERS))
        anon = (
            draw(st.sampled_from(ANONS)) if user is not None else draw(st.sampled_from(ANONS[:3]))
        )
        if name == "alias":
            prev = draw(st.sampled_from(("u1", "u2", "u3", "a1", "a2")))
            items.append(Call(i, ts, "alias", user or "u4", anon, prev, None, {}, f"m{i}"))
            continue
        payload = (
            {"plan": draw(st.sampled_from(["pro", "free"]))}
            if name is None
            else {"properties.category": draw(st.sampled_from(["Luxury Watches", "Shoes"]))}
        )
        kind = "identify" if name is None else "track"
        items.append(Call(i, ts, kind, user, anon, None, name, payload, f"m{i}"))
    if draw(st.booleans()):  # mostly in order: a keyed stage after a log partition
        items.sort(key=lambda m: m.ts)
        items = [m._replace(seq=i) for i, m in enumerate(items)]
    records = resolved(items)
    m = len(records)
    chunks = sorted(draw(st.sets(st.integers(1, m - 1), max_size=5))) if m > 1 else []
    marks: list[int] = []
    low = T0 - D
    for c in chunks:
        top = min(r.ts for r in records[c:])
        w = draw(st.one_of(st.just(top), st.integers(min(low, top), top)))
        marks.append(max(w, low))
        low = marks[-1]
    return items, chunks, marks


@settings(max_examples=200, deadline=None)
@given(streams())
def test_hosted_equals_one_process_for_any_chunking_watermark_merge_and_plan(
    case: tuple[list[Item], list[int], list[int]],
) -> None:
    items, chunks, marks = case
    end = T0 + 30 * D
    got = hosted(resolved(items), chunks, marks, end, PLANS)
    assert sorted(got, key=key) == sorted(run_in_process(PLANS, items, end), key=key)


def test_state_round_trips_as_bytes_and_names_its_profile() -> None:
    step = KeyedStep(ENGINE)
    s = step.inputs("p1", None, [Message(0, "p1", T0, "Product Viewed", {}, "m0")])
    assert s.deadline == T0 + 7 * D
    assert s.state is not None
    plan, state = pickle.loads(s.state)
    assert (plan, state.profile_id) == (0, "p1")
    with pytest.raises(ValueError, match="'p2'"):
        step.load("p2", s.state)
    with pytest.raises(ValueError, match="no plan numbered 3"):
        step.inputs("p3", None, [Message(0, "p3", T0, "Product Viewed", {}, "m0", 3)])
    gone = step.inputs("p1", s.state, [MergedAway(1, "p1", T0 + 1, "p9")])
    assert (gone.state, gone.deadline) == (None, None)
    assert {c.segment_id for c in gone.changes} == {"edge_viewed_7d", "edge_no_order_30d"}
    assert {c.reason for c in gone.changes} == {Reason.MERGED}


def test_timer_fires_once_the_watermark_passes_the_deadline() -> None:
    for d in (T0, T0 + 1, T0 + 999, T0 + 1000, T0 - T0 % 1000):
        w = timer_ms(d)
        assert fired_upto(w) >= d  # fired by the watermark w
        assert fired_upto(w - 1) < d  # not by an earlier one


def test_payload_json_round_trips_types() -> None:
    payload = {"a": 1, "b": 1.0, "c": "x", "d": True, "e": None, "f": [1, {"g": 2.5}]}
    back = decode_payload(encode_payload(payload))
    assert back == payload
    assert [type(v) for v in back.values()] == [type(v) for v in payload.values()]
    with pytest.raises(ValueError, match="JSON object"):
        decode_payload("[1]")
