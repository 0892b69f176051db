"""``segflow analytics ...`` on the generated shop with the segment library: tables, the
JSON reports agreeing with ``members`` (overlap counts are set intersections), and
usage errors naming the option."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from segflow.cli import app
from segflow.demo.generator import DEFAULT_END

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "SEGFLOW_DB": None})
AT = DEFAULT_END.isoformat() + "Z"
SEGMENTS = ["returning_customers", "vip_customers", "everyone"]


def _members(db: Path, sid: str) -> set[str]:
    res = runner.invoke(app, ["members", sid, "--at", AT, "--format", "json", "--db", str(db)])
    assert res.exit_code == 0, res.output
    return set(json.loads(res.stdout))


def _json(db: Path, *args: str) -> dict[str, object]:
    res = runner.invoke(app, ["analytics", *args, "--json", "--db", str(db)])
    assert res.exit_code == 0, res.output
    report: dict[str, object] = json.loads(res.stdout)
    return report


def test_overlap_counts_are_set_intersections_of_members(shop: Path) -> None:
    report = _json(shop, "overlap", *SEGMENTS, "--at", AT)
    members = [_members(shop, s) for s in SEGMENTS]
    assert report["intersections"] == [[len(a & b) for b in members] for a in members]
    everyone = members[2]
    exclusive = [len(members[0] - members[1] - everyone), len(members[1] - members[0] - everyone)]
    assert report["exclusive"][:2] == exclusive  # type: ignore[index]

    res = runner.invoke(app, ["analytics", "overlap", *SEGMENTS, "--at", AT, "--db", str(shop)])
    assert res.exit_code == 0, res.output
    assert "top combinations" in res.stdout and "returning_customers" in res.stdout
    assert "contained" in res.output  # returning_customers and vip_customers are inside everyone


def test_metrics_of_the_library(shop: Path) -> None:
    report = _json(shop, "metrics", "--to", AT, "--bucket", "week")
    segments = report["segments"]
    assert isinstance(segments, list) and len(segments) > 20
    by_id = {s["segment"]: s for s in segments}
    assert by_id["everyone"]["size"] == report["n_profiles"]
    assert by_id["returning_customers"]["size"] == len(_members(shop, "returning_customers"))
    assert by_id["everyone"]["revenue"] == report["everyone"]["revenue"]  # type: ignore[index]
    assert len(by_id["everyone"]["series"]) == 5  # 30 days in weeks from the start

    res = runner.invoke(
        app, ["analytics", "metrics", *SEGMENTS, "--at", AT, "--series", "--db", str(shop)]
    )
    assert res.exit_code == 0, res.output
    assert "(everyone)" in res.stdout and "revenue/member" in res.stdout
    assert "per day" in res.stdout


def test_transitions_between_two_instants(shop: Path) -> None:
    group = ["returning_customers", "vip_customers"]
    report = _json(shop, "transitions", *group, "--from", "2026-10-01T00:00:00Z", "--to", AT)
    counts = report["counts"]
    assert isinstance(counts, list) and len(counts) == 3
    assert report["at_b"][:2] == [  # type: ignore[index]
        len(_members(shop, "returning_customers")),
        len(_members(shop, "vip_customers") - _members(shop, "returning_customers")),
    ]
    res = runner.invoke(app, ["analytics", "transitions", *group, "--to", AT, "--db", str(shop)])
    assert res.exit_code == 0, res.output
    assert "(outside)" in res.stdout and "stayed" in res.output
    weekly = _json(shop, "transitions", *group, "--from", "2026-10-01T00:00:00Z", "--to", AT,
                   "--every", "week")  # fmt: skip
    assert weekly["every"] == "week" and weekly["counts"] == counts
    periods = weekly["periods"]
    assert isinstance(periods, list) and periods[-1]["to"] == weekly["to"]


def test_usage_errors_name_the_option(shop: Path) -> None:
    db = ["--db", str(shop)]
    res = runner.invoke(app, ["analytics", "metrics", "--to", "2999-01-01T00:00:00Z", *db])
    assert res.exit_code == 2 and "--to" in res.output and "future" in res.output
    res = runner.invoke(app, ["analytics", "metrics", "--from", AT, "--to", "2026-10-01", *db])
    assert res.exit_code == 2 and "--from" in res.output
    res = runner.invoke(app, ["analytics", "overlap", "--at", "soon", *db])
    assert res.exit_code == 2 and "--at" in res.output
    res = runner.invoke(app, ["analytics", "overlap", "everyone", "nope", *db])
    assert res.exit_code == 2 and "unknown segment 'nope'" in res.output
    res = runner.invoke(app, ["analytics", "transitions", "everyone", "everyone", *db])
    assert res.exit_code == 2 and "named more than once" in res.output
    res = runner.invoke(app, ["analytics", "transitions", "everyone", "--every", "month", *db])
    assert res.exit_code == 2 and "every" in res.output
