"""The in-memory message path (the server's group commits) stores exactly what the
JSON Lines path stores: it finds repeats in Python, extracts each document's leaves
once and types them and the trait rows over the unnested values, where the file path
works per leaf in SQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segflow.store.duckdb.store import DuckDBStore
from tests.helpers import assert_profile_numbers_hold

KEYS = st.sampled_from(["price", "plan", "a.b", "tags", "name", "x", "vip", "Price"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.text(alphabet='ab"\\/ \u00e9\n', max_size=4),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(KEYS, inner, max_size=2),
    max_leaves=4,
)
OBJECTS = st.dictionaries(KEYS, VALUES, max_size=3)


@st.composite
def messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["track", "track", "identify", "page"]))
        mid = f"m{draw(st.integers(0, 9)) if draw(st.booleans()) else 100 + i}"
        msg: dict[str, Any] = {
            "type": kind,
            "messageId": mid,
            "userId": draw(st.sampled_from(["u1", "u2"])),
            "timestamp": f"2026-01-0{draw(st.integers(1, 9))}T00:00:00Z",
        }
        if kind == "track":
            msg["event"] = draw(st.sampled_from(["Viewed", "Bought"]))
        if draw(st.booleans()):
            msg["properties"] = draw(OBJECTS)
        if draw(st.booleans()):
            context = draw(OBJECTS)
            if draw(st.booleans()):
                context["traits"] = draw(OBJECTS)
            msg["context"] = context
        if kind == "identify" and draw(st.booleans()):
            msg["traits"] = draw(OBJECTS)
        out.append(msg)
    return out


def _stored(store: DuckDBStore) -> tuple[Any, ...]:
    con = store.con
    cols = [r[0] for r in con.execute("DESCRIBE events").fetchall() if r[0] != "received_at"]
    select = ", ".join(f'"{c}"' for c in cols)
    events = con.execute(f"SELECT {select} FROM events ORDER BY seq").fetchall()
    traits = con.execute(
        'SELECT profile_id, key, "timestamp", message_id, kind, num, str, bool, json,'
        " valid_to FROM traits ORDER BY message_id, key"
    ).fetchall()
    profiles = con.execute("SELECT * FROM profiles ORDER BY profile_id").fetchall()
    return sorted(cols), events, traits, profiles, store.fields


@pytest.mark.slow
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(loads=st.lists(messages(), min_size=1, max_size=3))
def test_in_memory_messages_store_what_json_lines_store(
    tmp_path: Path, loads: list[list[dict[str, Any]]]
) -> None:
    with DuckDBStore(":memory:") as by_file, DuckDBStore(":memory:") as in_memory:
        for n, load in enumerate(loads):
            path = tmp_path / f"load{n}.jsonl"
            path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in load))
            a = by_file.ingest_jsonl(path)
            b = in_memory.ingest_messages(orjson.loads(orjson.dumps(load)), json_values=True)
            assert (a.inserted, a.duplicates) == (b.inserted, b.duplicates)
        assert _stored(by_file) == _stored(in_memory)
        assert_profile_numbers_hold(by_file.con)
