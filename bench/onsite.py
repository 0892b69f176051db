"""On-site read benchmark: ``GET /v1/onsite/segments`` beside the admin segments
look-up, both under ingestion load, against a real server (edge + core).

    .venv/bin/python bench/onsite.py [--seconds 15] [--clients 8] [--customers 2000]

The store gets the demo shop's history and the segment library, every other segment
made public (``public: true``); a publishable key limited to ``https://shop.example``
is created.  ``python -m segflow.server`` serves a copy (the server as shipped: an
edge process in front of the core) while ``--clients`` keep-alive connections post
``/v1/batch`` bodies of 100 messages drawn from the shop's own history (views, pages,
identify calls linking anonymous ids to users, orders) as fast as answers come back.
Two more processes, each on its own keep-alive connection, ask ~200 times a second:

  * admin   -- ``GET /v1/profiles/{id}/segments`` with the admin key (random known users)
  * on-site -- ``GET /v1/onsite/segments?key=...`` as a shop page's ``fetch`` sends it:
    ``Origin: https://shop.example`` and the analytics.js cookie
    ``ajs_anonymous_id=%22<id>%22`` (random anonymous ids of the history, most of them
    merged into a user's profile, a tenth unknown)

Prints the ingestion rate, each read's p50/p99 in the same measured window, and the
on-site/admin ratio.  Sized for a small shared machine: the defaults take ~1 minute.
First, the edge's own work per read, apart from the network and the machine's load:
its handler for each read called in a loop on an index of the same store's size.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import http.client
import multiprocessing as mp
import random
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import pct, reference_ms, shop_body  # noqa: E402
from segflow.demo.generator import generate_shop  # noqa: E402
from segflow.server import ServerProcess  # noqa: E402
from segflow.service.handle import Segflow, read_segment_files  # noqa: E402
from segflow.store.duckdb.keys import KeyStore  # noqa: E402

LIBRARY = ROOT / "src" / "segflow" / "demo" / "segments"
SHOP = "https://shop.example"


@dataclasses.dataclass
class Prepared:
    db: Path
    admin: str
    write: str
    publishable: str
    users: list[str]
    anonymous: list[str]
    rows: list[dict[str, Any]]
    public: int
    segments: int


def prepare(root: Path, customers: int) -> Prepared:
    end = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    summary = generate_shop(root / "data", customers=customers, seed=7, end=end, days=60)
    paths = [str(p) for p in summary.paths]
    con = duckdb.connect(config={"memory_limit": "2GB", "threads": 2})
    rows = con.execute("SELECT * FROM read_parquet(?)", [paths]).fetch_arrow_table().to_pylist()
    con.close()
    db = root / "template.duckdb"
    sf = Segflow(db)
    try:
        sf.ingest(list(summary.paths))
        segments = [
            dataclasses.replace(s, public=i % 2 == 0)
            for i, s in enumerate(sorted(read_segment_files(LIBRARY), key=lambda s: s.id))
        ]
        for seg, status in sf.registry.save(segments):
            if seg.mode == "static" and status != "unchanged":
                sf.snapshot(seg)
        keys = KeyStore(sf.store.con)
        admin, write = keys.create("admin").token, keys.create("write").token
        publishable = keys.create("publishable", origins=[SHOP]).token
        ids = sf.store.con.execute(
            "SELECT kind, value FROM identities WHERE kind IN ('user', 'anonymous')"
        ).fetchall()
    finally:
        sf.close()
    users = sorted(v for k, v in ids if k == "user")
    anonymous = sorted(v for k, v in ids if k == "anonymous")
    public = sum(1 for s in segments if s.public)
    return Prepared(db, admin, write, publishable, users, anonymous, rows, public, len(segments))


def handler_cost(p: Prepared, n: int = 20_000) -> tuple[float, float]:
    """Microseconds of the edge's handler per admin look-up and per on-site read (an
    ``Edge`` with a filled index, no socket: the handler's CPU alone, best of three)."""
    import asyncio

    from segflow.edge.app import Edge, EdgeSettings
    from segflow.model.keys import digest

    edge = Edge(EdgeSettings(link="", core=""))
    edge.ready = True
    rng = random.Random(5)
    since = "2026-01-01T00:00:00Z"
    names = [f"s{i}" for i in range(p.segments)]
    edge.index = {u: {s: since for s in rng.sample(names, 4)} for u in p.users}
    edge.by_anonymous = {a: rng.choice(p.users) for a in p.anonymous}
    edge.public = frozenset(names[::2])
    edge.admin = {digest(p.admin): digest(p.admin)}
    edge.publishable = {digest(p.publishable): (SHOP,)}

    async def nothing(message: Any) -> None:
        return None

    def scopes(kind: str) -> list[dict[str, Any]]:
        out = []
        for _ in range(200):
            if kind == "admin":
                headers = [(b"authorization", f"Bearer {p.admin}".encode())]
                path, query = f"/v1/profiles/{rng.choice(p.users)}/segments", b""
            else:
                cookie = quote(f'"{rng.choice(p.anonymous)}"')
                headers = [
                    (b"origin", SHOP.encode()),
                    (b"cookie", f"ajs_user_id=null; ajs_anonymous_id={cookie}".encode()),
                ]
                path, query = "/v1/onsite/segments", f"key={p.publishable}".encode()
            scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
            out.append({**scope, "query_string": query})
        return out

    async def timed(kind: str) -> float:
        batch = scopes(kind)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(n):
                scope = batch[i % len(batch)]
                if kind == "admin":
                    pid = scope["path"].split("/")[3]
                    await edge._lookup(scope, nothing, pid)
                else:
                    await edge._onsite(scope, nothing)
            best = min(best, (time.perf_counter() - t0) / n * 1e6)
        return best

    async def both() -> tuple[float, float]:
        return await timed("admin"), await timed("on-site")

    return asyncio.run(both())


def read_loop(
    kind: str,
    host: str,
    port: int,
    token: str,
    ids: list[str],
    ready: Any,
    done: Any,
    out: mp.Queue[tuple[str, list[tuple[float, float]], int]],
) -> None:
    """In its own process (the loaders' GIL does not inflate its timings): one read
    every ~5 ms; (when, latency) pairs of the 200 answers, and how many were not 200."""
    rng = random.Random(hash(kind) & 0xFFFF)
    con = http.client.HTTPConnection(host, port, timeout=60)
    samples: list[tuple[float, float]] = []
    failed = 0
    while not done.is_set():
        if kind == "admin":
            path = f"/v1/profiles/{quote(rng.choice(ids), safe='')}/segments"
            headers = {"Authorization": f"Bearer {token}"}
        else:
            anonymous = rng.choice(ids) if rng.random() < 0.9 else f"unknown-{rng.random()}"
            path = f"/v1/onsite/segments?key={token}"
            cookie = quote(f'"{anonymous}"')  # JSON-quoted, percent-encoded: as analytics.js
            headers = {"Origin": SHOP, "Cookie": f"ajs_user_id=null; ajs_anonymous_id={cookie}"}
        t0 = time.perf_counter()
        con.request("GET", path, headers=headers)
        resp = con.getresponse()
        resp.read()
        if resp.status == 200:
            samples.append((time.monotonic(), time.perf_counter() - t0))
            ready.set()
        else:
            failed += 1
        time.sleep(0.005)
    con.close()
    out.put((kind, samples, failed))


def run(p: Prepared, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    db = root / f"served-{time.monotonic_ns()}.duckdb"
    shutil.copy(p.db, db)
    server = ServerProcess(db).start(timeout=300)
    try:
        host, port = "127.0.0.1", server.port
        auth = "Basic " + base64.b64encode(f"{p.write}:".encode()).decode()
        stop = threading.Event()
        lock = threading.Lock()
        accepted = [0]
        seqs = [[k * 10_000_000] for k in range(args.clients)]
        pools = [
            [shop_body(p.rows, args.batch, random.Random(k), seqs[k]) for _ in range(args.prebuilt)]
            for k in range(args.clients)
        ]

        def loader(k: int) -> None:
            rng = random.Random(k)
            pool = pools[k]
            con = http.client.HTTPConnection(host, port, timeout=60)
            headers = {"Content-Type": "application/json", "Authorization": auth}
            while not stop.is_set():
                data = pool.pop() if pool else shop_body(p.rows, args.batch, rng, seqs[k])
                con.request("POST", "/v1/batch", data, headers)
                resp = con.getresponse()
                resp.read()
                if resp.status == 200:
                    with lock:
                        accepted[0] += args.batch
            con.close()

        spawn = mp.get_context("spawn")
        results: mp.Queue[tuple[str, list[tuple[float, float]], int]] = spawn.Queue()
        done = spawn.Event()
        readers = []
        for kind, token, ids in (
            ("admin", p.admin, p.users),
            ("on-site", p.publishable, p.anonymous),
        ):
            ready = spawn.Event()
            proc = spawn.Process(
                target=read_loop, args=(kind, host, port, token, ids, ready, done, results)
            )
            proc.start()
            if not ready.wait(300):
                raise RuntimeError(f"the {kind} reader did not start")
            readers.append(proc)
        threads = [threading.Thread(target=loader, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        time.sleep(args.warmup)
        with lock:
            a0 = accepted[0]
        t0, m0 = time.perf_counter(), time.monotonic()
        time.sleep(args.seconds)
        with lock:
            a1 = accepted[0]
        elapsed, m1 = time.perf_counter() - t0, time.monotonic()
        done.set()
        got = {}
        for _ in readers:
            kind, samples, failed = results.get(timeout=120)
            got[kind] = ([dt for at, dt in samples if m0 <= at <= m1], failed)
        for proc in readers:
            proc.join()
        stop.set()
        for t in threads:
            t.join()
        server.stop()
    finally:
        server.kill()
    return {"events_per_s": (a1 - a0) / elapsed, "reads": got}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--prebuilt", type=int, default=20, help="request bodies built per client")
    ap.add_argument("--customers", type=int, default=2_000)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="segflow-bench-onsite-"))
    try:
        p = prepare(root, args.customers)
        print(
            f"store: {args.customers:,} customers, {len(p.users):,} user ids,"
            f" {len(p.anonymous):,} anonymous ids; {p.public} of {p.segments} segments public;"
            f" {args.clients} clients x /v1/batch of {args.batch} (shop mix);"
            f" host reference {reference_ms():.0f} ms (a fixed Python loop, lower is faster)",
            flush=True,
        )
        admin_us, onsite_us = handler_cost(p)
        print(
            f"edge handler alone: admin look-up {admin_us:.1f} us, on-site read"
            f" {onsite_us:.1f} us a request ({onsite_us / admin_us:.2f}x)",
            flush=True,
        )
        for _ in range(args.runs):
            r = run(p, root, args)
            admin, admin_failed = r["reads"]["admin"]
            onsite, onsite_failed = r["reads"]["on-site"]
            line = [f"ingestion {r['events_per_s']:,.0f} events/s"]
            for name, xs, failed in (
                ("admin look-up", admin, admin_failed),
                ("on-site read", onsite, onsite_failed),
            ):
                line.append(
                    f"{name} p50 {pct(xs, 50) * 1000:.2f} ms p99 {pct(xs, 99) * 1000:.2f} ms"
                    f" ({len(xs)} reads" + (f", {failed} not 200)" if failed else ")")
                )
            ratio = pct(onsite, 99) / pct(admin, 99)
            line.append(f"on-site/admin p99 {ratio:.2f}x")
            print("  |  ".join(line), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
