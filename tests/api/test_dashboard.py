"""GET /v1/dashboard: counts, the ingest rate, movers over 7 days and event alerts."""

from __future__ import annotations

from datetime import timedelta

from segflow.model.time import format_instant, utcnow
from tests.helpers import Server


def test_dashboard(server: Server) -> None:
    now = utcnow()
    batch = [
        {"type": "track", "userId": "hb", "event": "Heartbeat",
         "timestamp": format_instant(now - timedelta(days=d, hours=1))}
        for d in range(1, 15)
    ]  # fmt: skip
    batch += [
        {"type": "track", "userId": u, "event": e, "timestamp": format_instant(now)}
        for u, e in [("ann", "Product Viewed"), ("bob", "Product Viewed"), ("neo", "Brand New")]
    ]
    assert server.ingest("/v1/batch", {"batch": batch}).status_code == 200
    c = server.client
    viewed = {"event": "Product Viewed", "within": "30d"}
    assert c.post("/v1/segments", json={"id": "viewers", "condition": viewed}).status_code == 201
    quiet = {"id": "quiet", "name": "Quiet", "condition": {"not": viewed}}
    assert c.post("/v1/segments", json=quiet).status_code == 201
    beat = {"id": "beat", "condition": {"event": "Heartbeat", "within": "1d"}}
    assert c.post("/v1/segments", json=beat).status_code == 201  # Heartbeat is read
    with server.ctx.lock:  # the sizes 8 days ago, before the change log starts
        server.ctx.app.evaluate(at=now - timedelta(days=8))

    r = c.get("/v1/dashboard")
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["profiles"] == 4 and d["segments"] == 3
    assert d["events_today"] == 3 and d["events_last_hour"] == 3
    assert d["ingest_rate"] == round(17 / 60, 3)
    assert d["growth"] == [
        {"id": "viewers", "name": "viewers", "size": 2, "change_7d": 2, "change_7d_pct": None}
    ]
    assert d["decline"] == [
        {"id": "quiet", "name": "Quiet", "size": 2, "change_7d": -2, "change_7d_pct": -50.0},
        {"id": "beat", "name": "beat", "size": 0, "change_7d": -1, "change_7d_pct": -100.0},
    ]
    alerts = {(a["kind"], a["event"]): a for a in d["alerts"]}
    assert set(alerts) == {("event_stopped", "Heartbeat"), ("unknown_event", "Brand New")}
    stopped = alerts[("event_stopped", "Heartbeat")]
    assert stopped["last_seen"] == format_instant(now - timedelta(days=1, hours=1))
    assert "Heartbeat" in stopped["message"]
    assert "no segment uses it" in alerts[("unknown_event", "Brand New")]["message"]


def test_dashboard_of_an_empty_store(shared_server: Server) -> None:
    r = shared_server.client.get("/v1/dashboard")
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["profiles"], d["events_today"], d["segments"], d["alerts"]) == (0, 0, 0, [])
    assert d["growth"] == [] and d["decline"] == [] and d["ingest_rate"] == 0
