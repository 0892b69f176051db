"""Parallel runs (``pytest -n``, as ``make test`` runs them) hand out whole modules: a
module's shared fixtures are built once and its tests run in file order, as in a
serial run.  The tests on the scored shop go to one worker, which builds it once."""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        shop = "scored_shop" in getattr(item, "fixturenames", ())
        item.add_marker(
            pytest.mark.xdist_group("scored_shop" if shop else item.nodeid.split("::")[0])
        )
