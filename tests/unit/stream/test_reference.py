"""The stream's single-process reference equals the live evaluator over a store: the
merging profiles and a definition save, one call stored and caught up at a time on a
virtual clock at the call's instant, give the same change log (instants, reasons and
versions)."""

from __future__ import annotations

from pathlib import Path

from segflow.model.changes import LoggedChange, Reason
from segflow.model.definition import parse_segment
from segflow.model.time import from_us
from segflow.plan.planner import build_plan
from segflow.realtime import VirtualClock, compile_engine
from segflow.service.handle import Segflow
from segflow.service.live import LiveEvaluator
from segflow.stream.identity import Item, PlanChange
from segflow.stream.reference import run_in_process
from tests.unit.stream.cases import D, edge_segments, merge_calls, segment_message

T0 = 1_767_225_600_000_000 + 123_456


def _row(c: LoggedChange) -> tuple[str, str, bool, object, Reason, int]:
    return (c.profile_id, c.segment_id, c.entered, c.at, c.reason, c.version)


def test_reference_equals_the_live_evaluator(tmp_path: Path) -> None:
    segments = edge_segments()
    narrowed = parse_segment(
        {"id": "edge_viewed_7d", "condition": {"event": "Product Viewed", "within": "2d"}}
    )
    calls = sorted((c for _a, c in merge_calls(T0)), key=lambda c: c.ts)
    save_at = T0 + 2 * D + 5
    app = Segflow(tmp_path / "segflow.duckdb")
    try:
        app.registry.save(segments)
        plans = [build_plan(app.registry.current().values())]
        clock = VirtualClock(from_us(calls[0].ts))
        live = LiveEvaluator(app, clock)
        live.start()
        got: list[LoggedChange] = []
        saved = False
        for c in calls:
            if not saved and c.ts > save_at:
                clock.set(from_us(save_at))
                got += live.save(narrowed)[2]
                saved = True
            clock.set(from_us(c.ts))
            app.store.ingest_messages([segment_message(c)])
            got += live.catch_up()
        end = T0 + 40 * D
        clock.set(from_us(end))
        got += live.tick()
        plans.append(build_plan(app.registry.current().values()))
    finally:
        app.close()
    first = next(i for i, c in enumerate(calls) if c.ts > save_at)
    items: list[Item] = [*calls[:first], PlanChange(0, save_at, 1), *calls[first:]]
    want = run_in_process([compile_engine(p) for p in plans], items, end)
    assert len(want) > 30 and any(c.reason == Reason.MERGED for c in want)
    assert any(c.reason == Reason.DEFINITION_CHANGED and c.version > 1 for c in want)
    assert sorted(map(_row, got)) == sorted(map(_row, want))
