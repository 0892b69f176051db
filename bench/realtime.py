"""Real-time evaluator benchmark: replay a generated shop through the engine.

    .venv/bin/python bench/realtime.py --customers 10000
    .venv/bin/python bench/realtime.py --customers 100000
    .venv/bin/python bench/realtime.py --customers 1000000 --days 30

A year of 1M customers is ~114M events (too long to replay on one core here); ``--days``
generates a shorter period, and the output says so.

Replays the demo shop's track events in time order on virtual time (the clock is
each event's timestamp; due timers fire every 500 events), with the whole segment
library in one engine, on one core.  Prints events/s, p50/p99 per-event latency
(every 16th message is timed), timer firings/s, state bytes per profile, the
collector's share, and the ratio against recomputing the touched profile from its
full history on every event (the plain-Python interpreter, run for a sample of
events in the same process) -- what an engine without incremental state would pay.
Targets: >= 50,000 events/s, p99 < 2 ms, < 2 KB state per profile (figures in
docs/performance.md).  The changes are counted and let go, as the server (which writes
them out) does.

Track events (with the fields the plan reads, as the server feeds its evaluator)
and the traits of identify calls (email, plan, created_at, ...: five writes per
call) are replayed; identity merges are left out (profile = user id, else
anonymous id), they are covered by the conformance tests.  State memory is measured
on a seeded random sample of all profiles.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import statistics
import sys
import time
from array import array
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from segflow.demo.generator import generate_shop  # noqa: E402
from segflow.model.history import Event, ProfileHistory, TraitWrite  # noqa: E402
from segflow.model.time import from_us  # noqa: E402
from segflow.plan.interpret import Interpreter  # noqa: E402
from segflow.plan.planner import build_plan  # noqa: E402
from segflow.process import tune_gc  # noqa: E402
from segflow.realtime import (  # noqa: E402
    RealtimeRunner,
    VirtualClock,
    compile_engine,
    state_memory_bytes,
    state_size_bytes,
)
from segflow.service.handle import read_segment_files  # noqa: E402
from segflow.service.live import plan_paths  # noqa: E402

LIBRARY = ROOT / "src" / "segflow" / "demo" / "segments"
END = datetime(2026, 11, 1)
FIELDS = ("properties.", "context.")


Message = tuple[int, str, str | None, dict[str, Any], str]
"""``(ts µs, profile, event name or None for an identify, fields or traits, message id)``"""


def load_events(paths: list[Path], wanted: set[str], chunk: int = 500_000) -> list[Message]:
    """The track and identify messages of ``paths`` in time order (ties: file order),
    with the event fields in ``wanted`` (what the plan reads: the server's live
    evaluator is fed those only) and every trait of identify calls.

    Sorted in Arrow first and turned into Python objects in that order, so consecutive
    messages lie next to each other in memory, as a server's freshly received ones do
    (objects made file by file and then sorted were scattered over ~10 GB at 1M
    customers, and reading the input cost cache misses the engine would not see)."""
    tables = []
    for p in paths:
        table = pq.read_table(p)
        table = table.select(
            [c for c in table.column_names if not c.startswith(FIELDS) or c in wanted]
        )
        kinds = table.column("type")
        tables.append(table.filter(pc.or_(pc.equal(kinds, "track"), pc.equal(kinds, "identify"))))
    table = pa.concat_tables(tables, promote_options="default")
    del tables
    table = table.take(pc.sort_indices(table, sort_keys=[("timestamp", "ascending")]))
    out: list[Message] = []
    names = [c for c in table.column_names if c != "timestamp"]
    keys = [c for c in names if c.startswith(FIELDS)]
    traits = [(c, c.removeprefix("traits.")) for c in names if c.startswith("traits.")]
    for lo in range(0, table.num_rows, chunk):
        part = table.slice(lo, chunk)
        cols = {c: part.column(c).to_pylist() for c in names}
        ts = part.column("timestamp").cast("int64").to_pylist()
        for i in range(part.num_rows):
            pid = sys.intern(cols["user_id"][i] or cols["anonymous_id"][i])
            if cols["type"][i] == "identify":
                written = {t: v for c, t in traits if (v := cols[c][i]) is not None}
                out.append((ts[i], pid, None, written, cols["message_id"][i]))
                continue
            fields = {
                k: sys.intern(v) if isinstance(v, str) else v
                for k in keys
                if (v := cols[k][i]) is not None
            }
            out.append((ts[i], pid, sys.intern(cols["event"][i]), fields, ""))
        del cols
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--days", type=int, default=365, help="generated period (default a year)")
    ap.add_argument("--baseline-sample", type=int, default=300)
    ap.add_argument("--data", type=Path, default=ROOT / "bench-data")
    args = ap.parse_args()

    data = args.data / f"shop-{args.customers}-{args.seed}"
    rt = data / ("rt" if args.days == 365 else f"rt-{args.days}d")
    summary = generate_shop(rt, customers=args.customers, seed=args.seed, end=END, days=args.days)
    plan = build_plan(read_segment_files(LIBRARY))
    events = load_events(list(summary.paths), plan_paths(plan))
    engine = compile_engine(plan)
    n_identify = sum(1 for e in events if e[2] is None)
    print(
        f"{len(events) - n_identify:,} track events + {n_identify:,} identify calls, "
        f"{args.customers:,} customers, "
        f"{len(plan.formulas)} segments, {len(plan.features)} features, "
        f"{args.days} days generated" + ("" if args.days == 365 else " (a shorter period)")
    )

    tune_gc()  # as the server does (api/app.py)
    gc_time = [0.0, 0, 0]  # seconds, collections, full collections

    def gc_clock(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_time[0] -= time.process_time()
            return
        gc_time[0] += time.process_time()
        gc_time[1] += 1
        gc_time[2] += info["generation"] == 2

    gc.callbacks.append(gc_clock)
    # the changes are counted, not kept: the server writes them out and lets them go
    runner = RealtimeRunner(engine, clock=VirtualClock(from_us(events[0][0])), keep_log=False)
    latencies = array("q")  # not millions of int objects
    changes = timer_changes = 0
    timer_time = 0.0
    clock = time.perf_counter_ns
    started = time.process_time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    for i, (ts, pid, name, fields, mid) in enumerate(events):
        timed = not i & 15  # latency of every 16th message: timing each costs throughput
        if timed:
            a = clock()
        if name is None:
            for key, value in fields.items():
                changes += len(runner.set_trait_us(pid, ts, mid, key, value, ts))
        else:
            changes += len(runner.ingest_us(pid, ts, name, fields, ts))
        if timed:
            latencies.append(clock() - a)
        if i % 500 == 499:
            b = time.process_time()
            timer_changes += len(runner.advance_to(from_us(ts)))
            timer_time += time.process_time() - b
    timer_changes += len(runner.advance_to(END))
    elapsed = time.process_time() - started
    gc.callbacks.remove(gc_clock)
    used = resource.getrusage(resource.RUSAGE_SELF)
    latencies = array("q", sorted(latencies))
    sizes = [state_size_bytes(s) for s in runner.states.values()]
    sample = random.Random(args.seed).sample(list(runner.states.values()), 5000)
    memory = [state_memory_bytes(s) for s in sample]

    # baseline: recompute the touched profile from its whole history on each event
    by_profile: dict[str, ProfileHistory] = {}
    step = max(1, len(events) // args.baseline_sample)
    base_time = 0.0
    base_n = 0
    for i, (ts, pid, name, fields, mid) in enumerate(events):
        history = by_profile.get(pid)
        if history is None:
            history = by_profile[pid] = ProfileHistory(pid, [], [])
        at = from_us(ts)
        if name is None:
            history.traits += [TraitWrite(at, mid, k, v) for k, v in fields.items()]  # type: ignore[operator]
        else:
            history.events.append(Event(at, name, fields))  # type: ignore[attr-defined]
        if i % step == 0:
            b = time.process_time()
            Interpreter(plan, history, at).segments()
            base_time += time.process_time() - b
            base_n += 1
    base_rate = base_n / base_time if base_time else float("inf")
    rate = len(events) / elapsed

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * q))] / 1e3

    print()
    print(f"messages/s (one core, incl. timers){rate:12,.0f}   (target >= 50,000 events/s)")
    print(
        f"latency p50 / p99 / p999          {pct(0.5):8.1f} / {pct(0.99):.1f} / {pct(0.999):.1f} us"
        "   (target p99 < 2000 us)"
    )
    print(
        f"timer changes                     {timer_changes:12,}   "
        f"{timer_changes / timer_time if timer_time else 0:,.0f} firings/s"
    )
    print(
        f"state per profile (pickled)       {statistics.mean(sizes):12,.0f} B mean, "
        f"p99 {sorted(sizes)[int(len(sizes) * 0.99)]:,} B   (target < 2,048 B)"
    )
    print(f"state per profile (in memory)     {statistics.mean(memory):12,.0f} B mean")
    print(
        f"recompute-per-event baseline      {base_rate:12,.0f} events/s   "
        f"engine is {rate / base_rate:,.1f}x faster"
    )
    print(
        f"garbage collector                 {gc_time[0]:12.1f} s   "
        f"({gc_time[0] / elapsed:.1%} of the replay; {gc_time[1]:,} collections, "
        f"{gc_time[2]} full)"
    )
    print(
        f"replay CPU user / system          {used.ru_utime - usage.ru_utime:8.1f} / "
        f"{used.ru_stime - usage.ru_stime:.1f} s   "
        f"({used.ru_minflt - usage.ru_minflt:,} page faults)"
    )
    print(f"membership changes logged         {changes + timer_changes:12,}")


if __name__ == "__main__":
    main()
