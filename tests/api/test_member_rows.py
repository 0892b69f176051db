"""Members with table rows (columns=true), searched (q), and the flat CSV export."""

from __future__ import annotations

import csv
import io
from typing import Any

from segflow.model.definition import Holdout
from tests.helpers import Server


def _shop(server: Server) -> None:
    batch: list[dict[str, Any]] = [
        {"type": "identify", "userId": "u1", "timestamp": "2026-11-01T10:00:00Z",
         "traits": {"first_name": "Ann", "last_name": "Smith", "email": "ann@shop.example",
                    "plan": "gold"}},
        {"type": "identify", "userId": "u2", "timestamp": "2026-11-01T10:00:00Z",
         "traits": {"name": "Bob Stone", "email": "BOB@mail.example"}},
        {"type": "track", "anonymousId": "anon-77", "event": "Product Viewed",
         "timestamp": "2026-11-02T10:00:00Z"},
        {"type": "track", "userId": "u1", "event": "Order Completed",
         "timestamp": "2026-11-03T10:00:00Z", "properties": {"revenue": 30}},
        {"type": "track", "userId": "u1", "event": "Order Completed",
         "timestamp": "2026-11-05T10:00:00Z", "properties": {"revenue": 20.5}},
    ]  # fmt: skip
    assert server.ingest("/v1/batch", {"batch": batch}).status_code == 200
    r = server.client.post(
        "/v1/segments",
        json={"id": "all", "condition": {"all": []}, "holdout": {"percent": 50, "salt": "s"}},
    )
    assert r.status_code == 201, r.text


def test_member_rows_and_search(server: Server) -> None:
    _shop(server)
    r = server.client.get("/v1/segments/all/members", params={"columns": "true"})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["members"] == ["anon-77", "u1", "u2"] and page["size"] == 3
    assert "matches" not in page or page["matches"] is None
    rows = {row["profile_id"]: row for row in page["rows"]}
    assert [row["profile_id"] for row in page["rows"]] == page["members"]
    ann = rows["u1"]
    assert ann["name"] == "Ann Smith" and ann["email"] == "ann@shop.example"
    assert ann["ltv"] == 50.5 and ann["orders"] == 2
    assert ann["last_order_at"] == "2026-11-05T10:00:00.000000Z"
    assert ann["since"] is not None and ann["since"].endswith("Z")
    assert rows["u2"]["name"] == "Bob Stone" and rows["u2"]["ltv"] == 0
    assert rows["anon-77"]["name"] is None and rows["anon-77"]["email"] is None
    held = Holdout(50, "s").held_out(["anon-77", "u1", "u2"])
    assert {p for p, row in rows.items() if row["held_out"]} == held

    for q, found in [("smith", ["u1"]), ("bob@MAIL", ["u2"]), ("ANON", ["anon-77"]),
                     ("u", ["u1", "u2"]), ("nobody", [])]:  # fmt: skip
        r = server.client.get("/v1/segments/all/members", params={"q": q})
        assert r.status_code == 200, r.text
        assert r.json()["members"] == found, q
        assert r.json()["matches"] == len(found) and r.json()["size"] == 3

    first = server.client.get("/v1/segments/all/members", params={"q": "u", "limit": 1}).json()
    assert first["members"] == ["u1"] and first["next_cursor"]
    second = server.client.get(
        "/v1/segments/all/members",
        params={"q": "u", "limit": 1, "cursor": first["next_cursor"], "columns": "true"},
    ).json()
    assert second["members"] == ["u2"] and second["next_cursor"] is None
    assert second["rows"][0]["email"] == "BOB@mail.example"


def test_flat_csv_export(server: Server) -> None:
    _shop(server)
    r = server.client.get(
        "/v1/segments/all/export",
        params={"format": "csv", "flat": "true", "include_held_out": "true"},
    )
    assert r.status_code == 200, r.text
    table = list(csv.DictReader(io.StringIO(r.text)))
    header = list(table[0])
    assert header[:8] == [
        "profile_id", "held_out", "name", "email", "ltv", "orders", "since", "last_order_at",
    ]  # fmt: skip
    assert "plan" in header and "traits.email" in header  # the traits follow
    ann = next(row for row in table if row["profile_id"] == "u1")
    assert ann["name"] == "Ann Smith" and float(ann["ltv"]) == 50.5 and ann["orders"] == "2"
    assert ann["last_order_at"] == "2026-11-05T10:00:00.000000Z" and ann["plan"] == "gold"
    plain = server.client.get("/v1/segments/all/export", params={"format": "csv"})
    assert "name" not in plain.text.splitlines()[0].split(",")


def test_bad_member_queries(shared_server: Server) -> None:
    r = shared_server.client.get("/v1/segments/nope/members", params={"columns": "true"})
    assert r.status_code == 404 and "nope" in r.json()["error"]["message"]
    r = shared_server.client.get("/v1/segments/nope/members", params={"q": "x" * 201})
    assert r.status_code == 422
    assert r.json()["error"]["errors"][0]["path"] == "query.q"
