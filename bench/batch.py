"""Batch evaluator benchmark: the whole segment library in one plan vs a plain scan.

    .venv/bin/python bench/batch.py --customers 1000000   # ~100M events

Prints, for the same DuckDB file in the same process (plain and library runs taken in
turns, the median of ``--repeat`` each):
  * plain   -- ``SELECT profile_no, count(*), sum(revenue) ... GROUP BY profile_no``
               (the store's profile key; the same on ``profile_id`` is printed too)
  * library -- every library segment in one plan (one scan + sequences + traits)
  * each    -- every segment evaluated with its own query, one after another
and the ratios library/plain (target <= 4) and each/library (target >= 5), plus
peak RSS and the rows each side reads (the bound on the each/library ratio of the
scans).  Generated data and the loaded store are cached under bench-data/; after a load
the script runs itself again in a fresh process, because in the process that has just
loaded the store the plain scan runs well below its steady speed.  Measured figures:
docs/performance.md.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from segflow.demo.generator import generate_shop  # noqa: E402
from segflow.model.definition import Segment  # noqa: E402
from segflow.plan.features import EventAggregate, SequenceMatch, TraitValue  # noqa: E402
from segflow.plan.planner import build_plan, closure  # noqa: E402
from segflow.service.handle import Segflow, read_segment_files  # noqa: E402
from segflow.store.duckdb.batch import evaluate  # noqa: E402
from segflow.store.duckdb.numbers import profile_key  # noqa: E402

LIBRARY = ROOT / "src" / "segflow" / "demo" / "segments"
END = datetime(2026, 11, 1)


def timed(fn: Callable[[], object], repeat: int) -> float:
    return interleaved([fn], repeat)[0]


def interleaved(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """Median time of each function, run in turns (a, b, c, a, b, c, ...): the host's
    drift over the minutes of a run then weighs on every side of a ratio alike."""
    runs: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, times in zip(fns, runs, strict=True):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
    return [statistics.median(times) for times in runs]


def peak_rss_mb() -> float:
    """This process's peak RSS: Linux's VmHWM, which starts afresh at exec.
    ``ru_maxrss`` carries the parent's over exec when the child was vfork'ed (as
    ``subprocess`` does): after a load, the rerun would print the loading process's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rows_read(con: Any, segments: list[Segment]) -> tuple[dict[str, int], dict[str, int]]:
    """Rows the one plan's scans read and rows all the segments' own queries read
    together, by table: the one plan reads each row it needs once, so the "each"
    ratio of the scans cannot exceed this ratio (the segments' own work on the rows
    they share is what the one plan saves)."""
    codes = dict(con.execute("SELECT name, code FROM event_names").fetchall())
    per_code = dict(con.execute("SELECT event_code, count(*) FROM events GROUP BY 1").fetchall())
    per_key = dict(con.execute("SELECT key, count(*) FROM traits GROUP BY 1").fetchall())
    (n_profiles,) = con.execute("SELECT count(*) FROM profiles").fetchone()

    def of(names: set[str]) -> int:
        return sum(per_code.get(codes.get(n), 0) for n in names)

    def one(chosen: list[Segment]) -> dict[str, int]:
        plan = build_plan(chosen)
        names: set[str] = set()
        sequences = 0
        keys: set[str] = set()
        for f in plan.features.values():
            if isinstance(f, EventAggregate):
                names |= set(f.filter.names)
            elif isinstance(f, SequenceMatch):
                sequences += sum(of(set(step.names)) for step in f.steps)
            elif isinstance(f, TraitValue):  # one scan of the key's rows (clustered)
                keys.add(f.name)
        return {
            "events": of(names),
            "sequence steps": sequences,
            "traits": sum(per_key.get(k, 0) for k in keys),
            "profiles": n_profiles,
        }

    by_id = {s.id: s for s in segments}
    each: dict[str, int] = {}
    for sid in by_id:
        for k, v in one(closure(by_id, [sid])).items():
            each[k] = each.get(k, 0) + v
    return one(segments), each


def loaded_store(data: Path, customers: int, seed: int) -> Path:
    """The loaded shop store under ``data`` (generated and loaded by CLI ingestion,
    one file after another, when missing)."""
    shop = data / f"shop-{customers}-{seed}"
    db = shop / "bench.duckdb"
    if not db.exists():
        started = time.perf_counter()
        summary = generate_shop(shop, customers=customers, seed=seed, end=END)
        print(f"generated {summary.events:,} events in {time.perf_counter() - started:.1f}s")
        sf = Segflow(db)
        started = time.perf_counter()
        sf.ingest(list(summary.paths))
        print(f"ingested in {time.perf_counter() - started:.1f}s", flush=True)
        sf.close()
        # time a fresh process: in this one the plain scan runs well below its steady
        # speed after the load, which would flatter the library's ratio to it.
        # A child, not exec: an exec'd process keeps this one's peak RSS (the load's).
        sys.exit(subprocess.call([sys.executable, *sys.argv]))
    return db


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", type=Path, default=ROOT / "bench-data")
    ap.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: default)")
    args = ap.parse_args()

    db = loaded_store(args.data, args.customers, args.seed)
    sf = Segflow(db)
    con = sf.store.con
    if args.threads:
        con.execute(f"SET threads = {int(args.threads)}")
    events = con.execute("SELECT count(*) FROM events").fetchone()
    profiles = con.execute("SELECT count(*) FROM profiles").fetchone()
    assert events and profiles
    segments = read_segment_files(LIBRARY)
    print(f"{events[0]:,} events, {profiles[0]:,} profiles, {len(segments)} segments")

    def plain(key: str) -> Callable[[], object]:
        sql = (
            f"CREATE OR REPLACE TEMP TABLE _plain AS SELECT {key}, count(*) AS n,"
            f' sum("properties.revenue") AS revenue FROM events GROUP BY {key}'
        )
        return lambda: con.execute(sql)

    # the plan groups and joins on the store's key: the plain scan it is held to does too
    key = profile_key(con)
    t_plain, t_plain_text, t_library = interleaved(
        [plain(key), plain("profile_id"), lambda: evaluate(con, segments, END)], args.repeat
    )
    by_id = {s.id: s for s in segments}

    per_segment: dict[str, float] = {}

    def each() -> None:
        for sid in by_id:
            started = time.perf_counter()
            evaluate(con, segments, END, only=[sid])
            per_segment[sid] = time.perf_counter() - started

    t_each = timed(each, 1)
    sizes = evaluate(con, segments, END).sizes()
    print()
    print(f"plain GROUP BY {key:10s}{t_plain:8.2f} s")
    if key != "profile_id":
        print(f"plain GROUP BY profile_id{t_plain_text:8.2f} s   (text key, for reference)")
    print(
        f"library, one plan        {t_library:8.2f} s   ratio to plain {t_library / t_plain:5.2f}x"
        f"  (target <= 4x; {t_library / t_plain_text:.2f}x the text-key scan)"
    )
    print(
        f"each segment, own query  {t_each:8.2f} s   one plan is {t_each / t_library:5.2f}x faster"
        "  (target >= 5x)"
    )
    slowest = sorted(per_segment.items(), key=lambda kv: -kv[1])[:6]
    print(
        "  slowest own queries: "
        + ", ".join(f"{sid} {t:.2f} s" for sid, t in slowest)
        + f" (of {t_each:.2f} s)"
    )
    print(f"peak RSS                 {peak_rss_mb():8.0f} MB")
    one, each_rows = rows_read(con, segments)
    print("rows read (one plan / each segment's own query, summed):")
    for table, n in one.items():
        ratio = f"{each_rows[table] / n:6.2f}x" if n else "      -"
        print(f"  {table:16s} {n:>14,} {each_rows[table]:>14,}  {ratio}")
    total, total_each = sum(one.values()), sum(each_rows.values())
    print(f"  {'all':16s} {total:>14,} {total_each:>14,}  {total_each / total:6.2f}x")
    print(f"throughput               {events[0] / t_library / 1e6:8.1f} M events/s (library)")
    print()
    for sid, n in sorted(sizes.items()):
        print(f"  {sid:36} {n:>10,}")
    sf.close()


if __name__ == "__main__":
    main()
