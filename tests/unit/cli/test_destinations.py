"""``segflow destinations add``, ``list``, ``sync``, ``deliveries``, ``replay`` and
``remove`` as a user runs them, over a real store and a real directory of drops."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from segflow.cli import app
from segflow.model.bucket import bucket_of
from tests.unit.cli.conftest import runner


def _salt() -> str:
    """A holdout salt that holds out exactly one of u1 and u2 at 50 %."""
    return next(
        s for s in (f"s{i}" for i in range(100))
        if (bucket_of("u1", s) < 50) != (bucket_of("u2", s) < 50)
    )  # fmt: skip


def test_add_sync_to_files_and_read_the_log(
    store: Path, apply_text: Callable[..., str], tmp_path: Path
) -> None:
    salt = _salt()
    held = "u1" if bucket_of("u1", salt) < 50 else "u2"
    apply_text(
        store,
        "id: viewers\ncondition: {event: Product Viewed}\n"
        f"holdout: {{percent: 50, salt: {salt}}}\n",
    )
    drops = tmp_path / "drops"
    db = ["--db", str(store)]
    res = runner.invoke(
        app,
        ["destinations", "add", "--type", "files", "--segment", "viewers", "--name", "lake",
         "--field", "country=country_code", "--field", "email", "--no-changes",
         "--config", f"path={drops}", "--config", "format=parquet", *db],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    dest_id = res.stdout.strip().splitlines()[-1]
    assert dest_id.startswith("dst_")
    res = runner.invoke(app, ["destinations", "sync", dest_id, *db])
    assert res.exit_code == 0, res.output
    assert "2 members, 1 held out, 1 sent" in res.output
    manifest = json.loads((drops / "manifest.json").read_text())
    (entry,) = manifest["files"]
    rows = pq.read_table(drops / entry["name"]).to_pylist()
    kept = "u2" if held == "u1" else "u1"
    assert [r["profile_id"] for r in rows] == [kept]
    assert set(rows[0]) == {"segment_id", "profile_id", "country_code", "email"}
    if kept == "u1":
        assert rows[0]["country_code"] == "PL" and rows[0]["email"] == "u1@example.com"
    res = runner.invoke(app, ["destinations", "list", *db])
    assert dest_id in res.stdout and "lake" in res.stdout and "done 1 sent" in res.stdout
    res = runner.invoke(app, ["destinations", "deliveries", dest_id, "--json", *db])
    assert res.exit_code == 0, res.output
    log = json.loads(res.stdout)
    assert log["syncs"][0]["held_out"] == 1 and log["syncs"][0]["sent"] == 1
    res = runner.invoke(app, ["destinations", "replay", dest_id, *db])
    assert res.exit_code == 0 and "replayed 0" in res.output
    res = runner.invoke(app, ["destinations", "remove", dest_id, *db])
    assert res.exit_code == 0
    assert dest_id not in runner.invoke(app, ["destinations", "list", *db]).stdout


def test_bad_configuration_names_each_problem(store: Path) -> None:
    res = runner.invoke(
        app,
        ["destinations", "add", "--type", "redis", "--segment", "nope", "--db", str(store)],
    )
    assert res.exit_code == 2
    assert "segments[0]" in res.output and "config.stream" in res.output
    res = runner.invoke(app, ["destinations", "sync", "dst_nope", "--db", str(store)])
    assert res.exit_code == 2 and "unknown destination" in res.output
