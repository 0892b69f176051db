"""Destinations subscribed to a priority group over real HTTP, against the real file and
webhook sinks: each receives the group's resolved changes (naming ``group`` and
``group_segment``) and full syncs of the group's resolution; an unknown group answers
422 at its path with nothing stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import Receiver, Server, now_iso, wait_for

TIERS = {"group": "tiers", "name": "Tiers", "segments": ["gold", "buyer"]}


def _spend(sid: str, gte: float) -> dict[str, Any]:
    cond = {"event": "Order Completed", "measure": "sum", "of": "revenue", "gte": gte}
    return {"id": sid, "condition": cond}


def _orders(server: Server, revenues: dict[str, float]) -> None:
    batch = [
        {"type": "track", "userId": u, "event": "Order Completed", "messageId": f"o-{u}",
         "timestamp": now_iso(), "properties": {"revenue": r}}
        for u, r in revenues.items()
    ]  # fmt: skip
    assert server.ingest("/v1/batch", {"batch": batch}).status_code == 200


def _setup(server: Server) -> None:
    for sid, gte in (("gold", 500), ("buyer", 1)):
        assert server.client.post("/v1/segments", json=_spend(sid, gte)).status_code == 201
    assert server.client.post("/v1/groups", json=TIERS).status_code == 201


def _create(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    r = server.client.post("/v1/destinations", json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def _manifest_rows(folder: Path, kind: str) -> list[dict[str, Any]]:
    if not (folder / "manifest.json").exists():
        return []
    files = json.loads((folder / "manifest.json").read_text())["files"]
    return [
        json.loads(line)
        for f in files
        if f["kind"] == kind
        for line in (folder / f["name"]).read_text().splitlines()
    ]


def test_a_file_drop_gets_a_groups_changes_and_full_syncs(server: Server, tmp_path: Path) -> None:
    _setup(server)
    folder = tmp_path / "tiers"
    dest = _create(server, {"type": "files", "groups": ["tiers"], "config": {"path": str(folder)}})
    assert dest["groups"] == ["tiers"] and dest["segments"] == []
    listed = server.client.get("/v1/destinations", params={"segment_id": "tiers:gold"}).json()
    assert [d["id"] for d in listed["destinations"]] == [dest["id"]]
    _orders(server, {"ann": 900, "bob": 20})

    wait_for(lambda: len(_manifest_rows(folder, "changes")) >= 2)
    changes = _manifest_rows(folder, "changes")
    got = {(r["profile_id"], r["segment_id"], r["group"], r["group_segment"]) for r in changes}
    assert got == {("ann", "tiers:gold", "tiers", "gold"), ("bob", "tiers:buyer", "tiers", "buyer")}
    assert all(r["type"] == "segment.entered" for r in changes)

    r = server.client.post(f"/v1/destinations/{dest['id']}/sync")
    assert r.status_code == 202, r.text

    def synced() -> dict[str, Any] | None:
        (s,) = server.client.get(f"/v1/destinations/{dest['id']}/syncs").json()["syncs"]
        return s if s["status"] in ("done", "failed") else None

    wait_for(synced)
    sync = synced()
    assert sync is not None and sync["status"] == "done", sync
    assert (sync["members"], sync["sent"]) == (2, 2)
    by_seg = {d["segment_id"]: d for d in sync["detail"]}
    assert list(by_seg) == ["tiers:gold", "tiers:buyer"]  # priority order
    assert by_seg["tiers:gold"]["group_segment"] == "gold"
    rows = _manifest_rows(folder, "sync")
    assert {(r["segment_id"], r["profile_id"]) for r in rows} == {
        ("tiers:gold", "ann"), ("tiers:buyer", "bob")
    }  # fmt: skip


def test_a_webhook_gets_a_groups_changes_and_sync_members(server: Server) -> None:
    _setup(server)
    receiver = Receiver(fail_first=0)
    try:
        dest = _create(
            server,
            {"type": "webhook", "groups": ["tiers"], "segments": ["gold"],
             "config": {"url": receiver.url}},
        )  # fmt: skip
        _orders(server, {"ann": 900, "bob": 20})

        def records() -> list[dict[str, Any]]:
            return [json.loads(body) for body, _ in receiver.accepted]

        # ann enters gold and tiers:gold (two changes), bob tiers:buyer
        wait_for(lambda: len(records()) >= 3)
        seen = {(r["segment_id"], r["profile_id"], r["group"]) for r in records()}
        assert seen == {("gold", "ann", None), ("tiers:gold", "ann", "tiers"),
                        ("tiers:buyer", "bob", "tiers")}  # fmt: skip
        r = server.client.post(f"/v1/destinations/{dest['id']}/sync")
        assert r.status_code == 202
        wait_for(lambda: len([x for x in records() if x["type"] == "segment.member"]) >= 3)
        members = [x for x in records() if x["type"] == "segment.member"]
        assert {(x["segment_id"], x["profile_id"], x["group_segment"]) for x in members} == {
            ("gold", "ann", None), ("tiers:gold", "ann", "gold"), ("tiers:buyer", "bob", "buyer")
        }  # fmt: skip
    finally:
        receiver.close()


def test_an_unknown_group_answers_422_at_its_path(server: Server, tmp_path: Path) -> None:
    _setup(server)
    r = server.client.post(
        "/v1/destinations",
        json={"type": "files", "groups": ["tiers", "Tier"], "config": {"path": str(tmp_path)}},
    )
    assert r.status_code == 422, r.text
    (problem,) = r.json()["error"]["errors"]
    assert problem["path"] == "body.groups[1]" and "unknown group 'Tier'" in problem["message"]
    r = server.client.post(
        "/v1/destinations", json={"type": "files", "groups": "tiers", "config": {"path": "/x"}}
    )
    assert r.status_code == 422
    assert {e["path"] for e in r.json()["error"]["errors"]} == {"body.groups"}
    r = server.client.post("/v1/destinations", json={"type": "files", "config": {"path": "/x"}})
    assert r.status_code == 422
    assert {e["path"] for e in r.json()["error"]["errors"]} == {"body.segments"}
    assert server.client.get("/v1/destinations").json()["destinations"] == []
