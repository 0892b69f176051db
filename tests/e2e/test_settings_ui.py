"""The settings page's destinations in the browser: add one with the form (the type's
own settings and a field mapping), see it listed with its channel, status and counts,
open its delivery log, replay its dead letters once the destination is fixed; every
state axe-clean with no console error."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_ui import _axe, _open, _shop, browser
from tests.helpers import Server, now_iso, wait_for

__all__ = ["browser"]

pytestmark = [
    pytest.mark.slow,  # a browser
    pytest.mark.skipif(
        shutil.which("chromium") is None, reason="Debian's chromium is not installed (make browser)"
    ),
]


@pytest.fixture
def one_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGFLOW_WEBHOOK_BACKOFF_S", "0.1")
    monkeypatch.setenv("SEGFLOW_WEBHOOK_MAX_ATTEMPTS", "1")


def _order(server: Server, user: str) -> None:
    body = {"type": "track", "userId": user, "event": "Order Completed",
            "timestamp": now_iso(), "properties": {"revenue": 2000.0}}  # fmt: skip
    assert server.ingest("/v1/track", body).status_code == 200


def test_add_a_destination_then_replay_its_dead_letters(
    one_attempt: None, server: Server, browser: Any, tmp_path: Path
) -> None:
    _shop(server)
    page, watch = _open(browser, server)
    page.goto(server.base_url + "/#/settings")
    page.locator("#keys table").wait_for()

    # a file drop into a path that is a file for now: its deliveries die
    blocked = tmp_path / "drops"
    blocked.write_text("in the way")
    page.get_by_role("button", name="+ New destination").click()
    page.locator("#dest-type").select_option("files")
    page.locator("#dest-name").fill("Lake drop")
    page.locator("#dest-segments").select_option(["big_spenders"])
    page.locator("#dest-channel").select_option("email")
    page.locator("#dest-unknown").select_option("allow")
    page.locator("#dest-cfg-path").fill(str(blocked))
    page.locator("#dest-cfg-format").select_option("csv")
    page.get_by_role("button", name="+ field").click()
    page.locator("#dest-trait-0").fill("email")
    page.locator("#dest-out-0").fill("email_address")
    _axe(page, "destination form")
    page.get_by_role("button", name="Add destination").click()
    row = page.locator("#destinations tbody tr", has_text="Lake drop")
    row.wait_for()
    assert "email" in row.inner_text() and "big_spenders" in row.inner_text()
    (dest,) = server.client.get("/v1/destinations").json()["destinations"]
    assert dest["fields"] == {"email": "email_address"}
    assert dest["config"] == {"path": str(blocked), "format": "csv"}

    _order(server, "bob")  # bob enters big spenders
    wait_for(
        lambda: server.client.get(f"/v1/destinations/{dest['id']}").json()["status"] == "failing"
    )
    page.reload()
    row.locator(".dest-status", has_text="failing").wait_for()
    row.get_by_role("button", name="Log").click()
    log = page.locator(f"#log-{dest['id']}")
    log.locator(".dest-dead tbody tr").wait_for()
    assert "bob" in log.locator(".dest-dead").inner_text()
    _axe(page, "delivery log")

    blocked.unlink()
    log.get_by_role("button", name="Replay all").click()
    row.locator(".dest-status", has_text="ok").wait_for()
    wait_for(lambda: (blocked / "manifest.json").exists())
    page.reload()
    row.locator(".dest-counts", has_text="1 delivered").wait_for()
    row.get_by_role("button", name="Log").click()
    log.get_by_role("button", name="Sync now").click()
    log.locator(".dest-syncs tbody tr", has_text="done").wait_for()
    assert "manual" in log.locator(".dest-syncs").inner_text()

    # the customer's Why? names the destination and the consent decision
    page.goto(server.base_url + "/#/profiles/bob")
    page.locator("#consent tr[data-channel=email]", has_text="unknown").wait_for()
    mine = page.locator("#profile-segments li", has_text="Big spenders")
    mine.get_by_role("button", name="Why?").click()
    reach = page.locator(f"#explain li[data-destination={dest['id']}]")
    reach.wait_for()
    assert "sent on email: unknown consent, destination allow" in reach.inner_text()
    _axe(page, "profile with consent")
    page.goto(server.base_url + "/#/settings")

    # edit: a second field, then delete
    row.get_by_role("button", name="Edit").click()
    page.get_by_role("button", name="+ field").click()
    page.locator("#dest-trait-1").fill("first_name")
    page.get_by_role("button", name="Save destination").click()
    page.locator("#dest-form").wait_for(state="detached")
    got = server.client.get(f"/v1/destinations/{dest['id']}").json()
    assert got["fields"] == {"email": "email_address", "first_name": "first_name"}
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Delete").click()
    page.locator("#destinations .empty").wait_for()

    assert watch.errors == []
    assert not [u for u in watch.urls if server.admin_key in u]
