"""Profile states: they pickle whole and stay small."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta
from typing import Any

from segflow.model.definition import Segment, parse_segment
from segflow.model.history import Event, TraitWrite
from segflow.plan.planner import build_plan
from segflow.realtime import compile_engine, state_memory_bytes, state_size_bytes

T = datetime(2026, 6, 1, 12, 0, 0)
H = timedelta(hours=1)
D = timedelta(days=1)


def ev(name: str, at: datetime, **fields: Any) -> Event:
    return Event(at, name, {f"properties.{k}": v for k, v in fields.items()})


def segments(**conditions: Any) -> list[Segment]:
    return [parse_segment({"id": sid, "condition": c}) for sid, c in conditions.items()]


def test_state_pickles_and_is_small() -> None:
    segs = segments(
        viewed={"event": "View", "within": "7d", "gte": 3},
        country={"trait": "country", "not_exists": True},
    )
    engine = compile_engine(build_plan(segs))
    st = engine.new_state("p")
    for i in range(20):
        engine.apply(st, ev("View", T + i * H), T + i * H)
    copy = pickle.loads(pickle.dumps(st))
    assert engine.memberships(copy) == {"viewed", "country"}
    engine.set_trait(copy, TraitWrite(T + D, "m", "country", "PL"), T + D)
    assert engine.memberships(copy) == {"viewed"}
    assert 0 < state_size_bytes(st) < 1024
    assert state_size_bytes(st) < state_memory_bytes(st)
