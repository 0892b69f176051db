"""The server's writer stage in one process: store a group, then evaluate it.

    .venv/bin/python bench/writer.py [--mix uniform|shop] [--group 3200] [--groups 20]

The store and messages are ``bench/ingest.py``'s (the demo shop's history and the
whole segment library; ``--mix uniform``: track events, a quarter each of views,
cart adds, checkouts and orders; ``--mix shop``: drawn from the shop's own history).
Each group goes through what the server's writer does per group commit, on one
thread and without HTTP: ``ingest_messages(..., json_values=True, describe=True)``
(one DuckDB transaction) and ``LiveEvaluator.catch_up`` with the store's
description.  Prints the median microseconds per event of each stage and the mean
with checkpoints (DuckDB's log allowed to grow as the server allows it, then one
final ``CHECKPOINT`` counted in), and the same for the baseline in the same run:
the same messages stored and evaluated 100 at a time (one request per commit, the
server's ``--no-group-commit``).  No HTTP, no GIL contention: the bound on what one writer
thread can do, which the server itself does not reach.
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import body, prepare, reference_ms, shop_body  # noqa: E402
from segflow.process import tune_gc  # noqa: E402
from segflow.server import make_context  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mix", choices=("uniform", "shop"), default="uniform")
    ap.add_argument("--group", type=int, default=3200, help="events a group commit takes")
    ap.add_argument("--groups", type=int, default=20)
    ap.add_argument("--customers", type=int, default=2_000)
    ap.add_argument(
        "--checkpoint-mb", type=int, help="DuckDB's log limit (default: the server's, 256)"
    )
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="segflow-writer-"))
    try:
        db, _admin, _write, users, rows = prepare(root, args.customers)
        ctx = make_context(db)
        live = ctx.live
        assert live is not None
        live.start()
        store = ctx.app.store
        store.message_index()
        limit = ctx.settings.checkpoint_wal_bytes
        store.defer_checkpoints(args.checkpoint_mb << 20 if args.checkpoint_mb else limit)
        tune_gc()
        rng, seq = random.Random(1), [0]

        def messages(n: int) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            while len(out) < n:
                if args.mix == "shop":
                    data = shop_body(rows, 100, rng, seq)
                else:
                    data = body(users, 100, rng, seq)
                out += orjson.loads(data)["batch"]
            return out[:n]

        def commit(group: list[dict[str, Any]]) -> tuple[float, float]:
            t0 = time.perf_counter()
            with store.threads(1):
                store.ingest_messages(group, source="api", json_values=True, describe=True)
            fresh, store.last_load = store.last_load, None
            t1 = time.perf_counter()
            live.catch_up(fresh)
            return t1 - t0, time.perf_counter() - t1

        def run(size: int, count: int) -> tuple[float, float, float]:
            groups = [messages(size) for _ in range(count + 2)]
            for g in groups[:2]:  # warm-up: catalog, caches
                commit(g)
            store.checkpoint_if(0)
            gc.disable()
            try:
                times = [commit(g) for g in groups[2:]]
                t0 = time.perf_counter()
                store.checkpoint_if(0)
                folded = time.perf_counter() - t0
            finally:
                gc.enable()
            n = size * len(times)
            mean = (sum(a + b for a, b in times) + folded) / n
            return (
                statistics.median(t[0] for t in times) / size,
                statistics.median(t[1] for t in times) / size,
                mean,
            )

        print(
            f"{args.mix} mix, {args.customers:,} customers, the whole segment library live;"
            f" host reference {reference_ms():.0f} ms (a fixed Python loop, lower is faster)"
        )
        figures = {}
        for label, size, count in (
            ("baseline, 100 a commit", 100, max(40, args.groups * 4)),
            (f"groups of {args.group:,}", args.group, args.groups),
        ):
            store_us, eval_us, mean = run(size, count)
            figures[label] = store_us + eval_us
            print(
                f"{label:24s} store {store_us * 1e6:6.1f} us/event  evaluate"
                f" {eval_us * 1e6:6.1f} us/event  ->  {1 / (store_us + eval_us):9,.0f} events/s"
                f"  (mean with checkpoints {mean * 1e6:6.1f} us/event: {1 / mean:,.0f} events/s)"
            )
        base, group = figures.values()
        print(f"group commit / baseline: {base / group:.1f}x")
        ctx.app.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
