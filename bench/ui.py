"""Web UI first paint and weight: each page opened cold (a fresh browser context, no
cache) in Debian's Chromium against a served demo shop.

Prints, per page: first contentful paint, the time until the page's main content is
on screen (its data fetched and drawn), and the JavaScript it loaded (decoded bytes,
files). Usage: .venv/bin/python bench/ui.py [--customers 2000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from segflow.api.deps import Settings
from segflow.server import make_context, serve_in_thread

PAGES = [
    ("dashboard", "#/", "#growth"),
    ("segment list", "#/segments", "#segments tbody tr"),
    ("segment", "#/segments/vip_customers", "#members tbody tr"),
    ("builder (edit)", "#/segments/luxury_cart_abandoners/edit", "#preview-size"),
    ("customers", "#/profiles?q=a", "#profiles"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=2000)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="segflow-bench-ui-") as tmp:
        db = Path(tmp) / "shop.duckdb"
        segflow = Path(sys.executable).parent / "segflow"
        subprocess.run(
            [str(segflow), "demo", "--no-serve", "--customers", str(args.customers),
             "--db", str(db), "--data-dir", str(Path(tmp) / "data")],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        ctx = make_context(db, settings=Settings(scores_cron=None))
        key = ctx.key_store.create("admin", "bench").token
        with serve_in_thread(ctx) as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            print(f"{args.customers:,} customers; each page cold, median of 3")
            print(f"{'page':<16} {'first paint':>12} {'content':>9} {'JS':>9} {'files':>6}")
            for name, route, ready in PAGES:
                runs = []
                for _ in range(3):
                    bctx = browser.new_context(viewport={"width": 1280, "height": 900})
                    page = bctx.new_page()
                    page.goto(server.base_url + "/")
                    page.evaluate("k => localStorage.setItem('segflow.adminKey', k)", key)
                    page.goto(server.base_url + "/" + route)
                    started = time.perf_counter()
                    page.reload()
                    page.locator(ready).first.wait_for(timeout=60_000)
                    content_ms = (time.perf_counter() - started) * 1000
                    got = page.evaluate(
                        """() => {
                          const js = performance.getEntriesByType('resource')
                            .filter((x) => x.name.includes('/ui/') && x.name.endsWith('.js'));
                          const fcp = performance.getEntriesByName('first-contentful-paint')[0];
                          return {fcp: fcp ? fcp.startTime : null, files: js.length,
                                  bytes: js.reduce((a, x) => a + x.decodedBodySize, 0)};
                        }"""
                    )
                    runs.append((got["fcp"] or 0.0, content_ms, got["bytes"], got["files"]))
                    bctx.close()
                fcp, content, size, files = sorted(runs, key=lambda r: r[1])[1]
                kb = size / 1024
                print(f"{name:<16} {fcp:>9.0f} ms {content:>6.0f} ms {kb:>6.0f} KB {files:>6}")
            browser.close()


if __name__ == "__main__":
    main()
