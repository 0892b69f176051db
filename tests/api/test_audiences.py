"""Ad audience destinations over real HTTP: entries and exits become hashed upload
files (adds and removals apart), a full sync one file per segment; held-out members
are never written, an erased profile is removed (its hashes read before its traits
went) and never synced again, members without an email or a phone are skipped and
counted."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

from segflow.model.bucket import bucket_of
from tests.helpers import Server, now_iso, wait_for

SALT = "hold"
USERS = [f"user{i}" for i in range(16)]
HELD = {u for u in USERS if bucket_of(u, SALT) < 50}
SENT = [u for u in USERS if u not in HELD]
SEGMENT = {
    "id": "pros",
    "condition": {"trait": "plan", "eq": "pro"},
    "holdout": {"percent": 50, "salt": SALT},
}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _traits(u: str) -> dict[str, Any]:
    """Every fourth user (3, 7, ...) has neither an email nor a phone."""
    i = int(u.removeprefix("user"))
    return {
        "work_email": f" User.{i}@GMail.com " if i % 4 != 3 else None,
        "mobile": f"(415) 555-26{i:02d}" if i % 2 == 0 else None,
    }


def _expected(u: str) -> tuple[str, str] | None:
    """The Google row of ``u``, worked out by hand: dots out of a gmail local part,
    E.164 with its +."""
    i = int(u.removeprefix("user"))
    email = _sha(f"user{i}@gmail.com") if i % 4 != 3 else ""
    phone = _sha(f"+1415555 26{i:02d}".replace(" ", "")) if i % 2 == 0 else ""
    return (email, phone) if email or phone else None


def _identify(server: Server, users: list[str], plan: str, tag: str) -> None:
    batch = [
        {"type": "identify", "userId": u, "messageId": f"{tag}-{u}", "timestamp": now_iso(),
         "traits": {**_traits(u), "plan": plan}}
        for u in users
    ]  # fmt: skip
    assert server.ingest("/v1/batch", {"batch": batch}).status_code == 200


def _delivered(server: Server, dest_id: str) -> int:
    n: int = server.client.get(f"/v1/destinations/{dest_id}").json()["deliveries"]["delivered"]
    return n


def _rows(path: Path) -> tuple[list[str], set[tuple[str, str]]]:
    header, *rows = list(csv.reader(path.open()))
    return header, {(r[0], r[1]) for r in rows}


def test_google_audience_files_hash_members_leave_out_held_and_remove_erased(
    server: Server, tmp_path: Path
) -> None:
    assert HELD and len(SENT) >= 4
    folder = tmp_path / "audience"
    assert server.client.post("/v1/segments", json=SEGMENT).status_code == 201
    r = server.client.post(
        "/v1/destinations",
        json={"type": "ad_audience", "segments": ["pros"],
              "config": {"path": str(folder), "platform": "google", "default_region": "US",
                         "email_trait": "work_email", "phone_trait": "mobile"}},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    dest = r.json()
    assert dest["fields"] == {"work_email": "email", "mobile": "phone"}

    _identify(server, USERS, "pro", "in")
    wait_for(lambda: _delivered(server, dest["id"]) == len(SENT))
    leavers = SENT[:2]
    _identify(server, leavers, "free", "out")
    wait_for(lambda: _delivered(server, dest["id"]) == len(SENT) + len(leavers))

    erased = SENT[2]
    r = server.client.delete(f"/v1/profiles/{erased}", params={"suppress": "true"})
    assert r.status_code == 200, r.text
    alias = r.json()["pseudonym"]

    def erasure_sent() -> bool:
        rows = server.client.get(f"/v1/destinations/{dest['id']}/deliveries").json()
        return any(
            d["status"] == "delivered" and d["idempotency_key"].startswith(f"pros:{alias}:")
            for d in rows["deliveries"]
        )

    wait_for(erasure_sent)  # the exit, sent, keeps the pseudonym alone
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

    manifest = json.loads((folder / "manifest.json").read_text())
    for f in manifest["files"]:
        assert hashlib.sha256((folder / f["name"]).read_bytes()).hexdigest() == f["sha256"]
        assert f["platform"] == "google"
    assert not [p for p in folder.iterdir() if ".tmp-" in p.name]

    def gathered(kind: str) -> tuple[set[tuple[str, str]], int]:
        rows: set[tuple[str, str]] = set()
        skipped = 0
        for f in manifest["files"]:
            if f["kind"] == kind:
                header, got = _rows(folder / f["name"])
                assert header == ["Email", "Phone"]
                assert len(got) == f["rows"]
                rows |= got
                skipped += f["skipped"]
        return rows, skipped

    def want(users: list[str]) -> tuple[set[tuple[str, str]], int]:
        rows = [_expected(u) for u in users]
        return {r for r in rows if r is not None}, sum(r is None for r in rows)

    assert gathered("add") == want(SENT)
    # the erased profile is removed by its hashes, read before its traits went
    assert gathered("remove") == want([*leavers, erased])
    stay = [u for u in SENT if u not in leavers and u != erased]
    assert gathered("sync") == want(stay)
    rows, skipped = want(stay)
    assert sync["sent"] == len(rows) and sync["detail"][0]["skipped"] == skipped
    held_rows = {_expected(u) for u in HELD}
    everything = gathered("add")[0] | gathered("remove")[0] | gathered("sync")[0]
    assert not everything & held_rows


def test_bad_ad_audiences_answer_422_naming_each_problem(server: Server) -> None:
    assert server.client.post("/v1/segments", json=SEGMENT).status_code == 201
    r = server.client.post(
        "/v1/destinations",
        json={"type": "ad_audience", "segments": ["pros"], "fields": ["email"],
              "config": {"path": "rel", "platform": "tiktok", "default_region": "usa",
                         "email_trait": "x", "phone_trait": "x"}},
    )  # fmt: skip
    assert r.status_code == 422, r.text
    paths = {e["path"] for e in r.json()["error"]["errors"]}
    assert paths == {
        "body.fields", "body.config.path", "body.config.platform",
        "body.config.default_region", "body.config.phone_trait",
    }  # fmt: skip
    r = server.client.post(
        "/v1/destinations", json={"type": "ad_audience", "segments": ["pros"], "config": {}}
    )
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["error"]["errors"]}
    assert paths == {"body.config.path", "body.config.platform"}
    assert server.client.get("/v1/destinations").json()["destinations"] == []
