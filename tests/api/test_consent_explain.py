"""Consent in explain and in the profile view over real HTTP, with per-region defaults
for unknown consent configured in SEGFLOW_UNKNOWN_CONSENT: a US profile that never
spoke about email is sent, a German one is not, a profile that said no is excluded
with its statement's time and source; a full sync to a real file drop agrees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Server, post_view, wait_for

POLICY = {"default": "deny", "regions": {"US": {"email": "allow"}}}


@pytest.fixture
def us_email_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGFLOW_UNKNOWN_CONSENT", json.dumps(POLICY))


def _identify(user: str, traits: dict[str, Any]) -> dict[str, Any]:
    return {"type": "identify", "userId": user, "messageId": f"i-{user}",
            "timestamp": "2026-11-03T10:00:00Z", "traits": traits}  # fmt: skip


def test_explain_and_profile_state_each_channels_decision_by_region(
    us_email_allowed: None, server: Server, tmp_path: Path
) -> None:
    seg = {"id": "viewers", "condition": {"event": "Product Viewed", "within": "7d"}}
    assert server.client.post("/v1/segments", json=seg).status_code == 201
    batch = [
        _identify("us1", {"address": {"country": "US"}}),
        _identify("de1", {"address": {"country": "DE"}}),
        _identify("ann", {"address": {"country": "US"}, "consent": {"email": False}}),
    ]
    assert server.ingest("/v1/batch", {"batch": batch}).status_code == 200
    folder = tmp_path / "email"
    r = server.client.post(
        "/v1/destinations",
        json={"type": "files", "name": "newsletter", "segments": ["viewers"],
              "channel": "email", "config": {"path": str(folder)}},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    dest = r.json()
    assert dest["unknown_consent"] is None  # the configured rule applies
    plain = server.client.post(
        "/v1/destinations",
        json={"type": "files", "name": "lake", "segments": ["viewers"],
              "config": {"path": str(tmp_path / "lake")}},
    )  # fmt: skip
    assert plain.status_code == 201
    for n, u in enumerate(("us1", "de1", "ann")):
        post_view(server, u, n)
    wait_for(lambda: server.client.get("/v1/segments/viewers/members").json()["members"])

    def reach(user: str) -> dict[str, dict[str, Any]]:
        r = server.client.get("/v1/segments/viewers/explain", params={"profile_id": user})
        assert r.status_code == 200, r.text
        assert r.json()["member"] is True
        return {d["name"]: d for d in r.json()["destinations"]}

    us1, de1, ann = reach("us1"), reach("de1"), reach("ann")
    assert us1["newsletter"]["excluded"] is False
    assert us1["newsletter"]["reason"] == "sent on email: unknown consent, region US default allow"
    assert de1["newsletter"]["excluded"] is True
    assert de1["newsletter"]["reason"] == "excluded from email: unknown consent, default deny"
    assert ann["newsletter"]["reason"] == (
        "excluded from email: no consent since 2026-11-03T10:00:00.000000Z"
        " (source: identify (trait consent.email))"
    )
    assert ann["lake"] == {**ann["lake"], "excluded": False, "reason": "sent: no consent check"}

    view = server.client.get("/v1/profiles/us1").json()
    email = {c["channel"]: c for c in view["consent_channels"]}["email"]
    assert (email["state"], email["default"], email["region"]) == ("unknown", "allow", "US")
    sms = {c["channel"]: c for c in view["consent_channels"]}["sms"]
    assert (sms["state"], sms["default"]) == ("unknown", "deny")
    said = {
        c["channel"]: c for c in server.client.get("/v1/profiles/ann").json()["consent_channels"]
    }
    assert said["email"]["state"] == "denied" and said["email"]["source"] == "trait consent.email"
    assert said["email"]["at"] == "2026-11-03T10:00:00.000000Z"

    r = server.client.post(f"/v1/destinations/{dest['id']}/sync")
    assert r.status_code == 202

    def synced() -> dict[str, Any] | None:
        (s,) = server.client.get(f"/v1/destinations/{dest['id']}/syncs").json()["syncs"]
        return s if s["status"] in ("done", "failed") else None

    wait_for(synced)
    sync = synced()
    assert sync is not None and sync["status"] == "done", sync
    assert sync["sent"] == 1 and sync["detail"][0]["not_consented"] == 2
    files = json.loads((folder / "manifest.json").read_text())["files"]
    rows = [
        json.loads(line) for f in files for line in (folder / f["name"]).read_text().splitlines()
    ]
    assert {r["profile_id"] for r in rows} == {"us1"}  # its change and its sync row
