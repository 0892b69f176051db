"""Screenshots of every page of the web UI at desktop and phone width, for review.

``make screenshots`` runs ``python -m tests.e2e.screenshots``: it generates a small demo
shop (``segflow demo --no-serve``), serves it in this process, drives Debian's Chromium
through each page while a few live events arrive, and writes one full-page PNG per page
and width to ``screenshots/`` (kept out of git). No network is needed."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.helpers import Server, running_server

CHROMIUM = "/usr/bin/chromium"
WIDTHS = {"desktop": 1280, "phone": 390}


def _demo(workdir: Path, customers: int) -> Path:
    db = workdir / "shop.duckdb"
    segflow = Path(sys.executable).parent / "segflow"
    subprocess.run(
        [str(segflow), "demo", "--no-serve", "--customers", str(customers), "--days", "180",
         "--db", str(db), "--data-dir", str(workdir / "data")],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return db


def _first_member(server: Server, segment: str) -> str:
    r = server.client.get(f"/v1/segments/{segment}/members", params={"limit": 1})
    members: list[str] = r.json()["members"]
    return members[0] if members else ""


def _trickle(server: Server, stop: threading.Event) -> None:
    """A visitor now and then adds to a cart and views a page, so live feeds move."""
    n = 0
    while not stop.wait(0.7):
        n += 1
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        who = {"anonymousId": f"shot-visitor-{n}"}
        batch = [
            {"type": "page", "name": "Home", "timestamp": now, **who,
             "properties": {"path": "/", "url": "https://shop.example.com/"}},
            {"type": "track", "event": "Product Added", "timestamp": now, **who,
             "properties": {"product_id": "P00001", "price": 49.0, "category": "Apparel"}},
        ]  # fmt: skip
        try:
            server.ingest("/v1/batch", {"batch": batch})
        except httpx.HTTPError:
            return


def _pages(server: Server) -> list[tuple[str, str, str | None]]:
    """(file name, hash route, a selector to wait for, or None)."""
    champion = _first_member(server, "rfm_champions") or _first_member(server, "everyone")
    return [
        ("01-dashboard", "#/", "#totals"),
        ("02-segments", "#/segments", "#segments"),
        ("03-segment", "#/segments/vip_customers", "#members"),
        ("04-builder-new", "#/new", "#rules"),
        ("05-builder-edit", "#/segments/luxury_cart_abandoners/edit", ".rule"),
        ("06-customers", "#/profiles?q=a", "#profiles"),
        ("07-customer", f"#/profiles/{champion}", "#profile-name"),
        ("08-overlap", "#/overlap", "#heatmap table"),
        ("09-journeys", "#/journeys", "#stages"),
        ("10-settings", "#/settings", "#keys table"),
        ("11-groups", "#/groups", "#groups"),
    ]


def _shoot(server: Server, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    files: list[Path] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for label, width in WIDTHS.items():
                ctx = browser.new_context(viewport={"width": width, "height": 900})
                page = ctx.new_page()
                page.set_default_timeout(30_000)
                page.goto(server.base_url + "/")
                page.evaluate("k => localStorage.setItem('segflow.adminKey', k)", server.admin_key)
                page.reload()
                for name, route, ready in _pages(server):
                    page.goto(server.base_url + "/" + route)
                    if ready:
                        page.locator(ready).first.wait_for()
                    if name == "07-customer":
                        page.locator("#profile-segments .why").first.click()
                        page.locator("#explain .verdict").wait_for()
                    page.wait_for_timeout(2500)  # live feeds, charts, debounced previews
                    path = out / f"{name}-{label}.png"
                    page.screenshot(path=str(path), full_page=True)
                    files.append(path)
                ctx.close()
        finally:
            browser.close()
    return files


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("screenshots"))
    ap.add_argument("--customers", type=int, default=600)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="segflow-shots-") as tmp:
        started = time.monotonic()
        db = _demo(Path(tmp), args.customers)
        with running_server(db) as server:
            stop = threading.Event()
            feeder = threading.Thread(target=_trickle, args=(server, stop), daemon=True)
            feeder.start()
            try:
                files = _shoot(server, args.out)
            finally:
                stop.set()
                feeder.join(5)
    for f in files:
        print(f)
    print(f"{len(files)} screenshots in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
