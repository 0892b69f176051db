"""Load hand-made or generated profile histories straight into the store schema.

Bypasses ingestion on purpose: these tests pin the evaluator, not the loader.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import orjson

from segflow.model.definition import CALL_TYPES
from segflow.model.history import Event, ProfileHistory, TraitWrite
from segflow.store.numbers import number_profiles
from segflow.store.schema import DDL

FIELDS = {
    "properties.category": "VARCHAR",
    "properties.price": "DOUBLE",
    "properties.flag": "BOOLEAN",
    "context.device.type": "VARCHAR",
}


def _fits(kind: str, v: object) -> bool:
    if kind == "BOOLEAN":
        return isinstance(v, bool)
    if kind == "DOUBLE":
        return isinstance(v, int | float) and not isinstance(v, bool)
    return isinstance(v, str)


def _kind(v: object) -> tuple[str, float | None, str | None, bool | None, str | None]:
    if v is None:
        return ("null", None, None, None, None)
    if isinstance(v, bool):
        return ("bool", None, None, v, None)
    if isinstance(v, int | float):
        return ("number", float(v), None, None, None)
    if isinstance(v, str):
        return ("string", None, v, None, None)
    return ("json", None, None, None, orjson.dumps(v).decode())


def _infer(histories: list[ProfileHistory]) -> dict[str, str]:
    """Fixed test fields plus every other path typed by its first scalar value."""
    fields = dict(FIELDS)
    for h in histories:
        for e in h.events:
            for path, v in e.fields.items():
                if path not in fields and v is not None:
                    fields[path] = (
                        "BOOLEAN"
                        if isinstance(v, bool)
                        else "DOUBLE"
                        if isinstance(v, int | float)
                        else "VARCHAR"
                    )
    return fields


def load(
    con: duckdb.DuckDBPyConnection, histories: Iterable[ProfileHistory], *, numbered: bool = True
) -> None:
    """Store ``histories`` as DuckDBStore would: with event codes and, unless not
    ``numbered`` (the compiler then keys on ``profile_id``), profile numbers."""
    histories = list(histories)
    fields = _infer(histories)
    con.execute(DDL)
    for path, kind in fields.items():
        con.execute(f'ALTER TABLE events ADD COLUMN IF NOT EXISTS "{path}" {kind}')
    overflow: set[str] = set()
    seq = 0
    for h in histories:
        first = min((e.timestamp for e in h.events), default=None)
        con.execute(
            "INSERT INTO profiles (profile_id, first_seen, last_seen) VALUES (?, ?, ?)",
            [h.profile_id, first or "2020-01-01", first or "2020-01-01"],
        )
        for e in h.events:
            seq += 1
            extra: dict[str, dict[str, object]] = {}
            typed: list[object] = []
            for path, kind in fields.items():
                v = e.fields.get(path)
                if v is not None and not _fits(kind, v):
                    top, rest = path.split(".", 1)
                    node = extra.setdefault(top, {})
                    parts = rest.split(".")
                    for p in parts[:-1]:
                        node = node.setdefault(p, {})  # type: ignore[assignment]
                    node[parts[-1]] = v
                    overflow.add(path)
                    v = None
                typed.append(v)
            cols = ", ".join(f'"{c}"' for c in fields)
            marks = ", ".join("?" for _ in fields)
            # page/screen calls as stored: their type and no event name
            type_ = CALL_TYPES.get(e.name, "track") if e.name is not None else "track"
            con.execute(
                "INSERT INTO events (message_id, seq, type, event, user_id, profile_id,"
                f' "timestamp", extra, {cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, {marks})',
                [
                    e.message_id or f"m{seq}",
                    seq,
                    type_,
                    None if type_ != "track" else e.name,
                    h.profile_id,
                    h.profile_id,
                    e.timestamp,
                    orjson.dumps(extra).decode() if extra else None,
                    *typed,
                ],
            )
        for w in h.traits:
            con.execute(
                "INSERT INTO traits (profile_id, key, timestamp, message_id, kind, num, str,"
                " bool, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [h.profile_id, w.key, w.timestamp, w.message_id, *_kind(w.value)],
            )
        for sid in h.static_segments:
            con.execute(
                "INSERT INTO static_members (segment_id, profile_id) VALUES (?, ?)",
                [sid, h.profile_id],
            )
    for path, kind in fields.items():
        con.execute(
            "INSERT INTO field_catalog (path, type, overflow) VALUES (?, ?, ?)",
            [path, kind, path in overflow],
        )
    # the integer name codes the store keeps (DuckDBStore numbers names on insert)
    con.execute(
        "INSERT INTO event_names (name, code)"
        " SELECT name, row_number() OVER (ORDER BY name) AS code"
        " FROM (SELECT DISTINCT event AS name FROM events WHERE event IS NOT NULL)"
    )
    con.execute("ALTER TABLE events ADD COLUMN IF NOT EXISTS event_code INTEGER")
    con.execute("UPDATE events SET event_code = n.code FROM event_names n WHERE event = n.name")
    if numbered:
        number_profiles(con)


__all__ = ["Event", "ProfileHistory", "TraitWrite", "load"]
