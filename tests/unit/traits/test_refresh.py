"""A refresh on a hand-made store: every score worked by hand, written as traits that
segment conditions read, with history kept and lost keys cleared."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb
import pytest

from segflow.model.definition import parse_segment
from segflow.model.history import Event, ProfileHistory
from segflow.store.duckdb.batch import evaluate
from segflow.store.duckdb.scores import DuckDBScores
from segflow.traits.clv import BGNBDParams, GammaGammaParams
from segflow.traits.features import extract_features
from segflow.traits.refresh import (
    SCORE_KEYS,
    ScoresConfig,
    latest_run,
    profile_scores,
    refresh_scores,
)
from tests.helpers import load

T = datetime(2026, 6, 1)
D = timedelta(days=1)
CDNOW_DAYS = BGNBDParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)
"""The published CDNOW estimates, rescaled from weeks to days (alpha is a time scale)."""
NO_CLASSIFIER = ScoresConfig(
    classifier=False, bgnbd=CDNOW_DAYS, gamma_gamma=GammaGammaParams(6.25, 3.74, 15.44)
)


def order(days_ago: float, revenue: float) -> Event:
    return Event(T - days_ago * D, "Order Completed", {"properties.revenue": revenue})


def email(name: str, days_ago: float, campaign: str) -> Event:
    return Event(T - days_ago * D, name, {"properties.campaign_id": campaign})


def view(days_ago: float) -> Event:
    return Event(T - days_ago * D, "Product Viewed", {"properties.category": "Books"})


HISTORIES = [
    ProfileHistory(
        "alice",
        [
            order(400, 100),
            order(200, 200),
            order(20, 300),
            order(5, 50),
            email("Email Opened", 30, "c1"),
            email("Email Opened", 10, "c2"),
            email("Email Link Clicked", 10, "c1"),
            view(3),
            view(2),
            view(1),
        ],
    ),
    ProfileHistory("bob", [order(10, 20)]),
    ProfileHistory("carol", [order(300, 10), order(250, 10)]),
    ProfileHistory("dave", [order(100, 1000), order(70, 1000)]),
    ProfileHistory("erin", [email("Email Opened", 40, "c1")]),
    ProfileHistory("frank", [view(200)]),
]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    load(c, HISTORIES)
    return c


def scores(con: duckdb.DuckDBPyConnection, at: datetime | None = None) -> dict[str, Any]:
    return {
        p: profile_scores(DuckDBScores(con), p, at)
        for p in ("alice", "bob", "carol", "dave", "erin")
    }


def test_features_by_hand(con: duckdb.DuckDBPyConnection) -> None:
    f = extract_features(DuckDBScores(con), T)
    assert f.profile_id.tolist() == ["alice", "bob", "carol", "dave", "erin"]  # frank idle
    assert f.orders.tolist() == [4, 1, 2, 2, 0]
    assert f.x.tolist() == [3, 0, 1, 1, 0]
    assert f.t_x.tolist() == [395, 0, 50, 30, 0]
    assert f.T.tolist() == [400, 10, 300, 100, 0]
    assert f.m.tolist() == [(200 + 300 + 50) / 3, 0, 10, 1000, 0]
    assert f.spend_365d.tolist() == [550, 20, 20, 2000, 0]
    assert f.visit_days.tolist() == [5, 1, 0, 1, 0]
    assert f.campaigns_sent == 2


def test_refresh_writes_every_score_by_hand(con: duckdb.DuckDBPyConnection) -> None:
    report = refresh_scores(DuckDBScores(con), T, NO_CLASSIFIER)
    assert (report.profiles, report.customers, report.traits_cleared) == (5, 4, 0)
    s = scores(con)
    # recency 5, 10, 250, 70 days; orders 4, 1, 2, 2; spend 650, 20, 20, 2000
    assert {p: s[p]["rfm_code"] for p in ("alice", "bob", "carol", "dave")} == {
        "alice": "443",
        "bob": "311",
        "carol": "121",
        "dave": "224",
    }
    assert s["alice"]["rfm_group"] == "Loyal Customers"
    assert s["bob"]["rfm_group"] == "About To Sleep"
    assert s["carol"]["rfm_group"] == "Hibernating"
    assert s["dave"]["rfm_group"] == "At Risk"
    assert [s[p]["loyalty_tier"] for p in ("alice", "bob", "carol", "dave")] == [
        "Silver",
        "Bronze",
        "Bronze",
        "Gold",
    ]
    assert [s[p]["lifecycle_stage"] for p in ("alice", "bob", "carol", "dave")] == [
        "active",
        "new",
        "lapsed",
        "at_risk",
    ]
    assert [s[p]["purchase_frequency_band"] for p in s] == ["2-4", "0-1", "0-1", "2-4", "0-1"]
    # alice: opened 2 of 2 campaigns, clicked 1 of 2 opened, visited on 5 days
    assert s["alice"]["engagement_score"] == pytest.approx(
        round(100 * (0.5 + 0.3 * 0.5 + 0.2 * 5 / 12), 2)
    )
    assert s["erin"]["engagement_score"] == 25.0
    assert "rfm_code" not in s["erin"] and "p_alive" not in s["erin"]
    assert s["bob"]["p_alive"] == 1.0  # no repeat purchase: BG/NBD never saw him drop out
    # dave: x = 1, t_x = 30, T = 100 days
    p = CDNOW_DAYS
    odds = p.a / (p.b + 1 - 1) * ((p.alpha + 100) / (p.alpha + 30)) ** (p.r + 1)
    assert s["dave"]["p_alive"] == round(1 / (1 + odds), 4)
    assert s["dave"]["churn_risk"] == pytest.approx(1 - s["dave"]["p_alive"])
    assert s["alice"]["expected_orders_90d"] > s["alice"]["expected_orders_30d"] > 0
    assert all(s[p]["clv_12m"] > 0 for p in ("alice", "bob", "carol", "dave"))
    assert set(s["alice"]) == set(SCORE_KEYS) - {"purchase_propensity_90d"}
    run = latest_run(DuckDBScores(con))
    assert run is not None and run["models_note"] == "BG/NBD parameters fixed by the config"


def test_too_few_customers_to_fit_leaves_predictions_out(con: duckdb.DuckDBPyConnection) -> None:
    report = refresh_scores(DuckDBScores(con), T, ScoresConfig(classifier=False))
    assert report.bgnbd is None and "min_customers=20" in report.models_note
    s = profile_scores(DuckDBScores(con), "alice")
    assert "p_alive" not in s and "clv_12m" not in s and s["rfm_code"] == "443"


def test_segments_read_the_scores(con: duckdb.DuckDBPyConnection) -> None:
    refresh_scores(DuckDBScores(con), T, NO_CLASSIFIER)
    segs = [
        parse_segment({"id": "gold", "condition": {"trait": "loyalty_tier", "eq": "Gold"}}),
        parse_segment(
            {
                "id": "recent_big",
                "condition": {
                    "all": [{"trait": "rfm_recency", "gte": 3}, {"trait": "clv_12m", "gt": 0}]
                },
            }
        ),
    ]
    result = evaluate(con, segs, T)
    assert result.members("gold") == ["dave"]
    assert result.members("recent_big") == ["alice", "bob"]


def test_history_is_kept_and_lost_keys_are_cleared(con: duckdb.DuckDBPyConnection) -> None:
    first = refresh_scores(DuckDBScores(con), T, NO_CLASSIFIER, computed_at=datetime(2026, 6, 1, 1))
    later = T + 400 * D
    second = refresh_scores(
        DuckDBScores(con), later, NO_CLASSIFIER, computed_at=datetime(2027, 7, 6)
    )
    assert first.traits_written > 0 and second.traits_cleared > 0
    # a year on, nobody ordered in 365 days: tiers are cleared, engagement rows too
    assert "loyalty_tier" not in profile_scores(DuckDBScores(con), "dave")
    assert profile_scores(DuckDBScores(con), "dave", T)["loyalty_tier"] == "Gold"
    assert profile_scores(DuckDBScores(con), "dave")["lifecycle_stage"] == "lapsed"
    assert "engagement_score" not in profile_scores(DuckDBScores(con), "erin")
    gold = parse_segment({"id": "gold", "condition": {"trait": "loyalty_tier", "eq": "Gold"}})
    assert evaluate(con, [gold], T).members("gold") == ["dave"]
    assert evaluate(con, [gold], later).members("gold") == []
    rows = con.execute(
        "SELECT count(DISTINCT message_id) FROM traits WHERE key = 'rfm_code'"
    ).fetchone()
    assert rows == (2,)
    computed = profile_scores(DuckDBScores(con), "dave")["scores_computed_at"]
    assert computed == "2027-07-06T00:00:00.000000"


def test_refresh_on_an_empty_store() -> None:
    c = duckdb.connect()
    load(c, [ProfileHistory("nobody", [])])
    report = refresh_scores(DuckDBScores(c), T, NO_CLASSIFIER)
    assert (report.customers, report.traits_written, report.bgnbd) == (0, 0, None)
