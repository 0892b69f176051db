"""Read a Segment warehouse in place on Spark: the batch query's tables as views over
the source's Parquet tables, nothing copied.

The source is a directory holding one table per entry, as a Segment warehouse schema
is laid out (``store.segment``): ``tracks/`` (a directory of Parquet files) or
``tracks.parquet``, the per-event tables, ``identifies``, ``pages`` and so on.
``attach`` checks the source, finds its call tables and typed fields, proves that the
views compile, and only then records the source in the Spark directory
(``segment_source.json``, written in one step); a directory holding a loaded store is
refused, as a load is refused over an attached one.

Each evaluation (``SegmentSparkBatch``) reads the source's tables as they are then:
``segment_calls`` and ``segment_trait_writes`` are views over them, the identity
graph's components are found by label propagation (each identity takes the least
label among its neighbours, round after round, until no label changes: Spark's
recursive queries cannot stop on a cyclic graph), and ``events``, ``traits`` and
``profiles`` are each computed once (``localCheckpoint``), so every scan of one
evaluation reads one snapshot.
Names from the warehouse reach Spark SQL quoted (``ident``) and values as literals
(``literal``)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlglot import exp

from segflow.batch.compile import BatchCompiler, CompiledQuery
from segflow.batch.dialects.nodes import ParseTimestamp
from segflow.batch.dialects.spark import SegflowSpark
from segflow.model.definition import Segment
from segflow.model.time import utcnow
from segflow.plan.planner import build_plan
from segflow.store.engines import AttachReport, EngineUnavailable
from segflow.store.segment import (
    CALL_COLUMNS,
    TRAIT_KINDS,
    Fields,
    SegmentCatalog,
    Source,
    arrange_sources,
    segment_plan,
)
from segflow.store.spark.batch import SparkBatch
from segflow.store.spark.connection import TABLES_DIR, Session, open_session, parse_url

MARKER: Final = "segment_source.json"
"""The file of a Spark directory naming the Segment source it reads in place."""

MAX_ROUNDS: Final = 10_000
"""Label propagation's bound (a path of identities longer than this is not a graph
Segment's calls make)."""

_DIALECT = SegflowSpark()
_NUMBER = re.compile(r"(tinyint|smallint|int|bigint|float|double|decimal\(\d+,\d+\))")
_TIME_FORMAT: Final = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"
"""How a Segment timestamp column is read as the ISO-8601 text segflow keeps."""

SPARK_TYPES: Final = {"VARCHAR": "STRING", "DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN"}


def ident(name: str) -> str:
    """A name quoted for Spark SQL."""
    return "`" + name.replace("`", "``") + "`"


def literal(value: str) -> str:
    """A text as a Spark SQL literal (escaped as Spark's parser reads it)."""
    return _DIALECT.generate(exp.Literal.string(value))


def kind_of(data_type: str) -> str | None:
    """segflow's column type of a Spark column type (None: not one Segment makes)."""
    if data_type in ("string", "date", "timestamp", "timestamp_ntz"):
        return "VARCHAR"
    if _NUMBER.fullmatch(data_type):
        return "DOUBLE"
    if data_type == "boolean":
        return "BOOLEAN"
    return None


def _column(column: str) -> str:
    return f"s.{ident(column)}"


def _value(column: str, data_type: str) -> str:
    """A Segment column read as segflow keeps the value: numbers as doubles, times as
    ISO-8601 text in UTC (the session's time zone)."""
    c = _column(column)
    if _NUMBER.fullmatch(data_type):
        return f"CAST({c} AS DOUBLE)"
    if data_type in ("timestamp", "timestamp_ntz"):
        return f"DATE_FORMAT({c}, {literal(_TIME_FORMAT)})"
    if data_type == "date":
        return f"DATE_FORMAT({c}, 'yyyy-MM-dd')"
    return c


def _instant(column: str, data_type: str) -> str:
    """A Segment time column as the TIMESTAMP of its UTC instant (text by segflow's
    grammar of instants)."""
    c = _column(column)
    if data_type == "timestamp":
        return c
    if data_type == "string":
        return _DIALECT.generate(ParseTimestamp(this=exp.column(column, table="s", quoted=True)))
    return f"CAST({c} AS TIMESTAMP)"


# -- the source as found -------------------------------------------------------------------


def _parquet_table(path: Path) -> bool:
    """Whether a directory is a Parquet table: Parquet files in it, or in partitions
    below it (``key=value`` directories)."""
    if any(path.glob("*.parquet")):
        return True
    return any(p.is_dir() and "=" in p.name and _parquet_table(p) for p in path.iterdir())


def source_tables(path: Path) -> dict[str, Path]:
    """The source directory's tables: a directory of Parquet files (or of partitions
    holding them) or a ``.parquet`` file per table (hidden entries and other files left
    out); a Delta table is refused by name."""
    if not path.is_dir():
        raise EngineUnavailable(
            f"Spark has no Segment source directory {path}: name the directory holding"
            " the source's tables (--segment-schema)"
        )
    found: dict[str, Path] = {}
    for entry in sorted(path.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            if (entry / "_delta_log").is_dir():
                raise EngineUnavailable(
                    f"Segment source table {entry} is a Delta table: segflow reads Parquet"
                    " tables (write the source as Parquet, or export its current snapshot)"
                )
            if _parquet_table(entry):
                found[entry.name] = entry
        elif entry.suffix == ".parquet":
            found[entry.stem] = entry
    return found


def read_source(session: Session, path: Path) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """Each table's DataFrame and columns (name -> Spark type)."""
    frames: dict[str, Any] = {}
    columns: dict[str, dict[str, str]] = {}
    for name, location in source_tables(path).items():
        try:
            df = session.spark.read.parquet(str(location))
        except Exception as e:  # PySpark's analysis errors have no common base here
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise EngineUnavailable(
                f"Spark cannot read Segment source table {location}: {reason}"
            ) from None
        frames[name] = df
        columns[name] = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    return frames, columns


# -- the views -----------------------------------------------------------------------------


def _condition(s: Source) -> str:
    if not s.skip_events:
        return "TRUE"
    events = ", ".join(map(literal, s.skip_events))
    return f"(s.`event` IS NULL OR s.`event` NOT IN ({events}))"


def _core(s: Source) -> list[str]:
    cols = s.columns

    def text(name: str, wanted: bool = True) -> str:
        if wanted and name in cols:
            return f"CAST({_column(name)} AS STRING)"
        return "CAST(NULL AS STRING)"

    def instant(name: str) -> str:
        if name in cols:
            return _instant(name, cols[name])
        return "CAST(NULL AS TIMESTAMP)"

    return [
        text("id"),
        literal(s.type),
        text("event_text", s.type == "track"),
        text("user_id"),
        text("anonymous_id"),
        text("previous_id", s.type == "alias"),
        text("group_id", s.type == "group"),
        instant("timestamp"),
        instant("received_at"),
        instant("sent_at"),
    ]


def _first_set(cols: list[tuple[str, str]], value: Callable[[str, str], str]) -> str:
    """``value`` of the first of a trait's columns that is set (NULL when none is)."""
    whens = " ".join(f"WHEN {_column(c)} IS NOT NULL THEN {value(c, d)}" for c, d in cols)
    return f"CASE {whens} END"


def _slot(want: str) -> Callable[[str, str], str]:
    """A column's value where its type is ``want``, else NULL."""

    def value(column: str, data_type: str) -> str:
        return _value(column, data_type) if kind_of(data_type) == want else "NULL"

    return value


@dataclass
class Views(Fields):
    """The views' Spark SQL for a set of sources (``view`` names each source's table)."""

    view: Mapping[str, str] | None = None

    def table(self, s: Source) -> str:
        assert self.view is not None
        return ident(self.view[s.table])

    def calls(self) -> str:
        names = [*CALL_COLUMNS, *self.fields, "extra"]
        parts = []
        for s, layout in self.layouts():
            cols = _core(s)
            for kind, f in layout.typed:
                if f is None:
                    cols.append(f"CAST(NULL AS {SPARK_TYPES[kind]})")
                else:
                    cols.append(_value(f.column, f.data_type))
            spill = {
                root: [f"{literal(key)}, {_value(f.column, f.data_type)}" for key, f in items]
                for root, items in layout.spill.items()
            }
            if spill:
                objects = ", ".join(
                    f"{literal(root)}, NAMED_STRUCT({', '.join(items)})"
                    for root, items in spill.items()
                )
                # TO_JSON leaves out null fields, as jsonb_strip_nulls does
                cols.append(f"TO_JSON(NAMED_STRUCT({objects}))")
            else:
                cols.append("CAST(NULL AS STRING)")
            select = ", ".join(f"{c} AS {ident(n)}" for c, n in zip(cols, names, strict=True))
            parts.append(f"SELECT {select} FROM {self.table(s)} AS s WHERE {_condition(s)}")
        return " UNION ALL ".join(parts)

    def trait_rows(self) -> str:
        """Every trait write: message, time, ids, key, kind and value."""
        parts = []
        for s in self.sources:
            traits = s.traits()
            if not traits:
                continue
            rows = []
            for key, cols in sorted(traits.items()):
                kind = _first_set(cols, lambda c, d: literal(TRAIT_KINDS[kind_of(d) or ""]))
                slots = [_first_set(cols, _slot(want)) for want in ("DOUBLE", "VARCHAR", "BOOLEAN")]
                rows.append(
                    f"NAMED_STRUCT('key', {literal(key)}, 'kind', {kind},"
                    f" 'num', CAST({slots[0]} AS DOUBLE), 'str', CAST({slots[1]} AS STRING),"
                    f" 'bool', CAST({slots[2]} AS BOOLEAN))"
                )
            core = _core(s)
            parts.append(
                f"SELECT {core[0]} AS message_id, {core[7]} AS `timestamp`,"
                f" {core[3]} AS user_id, {core[4]} AS anonymous_id, t.key, t.kind, t.num,"
                f" t.str, t.bool FROM {self.table(s)} AS s"
                f" LATERAL VIEW INLINE(ARRAY({', '.join(rows)})) t"
                f" WHERE {_condition(s)} AND t.kind IS NOT NULL"
            )
        if not parts:
            return (
                "SELECT CAST(NULL AS STRING) AS message_id, CAST(NULL AS TIMESTAMP) AS"
                " `timestamp`, CAST(NULL AS STRING) AS user_id, CAST(NULL AS STRING) AS"
                " anonymous_id, CAST(NULL AS STRING) AS key, CAST(NULL AS STRING) AS kind,"
                " CAST(NULL AS DOUBLE) AS num, CAST(NULL AS STRING) AS str,"
                " CAST(NULL AS BOOLEAN) AS bool WHERE FALSE"
            )
        return " UNION ALL ".join(parts)

    def catalog(self) -> str:
        if not self.fields:
            return (
                "SELECT CAST(NULL AS STRING) AS path, CAST(NULL AS STRING) AS type,"
                " CAST(NULL AS BOOLEAN) AS overflow WHERE FALSE"
            )
        rows = ", ".join(
            f"({literal(p)}, {literal(k)}, {'TRUE' if o else 'FALSE'})"
            for p, (k, o) in self.fields.items()
        )
        return f"SELECT path, type, overflow FROM VALUES {rows} AS f(path, type, overflow)"


NODES: Final = """
SELECT kind, value, min(ts) AS first_seen FROM (
    SELECT 'user' AS kind, user_id AS value, `timestamp` AS ts
    FROM segment_call_rows WHERE user_id IS NOT NULL
    UNION ALL SELECT 'anonymous', anonymous_id, `timestamp`
    FROM segment_call_rows WHERE anonymous_id IS NOT NULL
    UNION ALL SELECT 'previous', previous_id, `timestamp`
    FROM segment_call_rows WHERE previous_id IS NOT NULL
) GROUP BY kind, value
"""

EDGES: Final = """
WITH links AS (
    SELECT 'user' AS k1, user_id AS v1, 'anonymous' AS k2, anonymous_id AS v2
    FROM segment_call_rows WHERE user_id IS NOT NULL AND anonymous_id IS NOT NULL
    UNION SELECT 'user', user_id, 'previous', previous_id
    FROM segment_call_rows WHERE user_id IS NOT NULL AND previous_id IS NOT NULL
    UNION SELECT p.kind, p.value, o.kind, o.value FROM segment_nodes p
    JOIN segment_nodes o ON o.value = p.value AND p.kind = 'previous' AND o.kind <> 'previous'
)
SELECT k1, v1, k2, v2 FROM links UNION SELECT k2, v2, k1, v1 FROM links
"""
"""Both directions of each link: a call's user and anonymous ids, an alias's user and
previous ids, a previous id and the user or anonymous id of the same value."""

FIRST_LABELS: Final = """
SELECT kind, value, NAMED_STRUCT(
    'not_user', kind <> 'user', 'not_anonymous', kind <> 'anonymous',
    'first_seen', coalesce(first_seen, TIMESTAMP '9999-12-31 23:59:59.999999'),
    'value', value) AS label
FROM segment_nodes
"""
"""Each identity's own label, ordered as a component's profile id is chosen: a user id
before an anonymous one, then the earliest seen, then the smallest (bytewise)."""

NEXT_LABELS: Final = """
SELECT kind, value, least(label, coalesce(min(near), label)) AS label,
    coalesce(min(near) < label, FALSE) AS changed
FROM (
    SELECT n.kind, n.value, n.label, m.label AS near FROM segment_labels n
    LEFT JOIN segment_edges e ON e.k1 = n.kind AND e.v1 = n.value
    LEFT JOIN segment_labels m ON m.kind = e.k2 AND m.value = e.v2
) GROUP BY kind, value, label
"""
"""The next round: each identity's least label among its own and its neighbours', and
whether it changed."""

EVENTS: Final = """
SELECT c.*, coalesce(u.profile_id, a.profile_id) AS profile_id
FROM segment_call_rows c
LEFT JOIN segment_identities u ON u.kind = 'user' AND u.value = c.user_id
LEFT JOIN segment_identities a ON a.kind = 'anonymous' AND a.value = c.anonymous_id
"""

TRAITS: Final = """
SELECT coalesce(u.profile_id, a.profile_id) AS profile_id, w.key, w.`timestamp`,
    w.message_id, w.kind, w.num, w.str, w.bool, CAST(NULL AS STRING) AS json,
    lead(w.`timestamp`) OVER (PARTITION BY coalesce(u.profile_id, a.profile_id), w.key
                              ORDER BY w.`timestamp`, w.message_id) AS valid_to,
    TRUE AS linked
FROM segment_write_rows w
LEFT JOIN segment_identities u ON u.kind = 'user' AND u.value = w.user_id
LEFT JOIN segment_identities a ON a.kind = 'anonymous' AND a.value = w.anonymous_id
"""

PROFILES: Final = """
SELECT profile_id, min(`timestamp`) AS first_seen, max(`timestamp`) AS last_seen
FROM events GROUP BY profile_id
"""

STATIC_MEMBERS: Final = (
    "SELECT CAST(NULL AS STRING) AS segment_id, CAST(NULL AS STRING) AS profile_id WHERE FALSE"
)


class Reader:
    """The views over one Segment source in a Spark session."""

    def __init__(self, session: Session, source: Path) -> None:
        self.session = session
        self.source = source
        self.read()

    def read(self) -> None:
        """Read the source's tables and columns as they are now (Spark lists a
        table's files once, when it is read) and make the views over them."""
        frames, columns = read_source(self.session, self.source)
        sources, self.events = arrange_sources(columns, kind_of, f"Spark source {self.source}")
        names = {t: f"segment_table_{i}" for i, t in enumerate(sorted(frames))}
        self.views = Views(sources, view=names)
        self.trait_keys = len(self.views.trait_keys())
        for t, frame in frames.items():
            self._view(names[t], frame)
        self._view("segment_calls", self.sql(self.views.calls()))
        self._view("segment_trait_writes", self.sql(self.views.trait_rows()))
        self._view("field_catalog", self.sql(self.views.catalog()))
        self._view("static_members", self.sql(STATIC_MEMBERS))
        self.stale = False
        """Whether a snapshot was taken since the tables were read (the next query
        reads them again, to see what the source got since)."""

    def refresh(self) -> None:
        """Read the source again if a snapshot was taken since it was last read (opening
        a directory reads it once: its first query need not read it again)."""
        if self.stale:
            self.read()

    def sql(self, query: str) -> Any:
        try:
            return self.session.spark.sql(query)
        except Exception as e:  # PySpark's analysis errors have no common base here
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise EngineUnavailable(
                f"Spark refused the views over the Segment source {self.source}: {reason}"
            ) from None

    def _view(self, name: str, frame: Any) -> None:
        frame.createOrReplaceTempView(name)
        self.session.tables.add(name)

    def identities(self) -> Any:
        """Each identity with its component's profile id: every round, each identity
        takes the least label among its own and its neighbours', until none changes."""
        spark = self.session.spark
        labels = spark.sql(FIRST_LABELS)
        for _ in range(MAX_ROUNDS):
            labels.createOrReplaceTempView("segment_labels")
            labels = spark.sql(NEXT_LABELS).localCheckpoint()
            if labels.filter("changed").isEmpty():
                break
        else:
            raise EngineUnavailable(
                f"the identity graph of Segment source {self.source} did not settle in"
                f" {MAX_ROUNDS} rounds"
            )
        spark.catalog.dropTempView("segment_labels")
        self.session.tables.discard("segment_labels")
        return labels.selectExpr("kind", "value", "label.value AS profile_id")

    def snapshot(self) -> None:
        """Compute, over the tables as last read, the calls and trait writes once, then
        the identity graph, ``events``, ``traits`` and ``profiles`` (each kept by
        ``localCheckpoint``, which computes it once)."""
        self.stale = True
        spark = self.session.spark
        self._view("segment_call_rows", spark.table("segment_calls").localCheckpoint())
        self._view("segment_write_rows", spark.table("segment_trait_writes").localCheckpoint())
        for name, query in (("segment_nodes", NODES), ("segment_edges", EDGES)):
            self._view(name, spark.sql(query).localCheckpoint())
        self._view("segment_identities", self.identities().localCheckpoint())
        for name, query in (("events", EVENTS), ("traits", TRAITS), ("profiles", PROFILES)):
            self._view(name, spark.sql(query).localCheckpoint())


# -- attaching -----------------------------------------------------------------------------


def _marker(path: Path) -> Path:
    return path / MARKER


def attached_source(path: Path) -> Path | None:
    """The Segment source the Spark directory reads (None: not attached)."""
    marker = _marker(path)
    if not marker.exists():
        return None
    try:
        return Path(json.loads(marker.read_text())["source"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EngineUnavailable(f"Spark directory {path}: {MARKER} is unreadable ({e})") from None


def attach(url: str, source: str) -> AttachReport:
    """Record at ``url``'s directory that it reads the Segment source directory
    ``source`` in place, once the views over it compile (nothing else is written)."""
    _, path = parse_url(url)
    root = Path(source).expanduser().absolute()
    session = open_session(url, create=True)
    try:
        if (path / TABLES_DIR).exists():
            raise EngineUnavailable(
                f"Spark directory {path} already holds a loaded store: attach into an"
                " empty directory or one attached before"
            )
        if root == path or path in root.parents:
            raise EngineUnavailable(
                f"the Segment source {root} cannot be read from inside the Spark"
                f" directory {path}: attach into a directory of its own"
            )
        reader = Reader(session, root)  # its views are analysed: one that cannot run is refused
        report = AttachReport(
            source=str(root),
            target=str(path),
            event_tables=reader.events,
            call_tables=[s.table for s in reader.views.sources if s.type != "track"],
            fields=len(reader.views.fields),
            trait_keys=reader.trait_keys,
            skipped=reader.views.skipped,
        )
        tmp = path / f".{MARKER}.tmp"
        tmp.write_text(json.dumps({"source": str(root), "attached_at": utcnow().isoformat()}))
        os.replace(tmp, _marker(path))
        return report
    finally:
        session.close()


class SegmentSparkBatch(SparkBatch):
    """The batch evaluator over a Segment source read in place (``BatchEvaluator``)."""

    def __init__(self, session: Session, source: Path) -> None:
        self.reader = Reader(session, source)
        super().__init__(session)

    def prepare(self) -> None:
        self.reader.snapshot()

    def _columns(self) -> dict[str, dict[str, str]]:
        """No loaded tables to check: the reader made the views from the source."""
        return {}

    def catalog(self) -> SegmentCatalog:
        return SegmentCatalog(super().catalog())

    def compile(self, segments: Iterable[Segment], at: datetime) -> CompiledQuery:
        """The query over the source's tables and fields as they are now."""
        self.reader.refresh()
        plan = segment_plan(build_plan(list(segments)))
        return BatchCompiler(
            plan, self.catalog(), at, dialect="spark", profile_key="profile_id"
        ).compile()


def open_batch(url: str) -> SparkBatch:
    """The batch evaluator for the Spark directory at ``url``: ``SegmentSparkBatch``
    where a Segment source is attached, else ``SparkBatch`` over loaded tables."""
    _, path = parse_url(url)
    source = attached_source(path) if path.is_dir() else None
    if source is None:
        return SparkBatch(url)
    session = open_session(url)
    try:
        batch = SegmentSparkBatch(session, source)
    except BaseException:
        session.close()
        raise
    batch._own = True
    return batch
