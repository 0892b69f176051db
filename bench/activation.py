"""Activation: fan-out of membership changes to five destinations against the plain
webhook path, and a full sync of a large segment to a file destination.

    .venv/bin/python bench/activation.py [--changes 3000] [--members 200000,500000]
                                         [--format parquet] [--repeat 3]

Fan-out (one process, one store, the real worker): ``--changes`` membership changes
are enqueued from the change log and delivered until none is pending, to

  * the baseline: one webhook (a local HTTP receiver), one change per signed POST, as
    ``/v1/webhooks`` sends them;
  * five destinations at once: that webhook, a Redis stream (127.0.0.1:6379), a NATS
    JetStream subject (127.0.0.1:4222), JSON Lines files and Parquet files (batches
    of 100 for all but the webhook), each on its own thread.

Runs alternate (baseline, fan-out, baseline, ...) and each side's median is printed
with the ratio; a destination whose service is not running is left out (said so).

Full sync: ``--members`` profiles, each identified with three traits (loaded through
``ingest``), a segment of all of them with a 10 % holdout, synced to a file
destination with two traits mapped: the time from the request to the file renamed
into place and listed in the manifest (members filtered, traits joined, file written
by DuckDB, SHA-256), per member, extrapolated to 1M.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from segflow.model.changes import LoggedChange, Reason  # noqa: E402
from segflow.model.definition import Holdout  # noqa: E402
from segflow.service.delivery import DeliverySettings  # noqa: E402
from segflow.service.destinations import DestinationWorker  # noqa: E402
from segflow.service.handle import Segflow  # noqa: E402
from segflow.store.records.destinations import Destination  # noqa: E402


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


class Receiver:
    """A local HTTP receiver that accepts every POST (HTTP/1.1, kept alive)."""

    def __init__(self) -> None:
        self.count = 0

        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def destinations(kinds: list[str], url: str, tmp: Path, tag: str) -> list[Destination]:
    out = []
    for kind in kinds:
        base = {"id": "", "name": kind, "segments": ("s",), "batch_size": 100}
        if kind == "webhook":
            out.append(Destination(**base | {"batch_size": 1}, kind="webhook",
                                   config={"url": url, "secret": "s" * 32}))  # fmt: skip
        elif kind == "redis":
            out.append(Destination(**base, kind="redis", config={"stream": f"bench-{tag}"}))
        elif kind == "nats":
            cfg = {"subject": f"bench.{tag}", "stream": f"BENCH_{tag}"}
            out.append(Destination(**base, kind="nats", config=cfg))
        else:
            fmt = kind.split("-")[1]
            cfg = {"path": str(tmp / f"{kind}-{tag}"), "format": fmt}
            out.append(Destination(**base, kind="files", config=cfg))
    return out


def fan_out(kinds: list[str], n: int, url: str, tmp: Path) -> float:
    """Seconds to enqueue and deliver ``n`` changes to the destinations of ``kinds``."""
    tag = uuid.uuid4().hex[:8]
    sf = Segflow(tmp / f"fan-{tag}.duckdb")
    try:
        store = sf.destination_store()
        for d in destinations(kinds, url, tmp, tag):
            store.create(d)
        t0 = datetime(2026, 11, 1, tzinfo=UTC)
        changes = [
            LoggedChange("s", f"p{i}", True, t0 + timedelta(seconds=i), Reason.EVENT, 1, i + 1)
            for i in range(n)
        ]
        lock = threading.RLock()
        worker = DestinationWorker(
            store, lock, lambda seq: [c for c in changes if c.seq > seq], DeliverySettings()
        )
        started = time.perf_counter()
        while True:
            worker.run_once()
            while worker.busy():
                time.sleep(0.002)
            with lock:
                if store.next_due() is None:
                    break
        took = time.perf_counter() - started
        worker.stop()
        with lock:
            pending = sum(store.counts(d.id)["pending"] for d in store.destinations())
            delivered = sum(store.counts(d.id)["delivered"] for d in store.destinations())
        assert pending == 0 and delivered == n * len(kinds), (pending, delivered)
        return took
    finally:
        sf.close()
        cleanup(kinds, tag)


def cleanup(kinds: list[str], tag: str) -> None:
    if "redis" in kinds:
        import redis

        r = redis.Redis()
        r.delete(f"bench-{tag}")
        for key in r.scan_iter(f"segflow:dedupe:bench-{tag}:*", count=10_000):
            r.delete(key)
        r.close()
    if "nats" in kinds:
        import asyncio

        import nats

        async def drop() -> None:
            nc = await nats.connect("nats://127.0.0.1:4222")
            try:
                await nc.jetstream().delete_stream(f"BENCH_{tag}")
            finally:
                await nc.close()

        asyncio.run(drop())


def load_profiles(sf: Segflow, n: int, tmp: Path) -> list[str]:
    ids = [f"user{i:08d}" for i in range(n)]
    table = pa.table(
        {
            "message_id": [f"id-{i}" for i in range(n)],
            "type": ["identify"] * n,
            "user_id": ids,
            "timestamp": ["2026-11-01T00:00:00Z"] * n,
            "traits.email": [f"{p}@shop.test" for p in ids],
            "traits.country": [("PL", "DE", "FR", "US")[i % 4] for i in range(n)],
            "traits.plan": [("free", "pro")[i % 2] for i in range(n)],
        }
    )
    path = tmp / f"profiles-{n}.parquet"
    pq.write_table(table, path)
    sf.ingest([path])
    return ids


def full_sync(n: int, fmt: str, tmp: Path) -> tuple[float, float, int]:
    """(load seconds, sync seconds, rows written) for a segment of ``n`` members."""
    tag = uuid.uuid4().hex[:8]
    sf = Segflow(tmp / f"sync-{tag}.duckdb")
    try:
        started = time.perf_counter()
        ids = load_profiles(sf, n, tmp)
        loaded = time.perf_counter() - started
        store = sf.destination_store(holdouts=lambda: {"all": Holdout(10, "bench")})
        dest = store.create(
            Destination(id="", name="lake", kind="files", segments=("all",),
                        config={"path": str(tmp / f"drops-{tag}"), "format": fmt},
                        fields=(("email", "email"), ("country", "country_code")),
                        changes=False)
        )  # fmt: skip
        worker = DestinationWorker(store, threading.RLock(), None, members=lambda _s: ids)
        started = time.perf_counter()
        sync = worker.sync_now(dest.id)
        took = time.perf_counter() - started
        assert sync.status == "done", sync.error
        return loaded, took, sync.sent
    finally:
        sf.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--changes", type=int, default=3000)
    ap.add_argument("--members", default="200000,500000")
    ap.add_argument("--format", default="parquet", choices=["parquet", "csv", "jsonl"])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"host: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="segflow-bench-") as d:
        tmp = Path(d)
        receiver = Receiver()
        five = ["webhook", "redis", "nats", "files-jsonl", "files-parquet"]
        missing = [k for k, p in (("redis", 6379), ("nats", 4222)) if not port_open(p)]
        for k in missing:
            print(f"  ({k} is not running on 127.0.0.1: left out of the fan-out)")
        five = [k for k in five if k not in missing]
        base: list[float] = []
        fan: list[float] = []
        for _ in range(args.repeat):
            base.append(fan_out(["webhook"], args.changes, receiver.url, tmp))
            fan.append(fan_out(five, args.changes, receiver.url, tmp))
        receiver.close()
        b, f = statistics.median(base), statistics.median(fan)
        n = args.changes
        print(f"fan-out of {n} changes (median of {args.repeat}, runs alternated):")
        print(f"  plain webhook path (1 destination): {b:.2f} s = {b / n * 1e6:.0f} us/change")
        print(
            f"  {len(five)} destinations ({', '.join(five)}): {f:.2f} s ="
            f" {f / n * 1e6:.0f} us/change, {f / (n * len(five)) * 1e6:.0f} us/delivery"
        )
        print(f"  ratio: {f / b:.2f}x the time for {len(five)}x the deliveries")
        print(f"full sync to {args.format} files (10 % holdout, 2 traits mapped):")
        for m in (int(x) for x in args.members.split(",")):
            loaded, took, rows = full_sync(m, args.format, tmp)
            per = took / m
            print(
                f"  {m:>9,} members: sync {took:.2f} s ({per * 1e6:.2f} us/member,"
                f" {rows:,} rows), 1M extrapolated {per * 1e6:.1f} s"
                f"  [profiles loaded in {loaded:.1f} s]"
            )


if __name__ == "__main__":
    main()
