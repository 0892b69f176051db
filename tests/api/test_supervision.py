"""``segflow serve``'s supervisor: a core killed by a signal is started again (and
its edge with it), a killed edge is replaced by its core, and a stop is a stop."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from segflow.server import ServerProcess
from segflow.service.handle import Segflow
from segflow.store.duckdb.keys import KeyStore

pytestmark = pytest.mark.slow  # kills and restarts server processes


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (started by any of its threads)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # the thread ended meanwhile
            found += [int(x) for x in (task / "children").read_text().split()]
    return sorted(found)


def _eventually(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def _write_key(db: Path) -> str:
    sf = Segflow(db)
    token = KeyStore(sf.store.con).create("write").token
    sf.close()
    return token


def _tracked(server: ServerProcess, key: str, n: int) -> bool:
    body = {"userId": f"u{n}", "event": "Product Viewed", "messageId": f"m{n}"}
    try:
        r = httpx.post(server.base_url + "/v1/track", json=body, auth=(key, ""), timeout=10)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_core_and_edge_come_back(tmp_path: Path) -> None:
    db = tmp_path / "sup.duckdb"
    key = _write_key(db)
    server = ServerProcess(db, supervise=True).start()
    try:
        assert server.proc is not None
        [core] = _children(server.proc.pid)
        _eventually(lambda: len(_children(core)) == 1)
        [edge] = _children(core)
        assert _tracked(server, key, 1)

        os.kill(core, signal.SIGKILL)
        _eventually(lambda: _tracked(server, key, 2))
        [new_core] = _children(server.proc.pid)
        assert new_core != core and not _pid_alive(edge)

        [new_edge] = _children(new_core)
        os.kill(new_edge, signal.SIGKILL)
        _eventually(lambda: _tracked(server, key, 3))
        _eventually(lambda: _children(new_core) not in ([], [new_edge]))
        assert _children(server.proc.pid) == [new_core]
    finally:
        server.stop()
    assert server.proc.returncode == 0
    assert not _pid_alive(core) and not _pid_alive(new_core)
    sf = Segflow(db)
    try:
        assert sf.store.count_events() == 3
    finally:
        sf.close()


def test_a_core_stopped_on_purpose_is_not_restarted(tmp_path: Path) -> None:
    db = tmp_path / "stop.duckdb"
    _write_key(db)
    server = ServerProcess(db, supervise=True).start()
    assert server.proc is not None
    [core] = _children(server.proc.pid)
    os.kill(core, signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
