"""What every command shares: no store made by a typo, one clear line for a store that
cannot be opened or that a server holds, clear errors for unknown ids and bad instants,
whole ids in tables on a narrow console."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from segflow.cli import app
from segflow.server import ServerProcess

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "SEGFLOW_DB": None})
narrow = CliRunner(env={"COLUMNS": "80", "NO_COLOR": "1", "SEGFLOW_DB": None})


def test_unopenable_store_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-store.duckdb"
    bad.write_text("this is not a database file\n")
    res = runner.invoke(app, ["segments", "list", "--db", str(bad)])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert f"cannot open {bad}" in res.output.replace("\n", "")


def test_mistyped_db_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "tpyo.duckdb"
    for args in (["segments", "list"], ["members", "x"], ["eval"], ["keys", "list"]):
        res = runner.invoke(app, [*args, "--db", str(missing)])
        assert res.exit_code == 2, (args, res.output)
        assert f"no store at {missing}" in res.output.replace("\n", "")
        assert not missing.exists()


@pytest.mark.slow
def test_store_held_by_a_server_gives_one_line(store: Path) -> None:
    server = ServerProcess(store).start()
    try:
        res = runner.invoke(app, ["segments", "list", "--db", str(store)])
    finally:
        server.kill()
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) <= 3 and "Traceback" not in res.output, res.output
    text = " ".join(lines)
    assert "held by another process" in text and "segflow serve" in text
    assert "HTTP API" in text


def test_unknown_segment_and_bad_instant(shop: Path) -> None:
    res = runner.invoke(app, ["members", "nope", "--db", str(shop)])
    assert res.exit_code == 2 and "unknown segment" in res.output
    res = runner.invoke(app, ["eval", "--at", "yesterday", "--db", str(shop)])
    assert res.exit_code != 0 and "ISO 8601" in res.output


def test_whole_ids_are_printed_on_a_narrow_console(store: Path, tmp_path: Path) -> None:
    long_id = "segment_" + "x" * 90
    seg = tmp_path / "long.yaml"
    seg.write_text(f"id: {long_id}\ncondition: {{event: Product Viewed}}\n")
    res = narrow.invoke(app, ["segments", "apply", str(seg), "--db", str(store)])
    assert res.exit_code == 0 and res.stdout.count(long_id) == 2, res.stdout  # table, line
    res = narrow.invoke(app, ["replay", "--db", str(store)])
    assert res.exit_code == 0 and long_id in res.stdout, res.stdout
    res = narrow.invoke(app, ["segments", "list", "--db", str(store)])
    assert res.exit_code == 0 and long_id in res.stdout, res.stdout
    res = narrow.invoke(app, ["eval", "--db", str(store)])
    assert res.exit_code == 0 and long_id in res.stdout, res.stdout
