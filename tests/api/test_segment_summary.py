"""GET /v1/segments/summary: the segment list's rows, with 31 daily sizes."""

from __future__ import annotations

from datetime import timedelta

from segflow.model.changes import LoggedChange, Reason
from segflow.model.time import format_instant, parse_instant, utcnow
from tests.helpers import Server, create_viewers, post_view


def _day_start(days_ago: int) -> str:
    t = utcnow() - timedelta(days=days_ago)
    return format_instant(t.replace(hour=0, minute=0, second=0, microsecond=0))


def test_summary_rows_with_metadata_size_and_daily_series(server: Server) -> None:
    r = server.client.post(
        "/v1/segments",
        json={"id": "gold", "name": "Gold", "description": "gold plan", "tags": ["vip", "crm"],
              "folder": "Lifecycle/Value", "condition": {"trait": "plan", "eq": "gold"}},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["segment"]["definition"]["folder"] == "Lifecycle/Value"
    create_viewers(server)
    now = utcnow()
    with server.ctx.lock:
        server.ctx.app.evaluate(at=now - timedelta(days=20))  # batch sizes: 0 then
        server.ctx.app.changes.append(
            [
                LoggedChange("viewers", "old1", True, now - timedelta(days=10), Reason.EVENT, 1),
                LoggedChange("viewers", "old2", True, now - timedelta(days=3), Reason.EVENT, 1),
                LoggedChange("viewers", "old1", False, now - timedelta(days=1), Reason.EVENT, 1),
            ]
        )
    post_view(server, "ann", 1)
    post_view(server, "bob", 1)

    r = server.client.get("/v1/segments/summary")
    assert r.status_code == 200, r.text
    rows = {s["id"]: s for s in r.json()["segments"]}
    assert list(rows) == ["gold", "viewers"]
    gold = rows["gold"]
    assert gold["tags"] == ["crm", "vip"] and gold["folder"] == "Lifecycle/Value"
    assert gold["name"] == "Gold" and gold["description"] == "gold plan"
    assert gold["mode"] == "realtime" and gold["version"] == 1
    saved = parse_instant(gold["updated_at"])
    assert abs((saved - now).total_seconds()) < 60
    assert gold["size"] == 0 and gold["share"] == 0.0

    viewers = rows["viewers"]
    assert viewers["size"] == 2  # ann and bob, live
    assert viewers["share"] == 1.0
    series = viewers["series"]
    assert len(series) == 31
    assert series[0]["at"] == _day_start(30) and series[-1]["at"] == _day_start(0)
    sizes = [p["size"] for p in series]
    assert sizes[:10] == [None] * 10  # before the first batch evaluation (20 days ago)
    assert sizes[11:20] == [0] * 9  # the batch evaluation's size, until the log starts
    assert sizes[20] == 1  # old1 entered 10 days ago
    assert sizes[27] == 2  # old2 entered 3 days ago
    assert sizes[29] == 1  # old1 left yesterday
    assert sizes[30] == 2  # now: the live members
    assert viewers["change_7d"] == 2 - 1 and viewers["change_30d"] is None
    assert gold["change_7d"] == 0  # evaluated at 0 twenty days ago, 0 now


def test_summary_of_no_segments(shared_server: Server) -> None:
    r = shared_server.client.get("/v1/segments/summary")
    assert r.status_code == 200
    assert r.json() == {"segments": []}


def test_daily_points_with_entries_and_exits(server: Server) -> None:
    create_viewers(server)
    now = utcnow()
    with server.ctx.lock:
        server.ctx.app.changes.append(
            [
                LoggedChange("viewers", "old1", True, now - timedelta(days=3), Reason.EVENT, 1),
                LoggedChange("viewers", "old2", True, now - timedelta(days=3), Reason.EVENT, 1),
                LoggedChange("viewers", "old1", False, now - timedelta(days=1), Reason.EVENT, 1),
            ]
        )
    post_view(server, "ann", 1)
    r = server.client.get("/v1/segments/viewers/daily", params={"days": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["segment_id"] == "viewers"
    points = body["points"]
    assert [p["day"] for p in points] == [
        (now - timedelta(days=d)).date().isoformat() for d in (4, 3, 2, 1, 0)
    ]
    assert [p["entered"] for p in points] == [0, 2, 0, 0, 1]
    assert [p["exited"] for p in points] == [0, 0, 0, 1, 0]
    assert [p["size"] for p in points] == [None, 2, 2, 1, 1]  # today: ann, live
    assert len(server.client.get("/v1/segments/viewers/daily").json()["points"]) == 30


def test_daily_bad_input(shared_server: Server) -> None:
    r = shared_server.client.get("/v1/segments/nope/daily")
    assert r.status_code == 404 and "unknown segment 'nope'" in r.json()["error"]["message"]
    for bad in ("0", "367", "week"):  # checked before the segment is looked up
        r = shared_server.client.get("/v1/segments/any/daily", params={"days": bad})
        assert r.status_code == 422, bad
        assert r.json()["error"]["errors"][0]["path"] == "query.days"
