"""An ESP destination over real HTTP against a fake Mailchimp on 127.0.0.1: members
consented on email are subscribed as they enter and by a full sync; held-out and
unconsented profiles never reach the provider; an erased one is deleted there too."""

from __future__ import annotations

import hashlib
from typing import Any

from segflow.model.bucket import bucket_of
from tests.helpers import Server, now_iso, wait_for
from tests.unit.service.test_esp import Fake, fake  # noqa: F401 - the fake provider fixture

SALT = "hold"
USERS = [f"user{i}" for i in range(16)]
HELD = {u for u in USERS if bucket_of(u, SALT) < 50}
SENT = [u for u in USERS if u not in HELD]
SAID_NO = SENT[0]
SEGMENT = {
    "id": "pros",
    "condition": {"trait": "plan", "eq": "pro"},
    "holdout": {"percent": 50, "salt": SALT},
}


def _emails(seen: list[tuple[str, dict[str, str], Any]]) -> list[tuple[str, str]]:
    return [
        (m["email_address"], m["status"]) for _, _, body in seen if body for m in body["members"]
    ]


def test_esp_subscribes_consented_members_only(server: Server, fake: Fake) -> None:  # noqa: F811
    assert len(SENT) >= 3
    assert server.client.post("/v1/segments", json=SEGMENT).status_code == 201
    r = server.client.post(
        "/v1/destinations",
        json={"type": "esp", "segments": ["pros"],
              "config": {"provider": "mailchimp", "list_id": "L1", "api_key": "k-us6",
                         "base_url": fake.url + "/3.0"}},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    dest = r.json()
    assert "api_key" not in dest["config"]
    batch = [
        {"type": "identify", "userId": u, "messageId": f"in-{u}", "timestamp": now_iso(),
         "traits": {"email": f"{u}@shop.test", "plan": "pro", "consent": {"email": u != SAID_NO}}}
        for u in USERS
    ]  # fmt: skip
    assert server.ingest("/v1/batch", {"batch": batch}).status_code == 200
    consented = [u for u in SENT if u != SAID_NO]

    def delivered() -> int:
        n: int = server.client.get(f"/v1/destinations/{dest['id']}").json()["deliveries"][
            "delivered"
        ]
        return n

    wait_for(lambda: delivered() == len(consented))
    assert sorted(_emails(fake.seen)) == sorted((f"{u}@shop.test", "subscribed") for u in consented)

    erased = consented[0]
    r = server.client.delete(f"/v1/profiles/{erased}", params={"suppress": "true"})
    assert r.status_code == 200, r.text
    md5 = hashlib.md5(f"{erased}@shop.test".encode()).hexdigest()
    wait_for(lambda: any(p.endswith(f"/{md5}/actions/delete-permanent") for p, _, _ in fake.seen))
    before = len(fake.seen)
    r = server.client.post(f"/v1/destinations/{dest['id']}/sync")
    assert r.status_code == 202, r.text
    sync_id = r.json()["id"]

    def done() -> dict[str, Any] | None:
        syncs = server.client.get(f"/v1/destinations/{dest['id']}/syncs").json()["syncs"]
        found = [s for s in syncs if s["id"] == sync_id and s["status"] in ("done", "failed")]
        return found[0] if found else None

    wait_for(done)
    sync = done()
    assert sync is not None and sync["status"] == "done", sync
    synced = {e for e, status in _emails(fake.seen[before:]) if status == "subscribed"}
    assert synced == {f"{u}@shop.test" for u in consented if u != erased}
