"""``segflow demo --no-serve``: the shop loaded and evaluated, on the one default store,
never over a store the demo did not make."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from segflow.cli import app
from segflow.cli.common import DEFAULT_DB
from segflow.model.time import utcnow
from segflow.service.handle import Segflow
from segflow.service.overview import segment_summaries

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "SEGFLOW_DB": None})


def test_demo_runs_without_serving(tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "demo",
            "--customers",
            "300",
            "--no-serve",
            "--data-dir",
            str(tmp_path),
            "--db",
            str(tmp_path / "d.duckdb"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "luxury_cart_abandoners" in res.output and "everyone" in res.output
    # the last 30 days' sizes were evaluated: the UI's size history starts full
    app_ = Segflow(tmp_path / "d.duckdb")
    try:
        rows = {r["id"]: r for r in segment_summaries(app_, None, utcnow())}
    finally:
        app_.close()
    assert [p["size"] for p in rows["everyone"]["series"]] == [300] * 31
    assert all(p["size"] is not None for p in rows["lapsed_visitors"]["series"])


def test_demo_and_other_commands_share_one_default_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["demo", "--customers", "60", "--days", "30", "--no-serve"])
    assert res.exit_code == 0, res.output
    assert DEFAULT_DB.exists()
    res = runner.invoke(app, ["segments", "list"])
    assert res.exit_code == 0 and "everyone" in res.stdout, res.output
    res = runner.invoke(app, ["demo", "--customers", "60", "--days", "30", "--no-serve"])
    assert res.exit_code == 0, res.output  # a demo store is replaced by the next demo


def test_demo_keeps_a_store_it_did_not_make(store: Path, tmp_path: Path) -> None:
    args = ["demo", "--customers", "60", "--no-serve", "--data-dir", str(tmp_path / "d")]
    res = runner.invoke(app, [*args, "--db", str(store)])
    assert res.exit_code == 2 and "--replace" in res.output
    res = runner.invoke(app, ["members", "everyone", "--db", str(store)])
    assert res.exit_code == 2 and "unknown segment" in res.output  # nothing was replaced
