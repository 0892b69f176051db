"""The CLI's store handling: one default store, no store made by a typo, one clear line
when a server holds the store, exports with traits as columns, static lists that count
only known profiles, whole ids in tables, ``segments apply --at``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segflow.cli import DEFAULT_DB, app
from segflow.server import ServerProcess

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "SEGFLOW_DB": None})
narrow = CliRunner(env={"COLUMNS": "80", "NO_COLOR": "1", "SEGFLOW_DB": None})


def _event(user: str, n: int, ts: str = "2026-11-01T10:00:00Z", **traits: object) -> str:
    body: dict[str, object] = {
        "type": "identify" if traits else "track",
        "userId": user,
        "messageId": f"{user}-{n}",
        "timestamp": ts,
    }
    if traits:
        body["traits"] = traits
    else:
        body["event"] = "Product Viewed"
    return json.dumps(body)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with two profiles (u1 with traits)."""
    f = tmp_path / "events.jsonl"
    lines = [
        _event("u1", 1),
        _event("u1", 2, country="PL", email="u1@example.com", vip=True),
        _event("u2", 1),
    ]
    f.write_text("\n".join(lines) + "\n")
    db = tmp_path / "s.duckdb"
    res = runner.invoke(app, ["ingest", str(f), "--db", str(db)])
    assert res.exit_code == 0, res.output
    return db


def _apply(db: Path, tmp_path: Path, text: str, *extra: str) -> str:
    seg = tmp_path / "seg.yaml"
    seg.write_text(text)
    res = runner.invoke(app, ["segments", "apply", str(seg), "--db", str(db), *extra])
    assert res.exit_code == 0, res.output
    return res.output


def test_import_counts_known_profiles_and_lists_unknown_ids(store: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.csv"
    ids.write_text("profile_id\nu1\nghost\nu2\n")
    res = runner.invoke(app, ["segments", "import", "vips", str(ids), "--db", str(store)])
    assert res.exit_code == 0, res.output
    assert "vips: 2 members" in res.output
    assert "1 unknown id(s)" in res.output and "ghost" in res.output
    res = runner.invoke(app, ["members", "vips", "--format", "json", "--db", str(store)])
    assert json.loads(res.stdout) == ["u1", "u2"]


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


def test_export_writes_one_column_per_trait(store: Path, tmp_path: Path) -> None:
    _apply(store, tmp_path, "id: viewers\ncondition: {event: Product Viewed}\n")
    out = tmp_path / "viewers.csv"
    res = runner.invoke(app, ["export", "viewers", "-o", str(out), "--db", str(store)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert rows == [
        {"profile_id": "u1", "country": "PL", "email": "u1@example.com", "vip": "true"},
        {"profile_id": "u2", "country": "", "email": "", "vip": ""},
    ]


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


def test_apply_at_previews_moves_as_of_that_instant(store: Path, tmp_path: Path) -> None:
    text = "id: recent\ncondition: {event: Product Viewed, within: 1d}\n"
    then = _apply(store, tmp_path, text, "--dry-run", "--at", "2026-11-01T12:00:00Z")
    assert "u1, u2" in then
    now = _apply(store, tmp_path, text, "--dry-run")
    assert "u1, u2" not in now


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
