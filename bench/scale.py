"""How the batch evaluator's cost grows with the shop: the whole segment library
evaluated on stores of growing size (``scaled_store``: a 10k-customer shop copied
set-wise), each beside a plain scan of the same store in the same run.

For every size it prints the events, the store file, the plain scan (every event
grouped by profile: count and revenue), one evaluation of the library (median of
``--repeat``, sides in turns) and their ratio, the process's peak resident memory
so far and what DuckDB spilled to disk under ``--memory-limit``.  Between consecutive
sizes it prints the growth exponent ``log(t2 / t1) / log(n2 / n1)`` (1.0: linear),
and from the last two sizes it extrapolates the library's time to ``--extrapolate``
customers (10M by default, about a billion events) when that size was not measured.

    .venv/bin/python bench/scale.py --sizes 1000000,3000000 --memory-limit 6GB

Stores are cached under ``--data`` (the 50k-customer store is 0.3 GB).
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from analytics import interleaved  # noqa: E402
from scaled_store import END, scaled_store  # noqa: E402
from segflow.service.handle import Segflow, read_segment_files  # noqa: E402
from segflow.store.duckdb.batch import evaluate  # noqa: E402
from segflow.store.duckdb.numbers import profile_key  # noqa: E402

LIBRARY = ROOT / "src" / "segflow" / "demo" / "segments"


def measure(db: Path, args: argparse.Namespace) -> dict[str, float]:
    sf = Segflow(db)
    try:
        con = sf.store.con
        con.execute(f"SET memory_limit = '{args.memory_limit}'")
        con.execute(f"SET threads = {args.threads}")
        con.execute(f"SET temp_directory = '{db.parent / 'spill'}'")
        segments = read_segment_files(LIBRARY)
        sf.registry.save(segments)
        (events,) = con.execute("SELECT count(*) FROM events").fetchone() or (0,)
        (profiles,) = con.execute("SELECT count(*) FROM profiles").fetchone() or (0,)
        key = profile_key(con)
        plain_sql = (
            f"CREATE OR REPLACE TEMP TABLE _plain AS SELECT {key}, count(*) AS n,"
            f' sum("properties.revenue") AS revenue FROM events GROUP BY {key}'
        )

        def plain() -> None:
            con.execute(plain_sql)

        def library() -> None:
            evaluate(con, segments, END)

        t_plain, t_library = interleaved([plain, library], args.repeat)
        (spilled,) = con.execute(
            "SELECT coalesce(sum(size), 0) FROM duckdb_temporary_files()"
        ).fetchone() or (0,)
        return {
            "customers": float(profiles),
            "events": float(events),
            "file_gb": db.stat().st_size / 1e9,
            "plain_s": t_plain,
            "library_s": t_library,
            "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            "spilled_gb": float(spilled) / 1e9,
        }
    finally:
        sf.close()


def exponent(a: dict[str, float], b: dict[str, float], what: str, by: str) -> float:
    """``what`` grows as ``by`` to this power between the sizes ``a`` and ``b``."""
    return math.log(b[what] / a[what]) / math.log(b[by] / a[by])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="100000,300000,1000000", help="customers, comma-separated")
    ap.add_argument("--data", type=Path, default=ROOT / "bench-data")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", default="6GB", help="DuckDB memory_limit (spills past it)")
    ap.add_argument("--extrapolate", type=int, default=10_000_000)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[dict[str, float]] = []
    print(
        f"{'customers':>11} {'events':>13} {'file GB':>8} {'plain s':>8} {'library s':>10}"
        f" {'ratio':>6} {'RSS GB':>7} {'spill GB':>9} {'exponent':>9}"
    )
    for n in sizes:
        r = measure(scaled_store(args.data, n), args)
        growth = f"{exponent(rows[-1], r, 'library_s', 'events'):9.2f}" if rows else ""
        rows.append(r)
        print(
            f"{r['customers']:11,.0f} {r['events']:13,.0f} {r['file_gb']:8.2f} {r['plain_s']:8.2f}"
            f" {r['library_s']:10.2f} {r['library_s'] / r['plain_s']:5.2f}x {r['rss_gb']:7.2f}"
            f" {r['spilled_gb']:9.2f} {growth}",
            flush=True,
        )
    if len(rows) >= 2 and rows[-1]["customers"] < args.extrapolate:
        a, b = rows[-2], rows[-1]
        k = exponent(a, b, "library_s", "customers")
        k_plain = exponent(a, b, "plain_s", "customers")
        factor = args.extrapolate / b["customers"]
        print(
            f"extrapolated to {args.extrapolate:,} customers (~{b['events'] * factor:,.0f}"
            f" events): library {b['library_s'] * factor**k:.1f} s, plain scan"
            f" {b['plain_s'] * factor**k_plain:.1f} s (exponents {k:.2f} and {k_plain:.2f}"
            " from the last two sizes)"
        )


if __name__ == "__main__":
    main()
