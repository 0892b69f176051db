"""``segflow keys create``, ``list`` and ``revoke`` as a user runs them."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from segflow.cli import app

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    db = str(tmp_path / "k.duckdb")
    res = runner.invoke(app, ["keys", "create", "--kind", "write", "--name", "shop", "--db", db])
    assert res.exit_code == 0, res.output
    token = res.stdout.strip().splitlines()[-1]
    assert token.startswith("sfw_")
    res = runner.invoke(app, ["keys", "list", "--db", db])
    assert "shop" in res.stdout and "active" in res.stdout and token not in res.stdout
    key_id = next(w for w in res.stdout.split() if w.startswith("key_"))
    res = runner.invoke(app, ["keys", "revoke", key_id, "--db", db])
    assert res.exit_code == 0 and "revoked" in res.output
    assert "revoked" in runner.invoke(app, ["keys", "list", "--db", db]).stdout
    res = runner.invoke(app, ["keys", "create", "--kind", "root", "--db", db])
    assert res.exit_code == 2 and "kind" in res.output
    res = runner.invoke(app, ["keys", "revoke", "key_nope", "--db", db])
    assert res.exit_code == 2 and "unknown" in res.output


def test_a_publishable_key_with_its_origins(tmp_path: Path) -> None:
    db = str(tmp_path / "k.duckdb")
    args = ["keys", "create", "--kind", "publishable", "--db", db]
    res = runner.invoke(
        app, [*args, "--origin", "https://shop.example/", "--origin", "http://localhost:3000"]
    )
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-1].startswith("sfp_")
    assert "https://shop.example, http://localhost:3000" in res.output
    listed = runner.invoke(app, ["keys", "list", "--db", db]).stdout
    assert "publishable" in listed and "https://shop.example" in listed
    res = runner.invoke(app, [*args, "--origin", "https://shop.example/cart"])
    assert res.exit_code == 2 and "origins[0]" in res.output
    res = runner.invoke(
        app, ["keys", "create", "--kind", "write", "--origin", "https://a.b", "--db", db]
    )
    assert res.exit_code == 2 and "only publishable keys" in res.output
