"""The experiment cohort: members at the start and joiners, each measured from its
entry and held out by the holdout of the version it entered under, on a hand-built
store whose every number is worked out below.

Versions of ``signups`` (condition: a ``Signed Up`` event): v1 saved 10-01, holdout 60 %
salt ``a``; v2 saved 11-04, no holdout; v3 saved 11-07, holdout 40 % salt ``b``.  Buckets
(``bucket_of``): salt a: p1 51.16, p2 8.01, p3 73.54, p7 67.89; salt b: p1 84.8, p2
77.53, p3 58.32, p5 29.69, p7 23.92.  Period 11-01 to 11-11.

Per profile: signed up (logged under version) -> place in the cohort, arm, orders counted.

- p1: 10-10 (v1) -> member at the start, holdout (a: 51.16 < 60); 11-02 (10), not 10-25
- p2: 10-10 (v1) -> member at the start, holdout (a: 8.01); no order
- p7: 10-20 (not logged) -> member at the start under v1, in force at 11-01; treatment
  (a: 67.89); 11-10 (20)
- p3: 11-03 (v1), left 11-04, back 11-06 12:00 (v2) -> joiner, first entry 11-03 under
  v1; treatment (a: 73.54); 11-06 (30), not the order at its entry instant
- p4: 11-05 (v2) -> joiner under v2, which had no holdout: left out
- p5: 11-08 (v3) -> joiner under v3, holdout (b: 29.69 < 40); 11-09 (50), not 11-07
  (before its entry)
- p6: 11-12 (v3) -> after the period: not in the cohort

By the current version (v3, salt b) p1, p2 would be treated and p7 held out: the
report must not use it for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from segflow.analytics.experiments import Proportion, compare_means, compare_rates
from segflow.model.changes import LoggedChange, Reason
from segflow.model.definition import parse_segment
from segflow.service.experiments import experiment
from segflow.service.handle import Segflow

SINCE, UNTIL = datetime(2026, 11, 1), datetime(2026, 11, 11)


def _event(pid: str, n: int, at: str, name: str, **props: object) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": pid,
        "event": name,
        "messageId": f"{pid}-{n}",
        "timestamp": at + "Z",
        "properties": props,
    }


EVENTS = [
    _event("p1", 0, "2026-10-10T00:00:00", "Signed Up"),
    _event("p1", 1, "2026-10-25T00:00:00", "Order Completed", revenue=99),
    _event("p1", 2, "2026-11-02T00:00:00", "Order Completed", revenue=10),
    _event("p2", 0, "2026-10-10T00:00:00", "Signed Up"),
    _event("p7", 0, "2026-10-20T00:00:00", "Signed Up"),
    _event("p7", 1, "2026-11-10T00:00:00", "Order Completed", revenue=20),
    _event("p3", 0, "2026-11-03T00:00:00", "Signed Up"),
    _event("p3", 1, "2026-11-03T00:00:00", "Order Completed", revenue=500),
    _event("p3", 2, "2026-11-06T00:00:00", "Order Completed", revenue=30),
    _event("p4", 0, "2026-11-05T00:00:00", "Signed Up"),
    _event("p4", 1, "2026-11-06T00:00:00", "Order Completed", revenue=70),
    _event("p5", 0, "2026-11-08T00:00:00", "Signed Up"),
    _event("p5", 1, "2026-11-07T00:00:00", "Order Completed", revenue=80),
    _event("p5", 2, "2026-11-09T00:00:00", "Order Completed", revenue=50),
    _event("p6", 0, "2026-11-12T00:00:00", "Signed Up"),
    _event("p6", 1, "2026-11-12T01:00:00", "Order Completed", revenue=60),
]


def _change(pid: str, entered: bool, at: str, version: int) -> LoggedChange:
    return LoggedChange("signups", pid, entered, datetime.fromisoformat(at), Reason.EVENT, version)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Segflow]:
    root: Path = tmp_path_factory.mktemp("cohort")
    (root / "e.jsonl").write_text("\n".join(json.dumps(e) for e in EVENTS) + "\n")
    app = Segflow(root / "s.duckdb")
    app.ingest([root / "e.jsonl"])
    base: dict[str, Any] = {"id": "signups", "condition": {"event": "Signed Up"}}
    for holdout in ({"percent": 60, "salt": "a"}, None, {"percent": 40, "salt": "b"}):
        app.registry.save([parse_segment({**base, **({"holdout": holdout} if holdout else {})})])
    for version, saved in ((1, "2026-10-01"), (2, "2026-11-04"), (3, "2026-11-07")):
        app.store.con.execute(
            "UPDATE segment_definitions SET saved_at = ? WHERE segment_id = 'signups'"
            " AND version = ?",
            [datetime.fromisoformat(saved), version],
        )
    app.changes.append(
        [
            _change("p1", True, "2026-10-10T00:00:00", 1),
            _change("p2", True, "2026-10-10T00:00:00", 1),
            _change("p3", True, "2026-11-03T00:00:00", 1),
            _change("p3", False, "2026-11-04T00:00:00", 1),
            _change("p3", True, "2026-11-06T12:00:00", 2),
            _change("p4", True, "2026-11-05T00:00:00", 2),
            _change("p5", True, "2026-11-08T00:00:00", 3),
            _change("p6", True, "2026-11-12T00:00:00", 3),
        ]
    )
    try:
        yield app
    finally:
        app.close()


def test_the_cohort_counts_joiners_by_the_version_they_entered_under(shop: Segflow) -> None:
    res = experiment(shop, "signups", "conversion", since=SINCE, until=UNTIL)
    assert res["version"] == 3
    assert (res["at_start"], res["joiners"], res["without_holdout"]) == (3, 3, 1)
    assert res["cohort"] == 5
    assert res["holdouts"] == {
        "1": {"percent": 60, "salt": "a"},
        "2": None,
        "3": {"percent": 40, "salt": "b"},
    }
    # treatment p3, p7 (both bought); holdout p1 (bought), p2, p5 (bought)
    assert res["report"] == compare_rates(Proportion(2, 2), Proportion(2, 3)).as_dict()


def test_each_member_is_measured_from_its_entry(shop: Segflow) -> None:
    res = experiment(shop, "signups", "revenue_per_member", since=SINCE, until=UNTIL)
    assert res["report"] == compare_means([30.0, 20.0], [10.0, 0.0, 50.0]).as_dict()
    assert res["report"]["treatment"]["value"] == 25.0
    assert res["report"]["holdout"]["value"] == 20.0
    orders = experiment(shop, "signups", "orders_per_member", since=SINCE, until=UNTIL)
    assert orders["report"] == compare_means([1.0, 1.0], [1.0, 0.0, 1.0]).as_dict()


def test_a_period_before_any_joiner_has_only_the_members_at_its_start(shop: Segflow) -> None:
    res = experiment(shop, "signups", "orders_per_member", since=SINCE, until=datetime(2026, 11, 3))
    # p3 enters at 11-03, the period's (excluded) end: nobody joins
    assert (res["at_start"], res["joiners"], res["cohort"]) == (3, 0, 3)
    # p7 treated (no order by 11-03); p1 (11-02) and p2 held out
    assert res["report"] == compare_means([0.0], [1.0, 0.0]).as_dict()
