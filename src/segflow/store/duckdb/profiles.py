"""Per-profile reads and erasure in DuckDB: identity look-ups, profile pages, recent
events, the privacy export's rows and the erasure transaction.

The customer view, the privacy export and erasure (``segflow.service.profiles``) shape these
rows; every statement is here, with values bound as parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import duckdb
import orjson
import pyarrow as pa

from segflow.model.suppressions import Suppressions
from segflow.store.duckdb.catalog import has_table, table_columns
from segflow.store.duckdb.erasure import (
    KEYS_DDL,
    add_suppressions,
    erasure_key,
    load_suppressions,
    pseudonym,
    scrub,
)
from segflow.store.duckdb.sessions import TABLE as SESSIONS
from segflow.store.duckdb.sql import quote_ident, quote_str
from segflow.store.duckdb.store import message_of_row

ERASED_TABLES: Final = (
    "events",
    "traits",
    "identities",
    "memberships",
    "static_members",
    "profiles",
    "merges",
    "membership_changes",
    "destination_deliveries",
    SESSIONS,
)
"""Tables that can hold an erased profile's rows: rewritten after an erasure."""

NAME_KEYS: Final = {
    "name": ("name", "full_name", "fullName"),
    "first": ("first_name", "firstName"),
    "last": ("last_name", "lastName"),
}
"""Trait keys a person's name is read from (Segment's spec: ``name``, ``firstName``,
``lastName``; their snake_case spellings too)."""
_NAME_KEYS: Final = [k for keys in NAME_KEYS.values() for k in keys]


def _first_of(keys: Sequence[str]) -> str:
    return (
        "coalesce(" + ", ".join(f"max(v) FILTER (WHERE key = {quote_str(k)})" for k in keys) + ")"
    )


_CARDS: Final = f"""
    SELECT profile_id,
           coalesce({_first_of(NAME_KEYS["name"])},
                    nullif(concat_ws(' ', {_first_of(NAME_KEYS["first"])},
                                          {_first_of(NAME_KEYS["last"])}), '')) AS name,
           max(v) FILTER (WHERE key = 'email') AS email
    FROM (SELECT profile_id, key, arg_max(str, ("timestamp", message_id)) AS v FROM traits
          WHERE valid_to IS NULL AND kind = 'string' /*ids*/
            AND key IN ({", ".join(quote_str(k) for k in [*_NAME_KEYS, "email"])})
          GROUP BY ALL)
    GROUP BY profile_id"""
"""Each profile's name (``name``, else first and last name) and email, from the
current trait writes (``valid_to IS NULL``); ``/*ids*/`` is where a caller narrows the
profiles read."""

TraitWrite = tuple[str, datetime, str, Any]
"""(key, timestamp, message_id, value) of one stored trait write."""


class DuckDBProfileStore:
    """``ProfileStore`` on the DuckDB connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def exists(self, profile_id: str) -> bool:
        sql = "SELECT 1 FROM profiles WHERE profile_id = ?"
        return self.con.execute(sql, [profile_id]).fetchone() is not None

    def by_identity(self, value: str) -> str | None:
        """The profile of a user id, else an anonymous id, else an alias's previous id
        (linked to its profile by the alias call alone, before any event names it)."""
        row = self.con.execute(
            "SELECT profile_id FROM identities WHERE value = ? AND kind IN"
            " ('user', 'anonymous', 'previous')"
            " ORDER BY kind = 'user' DESC, kind = 'anonymous' DESC LIMIT 1",
            [value],
        ).fetchone()
        return str(row[0]) if row is not None else None

    def by_anonymous(self, value: str) -> str | None:
        """The profile of an anonymous id (None: no visitor has it)."""
        row = self.con.execute(
            "SELECT profile_id FROM identities WHERE kind = 'anonymous' AND value = ?", [value]
        ).fetchone()
        return str(row[0]) if row is not None else None

    def anonymous_identities(self) -> list[tuple[str, str]]:
        """Every anonymous id with the profile it belongs to now."""
        rows = self.con.execute(
            "SELECT value, profile_id FROM identities WHERE kind = 'anonymous'"
        ).fetchall()
        return [(str(a), str(p)) for a, p in rows]

    def merged_to(self, profile_id: str) -> str | None:
        """The profile ``profile_id`` was last merged into (None if never)."""
        row = self.con.execute(
            'SELECT into_profile FROM merges WHERE from_profile = ? ORDER BY "at" DESC LIMIT 1',
            [profile_id],
        ).fetchone()
        return str(row[0]) if row is not None else None

    def page(
        self, *, limit: int, after: str | None = None, prefix: str | None = None
    ) -> list[tuple[str, datetime]]:
        """(profile id, last seen) of up to ``limit`` profiles in id order."""
        sql = "SELECT profile_id, last_seen FROM profiles WHERE TRUE"
        params: list[Any] = []
        if after is not None:
            sql += " AND profile_id > ?"
            params.append(after)
        if prefix:
            sql += " AND starts_with(profile_id, ?)"
            params.append(prefix)
        params.append(limit)
        rows = self.con.execute(sql + " ORDER BY profile_id LIMIT ?", params).fetchall()
        return [(str(p), t) for p, t in rows]

    def cards(self, profile_ids: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
        """Profile id -> (name, email) from the current traits, for the profiles given
        that have either (one grouped read of a few trait keys)."""
        if not profile_ids:
            return {}
        self.con.register(
            "_sf_card_ids", pa.table({"profile_id": pa.array(profile_ids, pa.string())})
        )
        try:
            narrowed = "AND profile_id IN (SELECT profile_id FROM _sf_card_ids)"
            rows = self.con.execute(_CARDS.replace("/*ids*/", narrowed)).fetchall()
        finally:
            self.con.unregister("_sf_card_ids")
        return {str(p): (n, e) for p, n, e in rows}

    def search(
        self,
        text: str,
        *,
        limit: int,
        after: str | None = None,
        within: Sequence[str] | None = None,
    ) -> list[tuple[str, str | None, str | None, datetime]]:
        """(profile id, name, email, last seen) of up to ``limit`` profiles in id order
        (after ``after``; among ``within`` when given) whose id, any identity (user or
        anonymous id), name or email contains ``text`` (case-insensitive)."""
        q = text.lower()
        keys = [*_NAME_KEYS, "email"]
        current = "valid_to IS NULL AND kind = 'string'"
        # a full name ("ada byron") spans the first and the last name's writes
        full = (
            """UNION SELECT f.profile_id FROM traits f JOIN traits l USING (profile_id)
                WHERE f.valid_to IS NULL AND f.kind = 'string'
                  AND l.valid_to IS NULL AND l.kind = 'string'
                  AND list_contains($first, f.key) AND list_contains($last, l.key)
                  AND contains(lower(f.str || ' ' || l.str), $q)"""
            if " " in q.strip()
            else ""
        )
        outer = ""
        if within is not None:
            ids = pa.table({"profile_id": pa.array(within, pa.string())})
            self.con.register("_sf_search_ids", ids)
            outer = "AND p.profile_id IN (SELECT profile_id FROM _sf_search_ids)"
        params: dict[str, Any] = {"q": q, "after": after, "limit": limit, "keys": keys}
        if full:
            params |= {"first": list(NAME_KEYS["first"]), "last": list(NAME_KEYS["last"])}
        try:
            rows = self.con.execute(
                f"""WITH hits AS (
                        SELECT profile_id FROM profiles WHERE contains(lower(profile_id), $q)
                        UNION SELECT profile_id FROM identities WHERE contains(lower(value), $q)
                        UNION SELECT profile_id FROM traits WHERE {current}
                          AND list_contains($keys, key) AND contains(lower(str), $q)
                        {full})
                    SELECT p.profile_id, p.last_seen
                    FROM profiles p SEMI JOIN hits USING (profile_id)
                    WHERE ($after IS NULL OR p.profile_id > $after) {outer}
                    ORDER BY p.profile_id LIMIT $limit""",
                params,
            ).fetchall()
        finally:
            if within is not None:
                self.con.unregister("_sf_search_ids")
        cards = self.cards([str(p) for p, _ in rows])
        return [(str(p), *cards.get(str(p), (None, None)), t) for p, t in rows]

    def seen(self, profile_id: str) -> tuple[datetime, datetime] | None:
        """(first seen, last seen) of a profile."""
        row = self.con.execute(
            "SELECT first_seen, last_seen FROM profiles WHERE profile_id = ?", [profile_id]
        ).fetchone()
        return (row[0], row[1]) if row else None

    def recent_events(
        self, profile_id: str, *, names: tuple[str, ...] = (), limit: int
    ) -> list[dict[str, Any]]:
        """A profile's newest events first (only ``names`` when given), message-shaped."""
        sql = "SELECT * FROM events WHERE profile_id = ?"
        params: list[Any] = [profile_id]
        if names:
            sql += f" AND event IN ({', '.join('?' for _ in names)})"
            params.extend(names)
        sql += ' ORDER BY "timestamp" DESC, message_id DESC LIMIT ?'
        params.append(limit)
        return self._rebuilt(sql, params)

    def timeline(
        self,
        profile_id: str,
        *,
        limit: int,
        before: tuple[datetime, str | None] | None = None,
        types: Sequence[str] = (),
        names: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """A profile's events newest first, message-shaped: those of ``types`` / event
        ``names`` when given, before ``before`` ((timestamp, message id): strictly
        earlier in (timestamp, message id) order; a None message id: every event
        earlier than the timestamp)."""
        sql = "SELECT * FROM events WHERE profile_id = $p"
        params: dict[str, Any] = {"p": profile_id, "limit": limit}
        if types:
            sql += " AND list_contains($types, type)"
            params["types"] = list(types)
        if names:
            sql += " AND list_contains($names, event)"
            params["names"] = list(names)
        if before is not None:
            ts, mid = before
            params["ts"] = ts
            if mid is None:
                sql += ' AND "timestamp" < $ts'
            else:
                sql += ' AND ("timestamp" < $ts OR ("timestamp" = $ts AND message_id < $mid))'
                params["mid"] = mid
        sql += ' ORDER BY "timestamp" DESC, message_id DESC LIMIT $limit'
        cur = self.con.execute(sql, params)
        cols = [d[0] for d in cur.description or ()]
        return [message_of_row(cols, row) for row in cur.fetchall()]

    def products(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Product id -> its ``name``, ``price`` and ``category`` as the latest event
        naming the product that carried each one had them (one scan of the product id
        column)."""
        columns = table_columns(self.con, "events")
        pid = "properties.product_id"
        if not product_ids or pid not in columns:
            return {}
        fields = [f for f in ("name", "price", "category") if f"properties.{f}" in columns]
        if not fields:
            return {str(p): {} for p in product_ids}
        picks = ", ".join(
            f'arg_max({quote_ident("properties." + f)}, "timestamp")'
            f" FILTER (WHERE {quote_ident('properties.' + f)} IS NOT NULL)"
            for f in fields
        )
        rows = self.con.execute(
            f"SELECT CAST({quote_ident(pid)} AS VARCHAR), {picks} FROM events"
            f" WHERE CAST({quote_ident(pid)} AS VARCHAR) IN (SELECT unnest($ids)) GROUP BY 1",
            {"ids": [str(p) for p in product_ids]},
        ).fetchall()
        return {
            str(r[0]): {f: v for f, v in zip(fields, r[1:], strict=True) if v is not None}
            for r in rows
        }

    def cart_events(self, profile_id: str) -> list[dict[str, Any]]:
        """Product Added/Removed events since the profile's last order, oldest first."""
        row = self.con.execute(
            'SELECT max("timestamp") FROM events'
            " WHERE profile_id = ? AND event = 'Order Completed'",
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
        return self._rebuilt(sql + ' ORDER BY "timestamp", message_id', params)

    def _rebuilt(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cur = self.con.execute(sql, params)
        cols = [d[0] for d in cur.description or ()]
        return [message_of_row(cols, row) for row in cur.fetchall()]

    def evaluated_segments(self, profile_id: str) -> list[str]:
        """Segments the last batch evaluation put the profile in, by id."""
        rows = self.con.execute(
            "SELECT segment_id, min(evaluated_at) FROM memberships WHERE profile_id = ?"
            " GROUP BY segment_id ORDER BY segment_id",
            [profile_id],
        ).fetchall()
        return [str(s) for s, _ in rows]

    def trait_writes(self, profile_id: str) -> list[TraitWrite]:
        """Every trait write of a profile, oldest first."""
        rows = self.con.execute(
            'SELECT key, "timestamp", message_id, kind, num, str, bool, json FROM traits'
            ' WHERE profile_id = ? ORDER BY "timestamp", key',
            [profile_id],
        ).fetchall()
        return [
            (
                k,
                t,
                m,
                n
                if kind == "number"
                else s
                if kind == "string"
                else b
                if kind == "bool"
                else orjson.loads(j)
                if kind == "json"
                else None,
            )
            for k, t, m, kind, n, s, b, j in rows
        ]

    def trait_value_counts(self, keys: Iterable[str]) -> list[tuple[str, str, int]]:
        """(key, value, profiles) of the current string values of trait ``keys``, most
        common first within each key."""
        wanted = list(keys)
        if not wanted:
            return []
        rows = self.con.execute(
            f"""SELECT key, str, count(*) FROM current_traits
               WHERE key IN ({", ".join("?" for _ in wanted)})
               GROUP BY ALL ORDER BY 1, 3 DESC, 2""",
            wanted,
        ).fetchall()
        return [(str(k), str(v), int(n)) for k, v, n in rows]

    def merges_naming(self, ids: list[str]) -> list[tuple[str, str, datetime]]:
        """(from, into, at) of every merge from or into one of ``ids``, oldest first."""
        rows = self.con.execute(
            'SELECT from_profile, into_profile, "at" FROM merges'
            " WHERE list_contains($ids, from_profile) OR list_contains($ids, into_profile)"
            ' ORDER BY "at"',
            {"ids": ids},
        ).fetchall()
        return [(str(a), str(b), t) for a, b, t in rows]

    def deliveries_naming(self, ids: list[str]) -> list[tuple[int, str, str, str, Any]]:
        """(id, destination id, its type, status, body) of every delivery about one of
        ``ids``."""
        if not has_table(self.con, "destination_deliveries"):
            return []
        rows = self.con.execute(
            "SELECT d.id, d.destination_id, coalesce(t.kind, ''), d.status, d.body"
            " FROM destination_deliveries d LEFT JOIN destinations t ON t.id = d.destination_id"
            " WHERE list_contains(?, d.profile_id) ORDER BY d.id",
            [ids],
        ).fetchall()
        return [(i, w, k, s, orjson.loads(b)) for i, w, k, s, b in rows]

    def merged_into(self, profile_id: str) -> list[str]:
        """``profile_id`` and every profile id merged into it, directly or in steps."""
        rows = self.con.execute(
            "WITH RECURSIVE m(id) AS (SELECT ?::VARCHAR UNION"
            " SELECT g.from_profile FROM merges g JOIN m ON g.into_profile = m.id)"
            " SELECT id FROM m ORDER BY id",
            [profile_id],
        ).fetchall()
        return [str(r[0]) for r in rows]

    def identity_values(self, profile_ids: list[str]) -> list[str]:
        """Every identity value (user, anonymous, previous ids) of ``profile_ids``."""
        rows = self.con.execute(
            "SELECT DISTINCT value FROM identities WHERE list_contains(?, profile_id)",
            [profile_ids],
        ).fetchall()
        return [str(v) for (v,) in rows]

    def pseudonym(self, profile_id: str) -> str:
        """The keyed pseudonym that replaces an erased profile's id in the change log."""
        self.con.execute(KEYS_DDL)
        return pseudonym(erasure_key(self.con), profile_id)

    def load_suppressions(self, into: Suppressions) -> None:
        """Read the stored suppression list into ``into``."""
        load_suppressions(self.con, into)

    def erase(
        self,
        merged: list[str],
        alias: str,
        *,
        suppress: Iterable[str] = (),
        suppressions: Suppressions | None = None,
        keep_deliveries: Sequence[int] = (),
    ) -> None:
        """Delete every row of the ``merged`` profiles in one transaction (change-log
        rows keep ``alias``, and so do the pending deliveries of the changes
        ``keep_deliveries`` names: the erasure's own exits), add the hashes of
        ``suppress`` to the suppression list, then scrub the file."""
        con = self.con
        wanted = list(suppress)
        con.execute("BEGIN TRANSACTION")
        try:
            for table in ("events", "traits", "identities", "memberships", "static_members"):
                con.execute(
                    f"DELETE FROM {quote_ident(table)} WHERE list_contains(?, profile_id)",
                    [merged],
                )
            if has_table(con, SESSIONS):
                con.execute(
                    f"DELETE FROM {SESSIONS} WHERE profile_no IN"
                    " (SELECT profile_no FROM profiles WHERE list_contains(?, profile_id))",
                    [merged],
                )
            con.execute("DELETE FROM profiles WHERE list_contains(?, profile_id)", [merged])
            con.execute(
                "DELETE FROM merges WHERE list_contains($ids, from_profile)"
                " OR list_contains($ids, into_profile)",
                {"ids": merged},
            )
            if has_table(con, "membership_changes"):
                con.execute(
                    "UPDATE membership_changes SET profile_id = ?"
                    " WHERE list_contains(?, profile_id)",
                    [alias, merged],
                )
            if has_table(con, "destination_deliveries"):
                con.execute(
                    "UPDATE destination_deliveries SET profile_id = $alias"
                    " WHERE list_contains($ids, profile_id) AND status = 'pending'"
                    " AND list_contains($keep, change_seq)",
                    {"alias": alias, "ids": merged, "keep": list(keep_deliveries)},
                )
                con.execute(
                    "DELETE FROM destination_deliveries WHERE list_contains(?, profile_id)",
                    [merged],
                )
            if wanted:
                add_suppressions(
                    con, suppressions if suppressions is not None else Suppressions(), wanted
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        scrub(con, [t for t in ERASED_TABLES if has_table(con, t)])


if TYPE_CHECKING:
    from segflow.store.protocols import ProfileStore

    def _is_a_profile_store(store: DuckDBProfileStore) -> ProfileStore:
        return store
