"""Real uvicorn servers on free 127.0.0.1 ports over temp DuckDB files.

``server``: a fresh server (thread) per test with an admin and a write key;
``server.client`` is an httpx client authenticated with the admin key.  A test
parametrized with ``EDGE`` (``@EDGE``) runs twice: against the one-process server
and behind an edge process, as ``segflow serve`` runs (``server.edge`` says which).
``shared_server``: one server per module (``@SHARED_EDGE``: one of each kind), for
tests that neither see nor leave anything another test could trip on: refused
requests, or their own segment and profile ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import EDGE, SHARED_EDGE, Server, create_keys, running_server

__all__ = ["EDGE", "SHARED_EDGE", "Server", "create_keys"]


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    with running_server(
        tmp_path / "server.duckdb", edge=bool(getattr(request, "param", False))
    ) as s:
        yield s


@pytest.fixture(scope="module")
def shared_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("shared") / "server.duckdb"
    with running_server(db, edge=bool(getattr(request, "param", False))) as s:
        yield s
