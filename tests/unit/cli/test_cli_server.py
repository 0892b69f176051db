"""``segflow keys`` and ``segflow serve`` as a user runs them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from segflow.cli import app
from segflow.server import free_port

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    db = str(tmp_path / "k.duckdb")
    res = runner.invoke(app, ["keys", "create", "--kind", "write", "--name", "shop", "--db", db])
    assert res.exit_code == 0, res.output
    token = res.stdout.strip().splitlines()[-1]
    assert token.startswith("sfw_")
    res = runner.invoke(app, ["keys", "list", "--db", db])
    assert "shop" in res.stdout and "active" in res.stdout and token not in res.stdout
    key_id = next(w for w in res.stdout.split() if w.startswith("key_"))
    res = runner.invoke(app, ["keys", "revoke", key_id, "--db", db])
    assert res.exit_code == 0 and "revoked" in res.output
    assert "revoked" in runner.invoke(app, ["keys", "list", "--db", db]).stdout
    res = runner.invoke(app, ["keys", "create", "--kind", "root", "--db", db])
    assert res.exit_code == 2 and "kind" in res.output
    res = runner.invoke(app, ["keys", "revoke", "key_nope", "--db", db])
    assert res.exit_code == 2 and "unknown" in res.output


@pytest.mark.slow
def test_serve_answers_with_a_key_created_by_the_cli(tmp_path: Path) -> None:
    db = str(tmp_path / "s.duckdb")
    res = runner.invoke(app, ["keys", "create", "--kind", "write", "--db", db])
    token = res.stdout.strip().splitlines()[-1]
    port = free_port()
    cmd = [sys.executable, "-m", "segflow.cli", "serve", "--port", str(port), "--db", db]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        body = {"userId": "u1", "event": "Product Viewed", "timestamp": "2026-11-01T00:00:00Z"}
        assert httpx.post(url + "/v1/track", json=body, auth=(token, "")).json() == {
            "success": True
        }
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) in (0, -15)  # uvicorn re-raises SIGTERM after shutdown
