"""Priority groups API over real HTTP: CRUD, resolved members (each profile under at
most one segment), in_segment of a resolution, the change log naming the group, the
export, and bad input answered 422/409 naming the path with nothing stored."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.helpers import EDGE, Server

NOW = datetime.now(UTC).replace(microsecond=0)


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _orders(server: Server, revenues: dict[str, float], tag: str = "") -> None:
    batch = [
        {
            "type": "track",
            "userId": user,
            "event": "Order Completed",
            "messageId": f"order-{user}{tag}",
            "timestamp": _iso(NOW - timedelta(hours=1 + i)),
            "properties": {"revenue": revenue},
        }
        for i, (user, revenue) in enumerate(sorted(revenues.items()))
    ]
    r = server.ingest("/v1/batch", {"batch": batch})
    assert r.status_code == 200, r.text


def _spend(sid: str, gte: float) -> dict[str, Any]:
    cond = {"event": "Order Completed", "measure": "sum", "of": "revenue", "gte": gte}
    return {"id": sid, "name": f"Spent {gte}+", "condition": cond}


def _setup(server: Server) -> None:
    _orders(server, {"u1": 50, "u2": 250, "u3": 1000})
    for sid, gte in (("gold", 500), ("silver", 200), ("buyer", 1)):
        r = server.client.post("/v1/segments", json=_spend(sid, gte))
        assert r.status_code == 201, r.text


@EDGE
def test_group_resolves_each_profile_to_its_highest_segment(server: Server) -> None:
    _setup(server)
    doc = {"group": "tiers", "name": "Tiers", "segments": ["gold", "silver", "buyer"]}
    r = server.client.post("/v1/groups", json=doc)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "created" and body["group"]["version"] == 1
    sizes = {m["segment"]: m["size"] for m in body["group"]["members"]}
    assert sizes == {"gold": 1, "silver": 1, "buyer": 1}
    members = server.client.get("/v1/groups/tiers/members").json()
    assert members["members"] == {"gold": ["u3"], "silver": ["u2"], "buyer": ["u1"]}
    past = server.client.get("/v1/groups/tiers/members", params={"at": _iso(NOW)}).json()
    assert past["members"] == members["members"] and past["size"] == 3
    # a resolution is a segment: members page, in_segment, change log naming the group
    page = server.client.get("/v1/segments/tiers:silver/members").json()
    assert page["members"] == ["u2"]
    reader = {"id": "not_gold", "condition": {"in_segment": {"group": "tiers", "segment": "buyer"}}}
    r = server.client.post("/v1/segments", json=reader)
    assert r.status_code == 201, r.text
    assert r.json()["diff"]["entering"] == ["u1"]
    changes = server.client.get("/v1/segments/tiers:gold/changes").json()["changes"]
    assert [(c["profile_id"], c["group"], c["group_segment"]) for c in changes] == [
        ("u3", "tiers", "gold")
    ]
    # a new order moves u2 up from silver to gold at once
    _orders(server, {"u2": 300}, "-again")
    members = server.client.get("/v1/groups/tiers/members").json()["members"]
    assert members == {"gold": ["u2", "u3"], "silver": [], "buyer": ["u1"]}
    # a dry run answers who would move, and saves nothing
    r = server.client.put("/v1/groups/tiers?dry_run=true", json={"segments": ["buyer", "gold"]})
    assert r.status_code == 200 and r.json()["status"] == "dry_run", r.text
    diff = {d["segment_id"]: (d["entering"], d["leaving"]) for d in r.json()["diff"]}
    assert diff == {
        "tiers:buyer": (["u2", "u3"], []),
        "tiers:gold": ([], ["u2", "u3"]),
        "tiers:silver": ([], []),
    }
    assert r.json()["group"]["version"] == 1
    # reordering moves profiles, and the group's export names the segment of each
    r = server.client.put("/v1/groups/tiers", json={"segments": ["buyer", "gold"]})
    assert r.status_code == 200 and r.json()["status"] == "updated", r.text
    members = server.client.get("/v1/groups/tiers/members").json()["members"]
    assert members == {"buyer": ["u1", "u2", "u3"], "gold": []}
    exported = server.client.get("/v1/groups/tiers/export")
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(row["profile_id"], row["segment"]) for row in rows] == [
        ("u1", "buyer"),
        ("u2", "buyer"),
        ("u3", "buyer"),
    ]
    assert "tiers:silver" not in {
        s["id"] for s in server.client.get("/v1/segments").json()["segments"]
    }


def test_bad_groups_are_422_naming_paths_and_nothing_is_stored(server: Server) -> None:
    _setup(server)
    r = server.client.post("/v1/groups", json={"group": "a", "segments": ["gold", "silvr"]})
    assert r.status_code == 422
    assert r.json()["error"]["errors"] == [
        {"path": "segments[1]", "message": "unknown segment 'silvr' (did you mean 'silver'?)"}
    ]
    r = server.client.post("/v1/groups", json={"group": "a", "segmnts": ["gold"]})
    assert r.status_code == 422
    assert {e["path"] for e in r.json()["error"]["errors"]} == {"segmnts", "segments"}
    assert server.client.post("/v1/groups", json={"group": "a", "segments": ["gold"]}).is_success
    r = server.client.post("/v1/groups", json={"group": "b", "segments": ["silver", "gold"]})
    assert r.status_code == 422
    (err,) = r.json()["error"]["errors"]
    assert err["path"] == "segments[1]"
    assert "'gold' is in two groups: 'a' and 'b'" in err["message"]
    # a cycle through a resolution: silver reads a's resolution of a lower segment
    server.client.put("/v1/groups/a", json={"segments": ["gold", "silver", "buyer"]})
    cyc = {"id": "silver", "condition": {"not": {"in_segment": "a:buyer"}}}
    r = server.client.put("/v1/segments/silver", json=cyc)
    assert r.status_code == 422
    assert "in_segment cycle: silver -> a:buyer -> silver" in r.text
    # deleting a listed segment, and a group a segment reads, is 409
    r = server.client.delete("/v1/segments/gold")
    assert r.status_code == 409 and "listed by group 'a'" in r.text
    server.client.post("/v1/segments", json={"id": "r", "condition": {"in_segment": "a:gold"}})
    r = server.client.delete("/v1/groups/a")
    assert r.status_code == 409 and "used by: r" in r.text
    assert server.client.get("/v1/groups/b").status_code == 404
    assert [g["group"] for g in server.client.get("/v1/groups").json()["groups"]] == ["a"]
    assert server.client.delete("/v1/segments/r").status_code == 204
    assert server.client.delete("/v1/groups/a").status_code == 204
    assert server.client.get("/v1/groups").json()["groups"] == []
    assert server.client.get("/v1/segments/a:gold/members").status_code == 404
