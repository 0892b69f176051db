"""``segflow segments ...``: apply (idempotent, ``--dry-run``, ``--at``), validate
(every problem at once), list, show, delete and import."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from segflow.cli import app
from segflow.demo import SEGMENTS_DIR

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "SEGFLOW_DB": None})
AT = "2026-11-01T00:00:00Z"


def test_apply_is_idempotent_and_lists_segments(shop: Path) -> None:
    res = runner.invoke(app, ["segments", "apply", str(SEGMENTS_DIR), "--db", str(shop)])
    assert res.exit_code == 0 and "created" not in res.output and "unchanged" in res.output
    res = runner.invoke(app, ["segments", "list", "--db", str(shop)])
    assert "cart_abandoners_24h" in res.output


def test_show_prints_canonical_yaml(shop: Path) -> None:
    res = runner.invoke(app, ["segments", "show", "luxury_cart_abandoners", "--db", str(shop)])
    assert res.exit_code == 0
    assert "not_followed_by" in res.output and "version: 1" in res.output


def test_invalid_definition_is_rejected_with_its_path(shop: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: broken\ncondition:\n  all:\n    - {event: X, within: 7x}\n")
    res = runner.invoke(app, ["segments", "validate", str(bad), "--db", str(shop)])
    assert res.exit_code == 2
    assert "condition.all[0].within" in res.output and "7x" in res.output


def test_cycle_is_rejected_with_the_cycle(shop: Path, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("id: cyc_a\ncondition: {in_segment: cyc_b}\n")
    (tmp_path / "b.yaml").write_text("id: cyc_b\ncondition: {not: {in_segment: cyc_a}}\n")
    res = runner.invoke(app, ["segments", "apply", str(tmp_path), "--db", str(shop)])
    assert res.exit_code == 2
    assert "cyc_a -> cyc_b -> cyc_a" in res.output
    res = runner.invoke(app, ["segments", "show", "cyc_a", "--db", str(shop)])
    assert res.exit_code == 2  # nothing was saved


def test_static_import_and_in_segment(shop: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.csv"
    res = runner.invoke(app, ["members", "returning_customers", "--at", AT, "--db", str(shop)])
    chosen = res.output.strip().splitlines()[1:4]
    ids.write_text("profile_id\n" + "\n".join(chosen) + "\n")
    res = runner.invoke(app, ["segments", "import", "vip_list", str(ids), "--db", str(shop)])
    assert res.exit_code == 0 and "3 members" in res.output
    seg = tmp_path / "vip.yaml"
    seg.write_text(
        "id: vip_returning\n"
        "condition: {all: [{in_segment: vip_list}, {in_segment: returning_customers}]}\n"
    )
    assert runner.invoke(app, ["segments", "apply", str(seg), "--db", str(shop)]).exit_code == 0
    res = runner.invoke(
        app, ["members", "vip_returning", "--at", AT, "--format", "json", "--db", str(shop)]
    )
    assert sorted(json.loads(res.output)) == sorted(chosen)


def test_protected_segment_refuses_deletion(shop: Path, tmp_path: Path) -> None:
    seg = tmp_path / "p.yaml"
    seg.write_text("id: keep_me\nprotected: true\ncondition: {all: []}\n")
    assert runner.invoke(app, ["segments", "apply", str(seg), "--db", str(shop)]).exit_code == 0
    res = runner.invoke(app, ["segments", "delete", "keep_me", "--db", str(shop)])
    assert res.exit_code == 2 and "protected" in res.output


def test_validate_lists_every_problem_and_warns_of_unseen_names(shop: Path, tmp_path: Path) -> None:
    doc = tmp_path / "typos.yaml"
    doc.write_text(
        "id: typos\ncondition:\n  all:\n    - {event: Order Complete}\n"
        "    - {trait: countyr, eq: PL}\n"
    )
    res = runner.invoke(app, ["segments", "validate", str(doc), "--db", str(shop)])
    assert res.exit_code == 0, res.output
    assert "typos.yaml: condition.all[0].event" in res.output
    assert "closest: Order Completed" in res.output and "country" in res.output
    wide = ", ".join(f"{{event: E{i}}}" for i in range(300))
    doc.write_text(
        f"id: bad\npriority: 1\ncondition:\n  all:\n    - {{in_segment: lyal}}\n"
        f"    - {{event: X, within: 7x}}\n    - {{any: [{wide}]}}\n"
    )
    res = runner.invoke(app, ["segments", "validate", str(doc), "--db", str(shop)])
    assert res.exit_code == 2
    for text in ("priority", "condition.all[0].in_segment", "did you mean 'loyal'?",
                 "condition.all[1].within", "limit max_leaves"):  # fmt: skip
        assert text in res.output, text


def test_import_counts_known_profiles_and_lists_unknown_ids(store: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.csv"
    ids.write_text("profile_id\nu1\nghost\nu2\n")
    res = runner.invoke(app, ["segments", "import", "vips", str(ids), "--db", str(store)])
    assert res.exit_code == 0, res.output
    assert "vips: 2 members" in res.output
    assert "1 unknown id(s)" in res.output and "ghost" in res.output
    res = runner.invoke(app, ["members", "vips", "--format", "json", "--db", str(store)])
    assert json.loads(res.stdout) == ["u1", "u2"]


def test_apply_at_previews_moves_as_of_that_instant(
    store: Path, apply_text: Callable[..., str]
) -> None:
    text = "id: recent\ncondition: {event: Product Viewed, within: 1d}\n"
    then = apply_text(store, text, "--dry-run", "--at", "2026-11-01T12:00:00Z")
    assert "u1, u2" in then
    now = apply_text(store, text, "--dry-run")
    assert "u1, u2" not in now


def test_apply_dry_run_shows_the_diff_and_saves_nothing(live_shop: Path, tmp_path: Path) -> None:
    edited = tmp_path / "edit.yaml"
    edited.write_text(
        "id: first_time_purchasers_30d\nname: Recent buyers\n"
        "condition: {event: Order Completed, within: 1d}\n",
        encoding="utf-8",
    )
    db = str(live_shop)
    res = runner.invoke(app, ["segments", "apply", str(edited), "--db", db, "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "if saved now" in res.output and "first_time_purchasers_30d" in res.output
    assert "updated" not in res.output
    res = runner.invoke(app, ["segments", "show", "first_time_purchasers_30d", "--db", db])
    assert "30d" in res.output or "30 d" in res.output or "720h" in res.output


def test_apply_dry_run_prints_the_estimate_under_the_diff(
    store: Path, apply_text: Callable[..., str]
) -> None:
    apply_text(store, "id: pl\ncondition: {trait: country, eq: PL}\n")
    text = (
        "id: pl_viewers\ncondition:\n  all:\n    - {trait: country, eq: PL}\n"
        "    - {event: Product Viewed}\n"
    )
    shown = apply_text(store, text, "--dry-run", "--at", "2026-11-02T00:00:00Z")
    assert shown.index("if saved now") < shown.index("estimate for pl_viewers")
    lines = shown.splitlines()
    trait = next(line for line in lines if "trait country" in line)
    assert "pl" in trait.split() and "new" not in trait
    viewed = next(line for line in lines if "count of Product Viewed" in line)
    assert "new" in viewed and "2 events (Product Viewed)" in viewed
    assert "size 1 of 2 profiles (50.0%)" in shown and "library evaluation" in shown
    res = runner.invoke(app, ["segments", "list", "--db", str(store)])
    assert "pl_viewers" not in res.output


def test_experiment_reports_or_refuses(store: Path, apply_text: Callable[..., str]) -> None:
    apply_text(
        store,
        "id: viewers\ncondition: {event: Product Viewed}\nholdout: {percent: 50}\n---\n"
        "id: plain\ncondition: {event: Product Viewed}\n",
    )
    args = ["--from", "2026-11-02T00:00:00Z", "--to", "2026-11-03T00:00:00Z", "--db", str(store)]
    res = runner.invoke(app, ["segments", "experiment", "viewers", *args, "--mde", "0.1"])
    assert res.exit_code == 0, res.output
    assert "conversion from 2026-11-02" in res.output
    assert "verdict        insufficient data (no member converted in either arm)" in res.output
    assert "for mde 0.1" in res.output
    assert "cohort         2 (2 members at the start, 0 joined" in res.output
    res = runner.invoke(
        app, ["segments", "experiment", "viewers", "--goal", "orders_per_member", "--json", *args]
    )
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert body["cohort"] == 2 and body["goal"] == "orders_per_member"
    assert body["report"]["treatment"]["n"] + body["report"]["holdout"]["n"] == 2
    res = runner.invoke(app, ["segments", "experiment", "plain", *args])
    assert res.exit_code != 0 and "has no holdout" in res.output
    res = runner.invoke(app, ["segments", "experiment", "viewers", "--goal", "clicks", *args])
    assert res.exit_code != 0 and "conversion, revenue_per_member" in res.output
    res = runner.invoke(app, ["segments", "experiment", "nope", "--db", str(store)])
    assert res.exit_code != 0 and "unknown segment" in res.output
