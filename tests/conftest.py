"""Parallel runs (``pytest -n``, as ``make test`` runs them) hand out whole modules: a
module's shared fixtures are built once and its tests run in file order, as in a
serial run.  The tests on the scored shop go to one worker, which builds it once, and
so do the tests on Spark (marked ``spark`` or run on the ``spark`` engine), whose JVM
starts once per worker.
Modules with slow or property-based tests are handed out first, so that the run does
not end waiting on one long module while the other worker has nothing left."""

from __future__ import annotations

import pytest


def _group(item: pytest.Item) -> str:
    if "scored_shop" in getattr(item, "fixturenames", ()):
        return "scored_shop"
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("engine") == "spark":
        return "spark"  # one worker starts Spark's JVM (seconds) and runs them all
    if item.get_closest_marker("spark") is not None:
        return "spark"
    return item.nodeid.split("::")[0]


def _long(item: pytest.Item) -> bool:
    slow = item.get_closest_marker("slow") is not None
    return slow or bool(getattr(getattr(item, "obj", None), "is_hypothesis_test", False))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item)))
    if hasattr(config, "workerinput"):  # an xdist worker: every worker sorts alike
        long = {"scored_shop"} | {_group(i) for i in items if _long(i)}
        items.sort(key=lambda i: _group(i) not in long)
