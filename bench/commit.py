"""Group-commit cost against the size of the store.

    .venv/bin/python bench/commit.py [--sizes 1000000,5000000,20000000] [--group 6300]

For each size, a store is filled with that many synthetic stored events (one SQL
insert), then groups of ``--group`` new track messages are committed with
``ingest_messages`` (as the server's writer does) and the median time per group is
printed, with the cost of a semi-join of the group against every stored
``message_id`` (what the message index replaces) measured on the same file in the
same process: that check alone grows with the store, the message index does not.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from segflow.store.duckdb.store import DuckDBStore  # noqa: E402


def messages(group: int, start: int) -> list[dict[str, object]]:
    now = datetime.now(UTC).replace(tzinfo=None).isoformat() + "Z"
    return [
        {
            "type": "track",
            "messageId": f"new-{start + i}",
            "userId": f"u{(start + i) % 50_000}",
            "event": "Product Viewed",
            "timestamp": now,
            "properties": {"price": 10.0 + i % 7, "category": "Shoes"},
        }
        for i in range(group)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1000000,5000000,20000000")
    ap.add_argument("--group", type=int, default=6300)
    ap.add_argument("--groups", type=int, default=5)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="segflow-commit-"))
    try:
        print(f"groups of {args.group:,} new track messages; median of {args.groups}")
        for n in (int(x) for x in args.sizes.split(",")):
            store = DuckDBStore(root / f"s{n}.duckdb")
            store.ingest_messages(messages(10, 10**9))  # catalog, event names
            store.con.execute(
                "INSERT INTO events (message_id, seq, type, event, user_id, profile_id,"
                " \"timestamp\", event_code, profile_no) SELECT 'old-' || i, 1000 + i, 'track',"
                " 'Product Viewed', 'u' || (i % 50000), 'u' || (i % 50000),"
                " TIMESTAMP '2025-01-01' + to_microseconds(i * 1000), 1,"
                " 100 + i % 50000 FROM range($n) t(i)",
                {"n": n},
            )
            store.con.execute(
                "INSERT INTO seq_marks VALUES ('events', $top) ON CONFLICT (name)"
                " DO UPDATE SET value = excluded.value",
                {"top": 1000 + n},
            )
            store.con.execute("CHECKPOINT")
            store._messages = None  # rows inserted behind the store's back: rebuild
            t = time.perf_counter()
            store.message_index()  # as the server does at start
            build = time.perf_counter() - t
            with store.threads(1):  # as the server commits
                times = []
                for g in range(args.groups):
                    batch = messages(args.group, g * args.group)
                    t = time.perf_counter()
                    store.ingest_messages(batch, json_values=True)
                    times.append(time.perf_counter() - t)
                store.con.execute(
                    "CREATE OR REPLACE TEMP TABLE _probe AS SELECT 'new-' || i AS message_id"
                    " FROM range($g) t(i)",
                    {"g": args.group},
                )
                scans = []
                for _ in range(3):
                    t = time.perf_counter()
                    store.con.execute(
                        "SELECT count(*) FROM _probe s SEMI JOIN events e"
                        " ON s.message_id = e.message_id"
                    ).fetchall()
                    scans.append(time.perf_counter() - t)
            commit = statistics.median(times)
            scan = statistics.median(scans)
            print(
                f"{n:>12,} stored events: group commit {commit * 1000:7.1f} ms"
                f" ({args.group / commit:8,.0f} events/s);"
                f" the former message-id semi-join alone {scan * 1000:7.1f} ms"
                f" = {scan / commit:4.1f}x the whole commit now;"
                f" index built at start in {build:5.1f} s"
            )
            store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
