"""Segments API over real HTTP: versions with enter/exit diffs, dry runs, protection,
validation with JSON paths, previews, paged members, exports, explain, the change log
and size over time; bad inputs answered clearly with nothing stored."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from segflow.service.live import LiveEvaluator
from tests.helpers import EDGE, SHARED_EDGE, Server

NOW = datetime.now(UTC).replace(microsecond=0)


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _orders(server: Server, revenues: dict[str, float]) -> None:
    batch: list[dict[str, Any]] = []
    for i, (user, revenue) in enumerate(sorted(revenues.items())):
        batch.append(
            {
                "type": "track",
                "userId": user,
                "event": "Order Completed",
                "messageId": f"order-{user}",
                "timestamp": _iso(NOW - timedelta(hours=1 + i)),
                "properties": {"revenue": revenue},
            }
        )
    batch.append(
        {
            "type": "identify",
            "userId": "u1",
            "messageId": "identify-u1",
            "timestamp": _iso(NOW - timedelta(days=2)),
            "traits": {"country": "PL", "email": "u1@example.com"},
        }
    )
    r = server.ingest("/v1/batch", {"batch": batch})
    assert r.status_code == 200, r.text


def _spend(sid: str, gte: float, **extra: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "name": f"Spent {gte}+",
        "condition": {"event": "Order Completed", "measure": "sum", "of": "revenue", "gte": gte},
        **extra,
    }


def _segment_count(server: Server) -> int:
    return len(server.client.get("/v1/segments").json()["segments"])


def test_create_update_with_diff_and_dry_run(server: Server) -> None:
    _orders(server, {"u1": 100, "u2": 250, "u3": 400})
    r = server.client.post("/v1/segments", json=_spend("spenders", 200))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "created"
    assert body["segment"]["version"] == 1
    assert body["diff"]["entering"] == ["u2", "u3"]
    assert body["segment"]["size"] == 2

    dry = server.client.put("/v1/segments/spenders?dry_run=true", json=_spend("spenders", 300))
    assert dry.status_code == 200, dry.text
    assert dry.json()["status"] == "dry_run"
    assert dry.json()["diff"] == {
        "segment_id": "spenders",
        "size_before": 2,
        "size_after": 1,
        "entering": [],
        "leaving": ["u2"],
    }
    assert server.client.get("/v1/segments/spenders").json()["version"] == 1

    real = server.client.put("/v1/segments/spenders", json=_spend("spenders", 50))
    assert real.json()["status"] == "updated"
    assert real.json()["segment"]["version"] == 2
    assert real.json()["diff"]["entering"] == ["u1"]
    again = server.client.put("/v1/segments/spenders", json=_spend("spenders", 50))
    assert again.json()["status"] == "unchanged"

    changes = server.client.get("/v1/segments/spenders/changes").json()["changes"]
    assert [(c["profile_id"], c["entered"], c["version"]) for c in changes] == [
        ("u2", True, 1),
        ("u3", True, 1),
        ("u1", True, 2),
    ]
    only_u1 = server.client.get("/v1/changes", params={"profile_id": "u1"}).json()["changes"]
    assert [c["segment_id"] for c in only_u1] == ["spenders"]
    sizes = server.client.get("/v1/segments/spenders/sizes").json()["points"]
    assert sizes[-1]["size"] == 3


def test_create_twice_conflicts_and_update_of_unknown_is_404(server: Server) -> None:
    assert server.client.post("/v1/segments", json=_spend("a", 1)).status_code == 201
    r = server.client.post("/v1/segments", json=_spend("a", 2))
    assert r.status_code == 409
    assert "exists" in r.json()["error"]["message"]
    r = server.client.put("/v1/segments/nope", json=_spend("nope", 1))
    assert r.status_code == 404
    r = server.client.put("/v1/segments/a", json=_spend("b", 1))
    assert r.status_code == 422
    assert r.json()["error"]["errors"][0]["path"] == "id"


@EDGE
def test_yaml_body_is_accepted(server: Server) -> None:
    text = "id: pl\nname: Poles\ncondition: {trait: country, eq: PL}\n"
    r = server.client.post(
        "/v1/segments", content=text, headers={"Content-Type": "application/yaml"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["segment"]["definition"]["condition"] == {"trait": "country", "eq": "PL"}


def test_protected_and_referenced_segments_refuse_deletion(server: Server) -> None:
    server.client.post("/v1/segments", json=_spend("base", 1, protected=True))
    server.client.post(
        "/v1/segments",
        json={"id": "child", "condition": {"in_segment": "base"}},
    )
    r = server.client.delete("/v1/segments/base")
    assert r.status_code == 409
    assert r.json()["error"]["errors"][0]["path"] == "protected"
    assert server.client.delete("/v1/segments/child").status_code == 204
    assert server.client.get("/v1/segments/child").status_code == 404
    assert server.client.delete("/v1/segments/base?force=true").status_code == 204
    assert server.client.delete("/v1/segments/base").status_code == 404


def test_definition_errors_carry_json_paths_and_store_nothing(shared_server: Server) -> None:
    bad = {
        "id": "bad",
        "condition": {"all": [{"event": "Order Completed", "within": "7x"}, {"trait": "age"}]},
    }
    r = shared_server.client.post("/v1/segments", json=bad)
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["error"]["errors"]}
    assert paths == {"condition.all[0].within", "condition.all[1]"}
    r = shared_server.client.post(
        "/v1/segments", json={"id": "t", "condition": {"trait": 5, "eq": 1}}
    )
    assert r.status_code == 422
    assert r.json()["error"]["errors"][0]["path"] == "condition.trait"
    v = shared_server.client.post("/v1/segments/validate", json=bad).json()
    assert v["valid"] is False and len(v["errors"]) == 2
    assert _segment_count(shared_server) == 0


def test_cycles_and_unknown_references_are_rejected(server: Server) -> None:
    server.client.post("/v1/segments", json={"id": "a", "condition": {"trait": "x", "eq": 1}})
    server.client.post("/v1/segments", json={"id": "b", "condition": {"in_segment": "a"}})
    r = server.client.put("/v1/segments/a", json={"id": "a", "condition": {"in_segment": "b"}})
    assert r.status_code == 422
    assert "cycle" in r.text
    r = server.client.post("/v1/segments", json={"id": "c", "condition": {"in_segment": "zz"}})
    assert r.status_code == 422
    v = server.client.post(
        "/v1/segments/validate", json={"id": "a", "condition": {"in_segment": "b"}}
    ).json()
    assert v["valid"] is False
    assert server.client.get("/v1/segments/a").json()["version"] == 1
    assert _segment_count(server) == 2


@SHARED_EDGE
def test_malformed_json_and_wrong_types(shared_server: Server) -> None:
    r = shared_server.client.post(
        "/v1/segments", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert "malformed JSON" in r.json()["error"]["message"]
    r = shared_server.client.post("/v1/segments", json=[1, 2])
    assert r.status_code == 422
    r = shared_server.client.get("/v1/segments/x/members", params={"limit": "many"})
    assert r.status_code == 422
    assert r.json()["error"]["errors"][0]["path"] == "query.limit"
    r = shared_server.client.post("/v1/segments", content=b"x" * (300 * 1024))
    assert r.status_code == 413
    assert _segment_count(shared_server) == 0


@SHARED_EDGE
def test_auth_missing_unknown_and_wrong_kind(shared_server: Server) -> None:
    r = httpx.get(shared_server.base_url + "/v1/segments")
    assert r.status_code == 401
    assert "missing API key" in r.json()["error"]["message"]
    r = httpx.get(
        shared_server.base_url + "/v1/segments", headers={"Authorization": "Bearer sfa_nope"}
    )
    assert r.status_code == 401
    r = httpx.get(shared_server.base_url + "/v1/segments", auth=(shared_server.write_key, ""))
    assert r.status_code == 403
    assert "admin key" in r.json()["error"]["message"]
    r = httpx.post(
        shared_server.base_url + "/v1/segments",
        json=_spend("x", 1),
        auth=(shared_server.write_key, ""),
    )
    assert r.status_code == 403
    assert _segment_count(shared_server) == 0


@EDGE
def test_preview_members_pages_export_and_explain(server: Server) -> None:
    _orders(server, {f"u{i}": 10.0 * i for i in range(1, 8)})
    draft = _spend("draft", 30)
    p = server.client.post("/v1/segments/preview", json=draft)
    assert p.status_code == 200, p.text
    assert p.json()["size"] == 5
    assert p.json()["sample"] == ["u3", "u4", "u5", "u6", "u7"]
    assert server.client.get("/v1/segments/draft").status_code == 404

    server.client.post("/v1/segments", json=_spend("big", 30))
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = server.client.get("/v1/segments/big/members", params=params).json()
        seen += page["members"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["u3", "u4", "u5", "u6", "u7"]
    past = server.client.get(
        "/v1/segments/big/members", params={"at": _iso(NOW - timedelta(days=1))}
    ).json()
    assert past["members"] == []
    bad = server.client.get("/v1/segments/big/members", params={"cursor": "garbage"})
    assert bad.status_code == 400

    csv = server.client.get("/v1/segments/big/export")
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0] == "profile_id"  # no member has a trait: no trait column
    assert [line.split(",")[0] for line in lines[1:]] == ["u3", "u4", "u5", "u6", "u7"]
    parquet = server.client.get("/v1/segments/big/export", params={"format": "parquet"})
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.column("profile_id").to_pylist() == ["u3", "u4", "u5", "u6", "u7"]

    ex = server.client.get("/v1/segments/big/explain", params={"profile_id": "u2"})
    assert ex.status_code == 200, ex.text
    assert ex.json()["member"] is False
    assert ex.json()["condition"]["feature"]["value"] == 20.0
    assert (
        server.client.get("/v1/segments/big/explain", params={"profile_id": "ghost"}).status_code
        == 404
    )


def test_static_list_and_change_filters(server: Server) -> None:
    _orders(server, {"u1": 10, "u2": 20})
    r = server.client.post(
        "/v1/segments", json={"id": "vips", "mode": "static", "members": ["u2", "u1"]}
    )
    assert r.status_code == 201, r.text
    page = server.client.get("/v1/segments/vips/members").json()
    assert page["members"] == ["u1", "u2"] and page["size"] == 2
    server.client.put("/v1/segments/vips", json={"id": "vips", "mode": "static", "members": ["u1"]})
    exits = server.client.get("/v1/segments/vips/changes", params={"entered": "false"}).json()
    assert [(c["profile_id"], c["entered"]) for c in exits["changes"]] == [("u2", False)]
    first = server.client.get("/v1/changes", params={"limit": 1}).json()
    assert len(first["changes"]) == 1 and first["next_cursor"] == first["changes"][0]["seq"]
    rest = server.client.get("/v1/changes", params={"after": first["next_cursor"]}).json()
    assert rest["changes"] and rest["changes"][0]["seq"] > first["next_cursor"]


def test_unknown_keys_are_422_naming_key_path_and_closest_key(server: Server) -> None:
    doc = {
        "id": "s",
        "priority": 2,
        "condition": {"event": "Order Completed", "within": "7d", "whre": []},
    }
    r = server.client.post("/v1/segments", json=doc)
    assert r.status_code == 422
    errors = {e["path"]: e["message"] for e in r.json()["error"]["errors"]}
    assert set(errors) == {"priority", "condition.whre"}
    assert "did you mean 'where'?" in errors["condition.whre"]
    assert _segment_count(server) == 0


def test_syntax_value_and_reference_problems_come_in_one_422(server: Server) -> None:
    doc = {
        "id": "s",
        "condition": {
            "all": [{"event": "Order Completed", "within": "7x"}, {"in_segment": "high_valu"}]
        },
    }
    server.client.post("/v1/segments", json=_spend("high_value", 100))
    for path in ("/v1/segments", "/v1/segments/validate", "/v1/segments/preview"):
        r = server.client.post(path, json=doc)
        body = r.json()
        errors = body["errors"] if path.endswith("validate") else body["error"]["errors"]
        got = {e["path"]: e["message"] for e in errors}
        assert set(got) == {"condition.all[0].within", "condition.all[1].in_segment"}, path
        assert "did you mean 'high_value'?" in got["condition.all[1].in_segment"]


def test_names_never_seen_are_warned_with_the_closest_known_ones(server: Server) -> None:
    _orders(server, {"u1": 50.0, "u2": 500.0})
    doc = {
        "id": "typos",
        "condition": {
            "any": [
                {"event": "Order Complete"},
                {"trait": "countyr", "eq": "PL"},
                {"trait": "ltv", "gt": 1000},
                {"event": "Order Completed", "measure": "sum", "of": "revenu", "gt": 1},
            ]
        },
    }
    expected = {
        "condition.any[0].event": ["Order Completed"],
        "condition.any[1].trait": ["country"],
        "condition.any[3].of": ["properties.revenue"],
    }
    v = server.client.post("/v1/segments/validate", json=doc).json()
    assert v["valid"] is True
    assert {w["path"]: w["suggestions"][:1] for w in v["warnings"]} == expected
    p = server.client.post("/v1/segments/preview", json=doc).json()
    assert {w["path"] for w in p["warnings"]} == set(expected)
    r = server.client.post("/v1/segments", json=doc)
    assert r.status_code == 201
    assert {w["path"] for w in r.json()["warnings"]} == set(expected)
    ok = server.client.post("/v1/segments", json=_spend("fine", 10)).json()
    assert ok["warnings"] == []


def test_definition_over_the_limits_is_422_from_save_and_validate(server: Server) -> None:
    limits = server.ctx.settings.definition_limits
    wide = {
        "id": "wide",
        "condition": {"any": [{"event": f"E{i}"} for i in range(limits.max_leaves + 1)]},
    }
    for path in ("/v1/segments", "/v1/segments/validate"):
        r = server.client.post(path, json=wide)
        body = r.json()
        errors = body["errors"] if path.endswith("validate") else body["error"]["errors"]
        assert r.status_code == (200 if path.endswith("validate") else 422)
        assert [e["path"] for e in errors] == ["condition"]
        assert "limit max_leaves" in errors[0]["message"]
    assert _segment_count(server) == 0


def test_saving_a_definition_at_the_limit_while_ingesting(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The widest definition allowed saves; its heavy part runs without the store
    lock, so an ingestion request made during the save is answered before the save
    returns, and what it stored counts in the saved segment's members."""
    limits = server.ctx.settings.definition_limits
    names = [f"Event {i}" for i in range(limits.max_leaves // 2)]
    leaves: list[dict[str, Any]] = [{"event": n, "within": "7d"} for n in names]
    leaves += [{"trait": f"t{i}", "eq": i} for i in range(limits.max_leaves - len(leaves))]
    doc = {"id": "wide", "condition": {"any": leaves}}

    def track(user: str, name: str) -> int:
        body = {"userId": user, "event": name, "messageId": user, "timestamp": _iso(NOW)}
        return server.ingest("/v1/track", body).status_code

    assert track("before", names[0]) == 200
    answered: list[int] = []
    prepare = LiveEvaluator.prepare_save

    def prepare_then_ingest(self: LiveEvaluator, segment: Any, con: Any) -> Any:
        prepared = prepare(self, segment, con)
        answered.append(track("during", names[-1]))
        return prepared

    monkeypatch.setattr(LiveEvaluator, "prepare_save", prepare_then_ingest)
    r = server.client.post("/v1/segments", json=doc)
    assert r.status_code == 201, r.text
    assert answered == [200]
    members = server.client.get("/v1/segments/wide/members").json()["members"]
    assert members == ["before", "during"]


def test_static_list_counts_known_profiles_and_reports_unknown_ids(server: Server) -> None:
    _orders(server, {"u1": 10, "u2": 20})
    r = server.client.post(
        "/v1/segments",
        json={"id": "vips", "mode": "static", "members": ["u1", "ghost", "u2", "nobody"]},
    )
    assert r.status_code == 201, r.text
    assert r.json()["segment"]["size"] == 2
    assert r.json()["unknown_ids"] == ["ghost", "nobody"]
    assert server.client.get("/v1/segments/vips").json()["size"] == 2
    page = server.client.get("/v1/segments/vips/members").json()
    assert page["members"] == ["u1", "u2"] and page["size"] == 2


def test_export_has_one_column_per_trait(server: Server) -> None:
    _orders(server, {"u1": 10, "u2": 20})
    identify = {
        "type": "identify",
        "userId": "u2",
        "messageId": "identify-u2",
        "timestamp": _iso(NOW - timedelta(days=1)),
        "traits": {"country": "DE", "vip": True, "age": 41},
    }
    assert server.ingest("/v1/batch", {"batch": [identify]}).status_code == 200
    assert server.client.post("/v1/segments", json=_spend("buyers", 1)).status_code == 201
    csv = server.client.get("/v1/segments/buyers/export")
    assert csv.status_code == 200, csv.text
    assert csv.text.splitlines() == [
        "profile_id,age,country,email,vip",
        "u1,,PL,u1@example.com,",
        "u2,41.0,DE,,true",
    ]
    parquet = server.client.get("/v1/segments/buyers/export", params={"format": "parquet"})
    rows = pq.read_table(io.BytesIO(parquet.content)).to_pylist()
    assert rows[1] == {"profile_id": "u2", "age": 41.0, "country": "DE", "email": None, "vip": True}


def test_scheduled_segment_refreshes_at_its_cron_instant(tmp_path: Path) -> None:
    from segflow.api.deps import Settings
    from segflow.realtime import VirtualClock
    from segflow.server import make_context, serve_in_thread
    from tests.helpers import create_keys

    start = datetime(2026, 1, 1, 12)  # a Thursday
    monday = datetime(2026, 1, 5, 6)
    clock = VirtualClock(start)
    ctx = make_context(
        tmp_path / "s.duckdb", clock=clock, settings=Settings(schedule_interval_seconds=3600)
    )
    admin, write = create_keys(ctx)
    weekly = {
        "id": "weekly",
        "mode": "scheduled",
        "schedule": "0 6 * * 1",
        "condition": {"event": "Order Completed", "within": "30d"},
    }
    buyers = {"id": "buyers", "condition": {"event": "Order Completed", "within": "30d"}}
    with (
        serve_in_thread(ctx) as running,
        httpx.Client(
            base_url=running.base_url, headers={"Authorization": f"Bearer {admin}"}, timeout=30
        ) as http,
    ):
        for seg in (weekly, buyers):
            assert http.post("/v1/segments", json=seg).status_code == 201
        order = {
            "userId": "ann",
            "event": "Order Completed",
            "messageId": "o1",
            "timestamp": start.isoformat() + "Z",
        }
        r = httpx.post(running.base_url + "/v1/track", json=order, auth=(write, ""))
        assert r.status_code == 200, r.text
        time.sleep(1.5)  # the timer task runs meanwhile: nothing is due
        assert http.get("/v1/profiles/ann/segments").json()["segments"] == {
            "buyers": "2026-01-01T12:00:00.000000Z"
        }
        clock.set(monday)
        deadline = time.monotonic() + 10
        while "weekly" not in http.get("/v1/profiles/ann/segments").json()["segments"]:
            assert time.monotonic() < deadline, "the refresh did not come"
            time.sleep(0.1)
        log = http.get("/v1/changes", params={"segment_id": "weekly"}).json()["changes"]
        assert [(c["profile_id"], c["entered"], c["at"], c["reason"]) for c in log] == [
            ("ann", True, "2026-01-05T06:00:00.000000Z", "scheduled_refresh")
        ]


def test_page_and_computed_conditions_are_checked_like_the_others(server: Server) -> None:
    """Unknown keys of page, screen and computed conditions are 422s naming the closest
    key; page and screen names and computed traits are never warned about."""
    _orders(server, {"u1": 50.0})
    bad = {
        "id": "pages",
        "condition": {"any": [{"page": "Pricing", "withn": "7d"}, {"computed": "ltv", "gtt": 1}]},
    }
    r = server.client.post("/v1/segments", json=bad)
    assert r.status_code == 422
    errors = {e["path"]: e["message"] for e in r.json()["error"]["errors"]}
    assert set(errors) == {"condition.any[0].withn", "condition.any[1].gtt", "condition.any[1]"}
    assert "did you mean 'within'?" in errors["condition.any[0].withn"]
    assert "did you mean 'gt'?" in errors["condition.any[1].gtt"]
    assert "needs a comparison" in errors["condition.any[1]"]
    good = {
        "id": "pages",
        "condition": {
            "any": [
                {"page": ["Pricing", "Never Seen"], "within": "7d"},
                {"screen": True},
                {"computed": "ltv", "gt": 1},
            ]
        },
    }
    v = server.client.post("/v1/segments/validate", json=good).json()
    assert v["valid"] is True and v["warnings"] == []
    r = server.client.post("/v1/segments", json=good)
    assert r.status_code == 201, r.text
    assert r.json()["warnings"] == []


def test_estimate_names_shared_features_and_counts_new_reads(shared_server: Server) -> None:
    batch = [
        {"type": "track", "userId": f"est-{u}", "event": "Estimate Viewed",
         "messageId": f"est-view-{u}-{n}", "timestamp": _iso(NOW - timedelta(hours=n + 1))}
        for u in ("a", "b") for n in range(3 if u == "a" else 1)
    ] + [
        {"type": "identify", "userId": "est-a", "messageId": "est-id-a",
         "timestamp": _iso(NOW - timedelta(days=1)), "traits": {"est_tier": "gold"}},
    ]  # fmt: skip
    assert shared_server.ingest("/v1/batch", {"batch": batch}).status_code == 200
    saved = {"id": "est_gold", "condition": {"trait": "est_tier", "eq": "gold"}}
    assert shared_server.client.post("/v1/segments", json=saved).status_code == 201
    draft = {
        "id": "est_gold_viewers",
        "condition": {"all": [{"trait": "est_tier", "eq": "gold"}, {"event": "Estimate Viewed"}]},
    }
    r = shared_server.client.post("/v1/segments/estimate", json=draft)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["segment_id"] == "est_gold_viewers" and body["size"] == 1
    assert 0 < body["share"] <= 1 and body["profiles"] >= 2
    features = {f["kind"]: f for f in body["features"]}
    assert features["trait"]["shared_with"] == ["est_gold"] and not features["trait"]["new"]
    assert features["event"]["new"] and features["event"]["events"] == ["Estimate Viewed"]
    assert body["events"] == [{"names": ["Estimate Viewed"], "events": 4}]
    assert body["traits"] == []
    timing = body["timing"]
    assert timing["library_seconds"] > 0 and timing["added_seconds"] >= 0
    # nothing was saved; a bad draft is the preview's 422
    assert shared_server.client.get("/v1/segments/est_gold_viewers").status_code == 404
    bad = shared_server.client.post("/v1/segments/estimate", json={"id": "x", "condition": {}})
    assert bad.status_code == 422
