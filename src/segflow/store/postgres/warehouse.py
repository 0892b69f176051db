"""Read a Segment warehouse schema in place on PostgreSQL: views named as the batch
query expects (the schema's layout and names: ``store.segment``).

``attach`` creates, in the URL's schema and in one transaction, the views the batch
query reads (docs/engines.md, "Reading a Segment warehouse in place"):

* ``segment_calls``: every call once (the per-event tables for track calls, ``tracks``
  for calls whose event has no table of its own, pages, screens, identifies, aliases,
  groups), core columns plus one typed column per field path (``properties.revenue``,
  ``context.device_type``, ``traits.email``), a path whose tables disagree on its type
  keeping the other types' values in ``extra`` (as DuckDB's ingestion does);
* ``identities``: the identity graph's components, found by a recursive query over
  the user / anonymous / previous ids of the calls, each node labelled with its
  component's profile id (its user id seen first, else its earliest anonymous id),
  as ``store.duckdb.store`` resolves them;
* ``events`` (the calls with their profile), ``traits`` (one row per trait column set
  on an identify call, or ``context_traits_*`` column set on any call, with
  ``valid_to`` by ``lead()``), ``profiles``, ``field_catalog`` (typed paths from
  ``information_schema``), an empty ``static_members`` and ``segment_source`` (the
  schema read, which marks the views as attached).

``SegmentBatch`` evaluates there: a definition's field path or trait name is looked up
under the column name Segment's loader gives it (``context.device.type`` is column
``context_device_type``, trait ``firstName`` is ``first_name``).  Identifiers from the
warehouse are always quoted (``psycopg.sql``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import psycopg
from psycopg import sql

from segflow.batch.compile import BatchCompiler, CompiledQuery
from segflow.model.definition import Segment
from segflow.model.time import utcnow
from segflow.plan.planner import build_plan
from segflow.store.engines import AttachReport
from segflow.store.postgres.batch import PostgresBatch, PostgresResult
from segflow.store.postgres.connection import (
    EngineUnavailable,
    connect,
    current_schema,
)
from segflow.store.postgres.schema import MAX_IDENTIFIER, PARSE_TIMESTAMP_DDL
from segflow.store.segment import (
    CALL_COLUMNS,
    CALL_TABLES,
    SEGMENT_TABLES,
    TRAIT_KINDS,
    Fields,
    SegmentCatalog,
    Source,
    arrange_sources,
    segment_plan,
)

Connection = psycopg.Connection[tuple[object, ...]]

MARKER: Final = "segment_source"
"""The view naming the Segment schema an attached schema reads."""

VIEWS: Final = (
    MARKER,
    "static_members",
    "field_catalog",
    "profiles",
    "traits",
    "events",
    "identities",
    "segment_trait_writes",
    "segment_calls",
)
"""The views ``attach`` creates, dependents first (the order they are dropped in)."""

TEXT_TYPES: Final = frozenset({"text", "character varying", "character"})
NUMBER_TYPES: Final = frozenset(
    {"smallint", "integer", "bigint", "numeric", "real", "double precision"}
)
TIME_TYPES: Final = frozenset({"timestamp with time zone", "timestamp without time zone", "date"})

PG_TYPES: Final = {"VARCHAR": "text", "DOUBLE": "double precision", "BOOLEAN": "boolean"}

ISO_TIME: Final = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
"""How a Segment timestamp column is read as the ISO-8601 text segflow keeps."""

# -- the warehouse as found ----------------------------------------------------------------


def _kind(data_type: str) -> str | None:
    """segflow's column type of a Segment column type (None: not a field Segment makes)."""
    if data_type in TEXT_TYPES or data_type in TIME_TYPES:
        return "VARCHAR"
    if data_type in NUMBER_TYPES:
        return "DOUBLE"
    if data_type == "boolean":
        return "BOOLEAN"
    return None


def _value(column: str, data_type: str, alias: str = "s") -> sql.Composable:
    """A Segment column read as segflow keeps the value: numbers as doubles, timestamps
    as ISO-8601 text in UTC."""
    c = sql.Identifier(alias, column)
    if data_type in NUMBER_TYPES:
        return sql.SQL("{}::double precision").format(c)
    if data_type in TEXT_TYPES:
        return sql.SQL("{}::text").format(c)
    if data_type == "timestamp with time zone":
        return sql.SQL("to_char({} AT TIME ZONE 'UTC', {})").format(c, sql.Literal(ISO_TIME))
    if data_type == "timestamp without time zone":
        return sql.SQL("to_char({}, {})").format(c, sql.Literal(ISO_TIME))
    if data_type == "date":
        return sql.SQL("to_char({}, 'YYYY-MM-DD')").format(c)
    return c


def _instant(column: str, data_type: str) -> sql.Composable:
    """A Segment time column as segflow's naive UTC timestamp."""
    c = sql.Identifier("s", column)
    if data_type == "timestamp with time zone":
        return sql.SQL("({} AT TIME ZONE 'UTC')").format(c)
    if data_type in TEXT_TYPES:
        return sql.SQL("segflow_parse_ts({})").format(c)
    return sql.SQL("{}::timestamp").format(c)


def _condition(s: Source) -> sql.Composable:
    """Which rows of the table are calls of its own (``tracks``: those whose event has
    no table)."""
    if not s.skip_events:
        return sql.SQL("TRUE")
    return sql.SQL("(s.event IS NULL OR s.event NOT IN ({}))").format(
        sql.SQL(", ").join(map(sql.Literal, s.skip_events))
    )


def _where(s: Source) -> sql.Composable:
    if not s.skip_events:
        return sql.SQL("")
    return sql.SQL(" WHERE {}").format(_condition(s))


def _core(s: Source) -> list[sql.Composable]:
    """The core columns of a source's calls, in ``CALL_COLUMNS``'s order."""
    cols = s.columns

    def text(name: str) -> sql.Composable:
        if name in cols:
            return sql.SQL("{}::text").format(sql.Identifier("s", name))
        return sql.SQL("NULL::text")

    def instant(name: str) -> sql.Composable:
        if name in cols:
            return _instant(name, cols[name])
        return sql.SQL("NULL::timestamp")

    return [
        text("id"),
        sql.Literal(s.type),
        text("event_text") if s.type == "track" else sql.SQL("NULL::text"),
        text("user_id"),
        text("anonymous_id"),
        text("previous_id") if s.type == "alias" else sql.SQL("NULL::text"),
        text("group_id") if s.type == "group" else sql.SQL("NULL::text"),
        instant("timestamp"),
        instant("received_at"),
        instant("sent_at"),
    ]


def _tables(con: Connection, schema: str) -> dict[str, tuple[bool, bool]]:
    """Tables of ``schema``: name -> (may be selected, is shaped as a per-event table)."""
    rows = con.execute(
        "SELECT c.relname, has_table_privilege(c.oid, 'SELECT'),"
        " EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid"
        " AND a.attname = 'event_text' AND NOT a.attisdropped)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        " AND NOT c.relispartition",
        [schema],
    ).fetchall()
    return {str(r[0]): (bool(r[1]), bool(r[2])) for r in rows}


def _columns(con: Connection, schema: str, tables: list[str]) -> dict[str, dict[str, str]]:
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = ANY(%s)"
        " ORDER BY table_name, ordinal_position",
        [schema, tables],
    ).fetchall()
    out: dict[str, dict[str, str]] = {t: {} for t in tables}
    for t, c, d in rows:
        out[str(t)][str(c)] = str(d)
    return out


def _user(con: Connection) -> str:
    row = con.execute("SELECT current_user").fetchone()
    return str(row[0]) if row else "?"


def find_sources(con: Connection, schema: str) -> tuple[list[Source], list[str]]:
    """The call tables of Segment schema ``schema`` and its per-event tables' names;
    ``EngineUnavailable`` names a missing schema, ``tracks`` or a missing grant."""
    found = con.execute(
        "SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = %s",
        [schema],
    ).fetchone()
    if found is None:
        raise EngineUnavailable(
            f"PostgreSQL has no schema {schema!r}: name the Segment source's schema"
            " (--segment-schema)"
        )
    if not found[0]:
        raise EngineUnavailable(
            f"PostgreSQL user {_user(con)} may not use schema {schema!r}: grant USAGE on it"
        )
    tables = _tables(con, schema)
    if "tracks" not in tables:
        raise EngineUnavailable(
            f"PostgreSQL schema {schema!r} has no table tracks: not a Segment warehouse"
            " schema (--segment-schema names the source's schema)"
        )
    events = sorted(t for t, (_, shaped) in tables.items() if shaped and t not in SEGMENT_TABLES)
    wanted = ["tracks", *(t for t in CALL_TABLES if t in tables), *events]
    denied = [t for t in wanted if not tables[t][0]]
    if denied:
        raise EngineUnavailable(
            f"PostgreSQL user {_user(con)} may not read {schema}.{', '.join(denied)}:"
            f" grant SELECT on {'them' if len(denied) > 1 else 'it'}"
        )
    columns = _columns(con, schema, wanted)
    return arrange_sources(columns, _kind, f"PostgreSQL schema {schema!r}")


# -- the views ---------------------------------------------------------------------------


@dataclass
class Plan(Fields):
    """The views' SQL for a set of sources."""

    schema: str = ""

    def table(self, s: Source) -> sql.Composable:
        return sql.Identifier(self.schema, s.table)

    def calls(self) -> sql.Composed:
        names = [*CALL_COLUMNS, *self.fields, "extra"]
        parts = []
        for s, layout in self.layouts():
            cols = _core(s)
            for kind, f in layout.typed:
                if f is None:
                    cols.append(sql.SQL("NULL::{}").format(sql.SQL(PG_TYPES[kind])))
                else:
                    cols.append(_value(f.column, f.data_type))
            spill = {
                root: [
                    sql.SQL("{}, to_jsonb({})").format(
                        sql.Literal(key), _value(f.column, f.data_type)
                    )
                    for key, f in items
                ]
                for root, items in layout.spill.items()
            }
            if spill:
                objects = sql.SQL(", ").join(
                    sql.SQL("{}, jsonb_build_object({})").format(
                        sql.Literal(root), sql.SQL(", ").join(items)
                    )
                    for root, items in spill.items()
                )
                cols.append(sql.SQL("jsonb_strip_nulls(jsonb_build_object({}))").format(objects))
            else:
                cols.append(sql.SQL("NULL::jsonb"))
            parts.append(
                sql.SQL("SELECT {} FROM {} AS s{}").format(
                    sql.SQL(", ").join(
                        sql.SQL("{} AS {}").format(c, sql.Identifier(n))
                        for c, n in zip(cols, names, strict=True)
                    ),
                    self.table(s),
                    _where(s),
                )
            )
        return sql.SQL("CREATE VIEW segment_calls AS {}").format(sql.SQL(" UNION ALL ").join(parts))

    def trait_rows(self) -> tuple[sql.Composed, int]:
        """Every trait write (message, time, ids, key, kind and value), and the number
        of distinct keys."""
        parts = []
        keys: set[str] = set()
        for s in self.sources:
            traits = s.traits()
            if not traits:
                continue
            rows = []
            for key, cols in sorted(traits.items()):
                keys.add(key)
                kind = sql.SQL("CASE {} END").format(
                    sql.SQL(" ").join(
                        sql.SQL("WHEN {} IS NOT NULL THEN {}").format(
                            sql.Identifier("s", c), sql.Literal(TRAIT_KINDS[_kind(d) or ""])
                        )
                        for c, d in cols
                    )
                )
                slots = []
                for want in ("DOUBLE", "VARCHAR", "BOOLEAN"):
                    slots.append(
                        sql.SQL("CASE {} END::{}").format(
                            sql.SQL(" ").join(
                                sql.SQL("WHEN {} IS NOT NULL THEN {}").format(
                                    sql.Identifier("s", c),
                                    _value(c, d) if _kind(d) == want else sql.SQL("NULL"),
                                )
                                for c, d in cols
                            ),
                            sql.SQL(PG_TYPES[want]),
                        )
                    )
                rows.append(
                    sql.SQL("({}, {}, {})").format(
                        sql.Literal(key), kind, sql.SQL(", ").join(slots)
                    )
                )
            core = _core(s)
            parts.append(
                sql.SQL(
                    'SELECT {} AS message_id, {} AS "timestamp", {} AS user_id,'
                    " {} AS anonymous_id, t.key, t.kind, t.num, t.str, t.bool"
                    " FROM {} AS s CROSS JOIN LATERAL (VALUES {}) AS t(key, kind, num, str, bool)"
                    " WHERE {} AND t.kind IS NOT NULL"
                ).format(
                    core[0],
                    core[7],
                    core[3],
                    core[4],
                    self.table(s),
                    sql.SQL(", ").join(rows),
                    _condition(s),
                )
            )
        if not parts:
            return (
                sql.Composed(
                    [
                        sql.SQL(
                            'SELECT NULL::text AS message_id, NULL::timestamp AS "timestamp",'
                            " NULL::text AS user_id, NULL::text AS anonymous_id, NULL::text AS key,"
                            " NULL::text AS kind, NULL::double precision AS num, NULL::text AS str,"
                            " NULL::boolean AS bool WHERE FALSE"
                        )
                    ]
                ),
                0,
            )
        return sql.SQL(" UNION ALL ").join(parts), len(keys)

    def catalog(self) -> sql.Composed:
        if not self.fields:
            return sql.SQL("{}").format(
                sql.SQL(
                    "CREATE VIEW field_catalog AS SELECT NULL::text AS path,"
                    " NULL::text AS type, NULL::boolean AS overflow WHERE FALSE"
                )
            )
        return sql.SQL(
            "CREATE VIEW field_catalog AS SELECT path, type, overflow FROM (VALUES {})"
            " AS f(path, type, overflow)"
        ).format(
            sql.SQL(", ").join(
                sql.SQL("({}, {}, {})").format(sql.Literal(p), sql.Literal(k), sql.Literal(o))
                for p, (k, o) in self.fields.items()
            )
        )


IDENTITIES: Final = """
CREATE VIEW identities AS
WITH RECURSIVE
mentions AS (
    SELECT 'user'::text AS kind, user_id AS value, "timestamp" AS ts
    FROM segment_calls WHERE user_id IS NOT NULL
    UNION ALL SELECT 'anonymous', anonymous_id, "timestamp"
    FROM segment_calls WHERE anonymous_id IS NOT NULL
    UNION ALL SELECT 'previous', previous_id, "timestamp"
    FROM segment_calls WHERE previous_id IS NOT NULL
),
nodes AS (SELECT kind, value, min(ts) AS first_seen FROM mentions GROUP BY kind, value),
links AS (
    SELECT 'user'::text AS k1, user_id AS v1, 'anonymous'::text AS k2, anonymous_id AS v2
    FROM segment_calls WHERE user_id IS NOT NULL AND anonymous_id IS NOT NULL
    UNION SELECT 'user', user_id, 'previous', previous_id
    FROM segment_calls WHERE user_id IS NOT NULL AND previous_id IS NOT NULL
    UNION SELECT p.kind, p.value, o.kind, o.value FROM nodes p
    JOIN nodes o ON o.value = p.value AND p.kind = 'previous' AND o.kind <> 'previous'
),
edges AS (SELECT k1, v1, k2, v2 FROM links UNION SELECT k2, v2, k1, v1 FROM links),
reach (kind, value, rkind, rvalue) AS (
    SELECT kind, value, kind, value FROM nodes
    UNION
    SELECT r.kind, r.value, e.k2, e.v2 FROM reach r
    JOIN edges e ON e.k1 = r.rkind AND e.v1 = r.rvalue
)
SELECT DISTINCT ON (r.kind, r.value) r.kind, r.value, c.value AS profile_id, n.first_seen
FROM reach r
JOIN nodes c ON c.kind = r.rkind AND c.value = r.rvalue
JOIN nodes n ON n.kind = r.kind AND n.value = r.value
ORDER BY r.kind, r.value, c.kind <> 'user', c.kind <> 'anonymous', c.first_seen,
    c.value COLLATE "C"
"""
"""Each identity (kind, value) with its component's profile id: the component's user
id seen first (then the smallest), else its earliest anonymous id; edges join a call's
user and anonymous ids, an alias's user and previous ids, and a previous id with the
user or anonymous id of the same value (``DuckDBStore._resolve_identities``)."""

EVENTS: Final = """
SELECT c.*, coalesce(u.profile_id, a.profile_id) AS profile_id
FROM {calls} c
LEFT JOIN {identities} u ON u.kind = 'user' AND u.value = c.user_id
LEFT JOIN {identities} a ON a.kind = 'anonymous' AND a.value = c.anonymous_id
"""
"""The calls with their profile (the user id's, else the anonymous id's)."""

TRAITS: Final = """
SELECT coalesce(u.profile_id, a.profile_id) AS profile_id, w.key, w."timestamp",
    w.message_id, w.kind, w.num, w.str, w.bool, NULL::jsonb AS json,
    lead(w."timestamp") OVER (PARTITION BY coalesce(u.profile_id, a.profile_id), w.key
                              ORDER BY w."timestamp", w.message_id COLLATE "C") AS valid_to,
    TRUE AS linked
FROM {writes} w
LEFT JOIN {identities} u ON u.kind = 'user' AND u.value = w.user_id
LEFT JOIN {identities} a ON a.kind = 'anonymous' AND a.value = w.anonymous_id
"""
"""Trait writes with their profile and the instant the next write of the key replaced
them (``store.postgres.load.VALID_TO``)."""

PROFILES: Final = """
SELECT profile_id, min("timestamp") AS first_seen, max("timestamp") AS last_seen
FROM {events} GROUP BY profile_id
"""

STATIC_MEMBERS: Final = (
    "CREATE VIEW static_members AS SELECT NULL::text AS segment_id,"
    " NULL::text AS profile_id WHERE FALSE"
)


def _view(name: str, template: str, **relations: str) -> sql.Composed:
    return sql.SQL("CREATE VIEW {} AS {}").format(
        sql.Identifier(name),
        sql.SQL(template).format(**{k: sql.Identifier(v) for k, v in relations.items()}),
    )


def _existing(con: Connection, schema: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n"
        " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = ANY(%s)",
        [schema, [*VIEWS, "event_names"]],
    ).fetchall()
    return {str(n): str(k) for n, k in rows}


def attach(con: Connection, source: str) -> AttachReport:
    """Create the batch views over Segment schema ``source`` in ``con``'s current
    schema, replacing an earlier attach, in one transaction (nothing is left half made)."""
    target = current_schema(con)
    if target == source:
        raise EngineUnavailable(
            f"the views cannot go into the Segment schema {source!r} itself: attach into a"
            " schema of its own (?options=-csearch_path%3Dname in the URL)"
        )
    sources, events = find_sources(con, source)
    existing = _existing(con, target)
    if existing and MARKER not in existing:
        raise EngineUnavailable(
            f"PostgreSQL schema {target!r} already holds {', '.join(sorted(existing))}"
            " (a loaded store?): attach into an empty schema or one attached before"
        )
    plan = Plan(sources, MAX_IDENTIFIER, schema=source)
    rows, keys = plan.trait_rows()
    report = AttachReport(
        source=source,
        target=target,
        event_tables=events,
        call_tables=[s.table for s in sources if s.type != "track"],
        fields=len(plan.fields),
        trait_keys=keys,
        skipped=plan.skipped,
    )
    try:
        with con.transaction(), con.cursor() as cur:
            for v in VIEWS:
                if v in existing:
                    cur.execute(sql.SQL("DROP VIEW IF EXISTS {} CASCADE").format(sql.Identifier(v)))
            cur.execute(PARSE_TIMESTAMP_DDL)
            cur.execute(plan.calls())
            cur.execute(sql.SQL("CREATE VIEW segment_trait_writes AS {}").format(rows))
            cur.execute(IDENTITIES)
            cur.execute(_view("events", EVENTS, calls="segment_calls", identities="identities"))
            cur.execute(
                _view("traits", TRAITS, writes="segment_trait_writes", identities="identities")
            )
            cur.execute(_view("profiles", PROFILES, events="events"))
            cur.execute(plan.catalog())
            cur.execute(STATIC_MEMBERS)
            cur.execute(
                sql.SQL(
                    "CREATE VIEW {} AS SELECT {}::text AS source_schema,"
                    " {}::timestamp AS attached_at"
                ).format(sql.Identifier(MARKER), sql.Literal(source), sql.Literal(utcnow()))
            )
    except psycopg.Error as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EngineUnavailable(
            f"PostgreSQL refused the views over schema {source!r} in {target!r}: {reason}"
            " (nothing was changed)"
        ) from None
    return report


def attach_url(url: str, source: str) -> AttachReport:
    con = connect(url)
    try:
        return attach(con, source)
    finally:
        con.close()


def attached_source(con: Connection) -> str | None:
    """The Segment schema the current schema's views read (None: not attached)."""
    row = con.execute(
        "SELECT to_regclass(quote_ident(current_schema()) || '.' || %s)", [MARKER]
    ).fetchone()
    if row is None or row[0] is None:
        return None
    try:
        got = con.execute(sql.SQL("SELECT source_schema FROM {}").format(sql.Identifier(MARKER)))
    except psycopg.errors.InsufficientPrivilege:
        raise EngineUnavailable(
            f"PostgreSQL user {_user(con)} may not read {current_schema(con)}.{MARKER}:"
            " grant SELECT on the views engine attach made"
        ) from None
    found = got.fetchone()
    return str(found[0]) if found else None


# -- evaluation --------------------------------------------------------------------------


SNAPSHOT_IDENTITIES: Final = "segflow_identities"


class SegmentBatch(PostgresBatch):
    """The batch evaluator over views attached to a Segment warehouse schema.

    Each evaluation first reads the views once into temporary tables of its session
    (``events``, ``traits`` and ``profiles``, which the batch query's unqualified
    names find before the schema's views): the identity graph is then resolved once
    per evaluation, not once per scan of the events, and every scan sees one snapshot
    of the warehouse.  Nothing is written to the schema."""

    def snapshot(self) -> None:
        """Read the attached views into this connection's temporary tables."""
        schema = current_schema(self.con)

        def rel(name: str) -> sql.Identifier:
            return sql.Identifier(schema, name)

        ids = sql.Identifier("pg_temp", SNAPSHOT_IDENTITIES)
        steps: list[sql.Composed] = [
            sql.SQL(
                "DROP TABLE IF EXISTS pg_temp.events, pg_temp.traits, pg_temp.profiles, {}"
            ).format(ids),
            sql.SQL("CREATE TEMP TABLE {} AS SELECT * FROM {}").format(
                sql.Identifier(SNAPSHOT_IDENTITIES), rel("identities")
            ),
            sql.SQL("CREATE INDEX ON {} (kind, value)").format(ids),
            sql.SQL("ANALYZE {}").format(ids),
            sql.SQL("CREATE TEMP TABLE events AS {}").format(
                sql.SQL(EVENTS).format(calls=rel("segment_calls"), identities=ids)
            ),
            sql.SQL("CREATE TEMP TABLE traits AS {}").format(
                sql.SQL(TRAITS).format(writes=rel("segment_trait_writes"), identities=ids)
            ),
            sql.SQL("CREATE TEMP TABLE profiles AS {}").format(
                sql.SQL(PROFILES).format(events=sql.Identifier("pg_temp", "events"))
            ),
            # statistics of what the scans filter, group and join on (all of them would
            # cost more than the evaluation they steer)
            sql.SQL(
                'ANALYZE pg_temp.events (profile_id, type, event, "timestamp"),'
                " pg_temp.traits (profile_id, key), pg_temp.profiles"
            ).format(),
        ]
        with self.con.transaction():
            self.con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            # the recursive query's row estimates are orders above the real rows, which
            # makes PostgreSQL compile it (JIT) at a cost far above running it
            self.con.execute("SET LOCAL jit = off")
            for step in steps:
                self.con.execute(step)

    def evaluate(
        self, segments: Iterable[Segment], at: datetime, *, only: Iterable[str] | None = None
    ) -> PostgresResult:
        self.snapshot()
        return super().evaluate(segments, at, only=only)

    def catalog(self) -> SegmentCatalog:
        return SegmentCatalog(super().catalog())

    def compile(self, segments: Iterable[Segment], at: datetime) -> CompiledQuery:
        plan = segment_plan(build_plan(list(segments)))
        return BatchCompiler(
            plan, self.catalog(), at, dialect="postgres", profile_key="profile_id"
        ).compile()


def open_batch(url: str) -> PostgresBatch:
    """The batch evaluator for the schema at ``url``: ``SegmentBatch`` where a Segment
    warehouse is attached, else ``PostgresBatch`` over loaded tables."""
    con = connect(url)
    try:
        batch = SegmentBatch(con) if attached_source(con) is not None else PostgresBatch(con)
    except BaseException:
        con.close()
        raise
    batch._own = True
    return batch
