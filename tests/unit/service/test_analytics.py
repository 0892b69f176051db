"""Segment analytics from a small hand-built store where every number is worked out by
hand: six profiles, known orders, page views, emails and score traits, a change log for
two segments, and a batch evaluation for a third.

Period: 2026-11-01 to 2026-11-08 (``from < t <= to``).  As of 2026-11-08, ``gold``
(plan gold) is {u1, u2} (u5 becomes gold on 11-10, u4 on 11-11), ``silver`` {u3, u4},
``buyers`` (an order ever) {u1, u2, u4}, ``nobody`` (plan platinum) is empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from segflow.analytics.overlap import Thresholds
from segflow.model.changes import LoggedChange, Reason
from segflow.model.definition import parse_segment
from segflow.service.analytics import BadRequest, metrics, overlap_report, transitions_report
from segflow.service.handle import Segflow

FROM = datetime(2026, 11, 1)
TO = datetime(2026, 11, 8)
LATER = datetime(2026, 11, 12)
NOW = datetime(2026, 12, 1)
DAY_US = 86_400_000_000


def _msg(user: str, n: int, ts: str, kind: str = "track", **body: Any) -> dict[str, Any]:
    return {"type": kind, "userId": user, "messageId": f"{user}-{n}", "timestamp": ts, **body}


def _order(user: str, n: int, ts: str, revenue: float) -> dict[str, Any]:
    return _msg(user, n, ts, event="Order Completed", properties={"revenue": revenue})


def _traits(user: str, n: int, ts: str, **traits: Any) -> dict[str, Any]:
    return _msg(user, n, ts, "identify", traits=traits)


MESSAGES = [
    _traits("u1", 0, "2026-10-01T00:00:00Z", plan="gold", clv_12m=200.0, churn_risk=0.1),
    _traits("u1", 1, "2026-11-10T00:00:00Z", clv_12m=300.0),  # after the period
    _msg("u1", 2, "2026-11-02T09:50:00Z", "page", name="Home"),
    _order("u1", 3, "2026-11-02T10:00:00Z", 100.0),  # same session as the page view
    _order("u1", 4, "2026-11-05T10:00:00Z", 50.0),
    _traits("u2", 0, "2026-10-01T00:00:00Z", plan="gold"),
    _order("u2", 1, "2026-10-15T12:00:00Z", 20.0),  # before the period
    _order("u2", 2, "2026-11-03T12:00:00Z", 30.0),
    _traits("u3", 0, "2026-10-01T00:00:00Z", plan="silver", clv_12m=50.0, churn_risk=0.5),
    _msg("u3", 1, "2026-11-04T08:00:00Z", "page", name="Home"),
    _msg("u3", 2, "2026-11-04T09:00:00Z", "page", name="Sale"),  # 60 min later: a new session
    _traits("u4", 0, "2026-10-01T00:00:00Z", plan="silver"),
    _traits("u4", 1, "2026-11-11T00:00:00Z", plan="gold"),
    _order("u4", 2, "2026-11-06T10:00:00Z", 60.0),
    _msg("u4", 3, "2026-11-02T08:00:00Z", event="Email Delivered"),
    _msg("u4", 4, "2026-11-02T09:00:00Z", event="Email Opened"),
    _traits("u5", 0, "2026-11-10T00:00:00Z", plan="gold"),
    _msg("u5", 1, "2026-11-03T08:00:00Z", event="Email Delivered"),
    _msg("u5", 2, "2026-11-03T08:00:01Z", event="Email Delivered"),
    _msg("u5", 3, "2026-11-03T09:00:00Z", event="Email Link Clicked"),
    _msg("u6", 0, "2026-11-01T05:00:00Z", event="Product Viewed"),
]

SEGMENTS = {
    "gold": {"trait": "plan", "eq": "gold"},
    "silver": {"trait": "plan", "eq": "silver"},
    "nobody": {"trait": "plan", "eq": "platinum"},
    "buyers": {"event": "Order Completed"},
}


def _change(sid: str, pid: str, entered: bool, at: str) -> LoggedChange:
    return LoggedChange(sid, pid, entered, datetime.fromisoformat(at), Reason.EVENT, 1)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Segflow]:
    root = tmp_path_factory.mktemp("analytics")
    path = root / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(m) for m in MESSAGES) + b"\n")
    sf = Segflow(root / "s.duckdb")
    sf.ingest([path])
    sf.registry.save(
        [parse_segment({"id": k, "name": k, "condition": c}) for k, c in SEGMENTS.items()]
    )
    sf.changes.append(
        [
            _change("gold", "u1", True, "2026-10-01T00:00:00"),
            _change("gold", "u2", True, "2026-11-02T12:00:00"),
            _change("gold", "u3", True, "2026-11-03T12:00:00"),
            _change("gold", "u3", False, "2026-11-05T12:00:00"),
            _change("gold", "u5", True, "2026-11-10T00:00:00"),
            _change("gold", "u4", True, "2026-11-11T00:00:00"),
            _change("silver", "u3", True, "2026-10-01T00:00:00"),
            _change("silver", "u4", True, "2026-10-02T00:00:00"),
        ]
    )
    sf.evaluate(datetime(2026, 11, 3), ["nobody"])  # a size for the series of "nobody"
    try:
        yield sf
    finally:
        sf.close()


def _by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["segment"]: s for s in report["segments"]}


def _cmp(value: float | None, base: float | None, index: float | None) -> dict[str, Any]:
    return {"value": value, "base": base, "index": index}


def test_metrics_over_a_period(app: Segflow) -> None:
    report = metrics(app, ["gold", "silver", "nobody"], FROM, TO, now=NOW)
    assert (report["from"], report["to"], report["n_profiles"]) == (
        "2026-11-01T00:00:00.000000Z", "2026-11-08T00:00:00.000000Z", 6,
    )  # fmt: skip
    everyone = report["everyone"]
    # orders in the period: u1 2 (150), u2 1 (30), u4 1 (60); buyers u1, u2, u4; repeat u1
    assert (everyone["size"], everyone["orders"], everyone["revenue"]) == (6, 4, 240.0)
    assert (everyone["buyers"], everyone["repeat_buyers"]) == (3, 1)
    assert everyone["conversion_rate"]["value"] == pytest.approx(0.5)
    assert everyone["aov"]["value"] == pytest.approx(60.0)
    # sessions: u1 2, u2 1, u3 2, u4 1, u6 1 (email events are no visit); page views 3
    assert everyone["sessions_per_member"]["value"] == pytest.approx(7 / 6)
    assert everyone["page_views_per_member"]["value"] == pytest.approx(0.5)
    # emails: delivered 3 (u4 1, u5 2), opened 1, clicked 1
    assert everyone["open_rate"]["value"] == pytest.approx(1 / 3)
    assert everyone["click_rate"]["value"] == pytest.approx(1 / 3)
    # scores as of the period end: u1 200 / 0.1, u3 50 / 0.5
    assert everyone["average_clv"]["value"] == pytest.approx(125.0)
    assert everyone["average_churn_risk"]["value"] == pytest.approx(0.3)

    seg = _by_id(report)
    gold = seg["gold"]
    assert (gold["size"], gold["orders"], gold["revenue"], gold["buyers"]) == (2, 3, 180.0, 2)
    assert gold["share"] == pytest.approx(1 / 3)
    assert gold["conversion_rate"] == _cmp(1.0, 0.5, 2.0)
    assert gold["repeat_purchase_rate"] == pytest.approx(_cmp(0.5, 1 / 3, 1.5))
    assert gold["aov"] == _cmp(60.0, 60.0, 1.0)
    assert gold["revenue_per_member"] == _cmp(90.0, 40.0, 2.25)
    assert gold["sessions_per_member"] == pytest.approx(_cmp(1.5, 7 / 6, 1.5 * 6 / 7))
    assert gold["open_rate"] == _cmp(None, pytest.approx(1 / 3), None)  # none delivered
    assert gold["average_clv"] == _cmp(200.0, 125.0, 1.6)  # u2 has no score
    assert gold["average_churn_risk"] == pytest.approx(_cmp(0.1, 0.3, 1 / 3))

    silver = seg["silver"]
    assert (silver["size"], silver["orders"], silver["revenue"]) == (2, 1, 60.0)
    assert silver["repeat_purchase_rate"]["value"] == 0.0
    assert silver["revenue_per_member"] == _cmp(30.0, 40.0, 0.75)
    assert silver["page_views_per_member"] == _cmp(1.0, 0.5, 2.0)
    assert silver["open_rate"] == pytest.approx(_cmp(1.0, 1 / 3, 3.0))
    assert silver["click_rate"] == pytest.approx(_cmp(0.0, 1 / 3, 0.0))
    assert silver["average_clv"] == _cmp(50.0, 125.0, 0.4)

    nobody = seg["nobody"]
    assert (nobody["size"], nobody["share"], nobody["orders"]) == (0, 0.0, 0)
    assert nobody["conversion_rate"] == _cmp(None, 0.5, None)
    assert nobody["aov"] == _cmp(None, 60.0, None)
    assert nobody["average_clv"] == _cmp(None, 125.0, None)


def test_metrics_entries_exits_and_series(app: Segflow) -> None:
    seg = _by_id(metrics(app, ["gold", "silver", "nobody"], FROM, TO, now=NOW))
    gold = seg["gold"]
    # from the log: 1 member at 11-01; u2 enters 11-02 12:00, u3 enters 11-03 12:00 and
    # leaves 11-05 12:00; u5 and u4 enter after the period
    assert (gold["entered"], gold["exited"], gold["net_growth"]) == (2, 1, 1)
    assert gold["series_source"] == "changes"
    points = gold["series"]
    assert len(points) == 7
    assert points[0]["start"] == "2026-11-01T00:00:00.000000Z"
    assert points[-1]["end"] == "2026-11-08T00:00:00.000000Z"
    assert [p["size"] for p in points] == [1, 2, 3, 3, 2, 2, 2]
    assert [p["entered"] for p in points] == [0, 1, 1, 0, 0, 0, 0]
    assert [p["exited"] for p in points] == [0, 0, 0, 0, 1, 0, 0]
    assert [p["growth_rate"] for p in points][:3] == [0.0, 1.0, 0.5]
    assert (seg["silver"]["entered"], seg["silver"]["exited"]) == (0, 0)
    assert [p["size"] for p in seg["silver"]["series"]] == [2] * 7
    # no log for "nobody": sizes from its one batch evaluation (as of 11-03)
    nobody = seg["nobody"]
    assert (nobody["series_source"], nobody["entered"], nobody["net_growth"]) == (
        "evaluation", None, None,
    )  # fmt: skip
    assert [p["size"] for p in nobody["series"]] == [None, 0, 0, 0, 0, 0, 0]

    weekly = _by_id(metrics(app, ["gold"], FROM, TO, bucket="week", now=NOW))["gold"]
    assert [(p["size"], p["entered"], p["exited"]) for p in weekly["series"]] == [(2, 2, 1)]


def test_metrics_as_of_a_later_instant_and_of_every_segment(app: Segflow) -> None:
    report = metrics(app, None, TO, LATER, now=NOW)
    seg = _by_id(report)
    assert sorted(seg) == ["buyers", "gold", "nobody", "silver"]
    # as of 11-12, u5 (11-10) and u4 (11-11) are gold too; no orders after 11-08
    assert seg["gold"]["size"] == 4 and seg["silver"]["size"] == 1
    assert report["everyone"]["orders"] == 0
    assert seg["gold"]["average_clv"]["value"] == pytest.approx(300.0)  # u1's newer score
    assert (seg["gold"]["entered"], seg["gold"]["exited"]) == (2, 0)


def test_overlap_at_an_instant(app: Segflow) -> None:
    report = overlap_report(app, ["gold", "silver", "buyers"], TO)
    assert report["at"] == "2026-11-08T00:00:00.000000Z"
    assert report["sizes"] == [2, 2, 3]
    assert report["intersections"] == [[2, 0, 2], [0, 2, 1], [2, 1, 3]]
    assert report["row_share"][0] == [1.0, 0.0, 1.0]
    assert report["row_share"][2] == pytest.approx([2 / 3, 1 / 3, 1.0])
    assert report["jaccard"][0][2] == pytest.approx(2 / 3)
    assert report["jaccard"][1][2] == pytest.approx(1 / 4)
    assert report["exclusive"] == [0, 1, 0]
    assert report["in_any"] == 4
    assert report["top_combinations"] == [
        {"segments": ["gold", "buyers"], "count": 2},
        {"segments": ["silver"], "count": 1},
        {"segments": ["silver", "buyers"], "count": 1},
    ]
    kinds = [(w["kind"], w["segments"]) for w in report["warnings"]]
    assert ("contained", ["gold", "buyers"]) in kinds
    assert ("too_small", ["gold"]) in kinds

    quiet = overlap_report(
        app, ["gold", "buyers"], TO, top=1, thresholds=Thresholds(contained=1.0, min_size=0)
    )
    assert quiet["warnings"] == [] and len(quiet["top_combinations"]) == 1
    later = overlap_report(app, ["gold", "silver"], LATER)
    assert later["sizes"] == [4, 1]


def test_transitions_between_two_instants(app: Segflow) -> None:
    report = transitions_report(app, ["silver", "gold"], TO, LATER, now=NOW)
    assert report["stages"] == ["silver", "gold"]
    # rows silver, gold, outside at 11-08; columns the same at 11-12
    assert report["counts"] == [[1, 1, 0], [0, 2, 0], [0, 1, 1]]
    assert report["row_share"][0] == [0.5, 0.5, 0.0]
    assert (report["stayed"], report["forward"], report["backward"]) == (3, 1, 0)
    assert (report["entered"], report["exited"]) == (1, 0)
    assert {(f["source"], f["target"], f["value"]) for f in report["flows"]} == {
        ("silver", "silver", 1), ("silver", "gold", 1), ("gold", "gold", 2), (None, "gold", 1),
    }  # fmt: skip
    # first entries from the log: u3 silver 10-01, gold 11-03 12:00 (33.5 d);
    # u4 silver 10-02, gold 11-11 (40 d)
    (durations,) = report["time_to_enter"]
    assert (durations["source"], durations["target"], durations["pairs"]) == ("silver", "gold", 2)
    assert durations["median"] == pytest.approx(36.75 * DAY_US)
    assert durations["b_before_a"] == 0


def test_bad_requests_name_the_parameter(app: Segflow) -> None:
    with pytest.raises(KeyError, match="unknown segment 'nope'"):
        metrics(app, ["gold", "nope"], FROM, TO, now=NOW)
    with pytest.raises(BadRequest) as e:
        metrics(app, ["gold"], FROM, NOW + timedelta(days=1), now=NOW)
    assert e.value.param == "to" and "future" in str(e.value)
    with pytest.raises(BadRequest) as e:
        metrics(app, ["gold"], TO, FROM, now=NOW)
    assert e.value.param == "from"
    with pytest.raises(BadRequest) as e:
        metrics(app, ["gold"], FROM, TO, bucket="month", now=NOW)
    assert e.value.param == "bucket"
    with pytest.raises(BadRequest) as e:
        metrics(app, ["gold"], datetime(2000, 1, 1), TO, now=NOW)
    assert e.value.param == "bucket" and "use a wider bucket" in str(e.value)
    with pytest.raises(BadRequest) as e:
        overlap_report(app, ["gold", "gold"], TO)
    assert e.value.param == "segment"
    with pytest.raises(BadRequest) as e:
        overlap_report(app, ["gold"], TO, thresholds=Thresholds(contained=2.0))
    assert e.value.param == "contained"
    with pytest.raises(BadRequest) as e:
        transitions_report(app, [], TO, LATER, now=NOW)
    assert e.value.param == "segment"
    with pytest.raises(KeyError):
        transitions_report(app, ["gold", "nope"], TO, LATER, now=NOW)
