"""The real-time engine hosted on Spark Structured Streaming (``transformWithStateInPandas``).

``SegmentProcessor`` is a stateful processor keyed by profile id: its keyed state (one
``ValueState``) holds the engine's state of the profile, serialised, and the event-time
timer it has set; on input it folds the profile's new records (messages, merges, a
merged-away notice, a plan change: ``segflow.stream.keyed``), on a timer it lets event
time pass up to just before the watermark, and either way it sets one timer at the
profile's next deadline and emits the membership changes; a profile merged away has its
state and timers cleared.  Every plan the stream may switch to is known to the processor
(numbered; a record carries the number in force).  ``run`` drives a local session over
records written as micro-batch files by the resolution stage (the prototype; a
production topology reads a durable log instead, see docs/scale.md).

Instants: the engine works in µs, Spark's timers and watermark in ms.  A deadline ``d``
gets the timer ``d // 1000 + 1`` ms, which fires once the watermark ``W`` reaches it;
the timer then advances the engine to ``W * 1000 - 1`` µs, so every deadline strictly
before the watermark fires at its own exact instant, and one falling on an input's
timestamp is evaluated together with that input (as in one process).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.stateful_processor import (
    ExpiredTimerInfo,
    StatefulProcessor,
    StatefulProcessorHandle,
    TimerValues,
)
from pyspark.sql.types import (
    BinaryType,
    BooleanType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from segflow.model.changes import LoggedChange, Reason
from segflow.model.time import from_us, to_us
from segflow.plan.planner import Plan
from segflow.realtime import ProfileEngine, compile_engine
from segflow.stream.keyed import (
    CLOCK_KEY,
    KeyedStep,
    Message,
    Record,
    Step,
    fired_upto,
    record_of,
    record_payload,
    timer_ms,
)

INPUT_SCHEMA: Final = StructType(
    [
        StructField("profile_id", StringType(), False),
        StructField("seq", LongType(), False),
        StructField("ts", LongType(), False),
        StructField("kind", StringType(), False),
        StructField("name", StringType(), True),
        StructField("payload", StringType(), False),
        StructField("message_id", StringType(), False),
        StructField("plan", LongType(), False),
    ]
)
"""An input row: a record resolved to its profile (``ts`` event time in µs, ``seq`` its
offset in the log, ``kind`` message, merge, merged_away or replan, ``name`` None for an
identify call, ``payload`` JSON, ``plan`` the number of the plan in force)."""

CHANGE_SCHEMA: Final = StructType(
    [
        StructField("segment_id", StringType(), False),
        StructField("profile_id", StringType(), False),
        StructField("entered", BooleanType(), False),
        StructField("at", LongType(), False),
        StructField("reason", StringType(), False),
        StructField("version", LongType(), False),
    ]
)
"""An output row: one membership change (``at`` in µs), the change log's shape."""

STATE_SCHEMA: Final = StructType(
    [StructField("engine_state", BinaryType(), False), StructField("timer_ms", LongType(), True)]
)
CHANGE_COLUMNS: Final = [f.name for f in CHANGE_SCHEMA.fields]
EVENT_TIME: Final = "event_time"
STATE_STORE: Final = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"

_ENGINES: dict[bytes, ProfileEngine] = {}
"""Engines compiled in this Python worker, by the plan's digest (workers are reused
across micro-batches; compiling once per worker, not per batch)."""


def _engine(plan: Plan) -> ProfileEngine:
    digest = hashlib.sha256(pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL)).digest()
    engine = _ENGINES.get(digest)
    if engine is None:
        engine = _ENGINES[digest] = compile_engine(plan)
    return engine


class SegmentProcessor(StatefulProcessor):
    """The engine as a Spark stateful processor keyed by profile id (see the module)."""

    def __init__(self, plans: Plan | Sequence[Plan]) -> None:
        self.plans = (plans,) if isinstance(plans, Plan) else tuple(plans)

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.handle = handle
        self.step = KeyedStep([_engine(p) for p in self.plans])
        self.state = handle.getValueState("profile", STATE_SCHEMA)

    def _load(self) -> tuple[bytes | None, int | None]:
        """The kept engine state and the earliest timer set and not yet fired (one read)."""
        kept = self.state.get()
        if kept is None:
            return None, None
        timer = kept[1]
        return bytes(kept[0]), None if timer is None or pd.isna(timer) else int(timer)

    def _keep(
        self, step: Step, old: bytes | None, kept: int | None, timer: int | None
    ) -> Iterator[pd.DataFrame]:
        """Keep the new state, set a timer when the deadline came before the one set, and
        emit the changes.  A deadline that moved later keeps its earlier timer, which then
        fires early, finds nothing due and sets the next one: one state call less per
        input than deleting it, and firing early changes nothing.  A step that leaves no
        state (the profile was merged away) clears the key and deletes its timers."""
        if step.state is None:
            if old is not None:
                for t in list(self.handle.listTimers()):
                    self.handle.deleteTimer(t)
                self.state.clear()
            yield from self._emit(step)
            return
        due = None if step.deadline is None else timer_ms(step.deadline)
        if due is not None and (timer is None or due < timer):
            self.handle.registerTimer(due)
            timer = due
        if step.state != old or timer != kept:
            self.state.update((step.state, timer))
        yield from self._emit(step)

    def _emit(self, step: Step) -> Iterator[pd.DataFrame]:
        if step.changes:
            yield pd.DataFrame(
                [
                    (c.segment_id, c.profile_id, c.entered, to_us(c.at), str(c.reason), c.version)
                    for c in step.changes
                ],
                columns=CHANGE_COLUMNS,
            )

    def handleInputRows(
        self, key: Any, rows: Iterator[pd.DataFrame], timerValues: TimerValues
    ) -> Iterator[pd.DataFrame]:
        profile_id = str(key[0])
        frames = [f for f in rows if len(f)]
        if profile_id == CLOCK_KEY or not frames:
            return
        frame = pd.concat(frames) if len(frames) > 1 else frames[0]
        frame = frame.sort_values("seq", kind="stable")
        records = [
            record_of(
                str(kind),
                int(seq),
                profile_id,
                int(ts),
                None if name is None or pd.isna(name) else str(name),
                payload,
                str(mid),
                int(plan),
            )
            for seq, ts, kind, name, payload, mid, plan in zip(
                frame["seq"],
                frame["ts"],
                frame["kind"],
                frame["name"],
                frame["payload"],
                frame["message_id"],
                frame["plan"],
                strict=True,
            )
        ]
        blob, timer = self._load()
        yield from self._keep(self.step.inputs(profile_id, blob, records), blob, timer, timer)

    def handleExpiredTimer(
        self, key: Any, timerValues: TimerValues, expiredTimerInfo: ExpiredTimerInfo
    ) -> Iterator[pd.DataFrame]:
        profile_id = str(key[0])
        blob, kept = self._load()
        if blob is None:
            return
        timer = kept
        if timer is not None and timer <= expiredTimerInfo.getExpiryTimeInMs():
            timer = None  # the earliest one set has fired; any still set come later
        upto = fired_upto(timerValues.getCurrentWatermarkInMs())
        yield from self._keep(self.step.timer(profile_id, blob, upto), blob, kept, timer)

    def close(self) -> None:
        pass


def session(
    parallelism: int = 1, *, memory: str = "2g", app: str = "segflow-stream"
) -> SparkSession:
    """A local Spark session with ``parallelism`` task slots and as many shuffle
    partitions (the keyed stage's parallelism), RocksDB state, UTC, no UI."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(f"local[{parallelism}]")
        .appName(app)
        .config("spark.driver.memory", memory)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(parallelism))
        .config("spark.sql.streaming.stateStore.providerClass", STATE_STORE)
        .config("spark.sql.adaptive.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def changes_of(inputs: DataFrame, plans: Plan | Sequence[Plan], lateness_ms: int = 0) -> DataFrame:
    """The change stream of an input stream (``INPUT_SCHEMA``): watermarked on event time
    ``lateness_ms`` behind the latest input, keyed by profile, through
    ``SegmentProcessor``."""
    return (
        inputs.withColumn(EVENT_TIME, F.timestamp_micros(F.col("ts")))
        .withWatermark(EVENT_TIME, f"{lateness_ms} milliseconds")
        .groupBy("profile_id")
        .transformWithStateInPandas(
            statefulProcessor=SegmentProcessor(plans),
            outputStructType=CHANGE_SCHEMA,
            outputMode="Append",
            timeMode="EventTime",
        )
    )


def _rows(records: Sequence[Record]) -> pa.Table:
    kinds, payloads = zip(*(record_payload(r) for r in records), strict=True)
    return pa.table(
        {
            "profile_id": [r.profile_id for r in records],
            "seq": pa.array([r.seq for r in records], pa.int64()),
            "ts": pa.array([r.ts for r in records], pa.int64()),
            "kind": list(kinds),
            "name": pa.array(
                [r.name if isinstance(r, Message) else None for r in records], pa.string()
            ),
            "payload": list(payloads),
            "message_id": [r.message_id if isinstance(r, Message) else "" for r in records],
            "plan": pa.array([r.plan for r in records], pa.int64()),
        }
    )


def write_batches(records: Sequence[Record], directory: Path, batches: int, tick_ms: int) -> int:
    """Write ``records`` (in arrival order) as ``batches`` Parquet files, one per
    micro-batch, then two clock ticks stamped ``tick_ms`` (the first moves the watermark,
    the second runs a batch with it); return the number of files.  File times increase
    with the file number (the file source reads the oldest first)."""
    directory.mkdir(parents=True, exist_ok=True)
    size = max(1, -(-len(records) // batches))
    parts: list[Sequence[Record]] = [records[i : i + size] for i in range(0, len(records), size)]
    tick = Message(len(records), CLOCK_KEY, tick_ms * 1000, None, {}, "")
    parts += [[tick], [tick]]
    base = time.time() - len(parts) - 10
    for i, part in enumerate(parts):
        path = directory / f"{i:06d}.parquet"
        pq.write_table(_rows(part), path)
        os.utime(path, (base + i, base + i))
    return len(parts)


@dataclass(frozen=True, slots=True)
class StreamRun:
    """What ``run`` measured: the changes, the input rows Spark dropped as later than the
    watermark, the wall time of the query (session start left out) and each
    micro-batch's input rows and wall time."""

    changes: list[LoggedChange]
    dropped: int
    seconds: float
    batch_rows: tuple[int, ...]
    batch_seconds: tuple[float, ...]

    @property
    def batches(self) -> int:
        return len(self.batch_rows)


def run(
    spark: SparkSession,
    plans: Plan | Sequence[Plan],
    records: Sequence[Record],
    work: Path,
    *,
    batches: int,
    end_ms: int,
    lateness_ms: int = 0,
    name: str = "segflow_changes",
) -> StreamRun:
    """Stream ``records`` (the resolution stage's, in arrival order) through
    ``SegmentProcessor`` in ``batches`` micro-batches, the watermark ``lateness_ms``
    behind the latest input, and return the change log once the watermark reached
    ``end_ms`` (every deadline before ``end_ms * 1000`` µs has fired).  ``plans``: the
    plans by number.  ``work`` is emptied first."""
    shutil.rmtree(work, ignore_errors=True)
    source = work / "input"
    write_batches(records, source, batches, end_ms + lateness_ms)
    inputs = (
        spark.readStream.schema(INPUT_SCHEMA).option("maxFilesPerTrigger", 1).parquet(str(source))
    )
    started = time.perf_counter()
    query = (
        changes_of(inputs, plans, lateness_ms)
        .writeStream.format("memory")
        .queryName(name)
        .option("checkpointLocation", str(work / "checkpoint"))
        .outputMode("append")
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    seconds = time.perf_counter() - started
    progress = query.recentProgress
    dropped = sum(
        int(op.get("numRowsDroppedByWatermark", 0))
        for p in progress
        for op in p.get("stateOperators", [])
    )
    changes = [
        LoggedChange(
            r.segment_id, r.profile_id, r.entered, from_us(r.at), Reason.parse(r.reason), r.version
        )
        for r in spark.table(name).collect()
    ]
    spark.catalog.dropTempView(name)
    return StreamRun(
        changes,
        dropped,
        seconds,
        tuple(int(p["numInputRows"]) for p in progress),
        tuple(int(p["durationMs"]["triggerExecution"]) / 1000 for p in progress),
    )


__all__ = [
    "CHANGE_SCHEMA",
    "INPUT_SCHEMA",
    "SegmentProcessor",
    "StreamRun",
    "changes_of",
    "run",
    "session",
    "write_batches",
]
