"""Experiment reports on a hand-built store whose arms' outcomes are known, checked
against the statistics run on the same counts; and exports honouring the holdout."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pytest

from segflow.analytics.experiments import (
    MeanStats,
    Proportion,
    compare_mean_stats,
    compare_means,
    compare_rates,
    sample_size_rates,
)
from segflow.model.bucket import bucket_of
from segflow.model.time import format_instant
from segflow.service.experiments import NoHoldout, experiment
from segflow.service.handle import Segflow
from segflow.service.segments import export_to

IDS = [f"p{i:03d}" for i in range(300)]
SALT = "exp"
PERCENT = 30
SINCE, UNTIL = datetime(2026, 11, 1), datetime(2026, 11, 11)
HELD = {p for p in IDS if bucket_of(p, SALT) < PERCENT}


def _buys(i: int) -> int:
    """Orders of profile ``i`` in the period: treatment members buy more often."""
    held = IDS[i] in HELD
    return (1 if i % 5 == 0 else 0) if held else (2 if i % 3 == 0 else 0)


def _msg(pid: str, n: int, ts: str, event: str, **props: object) -> str:
    return json.dumps(
        {
            "type": "track",
            "userId": pid,
            "event": event,
            "messageId": f"{pid}-{n}",
            "timestamp": ts,
            "properties": props,
        }
    )


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Segflow:
    root = tmp_path_factory.mktemp("exp")
    lines = []
    for i, pid in enumerate(IDS):
        lines.append(_msg(pid, 0, "2026-10-01T00:00:00Z", "Signed Up"))
        for k in range(_buys(i)):
            lines.append(_msg(pid, 10 + k, "2026-11-05T12:00:00Z", "Order Completed", revenue=i))
        # outside the period: never counted
        lines.append(_msg(pid, 1, "2026-10-20T00:00:00Z", "Order Completed", revenue=1000))
        lines.append(_msg(pid, 2, "2026-11-11T00:00:00Z", "Order Completed", revenue=1000))
    # signs up after the period starts: not in the cohort
    lines.append(_msg("late", 0, "2026-11-03T00:00:00Z", "Signed Up"))
    lines.append(_msg("late", 1, "2026-11-04T00:00:00Z", "Order Completed", revenue=5))
    (root / "events.jsonl").write_text("\n".join(lines) + "\n")
    (root / "segs").mkdir()
    (root / "segs" / "s.yaml").write_text(
        "id: signed_up\ncondition: {event: Signed Up}\n"
        f"holdout: {{percent: {PERCENT}, salt: {SALT}}}\n"
        "---\nid: plain\ncondition: {event: Signed Up}\n"
    )
    app = Segflow(root / "s.duckdb")
    app.ingest([root / "events.jsonl"])
    app.apply(root / "segs")
    return app


def test_conversion_matches_the_z_test_on_the_same_counts(shop: Segflow) -> None:
    res = experiment(shop, "signed_up", "conversion", since=SINCE, until=UNTIL, mde=0.05)
    treated = [i for i, p in enumerate(IDS) if p not in HELD]
    held = [i for i, p in enumerate(IDS) if p in HELD]
    t = Proportion(sum(1 for i in treated if _buys(i)), len(treated))
    h = Proportion(sum(1 for i in held if _buys(i)), len(held))
    assert 60 < h.n < 120  # about 30 % of 300
    assert res["cohort"] == len(IDS)
    assert res["report"] == compare_rates(t, h).as_dict()
    assert res["report"]["verdict"] == "significant"
    need = sample_size_rates(h.successes / h.n, 0.05, ratio=70 / 30)
    assert (res["mde"]["treatment"], res["mde"]["holdout"]) == (need.treatment, need.holdout)
    assert (res["from"], res["to"]) == (format_instant(SINCE), format_instant(UNTIL))
    assert res["holdout"] == {"percent": PERCENT, "salt": SALT}


@pytest.mark.parametrize("goal", ["revenue_per_member", "orders_per_member"])
def test_means_match_welch_on_the_members_values(shop: Segflow, goal: str) -> None:
    res = experiment(shop, "signed_up", goal, since=SINCE, until=UNTIL)  # type: ignore[arg-type]

    def value(i: int) -> float:
        return float(_buys(i) * i if goal == "revenue_per_member" else _buys(i))

    t = [value(i) for i, p in enumerate(IDS) if p not in HELD]
    h = [value(i) for i, p in enumerate(IDS) if p in HELD]
    expected = compare_means(t, h).as_dict()
    got = res["report"]
    assert got["verdict"] == expected["verdict"]
    for key in ("absolute_lift", "relative_lift", "p_value", "statistic", "df"):
        assert got[key] == pytest.approx(expected[key], rel=1e-9), key
    assert got["ci"]["low"] == pytest.approx(expected["ci"]["low"], rel=1e-9)
    assert compare_mean_stats(MeanStats.of(t), MeanStats.of(h)).treatment.n == len(t)


def test_a_period_without_orders_is_insufficient_data(shop: Segflow) -> None:
    res = experiment(shop, "signed_up", since=datetime(2026, 10, 2), until=datetime(2026, 10, 3))
    assert res["report"]["verdict"] == "insufficient data"
    assert res["report"]["reason"] == "no member converted in either arm"


def test_bad_requests_are_clear(shop: Segflow) -> None:
    with pytest.raises(NoHoldout, match="'plain' has no holdout"):
        experiment(shop, "plain")
    with pytest.raises(KeyError, match="unknown segment"):
        experiment(shop, "nope")
    with pytest.raises(ValueError, match="unknown goal"):
        experiment(shop, "signed_up", "clicks")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="in the future"):
        experiment(shop, "signed_up", until=datetime(2999, 1, 1))
    with pytest.raises(ValueError, match="must start before it ends"):
        experiment(shop, "signed_up", since=UNTIL, until=SINCE)
    with pytest.raises(ValueError, match="mde must be a positive"):
        experiment(shop, "signed_up", mde=0)


def test_the_default_period_starts_when_the_version_was_saved(shop: Segflow) -> None:
    res = experiment(shop, "signed_up")
    ((_, saved, _),) = shop.registry.history("signed_up")
    assert res["from"] == format_instant(saved)


def test_export_leaves_the_holdout_out_unless_asked(shop: Segflow, tmp_path: Path) -> None:
    out = tmp_path / "m.csv"
    n = export_to(shop, None, "signed_up", out, SINCE)
    rows = list(csv.DictReader(out.open()))
    assert n == len(rows) == len(IDS) - len(HELD)
    assert {r["profile_id"] for r in rows} == set(IDS) - HELD
    assert "held_out" not in rows[0]
    n = export_to(shop, None, "signed_up", out, SINCE, include_held_out=True)
    rows = list(csv.DictReader(out.open()))
    assert n == len(rows) == len(IDS)
    assert {r["profile_id"] for r in rows if r["held_out"] == "true"} == HELD
    # a segment without a holdout exports everyone, unmarked
    export_to(shop, None, "plain", out, SINCE)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(IDS) and "held_out" not in rows[0]
