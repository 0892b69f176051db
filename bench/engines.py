"""The library evaluated on PostgreSQL against DuckDB, on the same store.

    .venv/bin/python bench/engines.py --db segflow.duckdb \\
        --url postgresql://postgres@127.0.0.1:5432/postgres [--runs 3]

Loads the store (``segflow demo --no-serve`` makes one) into a scratch schema of the
server (dropped afterwards), then evaluates every saved segment in one plan as of the
store's latest event, ``--runs`` times on each engine, alternating; prints the load
time, each engine's times and the ratio of the best ones, and checks that the sizes
agree.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from segflow.service.handle import Segflow  # noqa: E402
from segflow.store.postgres.batch import PostgresBatch  # noqa: E402
from segflow.store.postgres.connection import connect  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", type=Path, default=Path("segflow.duckdb"))
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    schema = f"segflow_bench_{uuid.uuid4().hex[:8]}"
    admin = connect(args.url)
    admin.execute(f"CREATE SCHEMA {schema}")
    url = f"{args.url}{'&' if '?' in args.url else '?'}options=-csearch_path%3D{schema}"
    sf = Segflow(args.db)
    try:
        started = time.perf_counter()
        report = sf.load_engine(url)
        print(f"load: {time.perf_counter() - started:.2f} s, {report.rows['events']:,} events")
        segments = list(sf.segments().values())
        at = sf.store.con.execute('SELECT max("timestamp") FROM events').fetchone()[0]
        pg = PostgresBatch(url)
        times: dict[str, list[float]] = {"duckdb": [], "postgres": []}
        sizes = {}
        for _ in range(args.runs):
            for name, evaluator in (("duckdb", sf.evaluator), ("postgres", pg)):
                t = time.perf_counter()
                sizes[name] = evaluator.evaluate(segments, at).sizes()
                times[name].append(time.perf_counter() - t)
        pg.close()
        assert sizes["duckdb"] == sizes["postgres"], "the engines disagree"
        for name, ts in times.items():
            print(f"{name}: {' / '.join(f'{x:.2f}' for x in ts)} s ({len(segments)} segments)")
        ratio = min(times["postgres"]) / min(times["duckdb"])
        print(f"postgres / duckdb (best): {ratio:.2f}x; sizes agree")
    finally:
        sf.close()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


if __name__ == "__main__":
    main()
