"""The OpenAPI document: the definition language is fully typed in it, and a bounded
schemathesis run over every operation of a real server finds no server error (5xx).

``SEGFLOW_API_EXAMPLES=50`` for a longer run (default 3 per operation, ~100 in all)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from segflow.api.deps import Settings
from segflow.server import ThreadServer, make_context, serve_in_thread
from tests.helpers import create_keys


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadServer, str]]:
    db = Path(tmp_path_factory.mktemp("openapi")) / "server.duckdb"
    ctx = make_context(db, settings=Settings(schedule_interval_seconds=3600))
    admin, write = create_keys(ctx)
    with serve_in_thread(ctx) as srv:
        auth = {"Authorization": f"Bearer {admin}"}
        httpx.post(
            srv.base_url + "/v1/track",
            json={"type": "track", "userId": "u1", "event": "Order Completed",
                  "timestamp": "2026-11-20T10:00:00Z", "properties": {"revenue": 5}},
            auth=(write, ""),
        )  # fmt: skip
        httpx.post(
            srv.base_url + "/v1/segments",
            json={"id": "s1", "condition": {"event": "Order Completed"}},
            headers=auth,
        )
        yield srv, admin


@pytest.fixture(scope="module")
def api_schema(running: tuple[ThreadServer, str]) -> Any:
    srv, _ = running
    schema = schemathesis.openapi.from_url(srv.base_url + "/openapi.json")
    # the definition language is recursive: the exhaustive coverage/examples phases
    # explode on it, random generation (bounded by max_examples) does not
    schema.config.phases.update(phases=["fuzzing"])
    return schema


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/v1/changes/stream")


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("SEGFLOW_API_EXAMPLES", "3")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: Any, running: tuple[ThreadServer, str]) -> None:
    srv, admin = running
    response = case.call(base_url=srv.base_url, headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"


def test_definition_language_is_typed(running: tuple[ThreadServer, str]) -> None:
    srv, _ = running
    doc = httpx.get(srv.base_url + "/openapi.json").json()
    comps = doc["components"]["schemas"]
    for name in (
        "SegmentDefinition", "EventCondition", "TraitCondition", "AbandonmentCondition",
        "SequenceCondition", "AllCondition", "AnyCondition", "NotCondition",
        "InSegmentCondition", "BucketCondition", "AgoWindow", "PropertyPredicate",
    ):  # fmt: skip
        assert name in comps, name
    assert set(comps["AllCondition"]["properties"]) == {"all"}
    assert "in" in comps["TraitCondition"]["properties"]
    body = doc["paths"]["/v1/segments"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/SegmentDefinition"}
    for path, ops in doc["paths"].items():
        if path.startswith(
            ("/v1/segments", "/v1/profiles", "/v1/changes", "/v1/webhooks", "/v1/destinations")
        ):
            for op in ops.values():
                if path == "/v1/changes/stream":  # EventSource: a stream token in the URL
                    assert op["security"] == [{"adminKey": []}, {"streamToken": []}]
                else:
                    assert op["security"] == [{"adminKey": []}], path
