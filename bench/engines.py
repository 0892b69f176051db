"""The library evaluated on PostgreSQL, on ClickHouse (chDB) and on Spark against
DuckDB, on the same store.

    .venv/bin/python bench/engines.py --db segflow.duckdb \\
        [--url postgresql://postgres@127.0.0.1:5432/postgres] [--chdb] [--spark [N]]
        [--plan] [--runs 3]

Loads the store (``segflow demo --no-serve`` makes one) into each engine asked for: a
scratch schema of the PostgreSQL server with ``--url``, a scratch chDB directory with
``--chdb``, a scratch Spark directory with ``--spark`` (local mode on N cores, every
core by default; all dropped afterwards), prints Spark's physical plan of the library
with ``--plan``, then evaluates every saved segment in one plan as
of the store's latest event, ``--runs`` times on each engine, alternating; prints each
load time, each engine's times and the ratio of the best ones to DuckDB's, and checks
that the sizes agree.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from segflow.service.handle import Segflow  # noqa: E402
from segflow.store.clickhouse.batch import ClickHouseBatch  # noqa: E402
from segflow.store.postgres.batch import PostgresBatch  # noqa: E402
from segflow.store.postgres.connection import connect  # noqa: E402
from segflow.store.protocols import BatchEvaluator  # noqa: E402
from segflow.store.spark.batch import SparkBatch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", type=Path, default=Path("segflow.duckdb"))
    ap.add_argument("--url", help="a PostgreSQL server (a scratch schema is made there)")
    ap.add_argument("--chdb", action="store_true", help="chDB in a scratch directory")
    ap.add_argument(
        "--spark", nargs="?", const="*", metavar="N", help="Spark (local[N]) in a scratch directory"
    )
    ap.add_argument("--plan", action="store_true", help="print Spark's physical plan")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not args.url and not args.chdb and not args.spark:
        ap.error("name an engine: --url postgresql://..., --chdb and/or --spark")
    if args.plan and not args.spark:
        ap.error("--plan prints Spark's plan: name --spark too")
    with ExitStack() as stack:
        sf = Segflow(args.db)
        stack.callback(sf.close)
        engines: dict[str, BatchEvaluator] = {"duckdb": sf.evaluator}
        if args.url:
            schema = f"segflow_bench_{uuid.uuid4().hex[:8]}"
            admin = connect(args.url)
            stack.callback(admin.close)
            admin.execute(f"CREATE SCHEMA {schema}")
            stack.callback(admin.execute, f"DROP SCHEMA {schema} CASCADE")
            url = f"{args.url}{'&' if '?' in args.url else '?'}options=-csearch_path%3D{schema}"
            engines["postgres"] = _loaded(sf, url, lambda: PostgresBatch(url), stack)
        if args.chdb:
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="segflow-bench-"))
            chdb_url = f"chdb://{scratch}"
            engines["chdb"] = _loaded(sf, chdb_url, lambda: ClickHouseBatch(chdb_url), stack)
        if args.spark:
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="segflow-bench-"))
            spark_url = f"spark://local[{args.spark}]{scratch}"
            engines["spark"] = _loaded(sf, spark_url, lambda: SparkBatch(spark_url), stack)
        segments = list(sf.segments().values())
        (at,) = sf.store.con.execute('SELECT max("timestamp") FROM events').fetchone() or (None,)
        if args.plan:
            spark = engines["spark"]
            assert isinstance(spark, SparkBatch)
            print(spark.explain(segments, at))
        times: dict[str, list[float]] = {name: [] for name in engines}
        sizes = {}
        for _ in range(args.runs):
            for name, evaluator in engines.items():
                t = time.perf_counter()
                sizes[name] = evaluator.evaluate(segments, at).sizes()
                times[name].append(time.perf_counter() - t)
        for name in engines:
            assert sizes[name] == sizes["duckdb"], f"{name} disagrees with duckdb"
        for name, ts in times.items():
            print(f"{name}: {' / '.join(f'{x:.2f}' for x in ts)} s ({len(segments)} segments)")
        for name in engines:
            if name != "duckdb":
                ratio = min(times[name]) / min(times["duckdb"])
                print(f"{name} / duckdb (best): {ratio:.2f}x")
        print("sizes agree")


def _loaded(
    sf: Segflow,
    url: str,
    batch: Callable[[], PostgresBatch | ClickHouseBatch | SparkBatch],
    stack: ExitStack,
) -> BatchEvaluator:
    """The engine at ``url`` once the store is loaded into it (the load time printed)."""
    started = time.perf_counter()
    report = sf.load_engine(url)
    took = time.perf_counter() - started
    print(f"load {report.engine}: {took:.2f} s, {report.rows['events']:,} events")
    evaluator = batch()
    stack.callback(evaluator.close)
    return evaluator


if __name__ == "__main__":
    main()
