"""The groups page in the browser: the list with each group's ordered segments and
resolved sizes, one group's resolution, its order changed with the buttons, the
dry-run diff reviewed, then saved; axe-clean with no console error."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_ui import _axe, _open, _shop, browser
from tests.helpers import Server

__all__ = ["browser"]

pytestmark = [
    pytest.mark.slow,  # a browser
    pytest.mark.skipif(
        shutil.which("chromium") is None, reason="Debian's chromium is not installed (make browser)"
    ),
]


def test_reorder_a_group_after_reviewing_who_moves(server: Server, browser: Any) -> None:
    _shop(server)  # big spenders: ada, cy, dan; bob spent little
    buyers = {"id": "buyers", "name": "Buyers", "condition": {"event": "Order Completed"}}
    assert server.client.post("/v1/segments", json=buyers).status_code == 201
    viewers = {"id": "viewers", "condition": {"event": "Product Viewed"}}
    assert server.client.post("/v1/segments", json=viewers).status_code == 201
    group = {"group": "tiers", "name": "Value tiers", "segments": ["big_spenders", "buyers"]}
    assert server.client.post("/v1/groups", json=group).status_code == 201
    page, watch = _open(browser, server)

    page.get_by_role("link", name="Groups", exact=True).click()
    row = page.locator("tr[data-group=tiers]")
    row.wait_for()
    assert "big_spenders (3)" in row.inner_text() and "buyers (1)" in row.inner_text()
    _axe(page, "groups")

    row.get_by_role("link", name="Value tiers").click()
    page.locator("#resolution tr[data-segment=buyers] .resolved", has_text="1").wait_for()
    assert page.locator("#resolution tr[data-segment=big_spenders] .resolved").inner_text() == "3"

    page.get_by_role("button", name="Move Buyers up").click()
    assert "[buyers, big_spenders]" in page.locator("#group-yaml").input_value()
    page.get_by_role("button", name="Review changes").click()
    diff = page.locator("#group-diff")
    diff.wait_for()
    assert "3" in diff.locator("tr[data-resolved='tiers:buyers']").inner_text()
    _axe(page, "group review")
    page.get_by_role("button", name="Save group").click()
    page.locator("#resolution tr[data-segment=buyers] .resolved", has_text="4").wait_for()
    got = server.client.get("/v1/groups/tiers").json()
    assert got["definition"]["segments"] == ["buyers", "big_spenders"] and got["version"] == 2

    # a new group written as YAML, reviewed, created
    page.goto(server.base_url + "/#/groups")
    page.get_by_role("button", name="+ New group").click()
    page.locator("#group-yaml").fill("group: solo\nname: Solo\nsegments:\n  - viewers\n")
    page.get_by_role("button", name="Review changes").click()
    page.locator("#group-diff tr[data-resolved='solo:viewers']").wait_for()
    page.get_by_role("button", name="Create group").click()
    page.locator("#group-name", has_text="Solo").wait_for()

    assert watch.errors == []
    assert not [u for u in watch.urls if server.admin_key in u]


@pytest.mark.parametrize(
    "hash_,ready", [("#/groups/tiers", "#resolution"), ("#/settings", "#destinations")]
)
def test_groups_and_settings_fit_a_phone(
    server: Server, browser: Any, tmp_path: Path, hash_: str, ready: str
) -> None:
    _shop(server)
    group = {"group": "tiers", "name": "Value tiers", "segments": ["big_spenders"]}
    assert server.client.post("/v1/groups", json=group).status_code == 201
    r = server.client.post(
        "/v1/destinations",
        json={"type": "files", "name": "Lake drop", "groups": ["tiers"], "channel": "email",
              "config": {"path": str(tmp_path / "drops")}, "changes": False},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    page, watch = _open(browser, server, width=390)
    page.goto(server.base_url + "/" + hash_)
    page.locator(ready).wait_for()
    if hash_ == "#/settings":
        page.get_by_role("button", name="+ New destination").click()
        page.locator("#dest-form").wait_for()
    page.wait_for_timeout(300)
    overflow = page.evaluate("() => document.documentElement.scrollWidth")
    assert overflow <= 390, f"{hash_} is {overflow} px wide"
    _axe(page, hash_ + " (phone)")
    assert watch.errors == []
