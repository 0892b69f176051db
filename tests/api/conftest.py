"""Real uvicorn servers on free 127.0.0.1 ports over temp DuckDB files.

``server``: a fresh server (thread) per test with an admin and a write key;
``server.client`` is an httpx client authenticated with the admin key.  A test
parametrized with ``EDGE`` (``@EDGE``) runs twice: against the one-process server
and behind an edge process, as ``segflow serve`` runs (``server.edge`` says which).
``shared_server``: one server per module, for tests that keep to their own ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import EDGE, Server, create_keys, running_server

__all__ = ["EDGE", "Server", "create_keys"]


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    with running_server(
        tmp_path / "server.duckdb", edge=bool(getattr(request, "param", False))
    ) as s:
        yield s
