"""Segment analytics at scale: metrics, transitions and overlap against baselines
measured in the same run.

    .venv/bin/python bench/analytics.py [--customers 1000000] [--repeat 3]
        [--only metrics,transitions,overlap] [--profiles 1000000] [--sample 20000]

``metrics`` and ``transitions`` run on a shop store of ``--customers`` (~115 events
each; built set-wise by bench/scaled_store.py under bench-data/ when missing):

  * metrics: the aggregates and metrics of every library segment over the 30 days to
    the store's end, the members given (one query of per-profile aggregates and the
    kept sessions joined to the memberships, then the sums per segment; the sessions
    table is brought up to date first, untimed: a copied store has none), against a
    plain scan of the same period (``SELECT profile_no, count(*), sum(revenue) ...
    WHERE timestamp in the period GROUP BY profile_no``; target < 3x); and the whole
    ``metrics`` call, the
    library's evaluation included, against the plain scan plus one evaluation;
  * transitions: the transition matrix of a lifecycle group between the period's two
    instants (both evaluated: the bench store has no change log) against one
    evaluation of the whole library (target < 2x); and the weekly series.

Every side is run in turns (a, b, a, b, ...) and its median taken, so the host's drift
weighs on both sides of a ratio.

``overlap`` needs no store: members are generated, not evaluated: correlated segments
(thresholds on a few latent scores, so subsets and near-duplicates occur, as in a real
library) and independent ones (every profile in its own combination: the worst case
for counting combinations).  Times, in one process:
  * ``overlap`` from the boolean matrix (profiles x segments) and ``overlap_packed``
    from one bitmap per segment: pairwise intersections, Jaccard, exclusive counts,
    top combinations, warnings;
  * the baseline, plain Python sets on a sample of profiles: ``len(a & b)`` for every
    pair and a ``Counter`` of each profile's frozenset of segments; its time per profile
    scaled to the full population, and the vectorised run on the same sample.
The results of both are compared on the sample.  Measured figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from scaled_store import END, scaled_store  # noqa: E402
from segflow.analytics.metrics import segment_metrics  # noqa: E402
from segflow.analytics.overlap import (  # noqa: E402
    OverlapReport,
    overlap,
    overlap_packed,
    pack_members,
)
from segflow.service.analytics import metrics, transitions_report  # noqa: E402
from segflow.service.handle import Segflow, read_segment_files  # noqa: E402
from segflow.store.duckdb.batch import evaluate  # noqa: E402
from segflow.store.duckdb.numbers import profile_key  # noqa: E402
from segflow.store.duckdb.sessions import TABLE, update_sessions  # noqa: E402

LIBRARY = ROOT / "src" / "segflow" / "demo" / "segments"
PERIOD = timedelta(days=30)
STAGES = ["vip_customers", "loyal", "returning_customers", "first_time_purchasers_30d", "at_risk"]
"""A lifecycle group of the library, highest stage first."""
NOW = datetime(2026, 12, 1)


def correlated(n: int, s: int, rng: np.random.Generator) -> np.ndarray:
    """Segments as thresholds on mixes of three latent scores."""
    latent = rng.random((n, 3), dtype=np.float32)
    weights = rng.dirichlet(np.ones(3), size=s).astype(np.float32)
    cut = rng.uniform(0.5, 0.97, size=s).astype(np.float32)
    return np.asarray((latent @ weights.T) > cut)


def independent(n: int, s: int, rng: np.random.Generator) -> np.ndarray:
    return rng.random((n, s), dtype=np.float32) < rng.uniform(0.01, 0.5, s).astype(np.float32)


def timed(fn: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def naive(members: np.ndarray) -> tuple[list[list[int]], Counter[frozenset[int]]]:
    """Pairwise intersections and combinations with Python sets."""
    s = members.shape[1]
    sets = [set(np.flatnonzero(members[:, j]).tolist()) for j in range(s)]
    inter = [[len(sets[i] & sets[j]) for j in range(s)] for i in range(s)]
    per_profile: dict[int, list[int]] = {}
    for j, group in enumerate(sets):
        for p in group:
            per_profile.setdefault(p, []).append(j)
    return inter, Counter(frozenset(v) for v in per_profile.values())


def agrees(report: OverlapReport, members: np.ndarray) -> bool:
    inter, combos = naive(members)
    full = overlap(members, report.segments, top=len(combos))
    got = {
        frozenset(report.segments.index(x) for x in c.segments): c.count
        for c in full.top_combinations
    }
    return report.intersections.tolist() == inter and got == dict(combos)


def interleaved(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """Median time of each function, run in turns (a, b, a, b, ...)."""
    runs: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, times in zip(fns, runs, strict=True):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
    return [statistics.median(times) for times in runs]


def store_benchmarks(args: argparse.Namespace, only: set[str]) -> None:
    db = scaled_store(args.data, args.customers)
    sf = Segflow(db)
    con = sf.store.con
    con.execute("SET memory_limit = '4GB'")  # a shared machine
    segments = read_segment_files(LIBRARY)
    ids = sorted(s.id for s in segments)
    (events,) = con.execute("SELECT count(*) FROM events").fetchone() or (0,)
    (profiles,) = con.execute("SELECT count(*) FROM profiles").fetchone() or (0,)
    sf.registry.save(segments)
    start, end = END - PERIOD, END
    key = profile_key(con)
    (in_period,) = con.execute(
        'SELECT count(*) FROM events WHERE "timestamp" > ? AND "timestamp" <= ?', [start, end]
    ).fetchone() or (0,)
    print(
        f"{events:,} events ({in_period:,} in the 30 days), {profiles:,} profiles,"
        f" {len(segments)} library segments; median of {args.repeat}, sides in turns"
    )
    plain_sql = (
        f"CREATE OR REPLACE TEMP TABLE _plain AS SELECT {key}, count(*) AS n,"
        f' sum("properties.revenue") AS revenue FROM events'
        f' WHERE "timestamp" > $start AND "timestamp" <= $end GROUP BY {key}'
    )

    def plain() -> None:
        con.execute(plain_sql, {"start": start, "end": end})

    def library() -> None:
        evaluate(con, segments, end)

    if "metrics" in only:
        started = time.perf_counter()
        update_sessions(con)  # kept as events arrive; built here once for a copied store
        (kept,) = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone() or (0,)
        took = time.perf_counter() - started
        print(f"{kept:,} sessions kept, brought up to date in {took:.1f} s")
        members = sf.batch(sf.registry.current().values(), end)

        def given_members() -> None:
            m, aggregates = sf.analytics.period_aggregates(members, ids, start, end)
            segment_metrics(m, ids, aggregates)

        def whole() -> None:
            metrics(sf, None, start, end, now=NOW)

        t_plain, t_given = interleaved([plain, given_members], args.repeat)
        print(
            f"metrics, {len(ids)} segments, members given {t_given:7.2f} s   plain 30-day scan"
            f" {t_plain:6.2f} s   ratio {t_given / t_plain:5.2f}x (target < 3x)"
        )
        t_plain, t_library, t_whole = interleaved([plain, library, whole], args.repeat)
        print(
            f"metrics call, library evaluated    {t_whole:7.2f} s   plain + one evaluation"
            f" {t_plain + t_library:6.2f} s   ratio {t_whole / (t_plain + t_library):5.2f}x"
            f"  ({t_whole / t_plain:.2f}x the plain scan; evaluation alone {t_library:.2f} s)"
        )
    if "transitions" in only:

        def two_instants() -> dict[str, Any]:
            return transitions_report(sf, STAGES, start, end, now=NOW)

        t_library, t_two = interleaved([library, two_instants], args.repeat)
        report = two_instants()
        print(
            f"transitions, {len(STAGES)} stages, 2 instants {t_two:7.2f} s   one library"
            f" evaluation {t_library:6.2f} s   ratio {t_two / t_library:5.2f}x (target < 2x);"
            f" {report['stayed']:,} stayed, {report['entered']:,} entered,"
            f" {report['exited']:,} exited"
        )
        started = time.perf_counter()
        weekly = transitions_report(sf, STAGES, start, end, every="week", now=NOW)
        t_weekly = time.perf_counter() - started
        print(
            f"transitions per week ({len(weekly['periods'])} matrices, {len(weekly['sources'])}"
            f" instants evaluated) {t_weekly:.2f} s, one run"
        )
        con.execute("BEGIN TRANSACTION")  # the synthetic log is rolled back
        try:
            logged = synthetic_log(sf, start - timedelta(weeks=4), end)
            t_library, t_log = interleaved([library, two_instants], args.repeat)
            assert two_instants()["counts"] == report["counts"]
            started = time.perf_counter()
            transitions_report(sf, STAGES, start, end, every="week", now=NOW)
            t_log_weekly = time.perf_counter() - started
        finally:
            con.execute("ROLLBACK")
        print(
            f"  from a change log of {logged:,} changes: 2 instants {t_log:.2f} s"
            f" ({t_log / t_library:.2f}x one library evaluation), per week {t_log_weekly:.2f} s;"
            " same matrix as evaluated"
        )
    sf.close()


def synthetic_log(sf: Segflow, first: datetime, last: datetime) -> int:
    """A change log of the stages that covers ``first`` .. ``last``: each stage evaluated
    at ``first``, then weekly and at ``last``, every difference logged at the instant it
    was seen (so the log's state equals the evaluation at each of those instants);
    returns its length."""
    con = sf.store.con
    segs = sf.registry.current()
    con.execute("CREATE OR REPLACE TEMP TABLE _was (segment_id VARCHAR, profile_id VARCHAR)")
    seq = 0
    instants = [first + timedelta(weeks=i) for i in range((last - first) // timedelta(weeks=1) + 1)]
    for t in sorted({*instants, last}):
        result = sf.batch(segs.values(), t, only=STAGES)
        now = " UNION ALL ".join(
            f"SELECT '{s}' AS segment_id, profile_id FROM {result.table}"
            f' WHERE "{result.columns[s]}"'
            for s in STAGES
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE _now AS {now}")
        (n,) = con.execute(
            """INSERT INTO membership_changes
               SELECT $seq + row_number() OVER (), segment_id, profile_id, entered, $t,
                      'event', 1, $t
               FROM (SELECT *, TRUE AS entered FROM (FROM _now EXCEPT FROM _was)
                     UNION ALL SELECT *, FALSE FROM (FROM _was EXCEPT FROM _now))""",
            {"seq": seq, "t": t},
        ).fetchone() or (0,)
        seq += int(n)
        con.execute("CREATE OR REPLACE TEMP TABLE _was AS FROM _now")
    sf.changes.cover(dict.fromkeys(STAGES, 1), first)
    sf.changes.set_mark(seq, last)
    return seq


def overlap_benchmarks(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    print(f"{args.profiles:,} profiles; baseline on {args.sample:,}; median of {args.repeat}")
    for kind, make in (("correlated", correlated), ("independent", independent)):
        for s in (20, 50):
            members = make(args.profiles, s, rng)
            ids = [f"s{j}" for j in range(s)]
            packed = pack_members(members)
            report = overlap(members, ids)
            t_matrix = timed(lambda m=members, i=ids: overlap(m, i), args.repeat)
            t_packed = timed(
                lambda p=packed, i=ids: overlap_packed(p, args.profiles, i), args.repeat
            )
            sample = members[: args.sample]
            t_naive = timed(lambda m=sample: naive(m), 1)
            t_small = timed(lambda m=sample, i=ids: overlap(m, i), args.repeat)
            scaled = t_naive * args.profiles / args.sample
            ok = agrees(overlap(sample, ids), sample)
            print(
                f"{kind:>11} {s} segments: matrix {t_matrix * 1000:7.1f} ms, "
                f"packed {t_packed * 1000:7.1f} ms; {report.distinct_combinations:,} "
                f"combinations, {len(report.warnings)} warnings"
            )
            print(
                f"{'':>11} Python sets: {t_naive * 1000:7.1f} ms on the sample "
                f"(x{t_naive / t_small:.0f} the vectorised run on it), about "
                f"{scaled:.1f} s scaled to all profiles (x{scaled / t_matrix:.0f}); "
                f"same counts: {ok}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=ROOT / "bench-data")
    ap.add_argument("--only", default="metrics,transitions,overlap")
    ap.add_argument("--profiles", type=int, default=1_000_000)
    ap.add_argument("--sample", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    only = set(args.only.split(","))
    if only & {"metrics", "transitions"}:
        store_benchmarks(args, only)
    if "overlap" in only:
        overlap_benchmarks(args)


if __name__ == "__main__":
    main()
