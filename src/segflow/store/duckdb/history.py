"""Bulk reads of stored history for the real-time evaluator: events and trait writes as
the evaluators see them (name, time in µs, flattened fields), streamed in Arrow batches.
Trait writes come with their event (by the event's ``seq``) or, for writes that belong to
no event (value scores), by their own insertion number ``traits.wseq``.

Only the event names and field paths the engine reads are fetched, so bootstrapping a
large store is one ordered scan, not one query per profile.  Field values are read the
way the batch evaluator reads them: the typed column, else the overflow JSON (``extra``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping
from datetime import datetime
from typing import Any, Final, Literal

import duckdb
import orjson

from segflow.model.definition import CALL_TYPES, PAGE_CALLS, SCREEN_CALLS
from segflow.store.duckdb.catalog import table_columns
from segflow.store.duckdb.marks import events_seq
from segflow.store.records.history import EventRow, StoredTrait

BATCH_ROWS: Final = 65_536
_ROOTS: Final = ("properties", "context", "traits")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _from_extra(extra: str | None, paths: Collection[str]) -> dict[str, Any]:
    if not extra:
        return {}
    doc = orjson.loads(extra)
    out: dict[str, Any] = {}
    for path in paths:
        node: Any = doc
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            if node is not None and not isinstance(node, dict):
                out[path] = node
    return out


_SAFE_INT: Final = 1 << 53


def _json_exact(v: Any) -> bool:
    """Whether a value comes back from ``extra`` (JSON text rewritten by DuckDB) as the
    very same Python value: strings without NUL, booleans, integers a double holds
    exactly, and lists/objects of those (floats may change spelling, so not them)."""
    t = type(v)
    if t is str:
        return "\x00" not in v
    if t is bool or v is None:
        return True
    if t is int:
        return bool(-_SAFE_INT < v < _SAFE_INT)
    if t is list:
        return all(_json_exact(x) for x in v)
    if t is dict:
        return all("\x00" not in k and _json_exact(x) for k, x in v.items())
    return False


class MessageFields:
    """The fields of a parsed message exactly as ``HistoryReader.events`` reads them back
    once it is stored, computed from the message itself: what the live evaluator feeds
    the engine right after a commit without a round trip through DuckDB and Arrow.

    ``fields`` is the field catalog after the load (path -> type and overflow) and
    ``columns`` the events table's column names in lower case.  A value the rules below
    cannot reproduce exactly (a float spilled to ``extra``, an integer past 2**53, an
    unknown type) makes ``__call__`` answer None: read the stored rows instead.

    The reader takes a path's typed column when the catalog type is not JSON (a value
    of that type: DOUBLE comes back as a float), else ``extra``, which holds the values
    of other types (parsed JSON, as sent); nulls and objects are no field values."""

    _KINDS: Final = {str: "VARCHAR", bool: "BOOLEAN", int: "DOUBLE", float: "DOUBLE"}

    def __init__(
        self, paths: Collection[str], fields: Mapping[str, Any], columns: Collection[str]
    ) -> None:
        self.plan: list[tuple[str, str, tuple[str, ...], str | None, bool]] = []
        for path in sorted(paths):
            root, _, rest = path.partition(".")
            info = fields.get(path)
            if root not in _ROOTS or info is None:
                continue
            kind, overflow = str(info.type), bool(info.overflow)
            typed = kind if kind != "JSON" and path.lower() in columns else None
            spilled = overflow or kind == "JSON"
            self.plan.append((path, root, tuple(rest.split(".")) if rest else (), typed, spilled))

    def __call__(self, roots: Mapping[str, Any]) -> dict[str, Any] | None:
        """``roots``: properties/context/traits of one message; the fields or None."""
        out: dict[str, Any] = {}
        kinds = self._KINDS
        for path, root, rest, typed, spilled in self.plan:
            node: Any = roots.get(root)
            for part in rest:
                if type(node) is not dict:
                    if isinstance(node, Mapping):  # not from a JSON parser: cannot tell
                        return None
                    break
                if part not in node:
                    break
                node = node[part]
            else:
                if node is None or type(node) is dict:
                    continue
                t = type(node)
                kind = "JSON" if t is list else kinds.get(t)
                if kind is None:
                    return None
                if kind == typed:
                    if t is int:
                        if not -_SAFE_INT < node < _SAFE_INT:
                            return None
                        node = float(node)
                    elif t is float:
                        if not math.isfinite(node):
                            return None
                    elif t is str and "\x00" in node:
                        return None
                    out[path] = node
                elif spilled and _json_exact(node):
                    out[path] = node
                else:
                    return None
        return out


class HistoryReader:
    """Reads events, trait writes, merges and static members from one DuckDB connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def max_seq(self) -> int:
        """The highest event seq handed out (``store.duckdb.marks.events_seq``)."""
        return events_seq(self.con)

    def max_wseq(self, after: int = 0) -> int:
        """The latest trait write's ``wseq`` (``after`` when none is later); only writes
        past ``after`` are scanned (zone maps skip the rest)."""
        row = self.con.execute("SELECT max(wseq) FROM traits WHERE wseq > ?", [after]).fetchone()
        return int(row[0]) if row and row[0] is not None else after

    def _field_sql(self, paths: Collection[str]) -> tuple[list[tuple[str, str]], list[str]]:
        """Typed columns to select (path, quoted column) and the paths read from ``extra``."""
        catalog = {
            str(p): (str(t), bool(o))
            for p, t, o in self.con.execute(
                "SELECT path, type, overflow FROM field_catalog"
            ).fetchall()
        }
        columns = {c.lower() for c in table_columns(self.con, "events")}
        typed: list[tuple[str, str]] = []
        extra: list[str] = []
        for path in sorted(paths):
            if path.split(".", 1)[0] not in _ROOTS:
                continue
            info = catalog.get(path)
            if info is None:
                continue
            kind, overflow = info
            if kind != "JSON" and path.lower() in columns:
                typed.append((path, _quote(path)))
            if overflow or kind == "JSON":
                extra.append(path)
        return typed, extra

    def events(
        self,
        names: Collection[str],
        paths: Collection[str],
        *,
        after_seq: int | None = None,
        upto_seq: int | None = None,
        profiles: Collection[str] | None = None,
        order: Literal["profile", "time"] = "profile",
        after_ts: int | None = None,
        upto_ts: int | None = None,
    ) -> Iterator[list[EventRow]]:
        """Events with one of ``names``, in batches, ordered by profile then time (or by
        time), each carrying only the fields in ``paths``; ``after_seq < seq <= upto_seq``
        and ``after_ts < timestamp <= upto_ts`` (µs) when given."""
        if not names:
            return
        typed, extra = self._field_sql(paths)
        calls = sorted(CALL_TYPES[n] for n in names if n in CALL_TYPES)
        name = "event"
        params: dict[str, Any] = {"names": sorted(names)}
        if calls:  # page/screen calls go by their evaluator name (definition.call_name)
            name = (
                "CASE WHEN event IN ($page, $screen) THEN NULL WHEN event IS NOT NULL THEN event"
                " WHEN type = 'page' THEN $page WHEN type = 'screen' THEN $screen END"
            )
            params.update(page=PAGE_CALLS, screen=SCREEN_CALLS)
        cols = ["profile_id", 'epoch_us("timestamp") AS ts', f"{name} AS event", "message_id"]
        cols += [c for _, c in typed]
        if extra:
            cols.append("extra::VARCHAR AS extra")
        where = [f"list_contains($names, {name})"]
        if after_seq is not None:
            where.append("seq > $after")
            params["after"] = after_seq
        if upto_seq is not None:
            where.append("seq <= $upto")
            params["upto"] = upto_seq
        key = _narrowed(where, params, "", profiles, after_ts, upto_ts, order)
        sql = f"SELECT {', '.join(cols)} FROM events WHERE {' AND '.join(where)} ORDER BY {key}"
        reader = self.con.execute(sql, params).fetch_record_batch(BATCH_ROWS)
        paths_typed = [p for p, _ in typed]
        for batch in reader:
            data = batch.to_pydict()
            pids, tss, evs, mids = (
                data["profile_id"],
                data["ts"],
                data["event"],
                data["message_id"],
            )
            columns = [data[batch.schema.names[4 + i]] for i in range(len(paths_typed))]
            extras = data.get("extra") if extra else None
            out: list[EventRow] = []
            for i in range(batch.num_rows):
                fields: dict[str, Any] = {}
                if extras is not None:
                    fields.update(_from_extra(extras[i], extra))
                for path, column in zip(paths_typed, columns, strict=True):
                    v = column[i]
                    if v is not None:
                        fields[path] = v
                out.append((pids[i], int(tss[i]), evs[i], fields, mids[i]))
            yield out

    def traits(
        self,
        keys: Collection[str],
        *,
        after_seq: int | None = None,
        upto_seq: int | None = None,
        standalone: bool = True,
        upto_wseq: int | None = None,
        profiles: Collection[str] | None = None,
        order: Literal["profile", "time"] = "profile",
        after_ts: int | None = None,
        upto_ts: int | None = None,
    ) -> Iterator[list[StoredTrait]]:
        """Trait writes of ``keys``: with a seq range, those of events in it and (when
        ``standalone``) those that belong to no event (value scores), with ``wseq <=
        upto_wseq`` when given; ``after_ts < timestamp <= upto_ts`` in µs when given."""
        if not keys:
            return
        where = ["list_contains($keys, t.key)"]
        params: dict[str, Any] = {"keys": sorted(keys)}
        join = ""
        if after_seq is not None or upto_seq is not None:
            by_seq: list[str] = []
            if after_seq is not None:
                by_seq.append("e.seq > $after")
                params["after"] = after_seq
            if upto_seq is not None:
                by_seq.append("e.seq <= $upto")
                params["upto"] = upto_seq
            if standalone:
                join = " LEFT JOIN events e ON e.message_id = t.message_id"
                alone = "e.message_id IS NULL"
                if upto_wseq is not None:
                    alone += " AND t.wseq <= $upto_wseq"
                    params["upto_wseq"] = upto_wseq
                where.append(f"(({' AND '.join(by_seq)}) OR ({alone}))")
            else:
                join = " JOIN events e ON e.message_id = t.message_id"
                where += by_seq
        key = _narrowed(where, params, "t.", profiles, after_ts, upto_ts, order)
        yield from self._trait_rows(
            f"FROM traits t{join} WHERE {' AND '.join(where)} ORDER BY {key}", params
        )

    def standalone_traits(
        self,
        keys: Collection[str],
        *,
        after_wseq: int,
        upto_wseq: int,
        after_seq: int,
        upto_seq: int,
    ) -> Iterator[list[StoredTrait]]:
        """Trait writes of ``keys`` with ``after_wseq < wseq <= upto_wseq`` that belong to
        no event (value scores, written straight into the history), in time order.  The
        writes of events with ``after_seq < seq <= upto_seq`` (stored in the same span and
        read with their events) are left out; only those events are joined, so a
        catch-up never scans the whole event table."""
        if not keys:
            return
        params: dict[str, Any] = {
            "keys": sorted(keys),
            "after_wseq": after_wseq,
            "upto_wseq": upto_wseq,
            "after": after_seq,
            "upto": upto_seq,
        }
        yield from self._trait_rows(
            "FROM traits t ANTI JOIN (SELECT message_id FROM events"
            " WHERE seq > $after AND seq <= $upto) e ON e.message_id = t.message_id"
            " WHERE list_contains($keys, t.key) AND t.wseq > $after_wseq"
            ' AND t.wseq <= $upto_wseq ORDER BY t."timestamp", t.message_id, t.profile_id',
            params,
        )

    def _trait_rows(self, rest: str, params: dict[str, Any]) -> Iterator[list[StoredTrait]]:
        """Decoded trait writes of ``SELECT ... <rest>`` over ``traits t``, in batches."""
        sql = (
            'SELECT t.profile_id, epoch_us(t."timestamp") AS ts, t.message_id, t.key, t.kind,'
            f" t.num, t.str, t.bool, t.json::VARCHAR AS json {rest}"
        )
        reader = self.con.execute(sql, params).fetch_record_batch(BATCH_ROWS)
        for batch in reader:
            d = batch.to_pydict()
            out: list[StoredTrait] = []
            for i in range(batch.num_rows):
                kind = d["kind"][i]
                value: Any
                if kind == "number":
                    value = d["num"][i]
                elif kind == "string":
                    value = d["str"][i]
                elif kind == "bool":
                    value = d["bool"][i]
                elif kind == "json":
                    value = orjson.loads(d["json"][i])
                else:
                    value = None
                out.append(
                    StoredTrait(
                        d["profile_id"][i], int(d["ts"][i]), d["message_id"][i], d["key"][i], value
                    )
                )
            yield out

    def profiles_after(self, after_seq: int, upto_seq: int | None = None) -> list[str]:
        """Profiles with an event in ``after_seq < seq <= upto_seq`` (new or touched)."""
        sql = "SELECT DISTINCT profile_id FROM events WHERE seq > ?"
        params: list[Any] = [after_seq]
        if upto_seq is not None:
            sql += " AND seq <= ?"
            params.append(upto_seq)
        return sorted(str(p) for (p,) in self.con.execute(sql, params).fetchall())

    def profiles_written_after(self, after_wseq: int, upto_wseq: int) -> list[str]:
        """Profiles with a trait write in ``after_wseq < wseq <= upto_wseq``."""
        rows = self.con.execute(
            "SELECT DISTINCT profile_id FROM traits WHERE wseq > ? AND wseq <= ?",
            [after_wseq, upto_wseq],
        ).fetchall()
        return sorted(str(p) for (p,) in rows)

    def profile_ids(self) -> list[str]:
        rows = self.con.execute("SELECT profile_id FROM profiles ORDER BY profile_id").fetchall()
        return [str(p) for (p,) in rows]

    def has_profile(self, profile_id: str) -> bool:
        row = self.con.execute(
            "SELECT count(*) FROM profiles WHERE profile_id = ?", [profile_id]
        ).fetchone()
        return bool(row and row[0])

    def static_members(self) -> dict[str, set[str]]:
        """Profile id -> static segment ids it is a member of."""
        out: dict[str, set[str]] = {}
        for sid, pid in self.con.execute(
            "SELECT segment_id, profile_id FROM static_members"
        ).fetchall():
            out.setdefault(str(pid), set()).add(str(sid))
        return out

    def merge_mark(self) -> tuple[datetime | None, frozenset[tuple[str, str]]]:
        """Where the merge log is now: its latest instant and the merges at that instant."""
        row = self.con.execute('SELECT max("at") FROM merges').fetchone()
        last = row[0] if row else None
        if last is None:
            return None, frozenset()
        rows = self.con.execute(
            'SELECT from_profile, into_profile FROM merges WHERE "at" = ?', [last]
        ).fetchall()
        return last, frozenset((str(a), str(b)) for a, b in rows)

    def merges_since(
        self, mark: tuple[datetime | None, frozenset[tuple[str, str]]]
    ) -> list[tuple[str, str]]:
        """Merges recorded after ``mark`` (from ``merge_mark``), oldest first."""
        last, seen = mark
        if last is None:
            rows = self.con.execute(
                'SELECT from_profile, into_profile FROM merges ORDER BY "at", from_profile'
            ).fetchall()
        else:
            rows = self.con.execute(
                'SELECT from_profile, into_profile FROM merges WHERE "at" >= ?'
                ' ORDER BY "at", from_profile',
                [last],
            ).fetchall()
        return [(str(a), str(b)) for a, b in rows if (str(a), str(b)) not in seen]


__all__ = ["HistoryReader", "MessageFields"]


def _narrowed(
    where: list[str],
    params: dict[str, Any],
    alias: str,
    profiles: Collection[str] | None,
    after_ts: int | None,
    upto_ts: int | None,
    order: Literal["profile", "time"],
) -> str:
    """Add the profile and time filters a history read shares (on ``alias``'s columns)
    to ``where``/``params``; return the ORDER BY key for ``order``."""
    if profiles is not None:
        where.append(f"list_contains($profiles, {alias}profile_id)")
        params["profiles"] = sorted(profiles)
    if after_ts is not None:
        where.append(f'{alias}"timestamp" > make_timestamp($after_ts)')
        params["after_ts"] = after_ts
    if upto_ts is not None:
        where.append(f'{alias}"timestamp" <= make_timestamp($upto_ts)')
        params["upto_ts"] = upto_ts
    key = f'{alias}"timestamp", {alias}message_id'
    return f"{alias}profile_id, {key}" if order == "profile" else key
