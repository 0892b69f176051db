"""The engine hosted on Spark Structured Streaming (local mode, two task slots): its
change log over the demo shop (anonymous visitors identifying), the edge profiles, the
merging profiles and a plan change equals the single-process host's, every change at the
same microsecond; a message behind the watermark is dropped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from segflow.demo import SEGMENTS_DIR
from segflow.demo.generator import generate_shop
from segflow.model.changes import LoggedChange, Reason
from segflow.model.definition import parse_segment
from segflow.model.time import from_us, to_us
from segflow.plan.planner import Plan, build_plan
from segflow.realtime import compile_engine
from segflow.service.handle import read_segment_files
from segflow.service.live import plan_paths
from segflow.stream.identity import Call, Item, PlanChange, Resolver, as_calls, calls_from_table
from segflow.stream.keyed import Merge, MergedAway, Record, Replan
from segflow.stream.reference import run_in_process
from segflow.stream.spark import StreamRun, run, session
from tests.unit.stream.cases import (
    LATENESS_MS,
    D,
    absent_edges,
    edge_messages,
    edge_segments,
    expected_edges,
    expected_merges,
    merge_calls,
    with_calls,
)

pytestmark = pytest.mark.slow  # a Spark session and a streaming query: minutes on 2 cores


@dataclass(frozen=True)
class Case:
    plans: tuple[Plan, ...]
    items: list[Item]
    """In arrival order; the last one arrives long after the watermark passed it."""
    t0: int
    replan_at: int
    end_ms: int

    @property
    def applied(self) -> list[Item]:
        """The items a host applies: all but the one behind the watermark."""
        return self.items[:-1]

    @property
    def records(self) -> list[Record]:
        return list(Resolver().run(self.items))


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    s = session(2)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    library = [*read_segment_files(SEGMENTS_DIR), *edge_segments()]
    narrowed = parse_segment(
        {
            "id": "edge_viewed_7d",
            "condition": {"event": "Product Viewed", "within": "2d"},
            "version": 1,
        }
    )
    changed = [
        narrowed if s.id == narrowed.id else s for s in library if s.id != "edge_luxury_3_in_48h"
    ]
    plans = (build_plan(library), build_plan(changed))
    shop = generate_shop(tmp_path_factory.mktemp("shop"), customers=200, days=60, seed=5)
    t0 = to_us(shop.start) + 10 * D + 123_457
    demo: list[Item] = [*calls_from_table(shop.read(), plan_paths(plans[0]))]
    end_ms = (to_us(shop.end) + 31 * D) // 1000
    replan_at = to_us(shop.end) - 5 * D
    extra: list[tuple[int, Item]] = [
        *((at, as_calls([m])[0]) for at, m in edge_messages(t0)),
        *merge_calls(t0),
        (replan_at, PlanChange(0, replan_at, 1)),
    ]
    items = with_calls(demo, extra)
    behind = Call(len(items), t0, "track", "edge-behind", None, None, "Product Viewed", {}, "b0")
    return Case(plans, [*items, behind], t0, replan_at, end_ms)


@pytest.fixture(scope="module")
def streamed(
    spark: SparkSession, case: Case, tmp_path_factory: pytest.TempPathFactory
) -> StreamRun:
    work: Path = tmp_path_factory.mktemp("stream")
    return run(
        spark,
        case.plans,
        case.records,
        work,
        batches=3,
        end_ms=case.end_ms,
        lateness_ms=LATENESS_MS,
    )


@pytest.fixture(scope="module")
def in_process(case: Case) -> list[LoggedChange]:
    engines = [compile_engine(p) for p in case.plans]
    return run_in_process(engines, case.applied, case.end_ms * 1000 - 1)


def key(c: LoggedChange) -> tuple[str, object, str, bool]:
    return (c.profile_id, c.at, c.segment_id, c.entered)


def test_the_stream_merges_profiles_and_changes_plan(case: Case) -> None:
    records = case.records
    merges = [r for r in records if isinstance(r, Merge)]
    assert len(merges) > 50  # the demo's visitors identifying, and the merge cases
    assert len([r for r in records if isinstance(r, MergedAway)]) >= len(merges)
    assert {r.ts for r in records if isinstance(r, Replan)} == {case.replan_at}


def test_spark_change_log_equals_the_single_process_host(
    streamed: StreamRun, in_process: list[LoggedChange]
) -> None:
    assert streamed.dropped == 1  # the message stamped ~50 days behind the watermark
    assert streamed.batches >= 5  # three of inputs, the clock ticks, timers in between
    assert len(in_process) > 1000
    assert sorted(streamed.changes, key=key) == sorted(in_process, key=key)


def test_a_message_behind_the_watermark_changes_nothing(streamed: StreamRun) -> None:
    assert not [c for c in streamed.changes if c.profile_id == "edge-behind"]


def test_spark_changes_keep_their_exact_instants_on_the_edges(
    streamed: StreamRun, case: Case
) -> None:
    seen = {(c.segment_id, c.profile_id, c.entered, to_us(c.at)) for c in streamed.changes}
    assert expected_edges(case.t0) <= seen
    assert not absent_edges(case.t0) & seen


def test_spark_logs_merges_with_reason_merged(streamed: StreamRun, case: Case) -> None:
    why = {(c.segment_id, c.profile_id, c.entered, to_us(c.at)): c for c in streamed.changes}
    for k in expected_merges(case.t0):
        assert why[k].reason == Reason.MERGED, k
    gone_at = {"anon-lux": case.t0 + 3 * 3_600_000_000, "anon-fresh": case.t0 + 6 * D}
    for pid, at in gone_at.items():  # nothing after the merge: state and timers cleared
        assert max(to_us(c.at) for c in streamed.changes if c.profile_id == pid) == at


def test_spark_changes_carry_every_reason_of_the_host(streamed: StreamRun, case: Case) -> None:
    reasons = {c.reason for c in streamed.changes}
    assert {
        Reason.EVENT,
        Reason.WINDOW_EXPIRED,
        Reason.TRAIT_CHANGED,
        Reason.MERGED,
        Reason.DEFINITION_CHANGED,
    } <= reasons
    switched = [c for c in streamed.changes if c.reason == Reason.DEFINITION_CHANGED]
    assert {to_us(c.at) >= case.replan_at for c in switched} == {True}
    assert {c.version for c in switched if c.segment_id == "edge_viewed_7d"} == {1}


def test_the_late_message_is_applied_as_of_its_profiles_clock(
    streamed: StreamRun, case: Case
) -> None:
    late = [c for c in streamed.changes if c.profile_id == "edge-late"]
    first = min(c.at for c in late)
    assert first == from_us(case.t0 + 10 * 60_000_000)  # the message that arrived first
    assert all(c.at >= first for c in late)
