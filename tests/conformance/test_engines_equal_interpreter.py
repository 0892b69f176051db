"""Every batch engine equals the plain-Python interpreter of DESIGN.md §2.

The property test of ``tests/unit/batch`` (random definitions over every condition
kind, random histories with ties, exact window boundaries, wrong-typed values and
cleared traits, random instants) run on each engine: DuckDB, and PostgreSQL in a
schema of the test's own, loaded from the DuckDB store by ``store.postgres.load``,
chDB and Spark in a directory of the test's own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segflow.model.definition import parse_segment
from segflow.model.groups import Group
from segflow.model.history import ProfileHistory
from segflow.plan.interpret import Interpreter
from segflow.plan.planner import build_plan
from tests.engines import ENGINES, Engine
from tests.helpers import shared_scans
from tests.strategies import conditions, histories, instants

pytestmark = pytest.mark.slow  # a long property run, loading a store per example

ENGINE_EXAMPLES = max(20, int(os.environ.get("SEGFLOW_EXAMPLES", "150")) // 3)
"""Each example loads a store into the engine, so fewer are run than in the unit test."""

SPARK_EXAMPLES = max(10, int(os.environ.get("SEGFLOW_EXAMPLES", "150")) // 10)
"""Spark plans and compiles each example's query in its JVM, slower than the others
run theirs, so it runs fewer still; the edge cases run on it in full."""

SPARK = ("spark",)


def _property(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The property test's examples drawn ``examples`` times."""
    chosen = settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,  # one schema per test, reloaded per example
        ],
    )
    drawn = given(
        hs=histories(),
        conds=st.lists(conditions, min_size=1, max_size=3),
        at=instants,
        numbered=st.booleans(),
        scans=st.sampled_from([None, 1, 2]),
        order=st.permutations(["vip", "s0", "ref"]),
    )
    return lambda test: chosen(drawn(test))


def _engine_equals_interpreter(
    engine: Engine,
    hs: list[ProfileHistory],
    conds: list[dict[str, Any]],
    at: datetime,
    numbered: bool,
    scans: int | None,
    order: list[str],
) -> None:
    """Keyed on profile numbers or ids, with one scan per event-name set, trait and
    sequence or with scans shared (``scans``): the interpreter's members every way."""
    segments = [parse_segment({"id": "vip", "mode": "static", "members": ["x"]})]
    segments += [parse_segment({"id": f"s{i}", "condition": c}) for i, c in enumerate(conds)]
    segments.append(parse_segment({"id": "ref", "condition": {"not": {"in_segment": "s0"}}}))
    segments += Group(
        "tiers", "Tiers", (*order, *(f"s{i}" for i in range(1, len(conds))))
    ).resolve()
    with shared_scans(scans):
        got = engine.members(hs, segments, at, numbered=numbered)
    plan = build_plan(segments)
    for h in hs:
        expected = Interpreter(plan, h, at).segments()
        for sid, member in expected.items():
            assert (h.profile_id in got[sid]) == member, (engine.engine, sid, h.profile_id, at)


test_engine_equals_interpreter = pytest.mark.parametrize(
    "engine", [e for e in ENGINES if e not in SPARK], indirect=True
)(_property(ENGINE_EXAMPLES)(_engine_equals_interpreter))

test_spark_equals_interpreter = pytest.mark.parametrize("engine", SPARK, indirect=True)(
    _property(SPARK_EXAMPLES)(_engine_equals_interpreter)
)
