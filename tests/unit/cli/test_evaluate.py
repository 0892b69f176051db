"""``segflow eval``, ``members`` and ``export``: sizes, member lists and exports with
traits as columns."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from segflow.cli import app

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "SEGFLOW_DB": None})
AT = "2026-11-01T00:00:00Z"


def test_eval_members_and_export(shop: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["eval", "--at", AT, "--db", str(shop)])
    assert res.exit_code == 0, res.output
    assert "everyone" in res.output
    res = runner.invoke(
        app, ["members", "everyone", "--at", AT, "--format", "json", "--db", str(shop)]
    )
    assert res.exit_code == 0
    everyone = json.loads(res.output)
    assert len(everyone) >= 400
    res = runner.invoke(app, ["members", "returning_customers", "--at", AT, "--db", str(shop)])
    lines = res.output.strip().splitlines()
    assert lines[0] == "profile_id" and 0 < len(lines) - 1 < len(everyone)
    out = tmp_path / "returning.csv"
    res = runner.invoke(
        app, ["export", "returning_customers", "-o", str(out), "--at", AT, "--db", str(shop)]
    )
    assert res.exit_code == 0, res.output
    exported = out.read_text().splitlines()
    assert [row.split(",")[0] for row in exported] == lines
    assert "country" in exported[0].split(",")  # traits as columns


def test_export_writes_one_column_per_trait(
    store: Path, tmp_path: Path, apply_text: Callable[..., str]
) -> None:
    apply_text(store, "id: viewers\ncondition: {event: Product Viewed}\n")
    out = tmp_path / "viewers.csv"
    res = runner.invoke(app, ["export", "viewers", "-o", str(out), "--db", str(store)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert rows == [
        {"profile_id": "u1", "country": "PL", "email": "u1@example.com", "vip": "true"},
        {"profile_id": "u2", "country": "", "email": "", "vip": ""},
    ]


def _split_salt() -> str:
    """A salt that holds out u1 and not u2 at 50 %."""
    from segflow.model.bucket import bucket_of

    return next(
        s for s in (f"s{i}" for i in range(1000)) if bucket_of("u1", s) < 50 <= bucket_of("u2", s)
    )


def test_export_leaves_the_holdout_out_unless_asked(
    store: Path, tmp_path: Path, apply_text: Callable[..., str]
) -> None:
    salt = _split_salt()
    apply_text(
        store,
        "id: viewers\ncondition: {event: Product Viewed}\n"
        f"holdout: {{percent: 50, salt: {salt}}}\n",
    )
    out = tmp_path / "viewers.csv"
    res = runner.invoke(app, ["export", "viewers", "-o", str(out), "--db", str(store)])
    assert res.exit_code == 0, res.output
    assert "wrote 1 members" in res.output
    assert [r["profile_id"] for r in csv.DictReader(out.open())] == ["u2"]
    res = runner.invoke(
        app, ["export", "viewers", "-o", str(out), "--include-held-out", "--db", str(store)]
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert [(r["profile_id"], r["held_out"]) for r in rows] == [("u1", "true"), ("u2", "false")]
    assert rows[0]["country"] == "PL"
