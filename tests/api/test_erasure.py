"""Erasure leaves nothing of the profile in the store file: a real server over a real
DuckDB file, a profile merged from an anonymous one, webhook deliveries naming both,
the erasure's exit delivered (naming the profile, so the receiver can forget it), then
the raw bytes of the file (and its WAL) after the server closed it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from segflow.api.deps import Settings
from segflow.server import make_context, serve_in_thread
from segflow.service.handle import Segflow
from segflow.service.profiles import load_suppressions
from tests.helpers import Receiver, create_keys, wait_for

USER = "ada_lovelace_1815"
ANON = "anon-7f3a9c5e"
EMAIL = "ada.lovelace@analytical.example"
ENGRAVING = "Difference Engine No. 2"
NEEDLES = [USER.encode(), ANON.encode(), EMAIL.encode(), ENGRAVING.encode()]
NOW = datetime.now(UTC).replace(microsecond=0)


def _iso(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat().replace("+00:00", "Z")


def _raw(db: Path) -> bytes:
    wal = db.with_name(db.name + ".wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_erased_profile_leaves_no_bytes_in_the_store_file(tmp_path: Path) -> None:
    db = tmp_path / "erase.duckdb"
    ctx = make_context(db, settings=Settings(schedule_interval_seconds=3600))
    admin, write = create_keys(ctx)
    receiver = Receiver(fail_first=0)
    try:
        with (
            serve_in_thread(ctx) as srv,
            httpx.Client(
                base_url=srv.base_url, headers={"Authorization": f"Bearer {admin}"}, timeout=30
            ) as client,
        ):
            seg = {"id": "viewers", "condition": {"event": "Product Viewed", "within": "7d"}}
            assert client.post("/v1/segments", json=seg).status_code == 201
            hook = {"segment_id": "viewers", "url": receiver.url}
            assert client.post("/v1/webhooks", json=hook).status_code == 201

            def send(*batch: dict[str, Any]) -> None:
                r = httpx.post(
                    srv.base_url + "/v1/batch", json={"batch": list(batch)}, auth=(write, "")
                )
                assert r.status_code == 200, r.text

            view = {"type": "track", "event": "Product Viewed", "messageId": "v1",
                    "anonymousId": ANON, "timestamp": _iso(3),
                    "properties": {"product_id": "p1", "engraving": ENGRAVING}}  # fmt: skip
            send(view, {"type": "track", "event": "Product Viewed", "messageId": "b1",
                        "userId": "bob", "timestamp": _iso(3)})  # fmt: skip
            wait_for(lambda: len(receiver.accepted) >= 2)
            send({"type": "identify", "messageId": "i1", "userId": USER, "anonymousId": ANON,
                  "timestamp": _iso(2), "traits": {"email": EMAIL}})  # fmt: skip
            wait_for(lambda: len(receiver.accepted) >= 4)  # anon exits (merged), user enters

            export = client.get(f"/v1/profiles/{USER}/export").json()
            logged = {c["profile_id"] for c in export["membership_changes"]}
            assert logged == {USER, ANON}  # the merged id's changes are the profile's too
            assert {d["body"]["profile_id"] for d in export["webhook_deliveries"]} == {USER, ANON}
            with ctx.lock:
                ctx.app.store.con.execute("CHECKPOINT")
            present = _raw(db)
            assert all(n in present for n in NEEDLES)  # the check below can see them

            r = client.delete(f"/v1/profiles/{ANON}", params={"suppress": "true"})
            assert r.status_code == 200 and r.json()["deleted"] == USER, r.text
            assert client.get("/v1/profiles/bob").status_code == 200
            wait_for(lambda: len(receiver.accepted) >= 5)  # the erasure's exit
            gone = json.loads(receiver.accepted[4][0])
            assert (gone["profile_id"], gone["reason"]) == (USER, "deleted")  # who to forget

            def pending() -> int:
                with ctx.lock:
                    row = ctx.app.store.con.execute(
                        "SELECT count(*) FROM destination_deliveries WHERE status = 'pending'"
                    ).fetchone()
                return int(row[0]) if row else 0

            wait_for(lambda: pending() == 0)  # delivered: the body keeps no id from now on
    finally:
        receiver.close()

    raw = _raw(db)
    assert [n for n in NEEDLES if n in raw] == []
    sf = Segflow(db)
    try:
        stored = load_suppressions(sf)
        assert USER in stored and ANON in stored
        assert sf.store.con.execute("SELECT count(*) FROM events").fetchone() == (1,)
    finally:
        sf.close()
