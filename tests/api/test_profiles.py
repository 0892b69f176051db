"""Profiles API over real HTTP: the customer view, the fast segments look-up, privacy
export and erasure with suppression of later events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from segflow.api.deps import Settings
from segflow.server import make_context, serve_in_thread
from segflow.service.profiles import load_suppressions
from tests.helpers import EDGE, Server, create_keys

NOW = datetime.now(UTC).replace(microsecond=0)


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _msg(kind: str, n: int, hours_ago: float, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "messageId": f"m{n}",
        "timestamp": _iso(NOW - timedelta(hours=hours_ago)),
        **fields,
    }


def _shop(server: Server) -> None:
    batch = [
        _msg("identify", 1, 50, userId="ada", anonymousId="anon-1",
             traits={"email": "ada@example.com", "country": "PL"}),
        _msg("track", 2, 48, userId="ada", event="Product Viewed",
             properties={"product_id": "p1", "category": "Shoes", "price": 80}),
        _msg("track", 3, 47, userId="ada", event="Product Added",
             properties={"product_id": "p1", "price": 80, "quantity": 1}),
        _msg("track", 4, 46, userId="ada", event="Order Completed",
             properties={"order_id": "o1", "revenue": 80}),
        _msg("track", 5, 5, userId="ada", event="Product Added",
             properties={"product_id": "p2", "name": "Watch", "price": 500}),
        _msg("track", 6, 4, userId="ada", event="Product Added",
             properties={"product_id": "p3", "price": 20}),
        _msg("track", 7, 3, userId="ada", event="Product Removed",
             properties={"product_id": "p3"}),
        _msg("track", 8, 2, userId="ada", event="Product Added to Wishlist",
             properties={"product_id": "p9"}),
        _msg("page", 9, 1, userId="ada", name="Home", properties={"url": "https://shop/"}),
        _msg("track", 10, 1, userId="bob", event="Product Viewed",
             properties={"product_id": "p1"}),
    ]  # fmt: skip
    r = server.ingest("/v1/batch", {"batch": batch})
    assert r.status_code == 200, r.text


@EDGE
def test_customer_view(server: Server) -> None:
    _shop(server)
    r = server.client.post(
        "/v1/segments",
        json={"id": "buyers", "condition": {"event": "Order Completed", "within": "30d"}},
    )
    assert r.status_code == 201, r.text
    view = server.client.get("/v1/profiles/ada").json()
    assert {"kind": "anonymous", "value": "anon-1"} in view["identities"]
    assert view["traits"] == {"country": "PL", "email": "ada@example.com"}
    comp = view["computed_traits"]
    assert comp["ltv"] == 80 and comp["order_count"] == 1 and comp["aov"] == 80
    assert comp["top_category_30d"] == "Shoes"
    assert [o["properties"]["order_id"] for o in view["orders"]] == ["o1"]
    assert [line["product_id"] for line in view["cart"]] == ["p2"]
    assert view["wishlist"] == ["p9"]
    assert view["recent_events"][0]["type"] == "page"
    assert len(view["recent_events"]) == 9
    assert list(view["segments"]) == ["buyers"]
    assert view["segments"]["buyers"] is not None
    # an identity of the profile finds it too
    assert server.client.get("/v1/profiles/anon-1").json()["profile_id"] == "ada"
    assert server.client.get("/v1/profiles/nobody").status_code == 404


@EDGE
def test_fast_segments_lookup_follows_live_changes(server: Server) -> None:
    _shop(server)
    server.client.post(
        "/v1/segments",
        json={"id": "viewers", "condition": {"event": "Product Viewed", "within": "7d"}},
    )
    r = server.client.get("/v1/profiles/bob/segments")
    assert r.status_code == 200
    assert list(r.json()["segments"]) == ["viewers"]
    assert server.client.get("/v1/profiles/nobody/segments").json()["segments"] == {}
    listing = server.client.get("/v1/profiles", params={"limit": 1}).json()
    assert listing["profiles"][0]["profile_id"] == "ada"
    assert listing["next_cursor"] == "ada"


@EDGE
def test_privacy_export_and_delete_with_suppression(server: Server) -> None:
    _shop(server)
    server.client.post(
        "/v1/segments",
        json={"id": "buyers", "condition": {"event": "Order Completed", "within": "30d"}},
    )
    export = server.client.get("/v1/profiles/ada/export")
    assert export.status_code == 200
    doc = export.json()
    assert len(doc["events"]) == 9
    assert {t["key"] for t in doc["traits"]} == {"email", "country"}
    assert [c["segment_id"] for c in doc["membership_changes"]] == ["buyers"]

    r = server.client.delete("/v1/profiles/ada", params={"suppress": "true"})
    assert r.status_code == 200, r.text
    alias = r.json().pop("pseudonym")
    assert r.json() == {"deleted": "ada", "exits": 1, "suppressed": True, "pseudonym": alias}
    assert alias.startswith("erased:")
    assert server.client.get("/v1/profiles/ada").status_code == 404
    with server.ctx.lock:
        con = server.ctx.app.store.con
        assert con.execute("SELECT count(*) FROM events WHERE profile_id='ada'").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM traits WHERE profile_id='ada'").fetchone() == (0,)
        stored = load_suppressions(server.ctx.app)  # what a restart loads
        assert "ada" in stored and "anon-1" in stored and "bob" not in stored
        assert len(stored) == 2
    assert server.client.get("/v1/changes", params={"profile_id": "ada"}).json()["changes"] == []
    changes = server.client.get("/v1/changes", params={"profile_id": alias}).json()["changes"]
    assert [c["entered"] for c in changes] == [True, False]
    assert changes[-1]["reason"] == "deleted"
    assert server.client.get("/v1/profiles/ada/segments").json()["segments"] == {}

    later = _msg("track", 99, 0, anonymousId="anon-1", event="Order Completed")
    assert server.ingest("/v1/track", later).status_code == 200
    assert server.client.get("/v1/profiles/anon-1").status_code == 404


def test_suppression_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    ctx = make_context(db, settings=Settings(schedule_interval_seconds=3600))
    admin, write = create_keys(ctx)
    auth = {"Authorization": f"Bearer {admin}"}
    with serve_in_thread(ctx) as srv:
        msg = _msg("track", 1, 1, userId="zed", event="Product Viewed")
        assert httpx.post(srv.base_url + "/v1/track", json=msg, auth=(write, "")).is_success
        r = httpx.delete(srv.base_url + "/v1/profiles/zed?suppress=true", headers=auth)
        assert r.status_code == 200
    again = make_context(db, settings=Settings(schedule_interval_seconds=3600))
    with serve_in_thread(again) as srv:
        msg = _msg("track", 2, 0, userId="zed", event="Product Viewed")
        assert httpx.post(srv.base_url + "/v1/track", json=msg, auth=(write, "")).is_success
        assert httpx.get(srv.base_url + "/v1/profiles/zed", headers=auth).status_code == 404


@EDGE
def test_profile_is_found_by_an_alias_previous_id_at_once(server: Server) -> None:
    r = server.ingest("/v1/track", {"userId": "cleo", "event": "Product Viewed", "messageId": "a1"})
    assert r.status_code == 200, r.text
    r = server.ingest("/v1/alias", {"userId": "cleo", "previousId": "cleo-old", "messageId": "a2"})
    assert r.status_code == 200, r.text
    r = server.client.get("/v1/profiles/cleo-old")
    assert r.status_code == 200, r.text
    assert r.json()["profile_id"] == "cleo"
    r = server.ingest(
        "/v1/identify", {"userId": "cleo", "anonymousId": "cleo-device", "messageId": "a3"}
    )
    assert r.status_code == 200, r.text
    for linked in ("cleo", "cleo-old", "cleo-device"):
        r = server.client.get(f"/v1/profiles/{linked}")
        assert r.status_code == 200, (linked, r.text)
        assert r.json()["profile_id"] == "cleo"
    assert server.client.get("/v1/profiles/cleo-old/export").status_code == 200
