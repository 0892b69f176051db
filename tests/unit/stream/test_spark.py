"""The engine hosted on Spark Structured Streaming (local mode, two task slots): its
change log over the demo shop and the edge profiles equals the single-process engine's,
every change at the same microsecond; a message behind the watermark is dropped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from segflow.demo import SEGMENTS_DIR
from segflow.demo.generator import generate_shop
from segflow.model.changes import LoggedChange, Reason
from segflow.model.time import from_us, to_us
from segflow.plan.planner import Plan, build_plan
from segflow.realtime import compile_engine
from segflow.service.handle import read_segment_files
from segflow.service.live import plan_paths
from segflow.stream.keyed import Message, logged, messages_from_table, run_in_process
from segflow.stream.spark import StreamRun, run, session
from tests.unit.stream.cases import (
    LATENESS_MS,
    D,
    absent_edges,
    edge_messages,
    edge_segments,
    expected_edges,
    merged,
)

pytestmark = pytest.mark.slow  # a Spark session and a streaming query: minutes on 2 cores


@dataclass(frozen=True)
class Case:
    plan: Plan
    messages: list[Message]
    """In arrival order; the last one arrives long after the watermark passed it."""
    t0: int
    end_ms: int

    @property
    def applied(self) -> list[Message]:
        """The messages a host applies: all but the one behind the watermark."""
        return self.messages[:-1]


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    s = session(2)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    plan = build_plan([*read_segment_files(SEGMENTS_DIR), *edge_segments()])
    shop = generate_shop(tmp_path_factory.mktemp("shop"), customers=200, days=60, seed=5)
    t0 = to_us(shop.start) + 10 * D + 123_457
    demo = messages_from_table(shop.read(), plan_paths(plan))
    end_ms = (to_us(shop.end) + 31 * D) // 1000
    messages = merged(demo, edge_messages(t0))
    behind = Message(len(messages), "edge-behind", t0, "Product Viewed", {}, "edge-behind-0")
    return Case(plan, [*messages, behind], t0, end_ms)


@pytest.fixture(scope="module")
def streamed(
    spark: SparkSession, case: Case, tmp_path_factory: pytest.TempPathFactory
) -> StreamRun:
    work: Path = tmp_path_factory.mktemp("stream")
    return run(
        spark,
        case.plan,
        case.messages,
        work,
        batches=3,
        end_ms=case.end_ms,
        lateness_ms=LATENESS_MS,
    )


@pytest.fixture(scope="module")
def in_process(case: Case) -> list[LoggedChange]:
    engine = compile_engine(case.plan)
    return logged(run_in_process(engine, case.applied, case.end_ms * 1000 - 1), case.plan)


def key(c: LoggedChange) -> tuple[str, object, str, bool]:
    return (c.profile_id, c.at, c.segment_id, c.entered)


def test_spark_change_log_equals_the_single_process_engine(
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


def test_spark_changes_carry_every_reason_of_the_engine(streamed: StreamRun) -> None:
    reasons = {c.reason for c in streamed.changes}
    assert reasons == {Reason.EVENT, Reason.WINDOW_EXPIRED, Reason.TRAIT_CHANGED}


def test_the_late_message_is_applied_as_of_its_profiles_clock(
    streamed: StreamRun, case: Case
) -> None:
    late = [c for c in streamed.changes if c.profile_id == "edge-late"]
    first = min(c.at for c in late)
    assert first == from_us(case.t0 + 10 * 60_000_000)  # the message that arrived first
    assert all(c.at >= first for c in late)
