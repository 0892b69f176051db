"""The limit on distinct fields: a message bringing a new field past it is refused
(400 naming the field and the limit), known fields keep being accepted, what is
stored is untouched, and the events table stops growing columns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from segflow.api.deps import ServerContext, Settings
from segflow.server import make_context, serve_in_thread
from segflow.store.duckdb.catalog import table_columns
from tests.helpers import SERVER_KINDS, create_keys

LIMIT = 40


class Running:
    def __init__(self, url: str, admin: str, write: str, ctx: ServerContext) -> None:
        self.url, self.admin, self.write, self.ctx = url, admin, write, ctx

    def post(self, path: str, body: object) -> httpx.Response:
        return httpx.post(self.url + path, json=body, auth=(self.write, ""), timeout=30)

    def admin_get(self, path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin}"}
        return httpx.get(self.url + path, headers=headers, timeout=30)

    def columns(self) -> int:
        with self.ctx.lock:
            return len(table_columns(self.ctx.app.store.con, "events"))


@pytest.fixture(params=SERVER_KINDS)
def running(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Running]:
    settings = Settings(schedule_interval_seconds=3600, max_fields=LIMIT)
    ctx = make_context(tmp_path / "fields.duckdb", settings=settings)
    admin, write = create_keys(ctx)
    with serve_in_thread(ctx, edge=request.param) as server:
        yield Running(server.base_url, admin, write, ctx)


def _track(n: int, properties: dict[str, Any], user: str = "ada") -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"m{n}",
        "userId": user,
        "event": "Order Completed",
        "timestamp": "2026-11-20T10:00:00Z",
        "properties": properties,
    }


def test_new_fields_past_the_limit_are_refused_and_known_ones_accepted(
    running: Running,
) -> None:
    r = running.post("/v1/track", _track(0, {"revenue": 120.0, "currency": "EUR"}))
    assert r.status_code == 200, r.text
    body = {"id": "big", "condition": {"event": "Order Completed", "of": "revenue",
                                       "measure": "sum", "gt": 100}}  # fmt: skip
    headers = {"Authorization": f"Bearer {running.admin}"}
    r = httpx.post(running.url + "/v1/segments", json=body, headers=headers, timeout=30)
    assert r.status_code == 201, r.text
    columns = running.columns()

    # an attacker's stream of new names: ten calls of ten fresh keys each
    answers = [
        running.post("/v1/track", _track(c + 1, {f"k{c}_{i}": i for i in range(10)}))
        for c in range(10)
    ]
    codes = [a.status_code for a in answers]
    assert codes.count(200) == 3 and codes.count(400) == 7, codes  # 2 + 30 fields, then full
    refused = answers[codes.index(400)].json()["error"]
    assert refused["errors"][0]["path"] == "properties.k3_8"  # the 41st field
    assert f"limit of {LIMIT}" in refused["errors"][0]["message"]
    assert "properties.k3_8" in refused["message"]
    assert running.columns() == columns + 30

    # the room left (8 fields) is still usable, up to the limit exactly
    r = running.post("/v1/track", _track(50, {f"last{i}": i for i in range(8)}))
    assert r.status_code == 200, r.text

    # in a batch the refused message is named by position; known fields still go in
    batch = [_track(100, {"revenue": 5.0, "k0_1": 7}), _track(101, {"brand_new": 1})]
    r = running.post("/v1/batch", {"batch": batch})
    assert r.status_code == 400
    assert r.json()["error"]["errors"][0]["path"] == "batch[1].properties.brand_new"
    r = running.post("/v1/track", _track(102, {"revenue": 30.0, "k2_9": 1}, user="bob"))
    assert r.status_code == 200, r.text
    r = running.post("/v1/track", _track(103, {"revenue": 90.0, "k1_3": "x"}, user="bob"))
    assert r.status_code == 200, r.text

    members = running.admin_get("/v1/segments/big/members").json()["members"]
    assert members == ["ada", "bob"]
    profile = running.admin_get("/v1/profiles/ada").json()
    assert profile is not None
    with running.ctx.lock:
        stored = running.ctx.app.store.count_events()
        fields = running.ctx.app.store.fields
    assert stored == 7  # m0, three accepted calls, the last room, bob's two
    assert len(fields) == LIMIT and "properties.brand_new" not in fields
