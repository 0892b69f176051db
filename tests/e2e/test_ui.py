"""The web UI end to end: a real server, Debian's Chromium driven by Playwright.

Segments list with sizes, a segment page whose live-changes panel receives an entry
over SSE when an event is ingested, and a profile page with traits, segments and an
explanation."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.helpers import Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.slow,  # a browser
    pytest.mark.skipif(
        shutil.which("chromium") is None, reason="Debian's chromium is not installed (make browser)"
    ),
]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def page(server: Server) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            pg = browser.new_page()
            pg.set_default_timeout(20_000)
            pg.goto(server.base_url + "/")
            pg.evaluate("k => localStorage.setItem('segflow.adminKey', k)", server.admin_key)
            yield pg
        finally:
            browser.close()


def test_segments_segment_page_live_changes_and_profile(server: Server, page: Any) -> None:
    r = server.ingest(
        "/v1/batch",
        {
            "batch": [
                {"type": "identify", "userId": "ada", "timestamp": _now(),
                 "traits": {"email": "ada@example.com", "country": "PL"}},
                {"type": "track", "userId": "ada", "event": "Product Viewed", "timestamp": _now(),
                 "properties": {"category": "Shoes"}},
            ]
        },
    )  # fmt: skip
    assert r.status_code == 200
    server.client.post(
        "/v1/segments",
        json={"id": "viewers", "name": "Recent viewers",
              "condition": {"event": "Product Viewed", "within": "7d"}},
    )  # fmt: skip

    page.goto(server.base_url + "/#/")
    row = page.locator("tr[data-segment=viewers]")
    row.wait_for()
    assert row.locator("td.size").inner_text() == "1"

    row.locator("a").click()
    page.locator("#definition").wait_for()
    assert "Product Viewed" in page.locator("#definition").inner_text()
    assert page.locator("#members li").all_inner_texts() == ["ada"]
    page.wait_for_timeout(500)
    server.ingest(
        "/v1/track",
        {"type": "track", "userId": "bob", "event": "Product Viewed", "timestamp": _now()},
    )
    entry = page.locator("#live-changes li")
    entry.first.wait_for()
    assert "bob entered" in entry.first.inner_text()

    page.locator("#members a", has_text="ada").click()
    page.locator("#traits").wait_for()
    assert "ada@example.com" in page.locator("#traits").inner_text()
    assert "viewers" in page.locator("#profile-segments").inner_text()
    page.select_option("#explain-segment", "viewers")
    page.click("#explain-button")
    page.locator("#explain p").wait_for()
    assert page.locator("#explain p").inner_text() == "member"
