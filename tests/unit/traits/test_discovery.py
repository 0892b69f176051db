"""Discovered rules parse, evaluate with the batch evaluator to exactly the members they
claim, and reproduce well-separated clusters."""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import pytest

from segflow.model.definition import parse_segment
from segflow.service.handle import Segflow
from segflow.service.scores import discover_segments
from segflow.store.duckdb.batch import evaluate
from segflow.store.duckdb.schema import DDL
from segflow.store.duckdb.scores import DuckDBScores
from segflow.traits.discovery import TRAITS, discover, load_traits
from tests.helpers import ScoredShop

AT = datetime(2026, 6, 1)

# three obvious customer types, 30 each: (R, F, M, engagement, p_alive, E[90d], clv)
TYPES = {
    "champion": (5, 5, 5, 80.0, 0.95, 3.0, 5000.0),
    "sleeper": (1, 2, 2, 5.0, 0.2, 0.1, 50.0),
    "newbie": (5, 1, 1, 40.0, 1.0, 0.8, 300.0),
}


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute(DDL)
    rng = np.random.default_rng(1)
    rows = []
    for kind, centre in TYPES.items():
        for i in range(30):
            pid = f"{kind}-{i:02d}"
            for key, v in zip(TRAITS, centre, strict=True):
                noise = 0 if key.startswith("rfm_") else float(rng.normal(0, abs(v) * 0.05))
                rows.append((pid, key, AT, "scores/x", "number", round(v + noise, 4)))
    c.executemany(
        "INSERT INTO traits (profile_id, key, timestamp, message_id, kind, num) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    c.execute("INSERT INTO profiles SELECT DISTINCT profile_id, ?, ? FROM traits", [AT, AT])
    return c


def check_against_evaluator(con: duckdb.DuckDBPyConnection, proposals: list, at: datetime) -> None:
    segs = [parse_segment(p.segment) for p in proposals]
    result = evaluate(con, segs, at)
    for p in proposals:
        members = result.members(p.segment["id"])
        assert tuple(members) == p.members, p.segment
        assert p.rule_size == len(members)
        hit = len(set(members) & set(p.cluster_members))
        assert p.precision == round(hit / max(len(members), 1), 4)
        assert p.recall == round(hit / len(p.cluster_members), 4)


def test_separated_clusters_are_reproduced_exactly(con: duckdb.DuckDBPyConnection) -> None:
    ids, mat = load_traits(DuckDBScores(con), AT)
    assert mat.shape == (90, len(TRAITS))
    proposals = discover(ids, mat, k=3, depth=2)
    assert sorted(p.size for p in proposals) == [30, 30, 30]
    for p in proposals:
        assert (p.precision, p.recall) == (1.0, 1.0)
        kinds = {m.split("-")[0] for m in p.members}
        assert len(kinds) == 1
    check_against_evaluator(con, proposals, AT)


def test_rules_on_the_generated_shop_match_the_evaluator(scored_shop: ScoredShop) -> None:
    sf = Segflow(scored_shop.db)
    try:
        proposals = discover_segments(sf, k=4, depth=3)
        assert len(proposals) >= 3
        assert sum(p.size for p in proposals) <= scored_shop.report.customers
        for p in proposals:
            assert p.segment["condition"]
            assert p.precision > 0.5 and p.recall > 0.3
        check_against_evaluator(sf.store.con, proposals, datetime(9999, 12, 31))
    finally:
        sf.close()


def test_bad_parameters_are_named(con: duckdb.DuckDBPyConnection) -> None:
    ids, mat = load_traits(DuckDBScores(con), AT)
    with pytest.raises(ValueError, match="k must be at least 2"):
        discover(ids, mat, k=1)
    with pytest.raises(ValueError, match="need at least"):
        discover(ids[:5], mat[:5], k=3)
