"""The CLI end to end on a small generated shop: the commands a user types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segflow.cli import app
from segflow.demo.generator import generate_shop, write_jsonl

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
AT = "2026-11-01T00:00:00Z"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A loaded store with the segment library applied."""
    root = tmp_path_factory.mktemp("shop")
    summary = generate_shop(root / "data", customers=400, seed=3)
    db = root / "shop.duckdb"
    res = runner.invoke(app, ["ingest", *map(str, summary.paths), "--db", str(db)])
    assert res.exit_code == 0, res.output
    lib = Path(__file__).resolve().parents[3] / "src" / "segflow" / "demo" / "segments"
    res = runner.invoke(app, ["segments", "apply", str(lib), "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert "created" in res.output
    return db


def test_apply_is_idempotent_and_lists_segments(shop: Path) -> None:
    lib = Path(__file__).resolve().parents[3] / "src" / "segflow" / "demo" / "segments"
    res = runner.invoke(app, ["segments", "apply", str(lib), "--db", str(shop)])
    assert res.exit_code == 0 and "created" not in res.output and "unchanged" in res.output
    res = runner.invoke(app, ["segments", "list", "--db", str(shop)])
    assert "cart_abandoners_24h" in res.output


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


def test_unknown_segment_and_bad_instant(shop: Path) -> None:
    res = runner.invoke(app, ["members", "nope", "--db", str(shop)])
    assert res.exit_code == 2 and "unknown segment" in res.output
    res = runner.invoke(app, ["eval", "--at", "yesterday", "--db", str(shop)])
    assert res.exit_code != 0 and "ISO 8601" in res.output


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


def test_demo_runs_without_serving(tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "demo",
            "--customers",
            "300",
            "--no-serve",
            "--data-dir",
            str(tmp_path),
            "--db",
            str(tmp_path / "d.duckdb"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "luxury_cart_abandoners" in res.output and "everyone" in res.output


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
