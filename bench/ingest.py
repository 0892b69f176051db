"""Ingestion benchmark: a real ``segflow`` server process, load from this process.

    .venv/bin/python bench/ingest.py [--seconds 10] [--clients 16] [--customers 2000]

The store gets the demo shop's history and the whole segment library (so every
event is evaluated live), then, for each mode, a fresh copy of that store is
served by ``python -m segflow.server`` on a loopback port and ``--clients``
keep-alive connections post ``/v1/batch`` bodies of 100 e-commerce events as fast
as answers come back, while one more connection asks ``GET
/v1/profiles/{id}/segments`` for random known profiles.  An acknowledged event is
durable in DuckDB and evaluated by the live evaluator (the server answers after
the group commit and ``catch_up``).  Modes:

  * baseline -- ``--no-group-commit``: one ``ingest_messages`` + ``catch_up`` per request
  * single   -- group commit, one process (``--no-edge``: HTTP in the core)
  * group    -- the server as shipped (group commit, an edge process in front)

Prints accepted events/s, request p50/p99, segment look-up p50/p99 per mode and
the group/baseline throughput ratio (and group/single when both ran).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import multiprocessing as mp
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from segflow.demo.generator import generate_shop  # noqa: E402
from segflow.server import ServerProcess  # noqa: E402
from segflow.service.handle import Segflow  # noqa: E402
from segflow.store.duckdb.keys import KeyStore  # noqa: E402

LIBRARY = ROOT / "src" / "segflow" / "demo" / "segments"
EVENTS = ("Product Viewed", "Product Added", "Checkout Started", "Order Completed")
CATEGORIES = ("Shoes", "Watches", "Bags", "Luxury Watches", "Books")


def prepare(root: Path, customers: int) -> tuple[Path, str, str, list[str], list[dict[str, Any]]]:
    """A store with history and the segment library; returns (db, admin, write, users,
    the generated history's rows)."""
    end = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    summary = generate_shop(root / "data", customers=customers, seed=7, end=end, days=60)
    paths = [str(p) for p in summary.paths]
    rows = (
        duckdb.connect()
        .execute("SELECT * FROM read_parquet(?)", [paths])
        .fetch_arrow_table()
        .to_pylist()
    )
    db = root / "template.duckdb"
    sf = Segflow(db)
    try:
        sf.ingest(list(summary.paths))
        sf.apply(LIBRARY)
        keys = KeyStore(sf.store.con)
        admin, write = keys.create("admin").token, keys.create("write").token
        users = [
            u
            for (u,) in sf.store.con.execute(
                "SELECT DISTINCT user_id FROM events WHERE user_id IS NOT NULL"
            ).fetchall()
        ]
    finally:
        sf.close()
    return db, admin, write, users, rows


def body(users: list[str], n: int, rng: random.Random, seq: list[int]) -> bytes:
    now = datetime.now(UTC).replace(tzinfo=None)
    batch: list[dict[str, Any]] = []
    for _ in range(n):
        seq[0] += 1
        ev = rng.choice(EVENTS)
        props: dict[str, Any] = {
            "product_id": f"p{rng.randrange(500)}",
            "category": rng.choice(CATEGORIES),
            "price": round(rng.uniform(5, 900), 2),
        }
        if ev == "Order Completed":
            props["revenue"] = props["price"]
            props["order_id"] = f"o{seq[0]}"
        batch.append(
            {
                "type": "track",
                "messageId": f"bench-{seq[0]}",
                "userId": rng.choice(users),
                "event": ev,
                "timestamp": (now - timedelta(seconds=rng.randrange(60))).isoformat() + "Z",
                "properties": props,
                "context": {"library": {"name": "bench", "version": "1"}},
            }
        )
    return orjson.dumps({"batch": batch})


def shop_body(rows: list[dict[str, Any]], n: int, rng: random.Random, seq: list[int]) -> bytes:
    """``n`` messages drawn from the generated shop's own history (its mix: ~56 %
    product views, 20 % pages, 3 % identify calls with traits, 2 % orders, ...; its
    fields and known identities), with new message ids, stamped within the last
    minute."""
    now = datetime.now(UTC).replace(tzinfo=None)
    batch: list[dict[str, Any]] = []
    for _ in range(n):
        seq[0] += 1
        row = rng.choice(rows)
        msg: dict[str, Any] = {
            "type": row["type"],
            "messageId": f"bench-{seq[0]}",
            "timestamp": (now - timedelta(seconds=rng.randrange(60))).isoformat() + "Z",
        }
        for column, key in (
            ("event", "event"),
            ("user_id", "userId"),
            ("anonymous_id", "anonymousId"),
        ):
            if row[column] is not None:
                msg[key] = row[column]
        for column, value in row.items():
            if "." in column and value is not None:
                *parents, leaf = column.split(".")
                obj = msg
                for part in parents:
                    obj = obj.setdefault(part, {})
                obj[leaf] = value
        batch.append(msg)
    return orjson.dumps({"batch": batch})


def look(
    host: str,
    port: int,
    admin: str,
    users: list[str],
    ready: Any,
    done: Any,
    out: mp.Queue[list[tuple[float, float]]],
) -> None:
    """In its own process (so the loaders' GIL does not inflate its timings): ask
    ``GET /v1/profiles/{id}/segments`` ~200 times a second; (when, latency) pairs."""
    rng = random.Random(99)
    con = http.client.HTTPConnection(host, port, timeout=60)
    headers = {"Authorization": f"Bearer {admin}"}
    samples: list[tuple[float, float]] = []
    while not done.is_set():
        t0 = time.perf_counter()
        con.request("GET", f"/v1/profiles/{rng.choice(users)}/segments", headers=headers)
        resp = con.getresponse()
        resp.read()
        if resp.status == 200:
            samples.append((time.monotonic(), time.perf_counter() - t0))
            ready.set()  # the loaders start once look-ups are flowing
        time.sleep(0.005)
    con.close()
    out.put(samples)


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def run_mode(
    template: Path,
    root: Path,
    mode: str,
    admin: str,
    write: str,
    users: list[str],
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
) -> dict[str, float]:
    db = root / f"{mode}-{time.monotonic_ns()}.duckdb"  # a mode may run twice: no stale WAL
    shutil.copy(template, db)
    extra = {"baseline": ["--no-group-commit"], "single": ["--no-edge"]}.get(mode, [])
    server = ServerProcess(db, args=extra).start()
    try:
        host, port = "127.0.0.1", server.port
        auth = "Basic " + base64.b64encode(f"{write}:".encode()).decode()
        stop = threading.Event()
        lock = threading.Lock()
        latencies: list[float] = []
        accepted = [0]
        refused = [0]

        seqs = [[k * 10_000_000] for k in range(args.clients)]

        def make(rng: random.Random, seq: list[int]) -> bytes:
            if args.mix == "shop":
                return shop_body(rows, args.batch, rng, seq)
            return body(users, args.batch, rng, seq)

        pools = [
            [make(random.Random(k), seqs[k]) for _ in range(args.prebuilt)]
            for k in range(args.clients)
        ]

        def loader(k: int) -> None:
            rng = random.Random(k)
            seq = seqs[k]
            pool = pools[k]
            if args.nice:  # this thread only (Linux: niceness is per thread)
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), args.nice)
            con = http.client.HTTPConnection(host, port, timeout=60)
            headers = {"Content-Type": "application/json", "Authorization": auth}
            while not stop.is_set():
                data = pool.pop() if pool else make(rng, seq)
                t0 = time.perf_counter()
                con.request("POST", "/v1/batch", data, headers)
                resp = con.getresponse()
                resp.read()
                dt = time.perf_counter() - t0
                with lock:
                    if resp.status == 200:
                        accepted[0] += args.batch
                        latencies.append(dt)
                    else:
                        refused[0] += 1
            con.close()

        spawn = mp.get_context("spawn")
        results: mp.Queue[list[tuple[float, float]]] = spawn.Queue()
        ready, done = spawn.Event(), spawn.Event()
        looker = spawn.Process(target=look, args=(host, port, admin, users, ready, done, results))
        looker.start()
        if not ready.wait(300):
            raise RuntimeError("the look-up process did not start")
        threads = [threading.Thread(target=loader, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        time.sleep(args.warmup)
        spy = None
        if args.py_spy and server.proc is not None:
            import subprocess

            out = f"{args.py_spy}.{mode}.txt"
            cmd = [
                shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy",
                "record",
                "-p",
                str(server.proc.pid),
            ]
            cmd += ["-d", str(int(args.seconds)), "-f", "raw", "-o", out, "-t"]
            spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with lock:
            a0, latencies[:] = accepted[0], []
        t0, m0 = time.perf_counter(), time.monotonic()
        time.sleep(args.seconds)
        with lock:
            a1, lat = accepted[0], list(latencies)
        elapsed, m1 = time.perf_counter() - t0, time.monotonic()
        done.set()
        samples = results.get(timeout=120)
        looker.join()
        looked = [dt for at, dt in samples if m0 <= at <= m1]
        if args.verbose:
            print(f"  {len(samples)} look-ups, {len(looked)} in the measured window")
        if spy is not None:
            spy.wait()
        stop.set()
        for t in threads:
            t.join()
        con = http.client.HTTPConnection(host, port, timeout=60)
        con.request("GET", "/v1/ingest/stats", headers={"Authorization": f"Bearer {admin}"})
        stats = orjson.loads(con.getresponse().read())
        con.close()
        server.stop()
        if args.verbose:
            print(f"  {mode} server stats: {stats}")
    finally:
        server.kill()
    return {
        "events_per_s": (a1 - a0) / elapsed,
        "req_p50_ms": pct(lat, 50) * 1000,
        "req_p99_ms": pct(lat, 99) * 1000,
        "lookup_p50_ms": pct(looked, 50) * 1000,
        "lookup_p99_ms": pct(looked, 99) * 1000,
        "lookups": float(len(looked)),
        "refused": float(refused[0]),
        "mean_ms": statistics.fmean(lat) * 1000 if lat else float("nan"),
    }


def reference_ms() -> float:
    """Milliseconds of a fixed pure-Python loop (best of five): the speed of this host's
    CPU, printed with the figures because the same code on the same kind of machine runs
    at different speeds from one day to the next; compare figures only with a similar
    reference."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i * i % 7
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--prebuilt", type=int, default=40, help="request bodies built per client")
    ap.add_argument("--customers", type=int, default=2_000)
    ap.add_argument("--modes", default="baseline,group")
    ap.add_argument(
        "--mix",
        choices=("uniform", "shop"),
        default="uniform",
        help="uniform: track events, a quarter each of views, cart adds, checkouts and"
        " orders (the default mix of docs/performance.md); shop: drawn from the generated"
        " shop's own history (pages, identify calls with traits, ~30 fields a message)",
    )
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of the loader threads (e.g. 10: on a 2-core machine the load"
        " generator then takes CPU from the server only when it is idle)",
    )
    ap.add_argument("--verbose", action="store_true", help="print the server's ingest stats")
    ap.add_argument("--py-spy", help="profile the server with py-spy into PATH.<mode>.txt")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="segflow-bench-"))
    try:
        template, admin, write, users, rows = prepare(root, args.customers)
        print(
            f"store: {args.customers:,} customers, {len(users):,} users;"
            f" {args.clients} clients x /v1/batch of {args.batch}, {args.mix} mix;"
            f" host reference {reference_ms():.0f} ms (a fixed Python loop, lower is faster)"
        )
        results = {}
        for mode in args.modes.split(","):
            r = run_mode(template, root, mode, admin, write, users, rows, args)
            results[mode] = r
            print(
                f"{mode:9s} {r['events_per_s']:>9,.0f} events/s"
                f"  request p50 {r['req_p50_ms']:.1f} ms p99 {r['req_p99_ms']:.1f} ms"
                f"  |  segments look-up p50 {r['lookup_p50_ms']:.2f} ms"
                f" p99 {r['lookup_p99_ms']:.2f} ms ({int(r['lookups'])} look-ups)"
                + (f"  refused {int(r['refused'])}" if r["refused"] else ""),
                flush=True,
            )
        if "baseline" in results and "group" in results:
            ratio = results["group"]["events_per_s"] / results["baseline"]["events_per_s"]
            print(f"group commit / baseline throughput: {ratio:.1f}x")
        if "single" in results and "group" in results:
            ratio = results["group"]["events_per_s"] / results["single"]["events_per_s"]
            print(f"with the edge / one process throughput: {ratio:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
