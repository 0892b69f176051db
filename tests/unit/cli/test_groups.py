"""``segflow groups ...``: apply (idempotent; bad groups refused naming the path, with
nothing saved), list, show, members (each profile under at most one segment), export
and delete."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from typer.testing import CliRunner

from segflow.cli import app

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "SEGFLOW_DB": None})
AT = "2026-11-01T00:00:00Z"
LIFECYCLE = (
    "group: lifecycle\nname: Lifecycle\nsegments: [vip_customers, loyal, returning_customers]\n"
)


def _copy(shop: Path, tmp_path: Path) -> str:
    db = tmp_path / "shop.duckdb"
    shutil.copy(shop, db)
    return str(db)


def test_apply_list_members_export_and_delete(shop: Path, tmp_path: Path) -> None:
    db = _copy(shop, tmp_path)
    doc = tmp_path / "lifecycle.yaml"
    doc.write_text(LIFECYCLE)
    res = runner.invoke(app, ["groups", "apply", str(doc), "--dry-run", "--at", AT, "--db", db])
    assert res.exit_code == 0 and "lifecycle:loyal" in res.output, res.output
    assert runner.invoke(app, ["groups", "show", "lifecycle", "--db", db]).exit_code == 2
    res = runner.invoke(app, ["groups", "apply", str(doc), "--db", db])
    assert res.exit_code == 0, res.output
    assert "created   lifecycle (v1): vip_customers > loyal > returning_customers" in res.output
    res = runner.invoke(app, ["groups", "apply", str(doc), "--db", db])
    assert "unchanged" in res.output
    res = runner.invoke(app, ["groups", "list", "--db", db])
    assert "lifecycle" in res.output and "vip_customers > loyal" in res.output
    res = runner.invoke(app, ["groups", "show", "lifecycle", "--db", db])
    assert "segments:\n- vip_customers" in res.output
    res = runner.invoke(app, ["groups", "members", "lifecycle", "--at", AT, "--db", db])
    assert res.exit_code == 0 and "lifecycle:loyal" in res.output, res.output
    out = tmp_path / "lifecycle.csv"
    res = runner.invoke(
        app, ["groups", "export", "lifecycle", "-o", str(out), "--at", AT, "--db", db]
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    ids = [r["profile_id"] for r in rows]
    assert rows and len(ids) == len(set(ids))
    assert {r["segment"] for r in rows} <= {"vip_customers", "loyal", "returning_customers"}
    # each profile resolves to the highest segment it is in
    vips = runner.invoke(app, ["members", "vip_customers", "--at", AT, "--db", db])
    vip_ids = set(vips.output.strip().splitlines()[1:])
    assert {r["profile_id"] for r in rows if r["segment"] == "vip_customers"} == vip_ids
    assert not vip_ids & {r["profile_id"] for r in rows if r["segment"] != "vip_customers"}
    res = runner.invoke(app, ["members", "lifecycle:loyal", "--at", AT, "--db", db])
    assert res.exit_code == 0
    loyal = {r["profile_id"] for r in rows if r["segment"] == "loyal"}
    assert set(res.output.strip().splitlines()[1:]) == loyal
    res = runner.invoke(app, ["segments", "delete", "loyal", "--db", db])
    assert res.exit_code == 2 and "listed by group 'lifecycle'" in res.output
    res = runner.invoke(app, ["groups", "delete", "lifecycle", "--db", db])
    assert res.exit_code == 0 and "deleted group lifecycle" in res.output
    assert runner.invoke(app, ["groups", "show", "lifecycle", "--db", db]).exit_code == 2


def test_bad_groups_are_refused_naming_both_groups_and_nothing_is_saved(
    shop: Path, tmp_path: Path
) -> None:
    db = _copy(shop, tmp_path)
    doc = tmp_path / "groups.yaml"
    doc.write_text(
        LIFECYCLE
        + "---\ngroup: offers\nsegments: [win_back, loyal]\n"
        + "---\ngroup: typo\nsegments: [loyl]\n"
    )
    res = runner.invoke(app, ["groups", "apply", str(doc), "--db", db])
    assert res.exit_code == 2
    assert "'loyal' is in two groups: 'lifecycle' and 'offers'" in res.output
    assert "unknown segment 'loyl' (did you mean 'loyal'?)" in res.output
    res = runner.invoke(app, ["groups", "list", "--db", db])
    assert "lifecycle" not in res.output


def test_export_leaves_out_a_segments_holdout_unless_asked(shop: Path, tmp_path: Path) -> None:
    db = _copy(shop, tmp_path)
    doc = tmp_path / "carts.yaml"
    doc.write_text("group: carts\nsegments: [cart_abandoners_24h, returning_customers]\n")
    assert runner.invoke(app, ["groups", "apply", str(doc), "--db", db]).exit_code == 0
    base = ["groups", "export", "carts", "--at", AT, "--db", db]
    some, every = tmp_path / "some.csv", tmp_path / "every.csv"
    assert runner.invoke(app, [*base, "-o", str(some)]).exit_code == 0
    res = runner.invoke(app, [*base, "-o", str(every), "--include-held-out"])
    assert res.exit_code == 0, res.output
    kept = {r["profile_id"] for r in csv.DictReader(some.open())}
    rows = list(csv.DictReader(every.open()))
    held = {r["profile_id"] for r in rows if r["held_out"] == "true"}
    assert held and all(
        r["segment"] == "cart_abandoners_24h" for r in rows if r["held_out"] == "true"
    )
    assert kept == {r["profile_id"] for r in rows} - held
