"""Keyed-stream host benchmark: the segment library over the demo shop on Spark
Structured Streaming (``transformWithStateInPandas``, local mode) with 1 and 2 parallel
tasks, beside the single-process engine on the same messages in the same run.

    .venv/bin/python bench/stream.py
    .venv/bin/python bench/stream.py --customers 2000 --days 90 --batches 6

Messages (track, page and identify calls, profile = user id else anonymous id) are
written as micro-batch files in arrival order and streamed with ``availableNow``; each
parallelism gets a fresh local session (``local[n]``, ``n`` shuffle partitions, driver
memory 2g).  Prints messages/s over the whole query (first micro-batch, with its query
planning and Python worker start, included), over the later input batches (steady
state), and the ratio to the single-process engine; checks that each change log equals
the single-process one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from segflow.demo import SEGMENTS_DIR  # noqa: E402
from segflow.demo.generator import generate_shop  # noqa: E402
from segflow.model.changes import LoggedChange  # noqa: E402
from segflow.model.time import to_us  # noqa: E402
from segflow.plan.planner import build_plan  # noqa: E402
from segflow.realtime import compile_engine  # noqa: E402
from segflow.service.handle import read_segment_files  # noqa: E402
from segflow.service.live import plan_paths  # noqa: E402
from segflow.stream.keyed import logged, messages_from_table, run_in_process  # noqa: E402
from segflow.stream.spark import run, session  # noqa: E402

END = datetime(2026, 11, 1)
DAY_MS = 86_400_000


def key(c: LoggedChange) -> tuple[str, object, str, bool]:
    return (c.profile_id, c.at, c.segment_id, c.entered)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=500)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batches", type=int, default=4, help="input micro-batches")
    ap.add_argument("--parallelism", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--data", type=Path, default=ROOT / "bench-data")
    args = ap.parse_args()

    data = args.data / f"shop-{args.customers}-{args.seed}-{args.days}d"
    shop = generate_shop(
        data / "events", customers=args.customers, seed=args.seed, end=END, days=args.days
    )
    plan = build_plan(read_segment_files(SEGMENTS_DIR))
    messages = messages_from_table(shop.read(), plan_paths(plan))
    end_ms = to_us(END) // 1000 + 31 * DAY_MS
    n = len(messages)
    print(
        f"{n:,} messages, {len({m.profile_id for m in messages}):,} profiles, "
        f"{len(plan.formulas)} segments, {args.batches} input micro-batches, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )

    engine = compile_engine(plan)
    started = time.perf_counter()
    reference = logged(run_in_process(engine, messages, end_ms * 1000 - 1), plan)
    single = n / (time.perf_counter() - started)
    print(f"single process engine: {single:>10,.0f} msg/s  ({len(reference):,} changes)")

    want = sorted(reference, key=key)
    for p in args.parallelism:
        spark = session(p)
        try:
            work = data / f"stream-{p}"
            r = run(spark, plan, messages, work, batches=args.batches, end_ms=end_ms)
            shutil.rmtree(work, ignore_errors=True)
        finally:
            spark.stop()
        inputs = [i for i, rows in enumerate(r.batch_rows) if rows > 1]
        later = inputs[1:]
        steady_rows = sum(r.batch_rows[i] for i in later)
        steady_s = sum(r.batch_seconds[i] for i in later)
        steady = steady_rows / steady_s if steady_s else float("nan")
        whole = n / r.seconds
        equal = sorted(r.changes, key=key) == want
        print(
            f"spark local[{p}], {p} partition(s): {whole:>8,.0f} msg/s whole query "
            f"({r.seconds:.1f} s, ratio {whole / single:.4f}), "
            f"{steady:,.0f} msg/s after the first batch (ratio {steady / single:.4f}); "
            f"batches {len(r.batch_rows)}, first {r.batch_seconds[0]:.1f} s; "
            f"dropped {r.dropped}; log equal: {'yes' if equal else 'NO'}"
        )


if __name__ == "__main__":
    main()
