"""``segflow scores ...`` end to end on a copy of the scored shop."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from segflow.cli import app
from segflow.service.handle import Segflow
from tests.helpers import ScoredShop

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
AT = "2026-11-01T00:00:00Z"


@pytest.fixture
def db(scored_shop: ScoredShop, tmp_path: Path) -> Path:
    target = tmp_path / "copy.duckdb"
    shutil.copy(scored_shop.db, target)
    return target


def test_refresh_models_and_show(db: Path) -> None:
    res = runner.invoke(app, ["scores", "refresh", "--at", AT, "--no-classifier", "--db", str(db)])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["as_of"] == "2026-11-01T00:00:00" and report["classifier"] is None
    assert report["traits_written"] > 0 and report["customers"] > 0

    res = runner.invoke(app, ["scores", "models", "--db", str(db)])
    assert res.exit_code == 0, res.output
    models = json.loads(res.stdout)
    assert set(models["bgnbd"]["params"]) == {"r", "alpha", "a", "b"}
    assert models["bgnbd"]["fit"]["converged"] is True
    assert set(models["gamma_gamma"]["params"]) == {"p", "q", "v"}

    res = runner.invoke(app, ["scores", "show", "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert "rfm_group" in res.stdout and "Champions" in res.stdout

    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute(
            "SELECT min(profile_id) FROM current_traits WHERE key = 'rfm_code'"
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    res = runner.invoke(app, ["scores", "show", row[0], "--db", str(db)])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    assert len(shown["rfm_code"]) == 3 and 0 <= shown["p_alive"] <= 1
    res = runner.invoke(app, ["scores", "show", "no-such-profile", "--db", str(db)])
    assert res.exit_code == 2 and "has no scores" in res.output


def test_discover_writes_segments_that_validate(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "discovered.yaml"
    res = runner.invoke(app, ["scores", "discover", "--k", "3", "--out", str(out), "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert "precision" in res.stdout
    docs = list(yaml.safe_load_all(out.read_text()))
    assert len(docs) >= 2 and all(d["id"].startswith("discovered_") for d in docs)
    res = runner.invoke(app, ["segments", "validate", str(out), "--db", str(db)])
    assert res.exit_code == 0, res.output


def test_errors_are_clear(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    res = runner.invoke(app, ["scores", "models", "--db", str(empty)])
    assert res.exit_code == 2 and "no store at" in res.output
    Segflow(empty).close()
    res = runner.invoke(app, ["scores", "models", "--db", str(empty)])
    assert res.exit_code == 1 and "no scores yet" in res.output
    res = runner.invoke(app, ["scores", "refresh", "--at", "yesterday", "--db", str(empty)])
    assert res.exit_code == 2 and "--at" in res.output
    res = runner.invoke(app, ["scores", "discover", "--k", "1", "--db", str(empty)])
    assert res.exit_code == 2
