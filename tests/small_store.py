"""Two profiles' histories and two segments over them: the small store every engine's
load and evaluation tests copy (an order total crossing a threshold, a trait changing
value, an event forty days later)."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from segflow.model.definition import parse_segment
from segflow.model.history import Event, ProfileHistory, TraitWrite
from tests.helpers import load

T0 = datetime(2026, 1, 30, 12)
HISTORIES = [
    ProfileHistory(
        "p0",
        [
            Event(T0, "Order", {"properties.revenue": 20}, message_id="a"),
            Event(T0 + timedelta(days=3), "Order", {"properties.revenue": 5}, message_id="b"),
        ],
        [
            TraitWrite(T0, "w0", "country", "PL"),
            TraitWrite(T0 + timedelta(days=1), "w1", "country", "DE"),
        ],
    ),
    ProfileHistory("p1", [Event(T0 + timedelta(days=40), "View", {}, message_id="c")], []),
]
SEGMENTS = [
    parse_segment({"id": "de", "condition": {"trait": "country", "eq": "DE"}}),
    parse_segment(
        {
            "id": "spent",
            "condition": {"event": "Order", "measure": "sum", "of": "revenue", "gte": 25},
        }
    ),
]


def small_store(histories: list[ProfileHistory] = HISTORIES) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB store holding ``histories``."""
    con = duckdb.connect()
    load(con, histories)
    return con
