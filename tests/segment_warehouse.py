"""Segment messages written into a PostgreSQL schema, or as Parquet tables, as
Segment's warehouse loader lays them out
(https://segment.com/docs/connections/storage/warehouses/schema/): ``tracks`` and one
table per event (snake-cased name), ``identifies`` and ``users``, ``pages``,
``screens``, ``aliases`` and ``groups``; objects flattened with ``_``, names
snake-cased, arrays stringified, null values left out, properties named like a
Segment column discarded.  A column's type is its values' (``bigint`` for whole
numbers only, ``double precision`` once a fraction is seen, ``timestamptz`` for
ISO-8601 date-times when ``timestamps``); a value of another type is kept as text in a
text column and dropped elsewhere, as the loader's casts do."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from segflow.model.definition import Segment, parse_segment
from segflow.model.events import Message, parse_message
from segflow.model.time import parse_instant
from segflow.store.duckdb.batch import evaluate
from segflow.store.duckdb.store import DuckDBStore
from segflow.store.postgres.connection import connect
from segflow.store.postgres.warehouse import SegmentBatch, attach, open_batch
from segflow.store.segment import RESERVED, snakecase
from segflow.store.spark.warehouse import SegmentSparkBatch
from segflow.store.spark.warehouse import attach as attach_spark
from segflow.store.spark.warehouse import open_batch as open_spark_batch
from tests.postgres import temporary_schema
from tests.spark import MASTER

DATE_TIME: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"
)


T0 = datetime(2026, 3, 1, 12)
AT = T0 + timedelta(days=2)


def ts(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat() + "Z"


MESSAGES: list[dict[str, Any]] = [
    {"messageId": "m1", "type": "page", "anonymousId": "a1", "timestamp": ts(0), "name": "Home"},
    {
        "messageId": "m2",
        "type": "track",
        "event": "Order Completed",
        "anonymousId": "a1",
        "timestamp": ts(1),
        "properties": {"revenue": 20, "productId": "x", "product": {"sku": "G-32"}},
        "context": {"device": {"type": "mobile"}, "userAgent": "Safari"},
    },
    {
        "messageId": "m3",
        "type": "identify",
        "userId": "u1",
        "anonymousId": "a1",
        "timestamp": ts(2),
        "traits": {"firstName": "Ada", "address": {"city": "Oslo"}, "plan": "pro"},
        "context": {"traits": {"plan": "trial", "tier": "gold"}},
    },
    {
        "messageId": "m4",
        "type": "track",
        "event": "Order Completed",
        "userId": "u2",
        "timestamp": ts(3),
        "properties": {"revenue": 5.5},
        "context": {"traits": {"plan": "free"}},
    },
    {"messageId": "m5", "type": "alias", "userId": "u2", "previousId": "a1", "timestamp": ts(4)},
    {
        "messageId": "m6",
        "type": "track",
        "event": "Refund",
        "userId": "u3",
        "timestamp": ts(5),
        "properties": {"revenue": "n/a"},
    },
]

SEGMENTS = [
    parse_segment({"id": doc_id, "condition": cond})
    for doc_id, cond in [
        (
            "spent",
            {"event": "Order Completed", "measure": "sum", "of": "revenue", "gte": 25},
        ),
        (
            "camel",
            {"event": "Order Completed", "where": [{"property": "productId", "eq": "x"}]},
        ),
        (
            "nested",
            {"event": "Order Completed", "where": [{"property": "product.sku", "eq": "G-32"}]},
        ),
        (
            "mobile",
            {
                "event": "Order Completed",
                "where": [{"property": "context.device.type", "eq": "mobile"}],
            },
        ),
        (
            "agent",
            {
                "event": "Order Completed",
                "where": [{"property": "context.userAgent", "starts_with": "Saf"}],
            },
        ),
        ("ada", {"trait": "firstName", "eq": "Ada"}),
        ("oslo", {"trait": "address.city", "eq": "Oslo"}),
        ("pro", {"trait": "plan", "eq": "pro"}),
        ("trial", {"trait": "plan", "eq": "trial"}),
        ("gold", {"trait": "tier", "eq": "gold"}),
        (
            "text_revenue",
            {
                "event": ["Order Completed", "Refund"],
                "measure": "distinct",
                "of": "revenue",
                "gte": 1,
            },
        ),
        ("home", {"page": "Home"}),
    ]
]


def _flatten(obj: Mapping[str, Any], prefix: tuple[str, ...], out: dict[str, Any]) -> None:
    for k, v in obj.items():
        parts = (*prefix, k)
        if isinstance(v, Mapping):
            if v:
                _flatten(v, parts, out)
        elif isinstance(v, list | tuple):
            out[snakecase("_".join(parts))] = orjson.dumps(v).decode()
        elif v is not None:
            out[snakecase("_".join(parts))] = v


def _fields(obj: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _flatten(obj, prefix, out)
    return {k: v for k, v in out.items() if k and (prefix or k not in RESERVED)}


def _column_type(values: list[Any], timestamps: bool) -> str:
    first = values[0]
    if isinstance(first, bool):
        return "boolean"
    if isinstance(first, int | float):
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        whole = all(isinstance(v, int) for v in numbers)
        return "bigint" if whole else "double precision"
    if timestamps and isinstance(first, str) and DATE_TIME.match(first):
        return "timestamp with time zone"
    return "text"


def _cast(v: Any, kind: str) -> Any:
    if v is None:
        return None
    if kind == "text":
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v) if not isinstance(v, str) else v
    if kind == "boolean":
        return v if isinstance(v, bool) else None
    if kind in ("bigint", "double precision"):
        if isinstance(v, bool) or not isinstance(v, int | float):
            return None
        return int(v) if kind == "bigint" else float(v)
    if kind == "timestamp with time zone":
        if isinstance(v, str) and DATE_TIME.match(v):
            return parse_instant(v).isoformat() + "+00:00"
        return None
    return v


CORE_TYPES: Final = {
    "id": "text",
    "anonymous_id": "text",
    "user_id": "text",
    "event": "text",
    "event_text": "text",
    "previous_id": "text",
    "group_id": "text",
    "timestamp": "timestamp with time zone",
    "original_timestamp": "timestamp with time zone",
    "sent_at": "timestamp with time zone",
    "received_at": "timestamp with time zone",
    "uuid_ts": "timestamp with time zone",
}


def _core(m: Message) -> dict[str, Any]:
    def aware(t: datetime | None) -> str | None:
        return None if t is None else t.isoformat() + "+00:00"

    row: dict[str, Any] = {
        "id": m.message_id,
        "anonymous_id": m.anonymous_id,
        "user_id": m.user_id,
        "timestamp": aware(m.timestamp),
        "original_timestamp": aware(m.timestamp),
        "sent_at": aware(m.sent_at),
        "received_at": aware(m.received_at or m.timestamp),
        "uuid_ts": aware(m.received_at or m.timestamp),
    }
    row.update(_fields(m.context, ("context",)))
    return row


def segment_tables(messages: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The rows each Segment table gets for ``messages`` (in their order)."""
    tables: dict[str, list[dict[str, Any]]] = {}
    users: dict[str, dict[str, Any]] = {}
    for raw in messages:
        m = parse_message(raw)
        row = _core(m)
        if m.type == "track":
            assert m.event is not None
            slug = snakecase(m.event)
            row.update(event=slug, event_text=m.event)
            tables.setdefault("tracks", []).append(row)
            tables.setdefault(slug, []).append({**row, **_fields(m.properties)})
        elif m.type == "identify":
            traits = _fields(m.traits)
            tables.setdefault("identifies", []).append({**row, **traits})
            if m.user_id is not None:
                user = users.setdefault(m.user_id, {"id": m.user_id})
                if row["received_at"] >= user.get("received_at", ""):
                    user.update(traits, received_at=row["received_at"])
        elif m.type in ("page", "screen"):
            tables.setdefault(f"{m.type}s", []).append({**row, **_fields(m.properties)})
        elif m.type == "alias":
            tables.setdefault("aliases", []).append({**row, "previous_id": m.previous_id})
        elif m.type == "group":
            tables.setdefault("groups", []).append(
                {**row, "group_id": m.group_id, **_fields(m.traits)}
            )
    if users:
        tables["users"] = list(users.values())
    return tables


def typed_tables(
    messages: Iterable[Mapping[str, Any]], *, timestamps: bool = True
) -> dict[str, tuple[dict[str, str], list[list[Any]]]]:
    """Each Segment table for ``messages``: its columns (name -> PostgreSQL type) and
    its rows, each value cast as the loader casts it."""
    tables = segment_tables(messages)
    tables.setdefault("tracks", [])
    out = {}
    for name, rows in tables.items():
        columns: dict[str, str] = {"id": "text", "timestamp": "timestamp with time zone"}
        values: dict[str, list[Any]] = {}
        for r in rows:
            for k, v in r.items():
                if v is not None:
                    values.setdefault(k, []).append(v)
        for k, vs in values.items():
            columns[k] = CORE_TYPES.get(k) or _column_type(vs, timestamps)
        out[name] = (columns, [[_cast(r.get(c), columns[c]) for c in columns] for r in rows])
    return out


def write_segment_schema(
    con: psycopg.Connection[tuple[object, ...]],
    schema: str,
    messages: Iterable[Mapping[str, Any]],
    *,
    timestamps: bool = True,
) -> None:
    """Create Segment's tables for ``messages`` in ``schema`` (which exists)."""
    with con.transaction():
        for name, (columns, rows) in typed_tables(messages, timestamps=timestamps).items():
            con.execute(
                sql.SQL("CREATE TABLE {} ({})").format(
                    sql.Identifier(schema, name),
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
                        for c, t in columns.items()
                    ),
                )
            )
            copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
            with con.cursor().copy(copy) as cp:
                for row in rows:
                    cp.write_row(row)


ARROW_TYPES: Final[dict[str, pa.DataType]] = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "double precision": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
}


def write_segment_parquet(
    root: Path, messages: Iterable[Mapping[str, Any]], *, timestamps: bool = True
) -> None:
    """Write Segment's tables for ``messages`` under ``root`` as a lakehouse holds
    them: a directory of Parquet files per table."""
    for name, (columns, rows) in typed_tables(messages, timestamps=timestamps).items():
        arrays = []
        for i, kind in enumerate(columns.values()):
            values = [r[i] for r in rows]
            if kind == "timestamp with time zone":
                values = [None if v is None else datetime.fromisoformat(v) for v in values]
            arrays.append(pa.array(values, type=ARROW_TYPES[kind]))
        (root / name).mkdir(parents=True)
        pq.write_table(pa.table(arrays, names=list(columns)), root / name / "part-0.parquet")


@contextmanager
def warehouse(messages: Sequence[Mapping[str, Any]]) -> Iterator[SegmentBatch]:
    """``messages`` written into a fresh Segment schema, attached in another
    (PostgreSQL)."""
    with temporary_schema() as source_url, temporary_schema() as url:
        con = connect(url)
        try:
            write_segment_schema(con, source_url.rsplit("%3D", 1)[1], messages)
            attach(con, source_url.rsplit("%3D", 1)[1])
        finally:
            con.close()
        batch = open_batch(url)
        assert isinstance(batch, SegmentBatch)
        try:
            yield batch
        finally:
            batch.close()


@contextmanager
def spark_warehouse(messages: Sequence[Mapping[str, Any]]) -> Iterator[SegmentSparkBatch]:
    """``messages`` written as Parquet tables, attached in a Spark directory."""
    with tempfile.TemporaryDirectory(prefix="segflow-segment-spark-") as tmp:
        write_segment_parquet(Path(tmp) / "source", messages)
        url = f"spark://{MASTER}{tmp}/engine"
        attach_spark(url, f"{tmp}/source")
        batch = open_spark_batch(url)
        assert isinstance(batch, SegmentSparkBatch)
        try:
            yield batch
        finally:
            batch.close()


Warehouse = Callable[
    [Sequence[Mapping[str, Any]]], AbstractContextManager[SegmentBatch | SegmentSparkBatch]
]

WAREHOUSES: Final[dict[str, Warehouse]] = {"postgres": warehouse, "spark": spark_warehouse}
"""The engines reading a Segment warehouse in place, each from messages."""


def duckdb_members(
    messages: Sequence[Mapping[str, Any]], segments: list[Segment], at: datetime
) -> dict[str, set[str]]:
    with tempfile.TemporaryDirectory(prefix="segflow-segment-") as tmp:
        store = DuckDBStore(Path(tmp) / "store.duckdb")
        try:
            report = store.ingest_messages(messages)
            assert report.invalid == 0, report.problems
            return evaluate(store.con, segments, at).membership_map()
        finally:
            store.close()
