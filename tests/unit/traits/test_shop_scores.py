"""Scores on a generated shop: the classifier beats chance on a time split, every
customer gets a group, and the library segments on scores select someone."""

from __future__ import annotations

from pathlib import Path

import pytest

from segflow.demo import SEGMENTS_DIR
from segflow.demo.generator import DEFAULT_END
from segflow.service.handle import Segflow, read_segment_files
from segflow.service.scores import scores_summary
from tests.helpers import ScoredShop

SCORE_SEGMENTS = ("rfm_champions", "rising_stars", "churn_risk_high", "gold_tier")


def test_classifier_auc_on_the_time_split(scored_shop: ScoredShop) -> None:
    c = scored_shop.report.classifier
    assert c is not None, scored_shop.report.classifier_note
    assert c.auc > 0.5
    assert c.n_train > 100 and c.n_test > 100
    assert 0 < c.positive_rate_test < 1


def test_models_fit_and_every_customer_is_grouped(scored_shop: ScoredShop) -> None:
    r = scored_shop.report
    assert r.bgnbd is not None and r.bgnbd.fit.converged
    assert r.gamma_gamma is not None and r.gamma_gamma.params["q"] > 1
    sf = Segflow(scored_shop.db)
    try:
        summary = scores_summary(sf)
    finally:
        sf.close()
    assert sum(summary["rfm_group"].values()) == r.customers
    assert len(summary["rfm_group"]) >= 8
    assert set(summary["lifecycle_stage"]) <= {
        "new",
        "active",
        "at_risk",
        "lapsed",
        "loyal",
        "rising_star",
    }


@pytest.mark.parametrize("sid", SCORE_SEGMENTS)
def test_library_segments_on_scores_select_someone(scored_shop: ScoredShop, sid: str) -> None:
    segs = read_segment_files(Path(SEGMENTS_DIR))
    by_id = {s.id: s for s in segs}
    sf = Segflow(scored_shop.db)
    try:
        from segflow.store.duckdb.batch import evaluate

        sizes = evaluate(sf.store.con, [by_id[sid]], DEFAULT_END).sizes()
    finally:
        sf.close()
    assert 0 < sizes[sid] < scored_shop.report.customers
