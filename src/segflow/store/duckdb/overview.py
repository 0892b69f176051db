"""What the store holds, summarised for pickers and dashboards: event names with their
counts and fields, trait keys with their values, page paths, event rates.

Every read is bounded whatever the store's size: the per-name field statistics read a
fixed number of each name's rows, examples are approximate top values (over a sample
of a large table), and the
whole-table reads touch one or two narrow columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import duckdb
import pyarrow as pa

from segflow.store.duckdb.catalog import table_columns
from segflow.store.duckdb.changes import CHANGES_DDL
from segflow.store.duckdb.sql import quote_ident, quote_str
from segflow.store.protocols import FieldStats, NameStats, PageStats, TraitStats

FIELD_ROOTS: Final = ("properties.", "context.")
SAMPLE_FROM: Final = 1_000_000
"""Tables over this many rows are sampled where most common values are looked for."""
SAMPLE_PERCENT: Final = 5
"""The event fields a condition's ``where`` reads (``traits.`` are the profile's)."""


def _plain(v: Any) -> Any:
    """DuckDB's values as JSON-ready ones (approx_top_k hands numbers back as Decimal)."""
    if isinstance(v, Decimal):
        f = float(v)
        return int(f) if f.is_integer() and abs(f) < 2**53 else f
    return v


def _json_path(path: str) -> str:
    return "$." + ".".join('"' + p.replace('"', '\\"') + '"' for p in path.split("."))


class DuckDBOverview:
    """``OverviewStore`` on the DuckDB connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    # -- catalogue --------------------------------------------------------------
    def event_names(self, received: bool = False) -> list[NameStats]:
        """Every track event name with its stored count, latest and earliest timestamp
        (and, with ``received``, its first receipt), most frequent first (one grouped
        scan of two or three narrow columns)."""
        rows = self.con.execute(
            "SELECT n.name, e.n, e.last, e.first, e.received FROM (SELECT event_code,"
            ' count(*) AS n, max("timestamp") AS last, min("timestamp") AS first,'
            f" {'min(received_at)' if received else 'NULL'} AS received FROM events"
            " WHERE event_code IS NOT NULL GROUP BY event_code) e"
            " JOIN event_names n ON n.code = e.event_code ORDER BY e.n DESC, n.name"
        ).fetchall()
        return [NameStats(str(r[0]), int(r[1]), r[2], r[3], r[4]) for r in rows]

    def event_fields(self, name: str, sample: int, examples: int) -> list[FieldStats]:
        """The ``properties.*`` / ``context.*`` fields of event ``name`` seen in
        ``sample`` of its rows (the first the scan meets: the read stops there): how
        many of them carry each field, and its most common values there."""
        catalog = self.con.execute(
            "SELECT path, type FROM field_catalog WHERE "
            + " OR ".join("starts_with(path, ?)" for _ in FIELD_ROOTS)
            + " ORDER BY path",
            list(FIELD_ROOTS),
        ).fetchall()
        columns = table_columns(self.con, "events")
        exprs: list[tuple[str, str, str]] = []  # (path, store type, expression)
        for path, typ in catalog:
            if path in columns:
                exprs.append((str(path), str(typ), quote_ident(path)))
            elif typ == "JSON":  # arrays and case-clashing names: in ``extra`` only
                exprs.append(
                    (str(path), "JSON", f"json_extract(extra, {quote_str(_json_path(path))})")
                )
        if not exprs:
            return []
        select = ", ".join(
            f"count({e}), "
            + (
                f"list(json_type({e})) FILTER (WHERE {e} IS NOT NULL)[1:5]"
                if typ == "JSON"
                else f"approx_top_k({e}, {int(examples)})"
            )
            for _, typ, e in exprs
        )
        picked = ", ".join(sorted({e for _, _, e in exprs if e.startswith('"')} | {"extra"}))
        row = self.con.execute(
            f"SELECT {select} FROM (SELECT {picked} FROM events"
            " WHERE event_code = (SELECT code FROM event_names WHERE name = ?) LIMIT ?)",
            [name, sample],
        ).fetchone()
        if row is None:
            return []
        out: list[FieldStats] = []
        for i, (path, typ, _) in enumerate(exprs):
            present, values = int(row[2 * i]), row[2 * i + 1] or []
            if not present:
                continue
            if typ == "JSON":
                kinds = [str(v) for v in values]
                out.append(FieldStats(path, "JSON:" + (kinds[0] if kinds else "NULL"), present, []))
            else:
                out.append(FieldStats(path, typ, present, [_plain(v) for v in values]))
        return out

    def _sampled(self, table: str) -> str:
        """``table``, or a system sample of SAMPLE_PERCENT of its row vectors when it
        holds over SAMPLE_FROM rows (where most common values are looked for)."""
        row = self.con.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()
        big = row is not None and int(row[0]) > SAMPLE_FROM
        return f"{quote_ident(table)} TABLESAMPLE {SAMPLE_PERCENT}% (system)" if big else table

    def traits(self, examples: int) -> list[TraitStats]:
        """Every trait key with a current value: its most common kind, how many profiles
        hold it, and its most common values (over a sample of the writes in a large
        store; read whole for the keys the sample misses)."""
        k = int(examples)
        # a linked current write is the only one of its (profile, key); the few not
        # linked yet are counted by profile
        counts = self.con.execute(
            """SELECT key, kind, count(*) FILTER (WHERE linked)
                                 + count(DISTINCT profile_no) FILTER (WHERE NOT linked) AS n
               FROM traits WHERE valid_to IS NULL AND kind <> 'null'
               GROUP BY key, kind ORDER BY key, n DESC"""
        ).fetchall()
        tops = f"""approx_top_k(str, {k}), approx_top_k(num, {k}), approx_top_k(bool, 2),
                   list(json_type(json)) FILTER (WHERE json IS NOT NULL)[1:1]"""
        found = {
            (str(key), str(kind)): rest
            for key, kind, *rest in self.con.execute(
                f"SELECT key, kind, {tops} FROM {self._sampled('traits')}"
                " WHERE valid_to IS NULL AND kind <> 'null' GROUP BY key, kind"
            ).fetchall()
        }
        missed = sorted({str(key) for key, kind, _ in counts if (key, kind) not in found})
        if missed:
            found |= {
                (str(key), str(kind)): rest
                for key, kind, *rest in self.con.execute(
                    f"SELECT key, kind, {tops} FROM traits WHERE valid_to IS NULL"
                    " AND kind <> 'null' AND list_contains(?, key) GROUP BY key, kind",
                    [missed],
                ).fetchall()
            }
        out: dict[str, TraitStats] = {}
        for key, kind, n in counts:
            if key in out:  # a key written with several kinds: its most common one
                prev = out[key]
                out[key] = TraitStats(prev.key, prev.kind, prev.profiles + int(n), prev.examples)
                continue
            strs, nums, bools, jtype = found.get((key, kind), ([], [], [], []))
            if kind == "string":
                ex: list[Any] = list(strs or [])
            elif kind == "number":
                ex = [_plain(v) for v in nums or []]
            elif kind == "bool":
                ex = list(bools or [])
            else:
                ex = []
                kind = "json:" + (str(jtype[0]) if jtype else "NULL")
            out[str(key)] = TraitStats(str(key), str(kind), int(n), ex)
        return list(out.values())

    def pages(self, top: int) -> PageStats:
        """Page calls: how many, and their most common paths and names (over a sample
        of a large store's events)."""
        columns = table_columns(self.con, "events")
        k = int(top)

        def top_of(col: str) -> str:
            return f"approx_top_k({quote_ident(col)}, {k})" if col in columns else "[]"

        count = self.con.execute("SELECT count(*) FROM events WHERE type = 'page'").fetchone()
        row = self.con.execute(
            f"SELECT {top_of('properties.path')}, {top_of('properties.name')}"
            f" FROM {self._sampled('events')} WHERE type = 'page'"
        ).fetchone()
        n = int(count[0]) if count else 0
        if row is None:
            return PageStats(n, [], [])
        paths, names = row[0] or [], row[1] or []
        return PageStats(n, [str(p) for p in paths], [str(p) for p in names])

    # -- segments ---------------------------------------------------------------
    def saved_at(self) -> dict[str, datetime]:
        """When each segment's newest version was saved."""
        rows = self.con.execute(
            "SELECT segment_id, arg_max(saved_at, version) FROM segment_definitions"
            " GROUP BY segment_id"
        ).fetchall()
        return {str(s): t for s, t in rows}

    def first_changes(self) -> dict[str, datetime]:
        """Each segment's first change in the log: from then on the log's running sum
        is its size."""
        self.con.execute(CHANGES_DDL)
        rows = self.con.execute(
            'SELECT segment_id, min("at") FROM membership_changes GROUP BY segment_id'
        ).fetchall()
        return {str(s): t for s, t in rows}

    def entered_at(
        self, segment_id: str, profile_ids: Sequence[str], until: datetime | None = None
    ) -> dict[str, datetime]:
        """When each of ``profile_ids`` last entered the segment (by the change log, up
        to ``until``), for those whose latest change then is an entry."""
        if not profile_ids:
            return {}
        self.con.execute(CHANGES_DDL)
        ids = pa.table({"profile_id": pa.array(profile_ids, pa.string())})
        self.con.register("_sf_since_ids", ids)
        try:
            rows = self.con.execute(
                """SELECT profile_id, arg_max("at", seq), arg_max(entered, seq)
                   FROM membership_changes
                   WHERE segment_id = $s AND ($u IS NULL OR "at" <= $u)
                     AND profile_id IN (SELECT profile_id FROM _sf_since_ids)
                   GROUP BY profile_id""",
                {"s": segment_id, "u": until},
            ).fetchall()
        finally:
            self.con.unregister("_sf_since_ids")
        return {str(p): t for p, t, entered in rows if entered}

    # -- dashboard --------------------------------------------------------------
    def event_counts_since(self, instants: Sequence[datetime]) -> list[int]:
        """Stored events with ``timestamp > t`` for each ``t`` (one scan of the
        timestamp column)."""
        if not instants:
            return []
        select = ", ".join('count(*) FILTER (WHERE "timestamp" > ?)' for _ in instants)
        row = self.con.execute(
            f'SELECT {select} FROM events WHERE "timestamp" > ?', [*instants, min(instants)]
        ).fetchone()
        return [int(v) for v in row] if row else [0] * len(instants)

    def name_windows(self, now: datetime, windows: int) -> list[tuple[str, int, int]]:
        """(event name, window, events) of the track events in the ``windows`` 24-hour
        windows before ``now``: window 0 is ``(now - 24h, now]``, window 1 the day
        before, and so on (one scan of the recent rows' timestamps and name codes)."""
        rows = self.con.execute(
            "SELECT n.name, e.w, e.c FROM (SELECT event_code,"
            ' (epoch_us($now) - epoch_us("timestamp")) // 86400000000 AS w, count(*) AS c'
            ' FROM events WHERE event_code IS NOT NULL AND "timestamp" <= $now'
            ' AND "timestamp" > $now - to_days($w) GROUP BY ALL) e'
            " JOIN event_names n ON n.code = e.event_code ORDER BY 1, 2",
            {"now": now, "w": windows},
        ).fetchall()
        return [(str(n), int(w), int(c)) for n, w, c in rows]


if TYPE_CHECKING:
    from segflow.store.protocols import OverviewStore

    def _is_an_overview_store(store: DuckDBOverview) -> OverviewStore:
        return store
