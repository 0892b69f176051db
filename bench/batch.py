"""Batch evaluator benchmark: the whole segment library in one plan vs a plain scan.

    .venv/bin/python bench/batch.py --customers 1000000   # ~100M events

Prints, for the same DuckDB file in the same process:
  * plain   -- ``SELECT profile_id, count(*), sum(revenue) ... GROUP BY profile_id``
  * library -- every library segment in one plan (one scan + sequences + traits)
  * each    -- every segment evaluated with its own query, one after another
and the ratios library/plain (target <= 4) and each/library (target >= 5), plus
peak RSS.  Generated data and the loaded store are cached under bench-data/.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from segflow.batch.run import evaluate  # noqa: E402
from segflow.demo.generator import generate_shop  # noqa: E402
from segflow.service import Segflow, read_segment_files  # noqa: E402

LIBRARY = ROOT / "src" / "segflow" / "demo" / "segments"
END = datetime(2026, 11, 1)


def timed(fn: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", type=Path, default=ROOT / "bench-data")
    ap.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: default)")
    args = ap.parse_args()

    data = args.data / f"shop-{args.customers}-{args.seed}"
    db = data / "bench.duckdb"
    if not db.exists():
        started = time.perf_counter()
        summary = generate_shop(data, customers=args.customers, seed=args.seed, end=END)
        print(f"generated {summary.events:,} events in {time.perf_counter() - started:.1f}s")
        sf = Segflow(db)
        started = time.perf_counter()
        sf.ingest(list(summary.paths))
        print(f"ingested in {time.perf_counter() - started:.1f}s")
        sf.close()
    sf = Segflow(db)
    con = sf.con
    if args.threads:
        con.execute(f"SET threads = {int(args.threads)}")
    events = con.execute("SELECT count(*) FROM events").fetchone()
    profiles = con.execute("SELECT count(*) FROM profiles").fetchone()
    assert events and profiles
    segments = read_segment_files(LIBRARY)
    print(f"{events[0]:,} events, {profiles[0]:,} profiles, {len(segments)} segments")

    revenue = '"properties.revenue"'
    plain_sql = (
        "CREATE OR REPLACE TEMP TABLE _plain AS SELECT profile_id, count(*) AS n, "
        f"sum({revenue}) AS revenue FROM events GROUP BY profile_id"
    )
    t_plain = timed(lambda: con.execute(plain_sql), args.repeat)
    t_library = timed(lambda: evaluate(con, segments, END), args.repeat)
    by_id = {s.id: s for s in segments}

    def each() -> None:
        for sid in by_id:
            evaluate(con, segments, END, only=[sid])

    t_each = timed(each, 1)
    sizes = evaluate(con, segments, END).sizes()
    print()
    print(f"plain GROUP BY scan      {t_plain:8.2f} s")
    print(
        f"library, one plan        {t_library:8.2f} s   ratio to plain {t_library / t_plain:5.2f}x"
        "  (target <= 4x)"
    )
    print(
        f"each segment, own query  {t_each:8.2f} s   one plan is {t_each / t_library:5.2f}x faster"
        "  (target >= 5x)"
    )
    print(f"peak RSS                 {peak_rss_mb():8.0f} MB")
    print(f"throughput               {events[0] / t_library / 1e6:8.1f} M events/s (library)")
    print()
    for sid, n in sorted(sizes.items()):
        print(f"  {sid:36} {n:>10,}")
    sf.close()


if __name__ == "__main__":
    main()
