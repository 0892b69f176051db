"""Explanations: the formula tree with each node's truth and the values behind it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from segflow.model.definition import Segment, parse_segment
from segflow.model.history import Event
from segflow.plan.planner import build_plan
from segflow.realtime import compile_engine

T = datetime(2026, 6, 1, 12, 0, 0)
H = timedelta(hours=1)
D = timedelta(days=1)


def ev(name: str, at: datetime, **fields: Any) -> Event:
    return Event(at, name, {f"properties.{k}": v for k, v in fields.items()})


def segments(**conditions: Any) -> list[Segment]:
    return [parse_segment({"id": sid, "condition": c}) for sid, c in conditions.items()]


def test_explain_is_json_with_values_behind_each_leaf() -> None:
    segs = segments(
        target={
            "all": [
                {"event": "Order", "measure": "sum", "of": "revenue", "gt": 100, "within": "30d"},
                {"not": {"trait": "country", "eq": "DE"}},
                {"event": "Add", "not_followed_by": "Order", "for": "1h"},
            ]
        }
    )
    engine = compile_engine(build_plan(segs))
    st = engine.new_state("p")
    engine.apply(st, ev("Order", T, revenue=150.5), T)
    engine.apply(st, ev("Add", T + H), T + H)
    out = engine.explain(st, "target", T + 3 * H)
    json.dumps(out)
    assert out["member"] is True
    cond = out["condition"]
    assert cond["op"] == "all" and [i["value"] for i in cond["items"]] == [True, True, True]
    assert cond["items"][0]["feature"]["value"] == 150.5
    assert cond["items"][1]["item"]["feature"] == {
        "key": cond["items"][1]["item"]["feature"]["key"],
        "kind": "trait",
        "trait": "country",
        "value": None,
    }
    assert cond["items"][2]["trigger"]["value"] == "2026-06-01T13:00:00.000000Z"
    # explaining does not touch the state; later instants advance a copy
    later = engine.explain(st, "target", T + 31 * D)
    assert later["member"] is False
    assert later["condition"]["items"][0]["feature"]["value"] == 0
    assert engine.watermark(st) == T + H
    assert engine.memberships(st) == set()
    with pytest.raises(ValueError, match="earlier instant"):
        engine.explain(st, "target", T)
