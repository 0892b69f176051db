"""``segflow replay``, ``explain`` and ``changes`` on a small generated shop (a real DuckDB
file)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from typer.testing import CliRunner

from segflow.cli import app
from segflow.demo.generator import DEFAULT_END
from segflow.model.time import format_instant

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_replay_prints_and_logs_changes_once(live_shop: Path) -> None:
    res = runner.invoke(app, ["replay", "--db", str(live_shop)])
    assert res.exit_code == 0, res.output
    assert "entered" in res.output and "window_expired" in res.output
    res = runner.invoke(app, ["changes", "--db", str(live_shop), "--format", "json"])
    first = json.loads(res.stdout)
    assert first and {"seq", "segment_id", "profile_id", "entered", "at", "reason"} <= set(first[0])
    res = runner.invoke(app, ["replay", "--db", str(live_shop)])
    assert res.exit_code == 0 and "0 changes logged" in res.output
    res = runner.invoke(app, ["changes", "--db", str(live_shop), "--format", "json"])
    assert json.loads(res.stdout) == first


def test_changes_filters_and_formats(live_shop: Path) -> None:
    db = str(live_shop)
    runner.invoke(app, ["replay", "--db", db])
    res = runner.invoke(
        app, ["changes", "--db", db, "--format", "csv", "--segment", "first_time_purchasers_30d"]
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert rows and {r["segment_id"] for r in rows} == {"first_time_purchasers_30d"}
    res = runner.invoke(app, ["changes", "--db", db, "--limit", "3"])
    assert res.exit_code == 0 and "membership changes (3)" in res.output
    res = runner.invoke(app, ["changes", "--db", db, "--format", "xml"])
    assert res.exit_code == 2 and "--format" in res.output


def test_changes_mark_the_holdout(live_shop: Path) -> None:
    from segflow.model.bucket import bucket_of

    db = str(live_shop)
    runner.invoke(app, ["replay", "--db", db])
    res = runner.invoke(
        app, ["changes", "--db", db, "--format", "csv", "--segment", "cart_abandoners_24h"]
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert rows
    for r in rows:  # the demo's cart abandoners hold out 10 % (salt cart_recovery)
        held = bucket_of(r["profile_id"], "cart_recovery") < 10
        assert r["held_out"] == str(held), r


def test_explain_tree_and_json(live_shop: Path) -> None:
    at = ["--at", format_instant(DEFAULT_END)]
    res = runner.invoke(app, ["members", "first_time_purchasers_30d", "--db", str(live_shop), *at])
    member = res.stdout.split()[1]
    res = runner.invoke(
        app, ["explain", "first_time_purchasers_30d", member, "--db", str(live_shop), *at]
    )
    assert res.exit_code == 0, res.output
    assert ": member" in res.output and "Order Completed" in res.output
    res = runner.invoke(
        app, ["explain", "first_time_purchasers_30d", member, "--db", str(live_shop), "--json"]
    )
    data = json.loads(res.stdout)
    assert data["segment"] == "first_time_purchasers_30d" and "condition" in data
    res = runner.invoke(app, ["explain", "nope", member, "--db", str(live_shop)])
    assert res.exit_code == 2 and "unknown segment" in res.output
