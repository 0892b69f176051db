"""The two-process server: what the edge answers itself, what it hands over, and
that it recovers (the API behind it is tested in both modes by the ``@EDGE`` tests)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from segflow.api import fastlane
from segflow.api.deps import Settings
from segflow.server import ThreadServer, make_context, serve_in_thread
from tests.helpers import create_keys

pytestmark = pytest.mark.slow  # an edge process per test, killed in one

NOW = datetime.now(UTC).replace(microsecond=0)


class Edge:
    def __init__(self, running: ThreadServer, admin: str, write: str) -> None:
        self.running = running
        self.url = running.base_url
        self.admin = admin
        self.write = write

    def ingest(self, n: int, user: str, hours_ago: float = 1) -> httpx.Response:
        ts = (NOW - timedelta(hours=hours_ago)).isoformat().replace("+00:00", "Z")
        msg = {"type": "track", "messageId": f"e{n}", "userId": user, "timestamp": ts}
        body = {"batch": [{**msg, "event": "Product Viewed"}]}
        return httpx.post(self.url + "/v1/batch", json=body, auth=(self.write, ""), timeout=30)

    def lookup(self, pid: str, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.admin}"}
        return httpx.get(f"{self.url}/v1/profiles/{pid}/segments", headers=headers, timeout=30)


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    ctx = make_context(tmp_path / "edge.duckdb", settings=Settings(schedule_interval_seconds=3600))
    admin, write = create_keys(ctx)
    with serve_in_thread(ctx, edge=True) as running:
        e = Edge(running, admin, write)
        r = httpx.post(
            e.url + "/v1/segments",
            json={"id": "viewers", "condition": {"event": "Product Viewed", "within": "7d"}},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        yield e


def _eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_lookups_are_answered_by_the_edge_from_acknowledged_changes(
    edge: Edge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once an ingestion request is acknowledged, the edge's index already has the
    changes it caused: the look-up is answered without the core."""

    def core_lookup(*args: object) -> None:
        raise RuntimeError("the core was asked")

    assert edge.ingest(1, "ada").status_code == 200
    monkeypatch.setattr(fastlane.profiles, "profile_segments", core_lookup)
    r = edge.lookup("ada")
    assert r.status_code == 200, r.text
    assert list(r.json()["segments"]) == ["viewers"]
    assert r.json()["profile_id"] == "ada"
    assert r.headers["content-type"] == "application/json"
    # an id the index does not hold goes to the core (here: the failing one)
    assert edge.lookup("nobody").status_code == 500


def test_lookup_keys_are_the_cores_and_follow_revocation(edge: Edge) -> None:
    assert edge.ingest(1, "ada").status_code == 200
    # missing, unknown and write keys: the core's own answers
    missing = httpx.get(f"{edge.url}/v1/profiles/ada/segments", timeout=30)
    assert missing.status_code == 401 and "missing API key" in missing.text
    assert edge.lookup("ada", "sfa_nope").status_code == 401
    assert edge.lookup("ada", edge.write).status_code == 403
    admin = {"Authorization": f"Bearer {edge.admin}"}
    created = httpx.post(
        edge.url + "/v1/keys", json={"kind": "admin"}, headers=admin, timeout=30
    ).json()
    _eventually(lambda: edge.lookup("ada", created["token"]).status_code == 200)
    r = httpx.delete(f"{edge.url}/v1/keys/{created['id']}", headers=admin, timeout=30)
    assert r.status_code == 200
    _eventually(lambda: edge.lookup("ada", created["token"]).status_code == 401)
    assert edge.lookup("ada").status_code == 200


def test_a_deleted_profile_leaves_the_edges_index(edge: Edge) -> None:
    assert edge.ingest(1, "ada").status_code == 200
    assert edge.lookup("ada").json()["segments"] != {}
    admin = {"Authorization": f"Bearer {edge.admin}"}
    r = httpx.delete(f"{edge.url}/v1/profiles/ada", headers=admin, timeout=30)
    assert r.status_code == 200, r.text
    _eventually(lambda: edge.lookup("ada").json()["segments"] == {})


def test_a_killed_edge_is_replaced_on_the_same_port(edge: Edge) -> None:
    assert edge.ingest(1, "ada").status_code == 200
    proc = edge.running.edge.proc if edge.running.edge else None
    assert proc is not None
    os.kill(proc.pid, signal.SIGKILL)

    def answered() -> bool:
        try:
            return edge.ingest(2, "bob").status_code == 200
        except httpx.HTTPError:
            return False

    _eventually(answered)
    assert edge.running.edge is not None and edge.running.edge.proc is not proc
    _eventually(lambda: list(edge.lookup("bob").json()["segments"]) == ["viewers"])
    assert list(edge.lookup("ada").json()["segments"]) == ["viewers"]


def test_passed_through_requests_keep_query_status_and_body(edge: Edge) -> None:
    for n, user in enumerate(("ada", "bob", "cy")):
        assert edge.ingest(n, user).status_code == 200
    admin = {"Authorization": f"Bearer {edge.admin}"}
    page = httpx.get(
        edge.url + "/v1/segments/viewers/members", params={"limit": 2}, headers=admin, timeout=30
    )
    assert page.status_code == 200, page.text
    assert page.json()["members"] == ["ada", "bob"]
    assert page.headers.get("server") is not None
    assert httpx.get(edge.url + "/v1/segments/nope", headers=admin, timeout=30).status_code == 404
    export = httpx.get(
        edge.url + "/v1/segments/viewers/export",
        params={"format": "csv"},
        headers=admin,
        timeout=30,
    )
    assert export.status_code == 200
    lines = export.text.splitlines()
    assert lines[0].startswith("profile_id")
    assert [line.split(",")[0] for line in lines[1:]] == ["ada", "bob", "cy"]
    spec = httpx.get(edge.url + "/openapi.json", timeout=30)
    assert spec.status_code == 200 and "/v1/batch" in spec.json()["paths"]
