"""Bulk backfill: Parquet files of the demo shop through ``segflow ingest``, against
DuckDB's own scan and copy of the same files in the same run.

    .venv/bin/python bench/ingest_bulk.py [--events 10000000] [--memory-limit 3GB]

Generates ``--events`` events (about 115 per customer) as Parquet files of
``--file-customers`` customers each, then, each in a fresh DuckDB file with the same
``memory_limit`` and ``threads``:

  * scan  -- ``SELECT count(COLUMNS(*)) FROM read_parquet(files)``: every column read
  * copy  -- ``CREATE TABLE raw AS SELECT * FROM read_parquet(files)``: every column
    read and written to a table (the floor of storing the rows at all)
  * load  -- ``Segflow.ingest(files)``: validation, message-id deduplication,
    identity resolution, typed fields, trait history, profiles; one transaction
    per file
  * again -- the same ingest once more (every file is in the load ledger: nothing
    is read twice)

Prints events/s, CPU seconds (the process's; the machine is shared, so wall time
depends on the other jobs) and the ratio of each side to the load.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from segflow.demo.generator import generate_shop  # noqa: E402
from segflow.service.handle import Segflow  # noqa: E402

EVENTS_PER_CUSTOMER = 115


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn()``."""
    wall, before = time.perf_counter(), cpu()
    fn()
    return time.perf_counter() - wall, cpu() - before


def settings(con: duckdb.DuckDBPyConnection, memory: str, threads: int) -> None:
    con.execute(
        f"SET memory_limit = '{memory}'; SET threads = {threads}; SET enable_progress_bar = false"
    )


def fresh(path: Path) -> Path:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--file-customers", type=int, default=50_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--memory-limit", default="3GB")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dir", type=Path, help="where to put the files (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="segflow-bulk-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        customers = max(1, args.events // EVENTS_PER_CUSTOMER)
        data = root / "data"
        wall = time.perf_counter()
        shop = generate_shop(
            data,
            customers=customers,
            seed=7,
            end=datetime(2026, 11, 1),
            days=args.days,
            chunk_customers=args.file_customers,
        )
        paths = [str(p) for p in shop.paths]
        n = shop.events
        size = sum(os.path.getsize(p) for p in paths)
        print(
            f"generated {n:,} events of {customers:,} customers in {len(paths)} Parquet"
            f" files ({size / 1e6:,.0f} MB) in {time.perf_counter() - wall:.1f} s;"
            f" memory_limit {args.memory_limit}, threads {args.threads},"
            f" load average {os.getloadavg()[0]:.1f}"
        )
        figures: dict[str, tuple[float, float]] = {}

        con = duckdb.connect(str(fresh(root / "raw.duckdb")))
        settings(con, args.memory_limit, args.threads)
        figures["scan"] = timed(
            lambda: con.execute("SELECT count(COLUMNS(*)) FROM read_parquet(?)", [paths]).fetchall()
        )
        figures["copy"] = timed(
            lambda: (
                con.execute("CREATE TABLE raw AS SELECT * FROM read_parquet(?)", [paths]),
                con.execute("CHECKPOINT"),
            )
        )
        con.close()
        fresh(root / "raw.duckdb")

        sf = Segflow(fresh(root / "store.duckdb"))
        try:
            settings(sf.store.con, args.memory_limit, args.threads)
            files = [Path(p) for p in paths]
            reports: list[object] = []
            figures["load"] = timed(lambda: reports.extend(sf.ingest(files)))
            stored = sf.store.count_events()
            figures["again"] = timed(lambda: sf.ingest(files))
            assert sf.store.count_events() == stored, "a second load stored events again"
            profiles = sf.store.count_profiles()
        finally:
            sf.close()
        print(f"stored {stored:,} events, {profiles:,} profiles")
        load_wall = figures["load"][0]
        for name, (w, c) in figures.items():
            print(
                f"{name:6s} {w:8.2f} s wall {c:8.2f} s CPU  {n / w:>12,.0f} events/s"
                f"  load/{name} {load_wall / w:6.2f}x"
            )
        print(
            f"load: {n / load_wall:,.0f} events/s = {figures['copy'][0] / load_wall:.2f}"
            f" of DuckDB's plain copy, {figures['scan'][0] / load_wall:.3f} of its scan"
            f" (load average now {os.getloadavg()[0]:.1f})"
        )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
