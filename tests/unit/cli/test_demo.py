"""``segflow demo --no-serve``: the shop loaded and evaluated, on the one default store,
never over a store the demo did not make."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from segflow.cli import app
from segflow.cli.common import DEFAULT_DB

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
