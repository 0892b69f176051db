"""One small generated shop, ingested by the real store and scored once per session;
the tests that use it are slow (generating and scoring it takes a while)."""

from __future__ import annotations

import pytest

from segflow.demo.generator import DEFAULT_END, generate_shop
from segflow.service.handle import Segflow
from segflow.service.scores import refresh_scores
from tests.helpers import ScoredShop


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "scored_shop" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def scored_shop(tmp_path_factory: pytest.TempPathFactory) -> ScoredShop:
    root = tmp_path_factory.mktemp("scored_shop")
    summary = generate_shop(root / "data", customers=2_000, seed=11)
    db = root / "shop.duckdb"
    sf = Segflow(db)
    try:
        sf.ingest(list(summary.paths))
        report = refresh_scores(sf, DEFAULT_END)
    finally:
        sf.close()
    return ScoredShop(db, report)
