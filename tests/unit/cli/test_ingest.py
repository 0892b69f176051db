"""``segflow ingest``: a bad file loads nothing unless ``--skip-invalid``; loading is
idempotent."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from segflow.cli import app
from segflow.demo.generator import generate_shop, write_jsonl

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_ingest_bad_file_loads_nothing(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    f = tmp_path / "events.jsonl"
    f.write_text(
        '{"type":"track","event":"A","userId":"u1","timestamp":"2026-01-01T00:00:00Z","messageId":"1"}\n'
        '{"type":"track","event":"A","userId":"u2","messageId":"2"}\n'
    )
    res = runner.invoke(app, ["ingest", str(f), "--db", str(db)])
    assert res.exit_code == 2
    assert "events.jsonl:2" in res.output and "timestamp" in res.output
    res = runner.invoke(app, ["ingest", str(f), "--skip-invalid", "--db", str(db)])
    assert res.exit_code == 0, res.output


def test_jsonl_from_the_generator_loads(tmp_path: Path) -> None:
    summary = generate_shop(tmp_path / "d", customers=30, seed=5)
    f = tmp_path / "shop.jsonl"
    write_jsonl(summary, f)
    db = tmp_path / "j.duckdb"
    res = runner.invoke(app, ["ingest", str(f), "--db", str(db)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["ingest", str(f), "--db", str(db)])  # idempotent
    assert res.exit_code == 0
    assert "already loaded, skipped" in res.output
    res = runner.invoke(app, ["ingest", str(f), "--again", "--db", str(db)])
    assert res.exit_code == 0
    assert " 0 new events" in res.output and "duplicates" in res.output
