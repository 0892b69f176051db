"""Engagement score, frequency bands, tiers and lifecycle stages, worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from segflow.traits.engagement import (
    BANDS,
    STAGES,
    TIERS,
    EngagementConfig,
    TierConfig,
    engagement_score,
    frequency_band,
    lifecycle_stage,
    loyalty_tier,
)


def test_engagement_by_hand() -> None:
    # 4 campaigns sent; visits count fully at 12 days
    score, opened, clicked = engagement_score([4, 0, 2], [2, 0, 3], [6, 24, 0], 4)
    assert opened.tolist() == [1.0, 0.0, 0.5]
    assert clicked.tolist() == [0.5, 0.0, 1.0]  # click-to-open, capped at 1
    # 100 * (0.5 * open + 0.3 * click + 0.2 * visits)
    assert score.tolist() == pytest.approx([75.0, 20.0, 55.0])


def test_engagement_weights_are_configurable_and_normalised() -> None:
    cfg = EngagementConfig(open_weight=1, click_weight=0, visit_weight=1)
    score, _, _ = engagement_score([4, 0, 2], [2, 0, 3], [6, 24, 0], 4, cfg)
    assert score.tolist() == pytest.approx([75.0, 50.0, 25.0])
    no_sends, rate, _ = engagement_score([0], [0], [12], 0)
    assert rate.tolist() == [0.0] and no_sends.tolist() == pytest.approx([20.0])
    with pytest.raises(ValueError, match="weights"):
        EngagementConfig(open_weight=-1)


def test_frequency_bands() -> None:
    got = [BANDS[i] for i in frequency_band([0, 1, 2, 4, 5, 9])]
    assert got == ["0-1", "0-1", "2-4", "2-4", "5+", "5+"]


def test_tiers_default_and_custom_thresholds() -> None:
    spend = [0, 499.99, 500, 1999, 2000]
    assert [TIERS[i] for i in loyalty_tier(spend)] == [
        "Bronze",
        "Bronze",
        "Silver",
        "Silver",
        "Gold",
    ]
    custom = TierConfig(silver=100, gold=200)
    assert [TIERS[i] for i in loyalty_tier([99, 100, 250], custom)] == ["Bronze", "Silver", "Gold"]
    with pytest.raises(ValueError, match="silver <= gold"):
        TierConfig(silver=300, gold=200)


@pytest.mark.parametrize(
    ("first", "last", "orders", "orders_365", "stage"),
    [
        (10, 10, 1, 1, "new"),  # first order within 30 days wins over everything
        (30, 2, 6, 6, "new"),
        (400, 200, 3, 0, "lapsed"),
        (400, 120, 8, 4, "at_risk"),
        (400, 61, 9, 9, "at_risk"),
        (400, 20, 9, 5, "loyal"),
        (100, 20, 2, 2, "rising_star"),
        (181, 20, 2, 2, "active"),
        (100, 20, 1, 1, "active"),
    ],
)
def test_lifecycle_rules_in_order(
    first: float, last: float, orders: int, orders_365: int, stage: str
) -> None:
    got = lifecycle_stage(np.array([first]), np.array([last]), [orders], [orders_365])
    assert STAGES[int(got[0])] == stage
