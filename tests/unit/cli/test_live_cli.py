"""``segflow replay``, ``explain``, ``changes`` and ``segments apply --dry-run`` on a small
generated shop (a real DuckDB file)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segflow.cli import app
from segflow.demo.generator import DEFAULT_END, generate_shop
from segflow.model.time import format_instant

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
LIB = Path(__file__).resolve().parents[3] / "src" / "segflow" / "demo" / "segments"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("live-shop")
    summary = generate_shop(root / "data", customers=60, seed=5, days=30)
    db = root / "shop.duckdb"
    res = runner.invoke(app, ["ingest", *map(str, summary.paths), "--db", str(db)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["segments", "apply", str(LIB), "--db", str(db)])
    assert res.exit_code == 0, res.output
    return db


def test_replay_prints_and_logs_changes_once(shop: Path) -> None:
    res = runner.invoke(app, ["replay", "--db", str(shop)])
    assert res.exit_code == 0, res.output
    assert "entered" in res.output and "window_expired" in res.output
    res = runner.invoke(app, ["changes", "--db", str(shop), "--format", "json"])
    first = json.loads(res.stdout)
    assert first and {"seq", "segment_id", "profile_id", "entered", "at", "reason"} <= set(first[0])
    res = runner.invoke(app, ["replay", "--db", str(shop)])
    assert res.exit_code == 0 and "0 changes logged" in res.output
    res = runner.invoke(app, ["changes", "--db", str(shop), "--format", "json"])
    assert json.loads(res.stdout) == first


def test_changes_filters_and_formats(shop: Path) -> None:
    runner.invoke(app, ["replay", "--db", str(shop)])
    res = runner.invoke(
        app,
        ["changes", "--db", str(shop), "--format", "csv", "--segment", "first_time_purchasers_30d"],
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert rows and {r["segment_id"] for r in rows} == {"first_time_purchasers_30d"}
    res = runner.invoke(app, ["changes", "--db", str(shop), "--limit", "3"])
    assert res.exit_code == 0 and "membership changes (3)" in res.output
    res = runner.invoke(app, ["changes", "--db", str(shop), "--format", "xml"])
    assert res.exit_code == 2 and "--format" in res.output


def test_explain_tree_and_json(shop: Path) -> None:
    at = ["--at", format_instant(DEFAULT_END)]
    res = runner.invoke(app, ["members", "first_time_purchasers_30d", "--db", str(shop), *at])
    member = res.stdout.split()[1]
    res = runner.invoke(
        app, ["explain", "first_time_purchasers_30d", member, "--db", str(shop), *at]
    )
    assert res.exit_code == 0, res.output
    assert ": member" in res.output and "Order Completed" in res.output
    res = runner.invoke(
        app, ["explain", "first_time_purchasers_30d", member, "--db", str(shop), "--json"]
    )
    data = json.loads(res.stdout)
    assert data["segment"] == "first_time_purchasers_30d" and "condition" in data
    res = runner.invoke(app, ["explain", "nope", member, "--db", str(shop)])
    assert res.exit_code == 2 and "unknown segment" in res.output


def test_apply_dry_run_shows_the_diff_and_saves_nothing(shop: Path, tmp_path: Path) -> None:
    edited = tmp_path / "edit.yaml"
    edited.write_text(
        "id: first_time_purchasers_30d\nname: Recent buyers\n"
        "condition: {event: Order Completed, within: 1d}\n",
        encoding="utf-8",
    )
    res = runner.invoke(app, ["segments", "apply", str(edited), "--db", str(shop), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "if saved now" in res.output and "first_time_purchasers_30d" in res.output
    assert "updated" not in res.output
    res = runner.invoke(app, ["segments", "show", "first_time_purchasers_30d", "--db", str(shop)])
    assert "30d" in res.output or "30 d" in res.output or "720h" in res.output
