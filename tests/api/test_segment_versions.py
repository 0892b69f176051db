"""Segment versions: the list, newest first, and restoring one as a new version."""

from __future__ import annotations

from tests.helpers import Server, post_view


def test_versions_and_restore(server: Server) -> None:
    c = server.client
    v1 = {"id": "seen", "name": "Seen", "condition": {"event": "Product Viewed", "within": "7d"}}
    assert c.post("/v1/segments", json=v1).status_code == 201
    v2 = {**v1, "condition": {"event": "Order Completed", "within": "7d"}, "tags": ["b"]}
    assert c.put("/v1/segments/seen", json=v2).status_code == 200
    post_view(server, "ann", 1)

    r = c.get("/v1/segments/seen/versions")
    assert r.status_code == 200, r.text
    versions = r.json()["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["definition"]["condition"]["event"] == "Order Completed"
    assert versions[1]["definition"]["condition"]["event"] == "Product Viewed"
    assert all(v["saved_at"].endswith("Z") for v in versions)

    r = c.post("/v1/segments/seen/versions/1/restore")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "updated"
    assert body["segment"]["version"] == 3
    assert body["segment"]["definition"]["condition"]["event"] == "Product Viewed"
    assert "tags" not in body["segment"]["definition"]
    assert body["diff"]["entering"] == ["ann"]  # same answer as PUT, with the diff
    assert [v["version"] for v in c.get("/v1/segments/seen/versions").json()["versions"]] == [
        3, 2, 1,
    ]  # fmt: skip
    again = c.post("/v1/segments/seen/versions/3/restore").json()
    assert again["status"] == "unchanged"

    assert c.delete("/v1/segments/seen").status_code == 204
    assert c.get("/v1/segments/seen").status_code == 404
    newest = c.get("/v1/segments/seen/versions").json()["versions"][0]
    assert newest["version"] == 3
    back = c.post("/v1/segments/seen/versions/2/restore")
    assert back.status_code == 200, back.text
    assert back.json()["status"] == "created"
    assert c.get("/v1/segments/seen").json()["definition"]["tags"] == ["b"]


def test_versions_bad_input(shared_server: Server) -> None:
    c = shared_server.client
    r = c.get("/v1/segments/nope/versions")
    assert r.status_code == 404 and "unknown segment 'nope'" in r.json()["error"]["message"]
    assert c.post("/v1/segments/nope/versions/1/restore").status_code == 404
    assert c.post("/v1/segments", json={"id": "vx", "condition": {"all": []}}).status_code == 201
    r = c.post("/v1/segments/vx/versions/9/restore")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "segment 'vx' has no version 9 (it has 1)"
    assert c.post("/v1/segments/vx/versions/0/restore").status_code == 422
    assert c.post("/v1/segments/vx/versions/two/restore").status_code == 422


def test_a_deleted_segment_can_be_created_again(server: Server) -> None:
    c = server.client
    post_view(server, "ann", 1)
    doc = {"id": "again", "condition": {"event": "Product Viewed", "within": "7d"}}
    assert c.post("/v1/segments", json=doc).status_code == 201
    assert c.delete("/v1/segments/again").status_code == 204
    r = c.post("/v1/segments", json=doc)
    assert r.status_code == 201, r.text
    assert r.json()["diff"]["entering"] == ["ann"]
    assert c.get("/v1/segments/again/members").json()["members"] == ["ann"]
