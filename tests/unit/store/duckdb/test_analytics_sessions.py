"""Sessions and orders of the period aggregates against a plain count: random visits
(page and track calls, email events that are no visit) with ties and gaps at exactly
30 minutes, in and out of the period."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segflow.model.definition import parse_segment
from segflow.model.time import format_instant
from segflow.service.handle import Segflow

T0 = datetime(2026, 3, 1)
START, END = T0 + timedelta(minutes=30), T0 + timedelta(minutes=600)

calls = st.lists(
    st.tuples(
        st.sampled_from(["p1", "p2", "p3"]),
        st.sampled_from(["page", "track", "Email Opened", "Order Completed"]),
        st.sampled_from([0, 10, 29, 30, 31, 59, 60, 61, 90, 120, 300, 600, 601]),
    ),
    min_size=1,
    max_size=25,
)


def _message(n: int, pid: str, kind: str, minute: int) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "userId": pid,
        "messageId": f"m{n}",
        "timestamp": format_instant(T0 + timedelta(minutes=minute)),
    }
    if kind == "page":
        return {**msg, "type": "page", "name": "Home"}
    name = "Product Viewed" if kind == "track" else kind
    return {**msg, "type": "track", "event": name, "properties": {"revenue": 5}}


def _sessions(visits: list[int]) -> int:
    """Visits more than 30 minutes after the profile's previous one (or its first)."""
    ts = sorted(visits)
    return sum(1 for i, t in enumerate(ts) if i == 0 or t - ts[i - 1] > 30)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=calls)
def test_sessions_and_orders_match_a_plain_count(
    tmp_path_factory: Any, history: list[tuple[str, str, int]]
) -> None:
    root: Path = tmp_path_factory.mktemp("sessions")
    app = Segflow(root / "s.duckdb")
    try:
        app.store.ingest_messages([_message(n, *h) for n, h in enumerate(history)])
        app.registry.save([parse_segment({"id": "all", "condition": {"not": {"event": "x"}}})])
        ids = app.store.profile_ids()
        result = app.batch(app.registry.current().values(), END, only=["all"])
        members, agg = app.analytics.period_aggregates(result, ["all"], START, END)
        assert members.all() and len(members) == len(ids)
        in_period = [(p, k, m) for p, k, m in history if 30 < m <= 600]
        want = sorted(
            (
                _sessions([m for q, k, m in in_period if q == p and k != "Email Opened"]),
                sum(1 for q, k, _ in in_period if q == p and k == "Order Completed"),
            )
            for p in ids
        )
        got = sorted(
            zip(
                np.asarray(agg.sessions).astype(int).tolist(),
                np.asarray(agg.orders).astype(int).tolist(),
                strict=True,
            )
        )
        assert got == want
    finally:
        app.close()
