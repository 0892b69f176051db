"""The same messages ingested into DuckDB and written into a Segment warehouse schema
(as Segment's loader lays them out) give the same memberships: the segment library
on a demo shop, and random messages against random conditions.  The Segment side is
read in place through ``engine attach`` on PostgreSQL (views over a schema) and on
Spark (views over Parquet tables)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from segflow.demo import SEGMENTS_DIR, generate_shop, write_jsonl
from segflow.model.definition import parse_segment
from segflow.service.handle import read_segment_files
from tests.segment_warehouse import WAREHOUSES, duckdb_members
from tests.strategies import NAMES, T0, conditions, instants

pytestmark = pytest.mark.slow  # loads a store and a warehouse schema per example

EXAMPLES = max(20, int(os.environ.get("SEGFLOW_EXAMPLES", "150")) // 4)
SPARK_EXAMPLES = max(5, EXAMPLES // 7)  # each example runs a dozen Spark jobs


@pytest.mark.parametrize("engine", sorted(WAREHOUSES))
def test_the_segment_library_agrees_with_duckdb_on_a_demo_shop(tmp_path: Path, engine: str) -> None:
    summary = generate_shop(tmp_path / "shop", customers=150, seed=5)
    write_jsonl(summary, tmp_path / "messages.jsonl")
    messages = [json.loads(line) for line in (tmp_path / "messages.jsonl").open()]
    segments = read_segment_files(SEGMENTS_DIR)
    at = summary.end
    expected = duckdb_members(messages, segments, at)
    with WAREHOUSES[engine](messages) as batch:
        got = batch.evaluate(segments, at).membership_map()
    assert got == expected
    # not vacuous: most of the library has members, some but not all profiles
    sized = [s for s, m in expected.items() if 0 < len(m) < len(expected["everyone"])]
    assert len(sized) >= 15, sorted((s, len(m)) for s, m in expected.items())


USERS = ["u1", "u2", "u3"]
ANONYMOUS = ["a1", "a2", "a3", "a4"]
offsets = st.integers(min_value=0, max_value=10 * 24).map(lambda h: timedelta(hours=h))
properties: dict[str, Any] = {
    "category": st.sampled_from(["shoes", "watches", "Shoes"]),
    "price": st.sampled_from([0, 5, 10.5, 100]),
    "revenue": st.sampled_from([20, 99.5]),
    "product_id": st.sampled_from(["a", "b"]),
    "quantity": st.sampled_from([1, 2]),
    "flag": st.booleans(),
}
trait_values: dict[str, Any] = {
    "country": st.sampled_from(["PL", "DE"]),
    "age": st.sampled_from([30, 35, 45.5]),
    "signup": st.sampled_from(["2026-01-03T00:00:00Z", "2026-01-05T12:30:00Z"]),
}


@st.composite
def some(draw: st.DrawFn, pool: dict[str, Any]) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(sorted(pool)), unique=True, max_size=len(pool)))
    return {k: draw(pool[k]) for k in keys}


@st.composite
def message(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(["track"] * 5 + ["identify", "identify", "page", "screen", "alias"])
    )
    out: dict[str, Any] = {
        "type": kind,
        "timestamp": (T0 + draw(offsets)).isoformat() + "Z",
    }
    if kind == "alias":
        out["userId"] = draw(st.sampled_from(USERS))
        out["previousId"] = draw(st.sampled_from([*ANONYMOUS, *USERS, "x9"]))
        return out
    ids = draw(st.sampled_from(["user", "anonymous", "both"]))
    if ids != "anonymous":
        out["userId"] = draw(st.sampled_from(USERS))
    if ids != "user":
        out["anonymousId"] = draw(st.sampled_from(ANONYMOUS))
    context: dict[str, Any] = {}
    if draw(st.booleans()):
        context["device"] = {"type": draw(st.sampled_from(["mobile", "desktop"]))}
    if draw(st.integers(0, 3)) == 0:
        context["traits"] = draw(some(trait_values))
    if context:
        out["context"] = context
    if kind == "track":
        out["event"] = draw(st.sampled_from(NAMES))
        out["properties"] = draw(some(properties))
        if out["event"] == "View" and "price" in out["properties"]:
            # text in this event's table, numbers in the others: one typed column and
            # the other type's values in extra, on both sides
            out["properties"]["price"] = draw(st.sampled_from(["12", "cheap"]))
    elif kind == "identify":
        out["traits"] = draw(some(trait_values))
    else:
        name = draw(st.sampled_from([None, "Pricing", "Home", "pricing"]))
        if name is not None:
            out["name"] = name
        path = draw(st.sampled_from([None, "/pricing", "/", "/c/shoes"]))
        if path is not None:
            out["properties"] = {"path": path}
    return out


def _agree(drawn: list[dict[str, Any]], conds: list[Any], at: datetime, engine: str) -> None:
    messages = [{**m, "messageId": f"m{i}"} for i, m in enumerate(drawn)]
    segments = [parse_segment({"id": "vip", "condition": {"trait": "country", "eq": "PL"}})]
    segments += [parse_segment({"id": f"s{i}", "condition": c}) for i, c in enumerate(conds)]
    expected = duckdb_members(messages, segments, at)
    with WAREHOUSES[engine](messages) as batch:
        got = batch.evaluate(segments, at).membership_map()
    assert got == expected
    event(f"segments with members: {sum(1 for m in expected.values() if m)}")


DRAWN = {
    "drawn": st.lists(message(), min_size=1, max_size=25),
    "conds": st.lists(conditions, min_size=1, max_size=3),
    "at": instants,
}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(**DRAWN)
def test_random_messages_give_the_same_members_in_both_places(
    drawn: list[dict[str, Any]], conds: list[Any], at: datetime
) -> None:
    _agree(drawn, conds, at, "postgres")


@pytest.mark.spark
@settings(
    max_examples=SPARK_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(**DRAWN)
def test_random_messages_give_the_same_members_on_spark(
    drawn: list[dict[str, Any]], conds: list[Any], at: datetime
) -> None:
    _agree(drawn, conds, at, "spark")
