"""The customer view's additions (name, email, products of orders, cart and wishlist
with product details) and the paged click-stream timeline."""

from __future__ import annotations

from typing import Any

from tests.helpers import Server


def _msg(kind: str, n: int, day: int, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "messageId": f"m{n}", "timestamp": f"2026-11-{day:02d}T10:00:00Z",
            **fields}  # fmt: skip


def _shop(server: Server) -> None:
    batch = [
        _msg("identify", 1, 1, userId="ada", traits={"firstName": "Ada", "lastName": "Byron",
                                                      "email": "ada@example.com"}),
        _msg("track", 2, 2, userId="ada", event="Product Added",
             properties={"product_id": "p1", "name": "Shoe", "price": 80, "category": "Shoes"}),
        _msg("track", 3, 2, userId="ada", event="Product Added",
             properties={"product_id": "p4", "price": 5}),
        _msg("track", 4, 3, userId="ada", event="Product Removed",
             properties={"product_id": "p4"}),
        _msg("track", 5, 4, userId="ada", event="Order Completed",
             properties={"order_id": "o1", "revenue": 80}),
        _msg("track", 6, 5, userId="ada", event="Order Completed",
             properties={"order_id": "o2", "revenue": 30,
                         "products": [{"product_id": "p7", "price": 30, "quantity": 1}]}),
        _msg("track", 7, 6, userId="ada", event="Product Added",
             properties={"product_id": "p2", "price": 500}),
        _msg("track", 8, 7, userId="ada", event="Product Added to Wishlist",
             properties={"product_id": "p9"}),
        # other customers' events name the products (the latest carrying a field wins)
        _msg("track", 9, 8, userId="bob", event="Product Viewed",
             properties={"product_id": "p2", "name": "Watch", "price": 450, "category": "Luxury"}),
        _msg("track", 10, 8, userId="bob", event="Product Viewed",
             properties={"product_id": "p9", "name": "Ring", "price": 99}),
        _msg("track", 11, 9, userId="bob", event="Product Viewed",
             properties={"product_id": "p7", "name": "Hat", "price": 35, "category": "Hats"}),
        _msg("page", 12, 9, userId="ada", name="Home", properties={"path": "/"}),
    ]  # fmt: skip
    r = server.ingest("/v1/batch", {"batch": batch})
    assert r.status_code == 200, r.text


def test_customer_view_names_products(server: Server) -> None:
    _shop(server)
    r = server.client.get("/v1/profiles/ada")
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["name"] == "Ada Byron" and view["email"] == "ada@example.com"
    o2, o1 = view["orders"]
    assert o2["properties"]["order_id"] == "o2"
    # its products list; the name and category filled in, the price paid kept
    assert o2["products"] == [
        {"product_id": "p7", "price": 30, "quantity": 1, "name": "Hat", "category": "Hats"}
    ]
    # no products list: the cart it closed (p4 was removed)
    assert o1["products"] == [
        {"product_id": "p1", "name": "Shoe", "price": 80, "category": "Shoes"}
    ]
    (line,) = view["cart"]
    assert line["product_id"] == "p2"
    assert (line["name"], line["price"], line["category"]) == ("Watch", 450, "Luxury")
    assert view["wishlist"] == ["p9"]
    assert view["wishlist_items"] == [{"product_id": "p9", "name": "Ring", "price": 99}]


def test_timeline_pages_and_filters(server: Server) -> None:
    _shop(server)
    r = server.client.get("/v1/profiles/ada/events", params={"limit": 3})
    assert r.status_code == 200, r.text
    page = r.json()
    assert [e["message_id"] for e in page["events"]] == ["m12", "m8", "m7"]
    first = page["events"][0]
    assert first["type"] == "page" and first["at"] == "2026-11-09T10:00:00.000000Z"
    assert first["properties"]["path"] == "/"
    seen = [e["message_id"] for e in page["events"]]
    while page["next_before"]:
        page = server.client.get(
            "/v1/profiles/ada/events", params={"limit": 3, "before": page["next_before"]}
        ).json()
        seen += [e["message_id"] for e in page["events"]]
    assert seen == ["m12", "m8", "m7", "m6", "m5", "m4", "m3", "m2", "m1"]  # m2/m3: same instant

    r = server.client.get("/v1/profiles/ada/events", params={"event": "Order Completed"})
    assert [e["event"] for e in r.json()["events"]] == ["Order Completed"] * 2
    r = server.client.get("/v1/profiles/ada/events", params={"type": "identify"})
    (ident,) = r.json()["events"]
    assert ident["traits"]["firstName"] == "Ada" and ident["event"] is None
    r = server.client.get(
        "/v1/profiles/ada/events", params={"before": "2026-11-04T10:00:00Z", "type": "track"}
    )
    assert [e["message_id"] for e in r.json()["events"]] == ["m4", "m3", "m2"]


def test_timeline_bad_input(server: Server) -> None:
    _shop(server)
    r = server.client.get("/v1/profiles/nobody/events")
    assert r.status_code == 404 and "nobody" in r.json()["error"]["message"]
    r = server.client.get("/v1/profiles/ada/events", params={"before": "yesterday"})
    assert r.status_code == 422
    assert r.json()["error"]["errors"][0]["path"] == "before"
    r = server.client.get("/v1/profiles/ada/events", params={"type": "click"})
    assert r.status_code == 422
    r = server.client.get("/v1/profiles/ada/events", params={"limit": 0})
    assert r.status_code == 422


def test_profile_search(server: Server) -> None:
    _shop(server)
    r = server.client.get("/v1/profiles", params={"q": "BYRON"})
    assert r.status_code == 200, r.text
    assert r.json()["profiles"] == [
        {"profile_id": "ada", "name": "Ada Byron", "email": "ada@example.com",
         "last_seen": "2026-11-09T10:00:00.000000Z"}
    ]  # fmt: skip
    assert [p["profile_id"] for p in server.client.get(
        "/v1/profiles", params={"q": "example.com"}).json()["profiles"]] == ["ada"]  # fmt: skip
    assert [p["profile_id"] for p in server.client.get(
        "/v1/profiles", params={"q": "ada byr"}).json()["profiles"]] == ["ada"]  # fmt: skip
    both = server.client.get("/v1/profiles", params={"q": "b", "limit": 1}).json()
    assert [p["profile_id"] for p in both["profiles"]] == ["ada"]  # Byron
    assert both["next_cursor"] == "ada"
    rest = server.client.get("/v1/profiles", params={"q": "b", "after": "ada"}).json()
    assert [p["profile_id"] for p in rest["profiles"]] == ["bob"] and rest["next_cursor"] is None
    listing = server.client.get("/v1/profiles").json()["profiles"]
    assert listing[0]["name"] == "Ada Byron" and listing[1]["name"] is None
    assert server.client.get("/v1/profiles", params={"q": "zzz"}).json()["profiles"] == []
    assert server.client.get("/v1/profiles", params={"q": "x" * 201}).status_code == 422
