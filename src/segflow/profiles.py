"""The customer view of one profile, its privacy export and its erasure.

Service-level functions over a ``Segflow`` instance (callers hold the server lock), so
HTTP routes stay thin.  Erasure covers the profile and every profile merged into it:
it removes their events, traits, identities, memberships, merges and webhook
deliveries in one transaction, logs the exits through the live evaluator, replaces
their ids in the change log by a keyed pseudonym (the log's running sizes stay
exact), can add keyed hashes of their ids to the suppression list that ingestion
consults to drop later events, and then scrubs the file so no byte of the deleted
rows stays in it (``store.erasure``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

import duckdb
import orjson

from segflow.model.time import format_instant, utcnow
from segflow.store.changes import MembershipChangeLog
from segflow.store.duckdb_store import message_of_row
from segflow.store.erasure import KEYS_DDL, Suppressions, erasure_key, pseudonym, scrub
from segflow.traits.computed import computed_traits

if TYPE_CHECKING:
    from segflow.live import LiveEvaluator
    from segflow.service import Segflow

ERASED_TABLES: Final = (
    "events",
    "traits",
    "identities",
    "memberships",
    "static_members",
    "profiles",
    "merges",
    "membership_changes",
    "webhook_deliveries",
)
"""Tables that can hold an erased profile's rows: rewritten after an erasure."""

RECENT_EVENTS: Final = 50
RECENT_ORDERS: Final = 20


def jsonable(v: Any) -> Any:
    """Store values (datetimes, numpy/Decimal-free DuckDB rows) as JSON-ready data."""
    if isinstance(v, datetime):
        return format_instant(v)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, float) and v != v:
        return None
    return v


def resolve(app: Segflow, profile_id: str) -> str | None:
    """The current profile for an id: a profile id, a user or anonymous id, an
    alias's previous id, or an id that was merged away (merges are followed)."""
    con = app.con
    if con.execute("SELECT 1 FROM profiles WHERE profile_id = ?", [profile_id]).fetchone():
        return profile_id
    # a user id first, then an anonymous id, then an alias's previous id (linked to
    # its profile by the alias call alone, before any event names it)
    row = con.execute(
        "SELECT profile_id FROM identities WHERE value = ? AND kind IN"
        " ('user', 'anonymous', 'previous')"
        " ORDER BY kind = 'user' DESC, kind = 'anonymous' DESC LIMIT 1",
        [profile_id],
    ).fetchone()
    if row is not None:
        return str(row[0])
    seen = {profile_id}
    current = profile_id
    while True:
        row = con.execute(
            'SELECT into_profile FROM merges WHERE from_profile = ? ORDER BY "at" DESC LIMIT 1',
            [current],
        ).fetchone()
        if row is None or row[0] in seen:
            break
        current = str(row[0])
        seen.add(current)
        if con.execute("SELECT 1 FROM profiles WHERE profile_id = ?", [current]).fetchone():
            return current
    return None


def list_profiles(
    app: Segflow, *, limit: int, after: str | None = None, prefix: str | None = None
) -> dict[str, Any]:
    """Profile ids in order, a page at a time (``next_cursor``: pass it as ``after``)."""
    sql = "SELECT profile_id, last_seen FROM profiles WHERE TRUE"
    params: list[Any] = []
    if after is not None:
        sql += " AND profile_id > ?"
        params.append(after)
    if prefix:
        sql += " AND starts_with(profile_id, ?)"
        params.append(prefix)
    params.append(limit + 1)
    rows = app.con.execute(sql + " ORDER BY profile_id LIMIT ?", params).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "profiles": [{"profile_id": p, "last_seen": format_instant(t)} for p, t in rows],
        "next_cursor": rows[-1][0] if more and rows else None,
    }


def _events(
    con: duckdb.DuckDBPyConnection, profile_id: str, *, names: tuple[str, ...] = (), limit: int
) -> list[dict[str, Any]]:
    sql = "SELECT * FROM events WHERE profile_id = ?"
    params: list[Any] = [profile_id]
    if names:
        sql += f" AND event IN ({', '.join('?' for _ in names)})"
        params.extend(names)
    sql += ' ORDER BY "timestamp" DESC, message_id DESC LIMIT ?'
    params.append(limit)
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description or ()]
    out = []
    for row in cur.fetchall():
        ev = message_of_row(cols, row)
        out.append(
            {
                k: jsonable(v)
                for k, v in ev.items()
                if v not in (None, {}) and k not in ("seq", "profile_id")
            }
        )
    return out


def cart(con: duckdb.DuckDBPyConnection, profile_id: str) -> list[dict[str, Any]]:
    """Products whose latest add/remove since the last order is an add (the open cart)."""
    row = con.execute(
        "SELECT max(\"timestamp\") FROM events WHERE profile_id = ? AND event = 'Order Completed'",
        [profile_id],
    ).fetchone()
    last_order = row[0] if row else None
    sql = (
        "SELECT * FROM events WHERE profile_id = ?"
        " AND event IN ('Product Added', 'Product Removed')"
    )
    params: list[Any] = [profile_id]
    if last_order is not None:
        sql += ' AND "timestamp" > ?'
        params.append(last_order)
    cur = con.execute(sql + ' ORDER BY "timestamp", message_id', params)
    cols = [d[0] for d in cur.description or ()]
    lines: dict[str, dict[str, Any]] = {}
    for r in cur.fetchall():
        ev = message_of_row(cols, r)
        props = ev.get("properties") or {}
        pid = props.get("product_id")
        if pid is None:
            continue
        if ev["event"] == "Product Added":
            lines[str(pid)] = {
                "product_id": pid,
                **{k: props[k] for k in ("name", "category", "price", "quantity") if k in props},
                "added_at": format_instant(ev["timestamp"]),
            }
        else:
            lines.pop(str(pid), None)
    return list(lines.values())


def segments_of(app: Segflow, live: LiveEvaluator | None, profile_id: str) -> dict[str, str | None]:
    """Segment -> member since (live memberships; else the last batch evaluation)."""
    if live is not None:
        return {s: format_instant(t) for s, t in sorted(live.segments_of(profile_id).items())}
    rows = app.con.execute(
        "SELECT segment_id, min(evaluated_at) FROM memberships WHERE profile_id = ?"
        " GROUP BY segment_id ORDER BY segment_id",
        [profile_id],
    ).fetchall()
    return {str(s): None for s, _ in rows}


def profile_view(
    app: Segflow, live: LiveEvaluator | None, profile_id: str, at: datetime | None = None
) -> dict[str, Any]:
    """Identities, traits, computed traits, orders, cart, wishlist, recent click-stream
    and segments of one (resolved) profile."""
    con = app.con
    now = at or utcnow()
    computed = computed_traits(con, now, [profile_id])
    comp = {k: jsonable(v) for k, v in computed[0].items() if k != "profile_id"} if computed else {}
    seen = con.execute(
        "SELECT first_seen, last_seen FROM profiles WHERE profile_id = ?", [profile_id]
    ).fetchone()
    return {
        "profile_id": profile_id,
        "first_seen": jsonable(seen[0]) if seen else None,
        "last_seen": jsonable(seen[1]) if seen else None,
        "identities": [{"kind": k, "value": v} for k, v in app.store.identities(profile_id)],
        "traits": jsonable(app.store.traits_as_of(profile_id)),
        "computed_traits": comp,
        "orders": _events(con, profile_id, names=("Order Completed",), limit=RECENT_ORDERS),
        "cart": cart(con, profile_id),
        "wishlist": comp.get("wishlist", []),
        "recent_events": _events(con, profile_id, limit=RECENT_EVENTS),
        "segments": segments_of(app, live, profile_id),
    }


def privacy_export(app: Segflow, live: LiveEvaluator | None, profile_id: str) -> dict[str, Any]:
    """Everything held on a profile: identities, every event and trait write, memberships,
    the change log, merges and webhook deliveries that name it."""
    con = app.con
    trait_rows = con.execute(
        'SELECT key, "timestamp", message_id, kind, num, str, bool, json FROM traits'
        ' WHERE profile_id = ? ORDER BY "timestamp", key',
        [profile_id],
    ).fetchall()
    traits = [
        {
            "key": k,
            "timestamp": format_instant(t),
            "message_id": m,
            "value": (
                n
                if kind == "number"
                else s
                if kind == "string"
                else b
                if kind == "bool"
                else orjson.loads(j)
                if kind == "json"
                else None
            ),
        }
        for k, t, m, kind, n, s, b, j in trait_rows
    ]
    log = MembershipChangeLog(con)
    ids = merged_into(con, profile_id)
    changes = [
        c.to_json()
        for c in sorted((c for i in ids for c in log.query(profile_id=i)), key=lambda c: c.seq)
    ]
    merges = [
        {"from": a, "into": b, "at": format_instant(t)}
        for a, b, t in con.execute(
            'SELECT from_profile, into_profile, "at" FROM merges'
            " WHERE list_contains($ids, from_profile) OR list_contains($ids, into_profile)"
            ' ORDER BY "at"',
            {"ids": ids},
        ).fetchall()
    ]
    deliveries: list[dict[str, Any]] = []
    if _has_table(con, "webhook_deliveries"):
        deliveries = [
            {"id": i, "webhook_id": w, "status": s, "body": orjson.loads(b)}
            for i, w, s, b in con.execute(
                "SELECT id, webhook_id, status, body FROM webhook_deliveries"
                " WHERE list_contains(?, json_extract_string(body, '$.profile_id')) ORDER BY id",
                [ids],
            ).fetchall()
        ]
    return {
        "profile_id": profile_id,
        "exported_at": format_instant(utcnow()),
        "identities": [{"kind": k, "value": v} for k, v in app.store.identities(profile_id)],
        "traits": traits,
        "events": _events(con, profile_id, limit=2**62),
        "segments": segments_of(app, live, profile_id),
        "membership_changes": changes,
        "merges": merges,
        "webhook_deliveries": deliveries,
    }


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?"
        " AND schema_name = 'main' AND database_name = current_database()",
        [name],
    ).fetchone()
    return bool(row and row[0])


def merged_into(con: duckdb.DuckDBPyConnection, profile_id: str) -> list[str]:
    """``profile_id`` and every profile id merged into it, directly or in steps."""
    rows = con.execute(
        "WITH RECURSIVE m(id) AS (SELECT ?::VARCHAR UNION"
        " SELECT g.from_profile FROM merges g JOIN m ON g.into_profile = m.id)"
        " SELECT id FROM m ORDER BY id",
        [profile_id],
    ).fetchall()
    return [str(r[0]) for r in rows]


def load_suppressions(con: duckdb.DuckDBPyConnection) -> Suppressions:
    """The stored suppression list (keyed hashes of ids)."""
    out = Suppressions()
    out.load(con)
    return out


def erase(
    app: Segflow,
    live: LiveEvaluator | None,
    profile_id: str,
    *,
    suppress: bool = False,
    suppressions: Suppressions | None = None,
) -> tuple[int, str]:
    """Delete the profile, and every profile merged into it: events, traits,
    identities, memberships, merges and webhook deliveries naming them; their
    change-log rows keep only a pseudonym.  Exits are logged by the live evaluator
    first.  With ``suppress`` the hashes of their ids join ``suppressions`` (and the
    stored list).  Then the file is scrubbed.  Returns (exits logged, pseudonym)."""
    con = app.con
    con.execute(KEYS_DDL)
    key = erasure_key(con)
    merged = merged_into(con, profile_id)
    idents = con.execute(
        "SELECT DISTINCT value FROM identities WHERE list_contains(?, profile_id)", [merged]
    ).fetchall()
    ids = sorted({*merged, *(str(v) for (v,) in idents)})
    exits = len(live.forget_profile(profile_id)) if live is not None else 0
    alias = pseudonym(key, profile_id)
    con.execute("BEGIN TRANSACTION")
    try:
        for table in ("events", "traits", "identities", "memberships", "static_members"):
            con.execute(f"DELETE FROM {table} WHERE list_contains(?, profile_id)", [merged])
        con.execute("DELETE FROM profiles WHERE list_contains(?, profile_id)", [merged])
        con.execute(
            "DELETE FROM merges WHERE list_contains($ids, from_profile)"
            " OR list_contains($ids, into_profile)",
            {"ids": merged},
        )
        if _has_table(con, "membership_changes"):
            con.execute(
                "UPDATE membership_changes SET profile_id = ? WHERE list_contains(?, profile_id)",
                [alias, merged],
            )
        if _has_table(con, "webhook_deliveries"):
            con.execute(
                "DELETE FROM webhook_deliveries"
                " WHERE list_contains(?, json_extract_string(body, '$.profile_id'))",
                [merged],
            )
        if suppress:
            (suppressions if suppressions is not None else Suppressions()).add(con, ids)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    scrub(con, [t for t in ERASED_TABLES if _has_table(con, t)])
    return exits, alias
