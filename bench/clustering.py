"""The batch evaluator on a server-fed store: arrival order vs the tail compaction.

    .venv/bin/python bench/clustering.py [--customers 100000] [--chunk 1000000]

Takes ``bench/batch.py``'s loaded shop store (built when missing; ``--data``) and
copies it into a scratch file whose events and traits are in arrival order (by
timestamp, seq and wseq renumbered to match): the layout the server's small group
commits leave.  Then, in one process:
  * the whole library in one plan on the arrival-order copy;
  * ``compact_tail`` chunk after chunk until the tail is shorter than a chunk, as the
    server does when ingestion goes idle: seconds per chunk;
  * the library again on the tail-compacted copy, and on the bulk-loaded original
    (sorted by ``segflow ingest``) for reference;
members compared each time.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from batch import END, LIBRARY, interleaved, loaded_store  # noqa: E402
from segflow.service.handle import read_segment_files  # noqa: E402
from segflow.store.duckdb.batch import evaluate  # noqa: E402
from segflow.store.duckdb.clustering import TAIL_CHUNK_ROWS, set_clustered  # noqa: E402
from segflow.store.duckdb.store import DuckDBStore  # noqa: E402


def arrival_order(store: DuckDBStore) -> None:
    """Rewrite events and traits in timestamp order, seq/wseq numbered that way, with
    nothing counted as clustered: what a server that never compacted would hold."""
    con = store.con
    for table, seq in (("events", "seq"), ("traits", "wseq")):
        con.execute(
            f"CREATE TEMP TABLE _arrival AS SELECT * REPLACE (row_number() OVER"
            f' (ORDER BY "timestamp", {seq}) AS {seq}) FROM {table} ORDER BY {seq}'
        )
        con.execute(f"DELETE FROM {table}")
        con.execute(f"INSERT INTO {table} SELECT * FROM _arrival")
        con.execute("DROP TABLE _arrival")
        set_clustered(con, table, 0)
    con.execute("CHECKPOINT")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=TAIL_CHUNK_ROWS)
    ap.add_argument("--data", type=Path, default=ROOT / "bench-data")
    args = ap.parse_args()

    original = loaded_store(args.data, args.customers, args.seed)
    segments = read_segment_files(LIBRARY)
    scratch = Path(tempfile.mkdtemp(prefix="segflow-clustering-"))
    try:
        copy = scratch / "arrival.duckdb"
        shutil.copy(original, copy)
        started = time.perf_counter()
        store = DuckDBStore(copy)
        arrival_order(store)
        con = store.con
        (events,) = con.execute("SELECT count(*) FROM events").fetchone() or (0,)
        print(f"{events:,} events in arrival order ({time.perf_counter() - started:.1f} s)")

        def library() -> dict[str, int]:
            return evaluate(con, segments, END).sizes()

        (t_arrival,) = interleaved([library], args.repeat)
        arrival_sizes = library()

        chunks: list[float] = []
        rewritten = 0
        while True:
            started = time.perf_counter()
            done = store.compact_tail(args.chunk)
            if not done:
                break
            chunks.append(time.perf_counter() - started)
            rewritten += sum(done.values())
        (t_tail,) = interleaved([library], args.repeat)
        assert library() == arrival_sizes, "the tail compaction changed the members"
        store.close()

        bulk = DuckDBStore(original)
        (t_bulk,) = interleaved([lambda: evaluate(bulk.con, segments, END).sizes()], args.repeat)
        assert evaluate(bulk.con, segments, END).sizes() == arrival_sizes
        bulk.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print(f"library, arrival order        {t_arrival:8.2f} s")
    if chunks:
        print(
            f"compact_tail                  {len(chunks)} chunks of {args.chunk:,} seqs,"
            f" {rewritten:,} rows: median {statistics.median(chunks):.2f} s a chunk,"
            f" {sum(chunks):.1f} s in all"
        )
    print(
        f"library, tail-compacted       {t_tail:8.2f} s   {t_arrival / t_tail:5.2f}x faster"
        " than arrival order"
    )
    print(f"library, bulk-loaded original {t_bulk:8.2f} s   (sorted by segflow ingest)")


if __name__ == "__main__":
    main()
