"""Property test: the SQL evaluator equals the plain-Python interpreter of DESIGN.md §2.

Random definitions over every condition kind, random histories with ties, exact
window boundaries, wrong-typed values and cleared traits, random instants.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segflow.batch.run import evaluate
from segflow.model.definition import parse_segment
from segflow.plan.interpret import Interpreter, ProfileHistory
from segflow.plan.planner import build_plan
from tests.helpers import load
from tests.strategies import conditions, histories, instants


@settings(
    max_examples=int(os.environ.get("SEGFLOW_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    hs=histories(),
    conds=st.lists(conditions, min_size=1, max_size=3),
    at=instants,
    numbered=st.booleans(),
)
def test_sql_evaluator_equals_interpreter(
    hs: list[ProfileHistory], conds: list[dict[str, Any]], at: datetime, numbered: bool
) -> None:
    """Keyed on profile numbers (as DuckDBStore stores) or on profile ids (a store made
    from the DDL alone): the same members either way."""
    segments = [parse_segment({"id": "vip", "mode": "static", "members": ["x"]})]
    segments += [parse_segment({"id": f"s{i}", "condition": c}) for i, c in enumerate(conds)]
    segments.append(parse_segment({"id": "ref", "condition": {"not": {"in_segment": "s0"}}}))
    con = duckdb.connect()
    load(con, hs, numbered=numbered)
    result = evaluate(con, segments, at)
    plan = build_plan(segments)
    got = result.membership_map()
    for h in hs:
        expected = Interpreter(plan, h, at).segments()
        for sid, member in expected.items():
            assert (h.profile_id in got[sid]) == member, (sid, h.profile_id, at)
