"""The library evaluated on a Segment warehouse read in place, against the same
messages loaded into PostgreSQL tables (``engine load``) and DuckDB.

    .venv/bin/python bench/segment_warehouse.py \\
        --url postgresql://postgres@127.0.0.1:5432/postgres [--customers 1000] [--runs 3]

Generates a demo shop, ingests its messages into a scratch DuckDB store, loads that
store into one scratch schema, writes the messages as Segment's warehouse loader lays
them out into another and attaches a third to it (all dropped afterwards); then
evaluates the segment library as of the shop's end ``--runs`` times on each, and
prints the attach time, each engine's times, the ratio of the best attached time to
the best loaded one, and checks that the sizes agree.
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

from tests.segment_warehouse import write_segment_schema  # noqa: E402

from segflow.demo import SEGMENTS_DIR, generate_shop, write_jsonl  # noqa: E402
from segflow.service.handle import read_segment_files  # noqa: E402
from segflow.store.duckdb.batch import evaluate  # noqa: E402
from segflow.store.duckdb.store import DuckDBStore  # noqa: E402
from segflow.store.postgres.batch import PostgresBatch  # noqa: E402
from segflow.store.postgres.connection import connect  # noqa: E402
from segflow.store.postgres.load import copy_store  # noqa: E402
from segflow.store.postgres.warehouse import attach, open_batch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
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
            loaded = PostgresBatch(urls["loaded"])
            attached = open_batch(urls["attached"])
            times: dict[str, list[float]] = {"duckdb": [], "loaded": [], "attached": []}
            sizes = {}
            for _ in range(args.runs):
                for name in times:
                    t = time.perf_counter()
                    if name == "duckdb":
                        sizes[name] = evaluate(store.con, segments, summary.end).sizes()
                    else:
                        batch = loaded if name == "loaded" else attached
                        sizes[name] = batch.evaluate(segments, summary.end).sizes()
                    times[name].append(time.perf_counter() - t)
            loaded.close()
            attached.close()
        finally:
            store.close()
            for schema in names.values():
                admin.execute(f"DROP SCHEMA {schema} CASCADE")
            admin.close()
    assert sizes["duckdb"] == sizes["loaded"] == sizes["attached"], "the engines disagree"
    for name, ts in times.items():
        print(f"{name}: {' / '.join(f'{x:.2f}' for x in ts)} s ({len(segments)} segments)")
    ratio = min(times["attached"]) / min(times["loaded"])
    print(f"attached / loaded (best): {ratio:.2f}x; sizes agree")


if __name__ == "__main__":
    main()
