"""The keyed step: a host that keeps state as bytes and fires timers at a watermark gets
the single-process engine's changes, to the microsecond."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.model.time import from_us
from segflow.plan.planner import build_plan
from segflow.realtime import Change, compile_engine
from segflow.stream.keyed import (
    KeyedStep,
    Message,
    decode_payload,
    encode_payload,
    fired_upto,
    run_in_process,
    timer_ms,
)
from tests.unit.stream.cases import (
    D,
    H,
    absent_edges,
    edge_messages,
    edge_segments,
    expected_edges,
    merged,
)

T0 = 1_767_225_600_000_000 + 123_456  # 2026-01-01T00:00:00.123456
ENGINE = compile_engine(build_plan(edge_segments()))
NAMES = ("Product Viewed", "Product Added", "Order Completed", None)
OFFSETS = (0, 1, 999, 1000, H - 1, H, H + 1, 12 * H)


def hosted(messages: list[Message], chunks: list[int], marks: list[int], end: int) -> list[Change]:
    """Messages fed per profile in chunks (``chunks``: the first seq of each later
    chunk), a watermark passed after each chunk firing timers before it, as a keyed
    processor does."""
    step = KeyedStep(ENGINE)
    kept: dict[str, bytes] = {}
    deadlines: dict[str, int] = {}
    out: list[Change] = []
    bounds = [0, *chunks, len(messages)]

    def fire(upto: int) -> None:
        for pid in sorted(deadlines):
            if deadlines[pid] <= upto:
                s = step.timer(pid, kept[pid], upto)
                kept[pid] = s.state
                out.extend(s.changes)
                if s.deadline is None:
                    del deadlines[pid]
                else:
                    deadlines[pid] = s.deadline

    for k in range(len(bounds) - 1):
        part = messages[bounds[k] : bounds[k + 1]]
        for pid in sorted({m.profile_id for m in part}):
            s = step.inputs(pid, kept.get(pid), [m for m in part if m.profile_id == pid])
            kept[pid] = s.state
            out.extend(s.changes)
            if s.deadline is None:
                deadlines.pop(pid, None)
            else:
                deadlines[pid] = s.deadline
        if k < len(marks):
            fire(marks[k] - 1)  # a watermark in µs: deadlines strictly before it
    fire(end)
    return out


def key(c: Change) -> tuple[str, object, str, bool]:
    return (c.profile_id, c.at, c.segment_id, c.entered)


def test_edge_profiles_change_at_their_exact_instants() -> None:
    messages = merged([], edge_messages(T0))
    changes = run_in_process(ENGINE, messages, T0 + 40 * D)
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
    messages = merged([], edge_messages(T0))
    end = T0 + 40 * D
    ts = [m.ts for m in messages]
    chunks = list(range(1, len(messages)))
    marks = [min(ts[c:]) for c in chunks]  # the latest watermark a later input allows
    got = hosted(messages, chunks, marks, end)
    assert sorted(got, key=key) == sorted(run_in_process(ENGINE, messages, end), key=key)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Message], list[int], list[int]]:
    n = draw(st.integers(1, 30))
    messages = []
    for i in range(n):
        name = draw(st.sampled_from(NAMES))
        ts = T0 + draw(  # whole days plus a few offsets: deadlines meet inputs exactly
            st.one_of(
                st.builds(lambda d, o: d * D + o, st.integers(0, 12), st.sampled_from(OFFSETS)),
                st.integers(0, 12 * D),
            )
        )
        payload = (
            {"plan": draw(st.sampled_from(["pro", "free"]))}
            if name is None
            else {"properties.category": draw(st.sampled_from(["Luxury Watches", "Shoes"]))}
        )
        pid = draw(st.sampled_from(["p1", "p1", "p2"]))
        messages.append(Message(i, pid, ts, name, payload, f"m{i}"))
    if draw(st.booleans()):  # mostly in order: a keyed stage after a log partition
        messages.sort(key=lambda m: m.ts)
        messages = [m._replace(seq=i) for i, m in enumerate(messages)]
    chunks = sorted(draw(st.sets(st.integers(1, n - 1), max_size=5))) if n > 1 else []
    marks: list[int] = []
    low = T0 - D
    for c in chunks:
        top = min(m.ts for m in messages[c:])
        w = draw(st.one_of(st.just(top), st.integers(min(low, top), top)))
        marks.append(max(w, low))
        low = marks[-1]
    return messages, chunks, marks


@settings(max_examples=150, deadline=None)
@given(streams())
def test_hosted_equals_one_process_for_any_chunking_and_watermark(
    case: tuple[list[Message], list[int], list[int]],
) -> None:
    messages, chunks, marks = case
    end = T0 + 30 * D
    got = hosted(messages, chunks, marks, end)
    assert sorted(got, key=key) == sorted(run_in_process(ENGINE, messages, end), key=key)


def test_state_round_trips_as_bytes_and_names_its_profile() -> None:
    step = KeyedStep(ENGINE)
    s = step.inputs("p1", None, [Message(0, "p1", T0, "Product Viewed", {}, "m0")])
    assert s.deadline == T0 + 7 * D
    assert pickle.loads(s.state).profile_id == "p1"
    with pytest.raises(ValueError, match="'p2'"):
        step.load("p2", s.state)


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
