"""The web UI's reads on a store: catalogue, segment summary, dashboard, daily sizes,
member rows and search, profile search, the customer view and its timeline, and the
builder's live preview of drafts (median and p95 over ``--previews`` runs each).

    .venv/bin/segflow demo --customers 100000 --no-serve --db shop.duckdb
    .venv/bin/python bench/ui_reads.py shop.duckdb [--repeat 2]

Each read is timed in one process as the service runs it (uncached: the catalogue's
30 s reuse is left out), best of ``--repeat``; one batch evaluation of the library is
timed beside them as the yardstick.  Open a copy of a store a server is not using.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from segflow.model.definition import parse_segment  # noqa: E402
from segflow.model.time import utcnow  # noqa: E402
from segflow.service import overview  # noqa: E402
from segflow.service import profiles as profile_service  # noqa: E402
from segflow.service import segments as segment_service  # noqa: E402
from segflow.service.handle import Segflow  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--previews", type=int, default=20, help="runs per draft preview")
    args = parser.parse_args()
    app = Segflow(args.db)
    now = utcnow()

    def timed(label: str, fn: Callable[..., Any], *a: Any, **k: Any) -> Any:
        best, out = None, None
        for _ in range(args.repeat):
            started = time.perf_counter()
            out = fn(*a, **k)
            took = time.perf_counter() - started
            best = took if best is None else min(best, took)
        assert best is not None
        print(f"| {label} | {best * 1000:,.0f} ms |")
        return out

    segs = app.registry.current()
    print(
        f"{app.store.count_profiles():,} profiles, {app.store.count_events():,} events,"
        f" {len(segs)} segments\n"
    )
    print("| read | time |\n|---|---|")
    timed("`GET /v1/catalogue` (uncached)", overview.catalogue, app)
    timed("`GET /v1/segments/summary`", overview.segment_summaries, app, None, now)
    timed("`GET /v1/dashboard`", overview.dashboard, app, None, now, 0.0)
    sid = "win_back" if "win_back" in segs else sorted(segs)[0]  # a large demo segment
    timed(
        f"`GET /v1/segments/{sid}/daily?days=30`", overview.segment_daily, app, None, sid, now, 30
    )
    members = app.members(sid, now)
    timed(
        f"member rows, 50 of {len(members):,}",
        segment_service.member_rows, app, sid, members[:50], now,
    )  # fmt: skip
    timed(
        f"member search `q=smith` among {len(members):,}",
        app.profiles.search, "smith", limit=len(members) + 1, within=members,
    )  # fmt: skip
    timed("profile search `q=smith`, 50", app.profiles.search, "smith", limit=51)
    pid = members[0]
    timed("`GET /v1/profiles/{id}`", profile_service.profile_view, app, None, pid, now)
    timed("`GET /v1/profiles/{id}/events`, 50", profile_service.timeline, app, pid, limit=50)
    timed("one batch evaluation of the library", app.batch, list(segs.values()), now)
    print("\n| draft previewed (`POST /v1/segments/preview`) | size | median | p95 |")
    print("|---|---|---|---|")
    for label, draft in DRAFTS:
        seg = parse_segment({"id": "draft", "condition": draft})
        times = []
        size = 0
        for _ in range(args.previews):
            started = time.perf_counter()
            size = segment_service.preview(app, seg, now)["size"]
            times.append(time.perf_counter() - started)
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        median = times[len(times) // 2]
        print(f"| {label} | {size:,} | {median * 1000:,.0f} ms | {p95 * 1000:,.0f} ms |")


DRAFTS: list[tuple[str, dict[str, Any]]] = [
    ("a trait", {"trait": "country", "eq": "PL"}),
    (
        "viewed Luxury Watches in 48 h",
        {
            "event": "Product Viewed",
            "where": [{"property": "category", "eq": "Luxury Watches"}],
            "within": "48h",
        },
    ),
    (
        "... and spent > $5,000 in 6 months, not bought in 24 h",
        {
            "all": [
                {
                    "event": "Product Viewed",
                    "where": [{"property": "category", "eq": "Luxury Watches"}],
                    "within": "48h",
                },
                {
                    "event": "Order Completed",
                    "measure": "sum",
                    "of": "revenue",
                    "within": "180d",
                    "gt": 5000,
                },
                {"not": {"event": "Order Completed", "within": "24h"}},
            ]
        },
    ),
]


if __name__ == "__main__":
    main()
