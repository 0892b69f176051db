"""GET /v1/catalogue: what the builder's pickers offer, from what the store has seen."""

from __future__ import annotations

from typing import Any

from tests.helpers import Server


def _shop(server: Server) -> None:
    batch: list[dict[str, Any]] = [
        {"type": "identify", "userId": "u1", "timestamp": "2026-11-01T10:00:00Z",
         "traits": {"email": "ann@example.com", "plan": "gold", "vip": True, "age": 41,
                    "created_at": "2025-03-01T08:00:00Z", "tags": ["a", "b"]}},
        {"type": "identify", "userId": "u2", "timestamp": "2026-11-01T10:00:00Z",
         "traits": {"email": "bob@example.com", "plan": "gold", "vip": False}},
        {"type": "identify", "userId": "u3", "timestamp": "2026-11-01T10:00:00Z",
         "traits": {"plan": "silver"}},
        {"type": "page", "userId": "u1", "name": "Home", "timestamp": "2026-11-02T10:00:00Z",
         "properties": {"path": "/"}},
        {"type": "page", "userId": "u2", "name": "Shoes", "timestamp": "2026-11-02T10:00:00Z",
         "properties": {"path": "/c/shoes"}},
        {"type": "page", "userId": "u3", "name": "Shoes", "timestamp": "2026-11-02T11:00:00Z",
         "properties": {"path": "/c/shoes"}},
    ]  # fmt: skip
    for i, (user, cat) in enumerate([("u1", "Shoes"), ("u2", "Shoes"), ("u2", "Hats")]):
        batch.append(
            {"type": "track", "userId": user, "event": "Product Viewed",
             "timestamp": f"2026-11-0{3 + i}T10:00:00Z",
             "properties": {"category": cat, "price": 10.5 + i, "in_stock": True,
                            "released_at": "2026-01-01T00:00:00Z"},
             "context": {"device": {"type": "mobile"}}}
        )  # fmt: skip
    batch.append(
        {"type": "track", "userId": "u1", "event": "Order Completed",
         "timestamp": "2026-11-09T10:00:00Z",
         "properties": {"revenue": 99, "products": [{"product_id": "p1"}]}}
    )  # fmt: skip
    r = server.ingest("/v1/batch", {"batch": batch})
    assert r.status_code == 200, r.text
    r = server.client.post(
        "/v1/segments",
        json={"id": "gold", "name": "Gold members", "condition": {"trait": "plan", "eq": "gold"}},
    )
    assert r.status_code == 201, r.text


def test_catalogue_lists_events_traits_computed_segments_and_pages(server: Server) -> None:
    _shop(server)
    r = server.client.get("/v1/catalogue")
    assert r.status_code == 200, r.text
    cat = r.json()

    events = {e["name"]: e for e in cat["events"]}
    assert list(events) == ["Product Viewed", "Order Completed"]  # most frequent first
    viewed = events["Product Viewed"]
    assert viewed["count"] == 3
    assert viewed["last_seen"] == "2026-11-05T10:00:00.000000Z"
    props = {p["path"]: p for p in viewed["properties"]}
    assert props["category"]["type"] == "string"
    assert props["category"]["examples"][0] == "Shoes"
    assert set(props["category"]["examples"]) == {"Shoes", "Hats"}
    assert props["price"]["type"] == "number"
    assert sorted(props["price"]["examples"]) == [10.5, 11.5, 12.5]
    assert props["in_stock"] == {"path": "in_stock", "type": "boolean", "examples": [True]}
    assert props["released_at"]["type"] == "timestamp"
    assert props["context.device.type"]["examples"] == ["mobile"]
    assert "revenue" not in props  # only the fields this event carries
    ordered = {p["path"]: p for p in events["Order Completed"]["properties"]}
    assert ordered["products"] == {"path": "products", "type": "list", "examples": []}
    assert ordered["revenue"]["type"] == "number"

    traits = {t["key"]: t for t in cat["traits"]}
    assert traits["plan"]["type"] == "string"
    assert traits["plan"]["profiles"] == 3
    assert traits["plan"]["examples"][0] == "gold"
    assert traits["email"]["profiles"] == 2
    assert traits["vip"]["type"] == "boolean"
    assert traits["age"]["type"] == "number"
    assert traits["created_at"]["type"] == "timestamp"
    assert traits["tags"]["type"] == "list"

    computed = {c["name"]: c for c in cat["computed"]}
    assert computed["ltv"]["type"] == "number"
    assert computed["last_order_at"]["type"] == "timestamp"
    assert computed["wishlist"]["type"] == "list"
    assert "revenue" in computed["ltv"]["description"]

    assert cat["segments"] == [{"id": "gold", "name": "Gold members"}]
    assert cat["pages"]["count"] == 3
    assert cat["pages"]["paths"][0] == "/c/shoes"
    assert set(cat["pages"]["paths"]) == {"/", "/c/shoes"}
    assert cat["pages"]["names"][0] == "Shoes"


def test_catalogue_of_an_empty_store(shared_server: Server) -> None:
    r = shared_server.client.get("/v1/catalogue")
    assert r.status_code == 200, r.text
    cat = r.json()
    assert cat["events"] == [] and cat["traits"] == []
    assert cat["pages"] == {"count": 0, "paths": [], "names": []}
    assert len(cat["computed"]) >= 10
    # the statistics are reused for a while; the segments are always current
    r = shared_server.client.post("/v1/segments", json={"id": "cat_new", "condition": {"all": []}})
    assert r.status_code == 201, r.text
    again = shared_server.client.get("/v1/catalogue").json()
    assert again["segments"] == [{"id": "cat_new", "name": "cat_new"}]


def test_catalogue_needs_an_admin_key(shared_server: Server) -> None:
    import httpx

    r = httpx.get(shared_server.base_url + "/v1/catalogue", auth=(shared_server.write_key, ""))
    assert r.status_code == 403
