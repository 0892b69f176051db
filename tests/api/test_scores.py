"""Scores API over real HTTP: refresh, models, summary, one profile's scores, discovery
(a proposal POSTed to /v1/segments), auth and bad parameters; plus ``scores_due``."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from segflow.api.deps import Settings
from segflow.demo.generator import DEFAULT_END, generate_shop
from segflow.model.time import utcnow
from segflow.server import make_context, serve_in_thread
from segflow.service.handle import Segflow
from segflow.service.scores import refresh_scores, scores_due
from segflow.traits.refresh import ScoresConfig
from tests.helpers import Server, create_keys

AT = DEFAULT_END.isoformat() + "Z"


@pytest.fixture(scope="module")
def shop_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 300-customer generated shop, ingested, never scored."""
    root = tmp_path_factory.mktemp("scores_shop")
    summary = generate_shop(root / "data", customers=300, seed=7, days=200)
    db = root / "shop.duckdb"
    sf = Segflow(db)
    try:
        sf.ingest(list(summary.paths))
    finally:
        sf.close()
    return db


@pytest.fixture
def shop(shop_db: Path, tmp_path: Path) -> Iterator[Server]:
    db = tmp_path / "shop.duckdb"
    shutil.copy(shop_db, db)
    settings = Settings(schedule_interval_seconds=3600, scores_cron=None)
    ctx = make_context(db, settings=settings)
    admin, write = create_keys(ctx)
    with (
        serve_in_thread(ctx) as running,
        httpx.Client(
            base_url=running.base_url, headers={"Authorization": f"Bearer {admin}"}, timeout=60
        ) as client,
    ):
        yield Server(running.base_url, admin, write, ctx, db, client)


def test_refresh_inspect_and_use(shop: Server) -> None:
    http = shop.client
    r = http.get("/v1/scores/models")
    assert r.status_code == 404, r.text
    assert "no scores yet" in r.json()["error"]["message"]
    assert http.get("/v1/scores/summary").json() == {
        "rfm_group": {}, "lifecycle_stage": {}, "loyalty_tier": {}, "purchase_frequency_band": {},
    }  # fmt: skip

    r = http.post("/v1/scores/refresh", params={"at": AT, "classifier": "false"})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["as_of"].startswith("2026-11-01T00:00:00")
    assert report["customers"] > 20 and report["traits_written"] > 0
    assert set(report["bgnbd"]["params"]) == {"r", "alpha", "a", "b"}
    assert report["classifier"] is None and report["classifier_note"] == "disabled"

    models = http.get("/v1/scores/models").json()
    assert models["bgnbd"] == report["bgnbd"] and models["gamma_gamma"] == report["gamma_gamma"]
    assert models["bgnbd"]["fit"]["n"] > 0

    summary = http.get("/v1/scores/summary").json()
    assert sum(summary["rfm_group"].values()) == report["customers"]
    assert set(summary["loyalty_tier"]) <= {"Bronze", "Silver", "Gold"}
    assert summary["lifecycle_stage"] and summary["purchase_frequency_band"]

    with shop.ctx.lock:
        (pid,) = shop.ctx.app.store.con.execute(
            "SELECT min(profile_id) FROM current_traits WHERE key = 'rfm_code'"
        ).fetchone() or (None,)
    assert pid is not None
    one = http.get(f"/v1/profiles/{pid}/scores").json()
    assert one["profile_id"] == pid
    assert len(one["scores"]["rfm_code"]) == 3 and 0 <= one["scores"]["p_alive"] <= 1
    before = http.get(f"/v1/profiles/{pid}/scores", params={"at": "2020-01-01T00:00:00Z"})
    assert before.status_code == 404 and "has no scores" in before.json()["error"]["message"]
    assert http.get("/v1/profiles/no-such-profile/scores").status_code == 404
    # the profile routes next to it still answer
    assert http.get(f"/v1/profiles/{pid}/segments").status_code == 200

    r = http.post("/v1/scores/discover", params={"k": 3, "depth": 2})
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["k"] == 3 and 1 <= len(found["proposals"]) <= 3
    best = max(found["proposals"], key=lambda p: p["precision"] * p["recall"])
    assert best["rule_size"] > 0 and 0 < best["precision"] <= 1 and 0 < best["recall"] <= 1

    segment = best["segment"]
    created = http.post("/v1/segments", json=segment)
    assert created.status_code == 201, created.text
    # the batch evaluator, as of the refresh instant, returns exactly what the rule claimed
    page: dict[str, str | int] = {"limit": 1000, "at": AT}
    members = http.get(f"/v1/segments/{segment['id']}/members", params=page).json()
    assert len(members["members"]) == best["rule_size"]


def test_live_members_see_refreshed_scores(shop: Server) -> None:
    http = shop.client
    r = http.post("/v1/scores/refresh", params={"at": AT, "classifier": "false"})
    assert r.status_code == 200, r.text
    seg = {"id": "scored", "condition": {"trait": "rfm_recency", "exists": True}}
    assert http.post("/v1/segments", json=seg).status_code == 201
    live = http.get("/v1/segments/scored/members", params={"limit": 1000}).json()["members"]
    assert len(live) == r.json()["customers"]


def test_refresh_moves_live_members_of_an_existing_segment(shop: Server) -> None:
    http = shop.client
    seg = {"id": "gold", "condition": {"trait": "loyalty_tier", "eq": "Gold"}}
    assert http.post("/v1/segments", json=seg).status_code == 201
    page = {"limit": 1000}
    assert http.get("/v1/segments/gold/members", params=page).json()["members"] == []
    r = http.post("/v1/scores/refresh", params={"at": AT, "classifier": "false"})
    assert r.status_code == 200, r.text
    live = http.get("/v1/segments/gold/members", params=page).json()["members"]
    now = utcnow().isoformat() + "Z"
    batch = http.get("/v1/segments/gold/members", params={**page, "at": now}).json()["members"]
    assert live and live == batch
    changes = http.get("/v1/changes", params={"segment_id": "gold"}).json()["changes"]
    assert len(changes) == len(live)
    assert {(c["entered"], c["reason"]) for c in changes} == {(True, "trait_changed")}


def test_scheduler_refreshes_a_never_scored_store(shop_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "scheduled.duckdb"
    shutil.copy(shop_db, db)
    settings = Settings(schedule_interval_seconds=0.2, scores_cron="0 3 1 1 *")
    ctx = make_context(db, settings=settings)
    admin, _ = create_keys(ctx)
    with serve_in_thread(ctx) as running:
        auth = {"Authorization": f"Bearer {admin}"}
        deadline = time.monotonic() + 60
        while (r := httpx.get(running.base_url + "/v1/scores/models", headers=auth)).is_error:
            assert r.status_code == 404 and time.monotonic() < deadline, r.text
            time.sleep(0.1)
        first = r.json()
        assert first["customers"] > 20 and first["config"]["classifier"] is True
        time.sleep(0.5)  # more scheduler ticks: not due again until 03:00
        with ctx.lock:
            (runs,) = ctx.app.store.con.execute("SELECT count(*) FROM score_runs").fetchone() or (
                0,
            )
        assert runs == 1


def test_auth_and_bad_parameters(server: Server) -> None:
    url = server.base_url
    for method, path in [
        ("POST", "/v1/scores/refresh"),
        ("GET", "/v1/scores/models"),
        ("GET", "/v1/scores/summary"),
        ("POST", "/v1/scores/discover"),
        ("GET", "/v1/profiles/u1/scores"),
    ]:
        r = httpx.request(method, url + path)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["status"] == 401
        r = httpx.request(method, url + path, auth=(server.write_key, ""))
        assert r.status_code == 403, (path, r.text)

    http = server.client
    for params in ({"k": 1}, {"depth": 0}, {"k": "many"}):
        r = http.post("/v1/scores/discover", params=params)
        assert r.status_code == 422, r.text
        body = r.json()["error"]
        assert body["status"] == 422 and body["errors"][0]["path"].startswith("query.")
    r = http.post("/v1/scores/refresh", params={"at": "soon"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["errors"] == [
        {"path": "at", "message": "'soon' is not an ISO 8601 timestamp"}
    ]
    assert http.get("/v1/profiles/u1/scores", params={"at": "yesterday"}).status_code == 422
    # nothing scored yet: discovery has no customers to cluster
    r = http.post("/v1/scores/discover")
    assert r.status_code == 422 and "scored customers" in r.json()["error"]["message"]


def test_openapi_lists_the_scores_routes(server: Server) -> None:
    doc = server.client.get("/openapi.json").json()
    for path in (
        "/v1/scores/refresh",
        "/v1/scores/models",
        "/v1/scores/summary",
        "/v1/scores/discover",
        "/v1/profiles/{profile_id}/scores",
    ):
        assert path in doc["paths"], path
    schemas = doc["components"]["schemas"]
    assert {"ScoresReportOut", "ScoresSummary", "ProfileScores", "DiscoverResult"} <= set(schemas)


def test_bad_scores_cron_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a valid cron expression"):
        Settings(scores_cron="every night")
    assert Settings(scores_cron=None).scores_cron is None


def test_scores_due(tmp_path: Path) -> None:
    sf = Segflow(tmp_path / "due.duckdb")
    try:
        cron = "0 3 * * *"
        assert scores_due(sf, utcnow(), cron)  # never run
        ran = refresh_scores(sf, utcnow(), ScoresConfig(classifier=False)).computed_at
        assert not scores_due(sf, ran, cron)  # just run
        assert not scores_due(sf, ran + timedelta(seconds=1), cron)
        fires = ran.replace(hour=3, minute=0, second=0, microsecond=0)
        if fires <= ran:
            fires += timedelta(days=1)
        assert not scores_due(sf, fires - timedelta(microseconds=1), cron)
        assert scores_due(sf, fires, cron)  # the cron instant came
        assert scores_due(sf, fires + timedelta(days=2), cron)
    finally:
        sf.close()


def test_refresh_without_the_classifier_keeps_the_propensity_scores(shop: Server) -> None:
    http = shop.client
    r = http.post("/v1/scores/refresh", params={"at": AT})
    assert r.status_code == 200, r.text
    with shop.ctx.lock:
        rows = shop.ctx.app.store.con.execute(
            "SELECT profile_id, num FROM current_traits WHERE key = 'purchase_propensity_90d'"
            " ORDER BY profile_id"
        ).fetchall()
    assert len(rows) == r.json()["customers"]
    pid, propensity = rows[0]
    later = (DEFAULT_END + timedelta(days=1)).isoformat() + "Z"
    for at in (later, None):
        params = {"classifier": "false", **({"at": at} if at else {})}
        r = http.post("/v1/scores/refresh", params=params)
        assert r.status_code == 200, r.text
        scores = http.get(f"/v1/profiles/{pid}/scores").json()["scores"]
        assert scores["purchase_propensity_90d"] == propensity
        assert "p_alive" in scores
