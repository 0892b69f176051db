"""The library evaluated on a Segment warehouse read in place, against the same
messages loaded into PostgreSQL tables (``engine load``) and DuckDB.

    .venv/bin/python bench/segment_warehouse.py \\
        --url postgresql://postgres@127.0.0.1:5432/postgres [--customers 1000] [--runs 3] \\
        [--spark 2]

Generates a demo shop, ingests its messages into a scratch DuckDB store, loads that
store into one scratch schema, writes the messages as Segment's warehouse loader lays
them out into another and attaches a third to it (all dropped afterwards); then
evaluates the segment library as of the shop's end ``--runs`` times on each, and
prints the attach time, each engine's times, the ratio of the best attached time to
the best loaded one, and checks that the sizes agree.  With ``--spark N`` the same is
done on Spark (``local[N]``): the store loaded into a scratch directory, the messages
written as Parquet tables and attached in another.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.segment_warehouse import write_segment_parquet, write_segment_schema  # noqa: E402

from segflow.demo import SEGMENTS_DIR, generate_shop, write_jsonl  # noqa: E402
from segflow.service.handle import read_segment_files  # noqa: E402
from segflow.store.duckdb.batch import evaluate  # noqa: E402
from segflow.store.duckdb.store import DuckDBStore  # noqa: E402
from segflow.store.postgres.batch import PostgresBatch  # noqa: E402
from segflow.store.postgres.connection import connect  # noqa: E402
from segflow.store.postgres.load import copy_store  # noqa: E402
from segflow.store.postgres.warehouse import attach, open_batch  # noqa: E402
from segflow.store.protocols import BatchEvaluator  # noqa: E402
from segflow.store.spark import warehouse as spark_warehouse  # noqa: E402
from segflow.store.spark.batch import SparkBatch  # noqa: E402
from segflow.store.spark.connection import open_session  # noqa: E402
from segflow.store.spark.load import copy_store as spark_copy_store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--spark", type=int, default=0, help="also on Spark local[N]")
    args = ap.parse_args()
    tag = uuid.uuid4().hex[:8]
    names = {k: f"segflow_bench_{k}_{tag}" for k in ("loaded", "segment", "attached")}
    sep = "&" if "?" in args.url else "?"
    urls = {k: f"{args.url}{sep}options=-csearch_path%3D{v}" for k, v in names.items()}
    admin = connect(args.url)
    for schema in names.values():
        admin.execute(f"CREATE SCHEMA {schema}")
    with tempfile.TemporaryDirectory(prefix="segflow-bench-") as tmp:
        root = Path(tmp)
        summary = generate_shop(root / "shop", customers=args.customers, seed=7)
        write_jsonl(summary, root / "messages.jsonl")
        messages = [json.loads(line) for line in (root / "messages.jsonl").open()]
        store = DuckDBStore(root / "store.duckdb")
        try:
            store.ingest_jsonl(root / "messages.jsonl")
            copy_store(store.con, connect(urls["loaded"]))
            write_segment_schema(connect(urls["segment"]), names["segment"], messages)
            started = time.perf_counter()
            report = attach(connect(urls["attached"]), names["segment"])
            print(
                f"attach: {time.perf_counter() - started:.2f} s, {len(messages):,} messages,"
                f" {len(report.event_tables)} event tables, {report.fields} fields"
            )
            segments = read_segment_files(SEGMENTS_DIR)
            batches: dict[str, BatchEvaluator] = {
                "loaded": PostgresBatch(urls["loaded"]),
                "attached": open_batch(urls["attached"]),
            }
            if args.spark:
                spark = {k: f"spark://local[{args.spark}]{root / k}" for k in ("sl", "sa")}
                target = open_session(spark["sl"], create=True)
                spark_copy_store(store.con, target)
                target.close()
                write_segment_parquet(root / "lake", messages)
                started = time.perf_counter()
                spark_warehouse.attach(spark["sa"], str(root / "lake"))
                print(f"attach on Spark: {time.perf_counter() - started:.2f} s")
                batches["spark loaded"] = SparkBatch(spark["sl"])
                batches["spark attached"] = spark_warehouse.open_batch(spark["sa"])
            times: dict[str, list[float]] = {"duckdb": [], **{k: [] for k in batches}}
            sizes = {}
            for _ in range(args.runs):
                for name in times:
                    t = time.perf_counter()
                    if name == "duckdb":
                        sizes[name] = evaluate(store.con, segments, summary.end).sizes()
                    else:
                        sizes[name] = batches[name].evaluate(segments, summary.end).sizes()
                    times[name].append(time.perf_counter() - t)
            for batch in batches.values():
                batch.close()
        finally:
            store.close()
            for schema in names.values():
                admin.execute(f"DROP SCHEMA {schema} CASCADE")
            admin.close()
    assert all(got == sizes["duckdb"] for got in sizes.values()), "the engines disagree"
    for name, ts in times.items():
        print(f"{name}: {' / '.join(f'{x:.2f}' for x in ts)} s ({len(segments)} segments)")
    for prefix in ("", "spark ") if args.spark else ("",):
        ratio = min(times[f"{prefix}attached"]) / min(times[f"{prefix}loaded"])
        print(f"{prefix}attached / {prefix}loaded (best): {ratio:.2f}x")
    print(f"sizes agree on {', '.join(sizes)}")


if __name__ == "__main__":
    main()
