"""Segment messages written into a PostgreSQL schema as Segment's warehouse loader lays
them out (https://segment.com/docs/connections/storage/warehouses/schema/): ``tracks``
and one table per event (snake-cased name), ``identifies`` and ``users``, ``pages``,
``screens``, ``aliases`` and ``groups``; objects flattened with ``_``, names
snake-cased, arrays stringified, null values left out, properties named like a
Segment column discarded.  A column's type is its values' (``bigint`` for whole
numbers only, ``double precision`` once a fraction is seen, ``timestamptz`` for
ISO-8601 date-times when ``timestamps``); a value of another type is kept as text in a
text column and dropped elsewhere, as the loader's casts do."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson
import psycopg
from psycopg import sql

from segflow.model.definition import Segment
from segflow.model.events import Message, parse_message
from segflow.model.time import parse_instant
from segflow.store.duckdb.batch import evaluate
from segflow.store.duckdb.store import DuckDBStore
from segflow.store.postgres.connection import connect
from segflow.store.postgres.warehouse import SegmentBatch, attach, open_batch
from segflow.store.segment import RESERVED, snakecase
from tests.postgres import temporary_schema

DATE_TIME: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"
)


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


def write_segment_schema(
    con: psycopg.Connection[tuple[object, ...]],
    schema: str,
    messages: Iterable[Mapping[str, Any]],
    *,
    timestamps: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """Create Segment's tables for ``messages`` in ``schema`` (which exists); the rows."""
    tables = segment_tables(messages)
    tables.setdefault("tracks", [])
    with con.transaction():
        for name, rows in tables.items():
            columns: dict[str, str] = {"id": "text", "timestamp": "timestamp with time zone"}
            values: dict[str, list[Any]] = {}
            for r in rows:
                for k, v in r.items():
                    if v is not None:
                        values.setdefault(k, []).append(v)
            for k, vs in values.items():
                columns[k] = CORE_TYPES.get(k) or _column_type(vs, timestamps)
            con.execute(
                sql.SQL("CREATE TABLE {} ({})").format(
                    sql.Identifier(schema, name),
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
                        for c, t in columns.items()
                    ),
                )
            )
            names = list(columns)
            copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Identifier, names))
            )
            with con.cursor().copy(copy) as cp:
                for r in rows:
                    cp.write_row([_cast(r.get(c), columns[c]) for c in names])
    return tables


@contextmanager
def warehouse(messages: list[Mapping[str, Any]]) -> Iterator[SegmentBatch]:
    """``messages`` written into a fresh Segment schema, attached in another."""
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


def duckdb_members(
    messages: list[Mapping[str, Any]], segments: list[Segment], at: datetime
) -> dict[str, set[str]]:
    with tempfile.TemporaryDirectory(prefix="segflow-segment-") as tmp:
        store = DuckDBStore(Path(tmp) / "store.duckdb")
        try:
            report = store.ingest_messages(messages)
            assert report.invalid == 0, report.problems
            return evaluate(store.con, segments, at).membership_map()
        finally:
            store.close()
