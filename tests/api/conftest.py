"""Real uvicorn servers on free 127.0.0.1 ports over temp DuckDB files.

``server``: a fresh server (thread) per test with an admin and a write key;
``server.client`` is an httpx client authenticated with the admin key.  A test
parametrized with ``EDGE`` (``@EDGE``) runs twice: against the one-process server
and behind an edge process, as ``segflow serve`` runs (``server.edge`` says which).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from segflow.api.deps import ServerContext, Settings
from segflow.server import make_context, serve_in_thread


@dataclass
class Server:
    base_url: str
    admin_key: str
    write_key: str
    ctx: ServerContext
    db: Path
    client: httpx.Client
    """Authenticated with the admin key."""
    edge: bool = False

    def ingest(self, path: str, body: object) -> httpx.Response:
        """POST to an ingestion endpoint with the write key (basic auth)."""
        return httpx.post(self.base_url + path, json=body, auth=(self.write_key, ""), timeout=30)


def create_keys(ctx: ServerContext) -> tuple[str, str]:
    with ctx.lock:
        admin = ctx.key_store.create("admin", "test admin").token
        write = ctx.key_store.create("write", "test write").token
    return admin, write


EDGE = pytest.mark.parametrize("server", [False, True], ids=["one-process", "edge"], indirect=True)


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    edge = bool(getattr(request, "param", False))
    db = tmp_path / "server.duckdb"
    ctx = make_context(db, settings=Settings(schedule_interval_seconds=3600))
    admin, write = create_keys(ctx)
    with (
        serve_in_thread(ctx, edge=edge) as running,
        httpx.Client(
            base_url=running.base_url, headers={"Authorization": f"Bearer {admin}"}, timeout=30
        ) as client,
    ):
        yield Server(running.base_url, admin, write, ctx, db, client, edge)
