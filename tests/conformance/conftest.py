"""Hypothesis profiles for the conformance suites: ``--hypothesis-profile=long`` runs
thousands of examples (as does ``SEGFLOW_EXAMPLES=5000``); the ``engine`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.engines import ENGINES, Engine, engine_for

settings.register_profile("long", max_examples=5000, deadline=None)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Each batch engine in turn, on a place of the test's own (a PostgreSQL schema,
    ...) dropped after it (the test skips, saying why, where no server answers)."""
    with engine_for(request.param) as e:
        yield e
