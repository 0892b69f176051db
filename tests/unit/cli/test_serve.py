"""``segflow serve`` (run as ``python -m segflow.cli``) answering with a key the CLI
created."""

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


def test_serve_refuses_a_malformed_unknown_consent_rule_naming_its_path(tmp_path: Path) -> None:
    env = {"COLUMNS": "200", "NO_COLOR": "1",
           "SEGFLOW_UNKNOWN_CONSENT": '{"regions": {"US": {"email": "yes"}}}'}  # fmt: skip
    res = CliRunner(env=env).invoke(app, ["serve", "--db", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 2
    assert "SEGFLOW_UNKNOWN_CONSENT.regions.US.email: allow or deny" in res.output
    assert not (tmp_path / "s.duckdb").exists()
