"""Keyed-stream host benchmark: the segment library over the demo shop on Spark
Structured Streaming (``transformWithStateInPandas``, local mode) with 1 and 2 parallel
tasks, beside the single-process engine on the same messages in the same run.

    .venv/bin/python bench/stream.py
    .venv/bin/python bench/stream.py --customers 2000 --days 90 --batches 6

The demo's calls (track, page and identify; visitors browse anonymously, then
identify) go through the resolution stage (``segflow.stream.identity.Resolver``: the
store's identity rules), which turns each identify that links an anonymous profile to a
user into a merge record for the user's key and a merged-away record for the anonymous
one.  The records are written as micro-batch files in arrival order and streamed with
``availableNow``; each parallelism gets a fresh local session (``local[n]``, ``n``
shuffle partitions, driver memory 2g).  Prints the resolution stage's calls/s, then
calls/s over the whole query (first micro-batch, with its query planning and Python
worker start, included), over the later input batches (steady state, records/s), and
the ratio to the single-process host (identity resolution, merges and all); checks that
each change log equals the single-process one.
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
from segflow.model.changes import LoggedChange, Reason  # noqa: E402
from segflow.model.time import to_us  # noqa: E402
from segflow.plan.planner import build_plan  # noqa: E402
from segflow.realtime import compile_engine  # noqa: E402
from segflow.service.handle import read_segment_files  # noqa: E402
from segflow.service.live import plan_paths  # noqa: E402
from segflow.stream.identity import Resolver, calls_from_table  # noqa: E402
from segflow.stream.keyed import Merge  # noqa: E402
from segflow.stream.reference import run_in_process  # noqa: E402
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
    calls = calls_from_table(shop.read(), plan_paths(plan))
    end_ms = to_us(END) // 1000 + 31 * DAY_MS
    n = len(calls)
    started = time.perf_counter()
    resolver = Resolver()
    records = list(resolver.run(calls))
    resolving = n / (time.perf_counter() - started)
    merges = sum(isinstance(r, Merge) for r in records)
    print(
        f"{n:,} calls, {len(resolver.histories):,} profiles, {merges:,} merges, "
        f"{len(records):,} records, {len(plan.formulas)} segments, "
        f"{args.batches} input micro-batches, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"resolution stage:      {resolving:>10,.0f} calls/s")

    engine = compile_engine(plan)
    started = time.perf_counter()
    reference = run_in_process(engine, calls, end_ms * 1000 - 1)
    single = n / (time.perf_counter() - started)
    merged = sum(c.reason == Reason.MERGED for c in reference)
    print(
        f"single process host: {single:>10,.0f} calls/s  "
        f"({len(reference):,} changes, {merged:,} by merges)"
    )

    want = sorted(reference, key=key)
    for p in args.parallelism:
        spark = session(p)
        try:
            work = data / f"stream-{p}"
            r = run(spark, plan, records, work, batches=args.batches, end_ms=end_ms)
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
            f"spark local[{p}], {p} partition(s): {whole:>8,.0f} calls/s whole query "
            f"({r.seconds:.1f} s, ratio {whole / single:.4f}), "
            f"{steady:,.0f} records/s after the first batch (ratio {steady / single:.4f}); "
            f"batches {len(r.batch_rows)}, first {r.batch_seconds[0]:.1f} s; "
            f"dropped {r.dropped}; log equal: {'yes' if equal else 'NO'}"
        )


if __name__ == "__main__":
    main()
