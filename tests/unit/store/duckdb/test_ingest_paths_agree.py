"""The in-memory message path (the server's group commits) stores exactly what the
file paths store: it finds repeats in Python, extracts each document's leaves once
and types them and the trait rows over the unnested values, where the file paths
(JSON Lines, and the bulk Parquet/CSV tables read by DuckDB) work per leaf and
resolve identities set-wise in SQL."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
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


IDS = st.sampled_from([None, "u1", "u2", "u3"])
ANON = st.sampled_from([None, "a1", "a2", "a3"])
SCALAR_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["x", "y", "gold"])
)


@st.composite
def identity_messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Messages that link and merge identities: users and anonymous ids met together,
    aliases, trait writes at equal and out-of-order timestamps, repeated ids."""
    out: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["track", "identify", "page", "alias", "identify"]))
        mid = f"m{draw(st.integers(0, 6)) if draw(st.booleans()) else 100 + i}"
        msg: dict[str, Any] = {
            "type": kind,
            "messageId": mid,
            "timestamp": f"2026-01-0{draw(st.integers(1, 4))}T0{draw(st.integers(0, 2))}:00:00Z",
        }
        user, anon = draw(IDS), draw(ANON)
        if kind == "alias":
            user = user or "u9"
            msg["previousId"] = draw(st.sampled_from(["a1", "a2", "u1", "u3"]))
        elif user is None and anon is None:
            anon = "a1"
        if user is not None:
            msg["userId"] = user
        if anon is not None:
            msg["anonymousId"] = anon
        if kind == "track":
            msg["event"] = draw(st.sampled_from(["Viewed", "Bought"]))
            msg["properties"] = draw(
                st.dictionaries(st.sampled_from(["price", "sku"]), SCALAR_VALUES)
            )
        if kind == "identify":
            msg["traits"] = draw(
                st.dictionaries(st.sampled_from(["plan", "vip", "age"]), SCALAR_VALUES)
            )
        out.append(msg)
    return out


def _table(load: list[dict[str, Any]], dotted: bool) -> pa.Table:
    """The messages as a flat event table: core columns, and the objects either as
    JSON text columns or (scalar leaves only) as dotted columns."""
    from segflow.model.events import ALIASES

    columns: dict[str, pa.Array[Any] | list[Any]] = {}
    core = ["message_id", "type", "event", "user_id", "anonymous_id", "previous_id", "timestamp"]
    for name in core:
        camel = ALIASES[name][1] if name in ALIASES else name
        columns[name] = pa.array([m.get(camel) for m in load], pa.string())
    leaves = (
        sorted({(root, k) for m in load for root in ROOTS for k in (m.get(root) or {})})
        if dotted
        else []
    )
    for root in ROOTS:
        if dotted:
            continue
        columns[root] = pa.array(
            [orjson.dumps(m[root]).decode() if root in m else None for m in load], pa.string()
        )
    for root, key in leaves:
        values = [(m.get(root) or {}).get(key) for m in load]
        kinds = {type(v) for v in values if v is not None}
        explicit_null = any(
            key in (m.get(root) or {}) and v is None for m, v in zip(load, values, strict=True)
        )
        if len(kinds) > 1 or kinds & {dict, list} or "." in key or explicit_null:
            # a dotted column holds scalars of one type, and an empty cell is no value:
            # other messages go as JSON text
            return _table(load, dotted=False)
        columns[f"{root}.{key}"] = values
    return pa.table(columns)


ROOTS = ("properties", "context", "traits")


def _everything(store: DuckDBStore) -> tuple[Any, ...]:
    """Events, trait history, profiles, identities, merges and every profile's traits
    as of each instant of the data.  Events by column name (a file's columns are
    added to the table in the order its paths are found), ``extra`` parsed (the
    order of its keys follows the order the paths were found)."""
    con = store.con
    cols = sorted(r[0] for r in con.execute("DESCRIBE events").fetchall())
    cols.remove("received_at")
    select = ", ".join(f'"{c}"' for c in cols)
    extra = cols.index("extra")
    events = [
        (*row[:extra], row[extra] and orjson.loads(row[extra]), *row[extra + 1 :])
        for row in con.execute(f"SELECT {select} FROM events ORDER BY seq").fetchall()
    ]
    identities = con.execute("SELECT * FROM identities ORDER BY kind, value").fetchall()
    merges = con.execute("SELECT from_profile, into_profile FROM merges ORDER BY 1, 2").fetchall()
    as_of = {
        (p, day): store.traits_as_of(p, datetime(2026, 1, day, 1))
        for p in store.profile_ids()
        for day in range(1, 6)
    }
    return cols, events, _stored(store)[2:], identities, merges, as_of


@pytest.mark.slow
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    loads=st.lists(st.one_of(identity_messages(), messages()), min_size=1, max_size=3),
    fmt=st.sampled_from(["parquet", "csv", "jsonl"]),
    dotted=st.booleans(),
    staged=st.booleans(),
)
def test_bulk_files_store_what_messages_one_by_one_store(
    tmp_path: Path, loads: list[list[dict[str, Any]]], fmt: str, dotted: bool, staged: bool
) -> None:
    """The bulk file path (a Parquet, CSV or JSON Lines file per load, validated,
    deduplicated and resolved set-wise in SQL; a Parquet file staged in a table or
    read by each step) and the message path (each message parsed in Python, as the
    server's group commits) give the same events, trait history, profiles,
    identities, merges and traits as of any instant."""
    with DuckDBStore(":memory:") as bulk, DuckDBStore(":memory:") as one_by_one:
        bulk.table_stage_bytes = None if staged else 0
        for n, load in enumerate(loads):
            path = tmp_path / f"load{n}.{fmt}"
            if fmt == "jsonl":
                path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in load))
                a = bulk.ingest_jsonl(path, once=True)
            else:
                table = _table(load, dotted and fmt == "parquet")
                if fmt == "parquet":
                    pq.write_table(table, path)
                else:
                    pacsv.write_csv(table, path)
                a = bulk.ingest_table(path, once=True)
            b = one_by_one.ingest_messages(orjson.loads(orjson.dumps(load)))
            if a.skipped:  # the same file again: the ledger skips what would all repeat
                assert (a.inserted, b.inserted) == (0, 0)
            else:
                assert (a.inserted, a.duplicates) == (b.inserted, b.duplicates)
        assert _everything(bulk) == _everything(one_by_one)
        assert_profile_numbers_hold(bulk.con)
