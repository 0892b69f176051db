"""The embedded DuckDB store: event ingestion, identity resolution and reads.

Every load stages its rows first and commits them in one transaction, so a file
is stored whole or not at all.  Checking: JSON Lines in Python (orjson; the core
fields of every line validated, so a problem names its line and field; lines go
to DuckDB as Arrow tables), CSV/Parquet entirely in DuckDB (one view computes
every row's problems).  The dynamic fields (every leaf of ``properties``,
``context``, ``traits``) stay JSON text until DuckDB extracts them vectorised:
each document is parsed once for all its paths, one scan fixes each new path's
column type from its first value in input order, one more inserts.  Rows whose
``message_id`` is stored already (or repeats within the load) are dropped with
anti-joins (no index on the 100M-row events table); identities are resolved
set-based (``connected_components``).

User text never becomes SQL: column names are quoted identifiers
(``quote_ident``), values are parameters, and the few places DuckDB takes no
parameters (file paths, JSON keys inside generated expressions) use ``quote_str``.
"""

from __future__ import annotations

import gc
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final

import duckdb
import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from segflow.model.events import (
    ALIASES,
    MAX_DEPTH,
    MAX_PROBLEMS,
    IngestError,
    IngestProblem,
    IngestReport,
    Merge,
    Message,
    parse_message,
)
from segflow.model.time import utcnow
from segflow.store.duckdb.catalog import has_table, table_columns
from segflow.store.duckdb.changes import migrate as migrate_change_log
from segflow.store.duckdb.clustering import (
    MARKS,
    TAIL_CHUNK_ROWS,
    clustered_upto,
    compact_tail,
    newest,
    note_sorted_load,
    rewrite_sorted,
    set_clustered,
)
from segflow.store.duckdb.marks import events_seq, raise_events_seq
from segflow.store.duckdb.message_index import MessageIndex
from segflow.store.duckdb.numbers import NEXT_NUMBER, number_profiles
from segflow.store.duckdb.schema import DDL, LINK_TRAITS

__all__ = [
    "DEFAULT_PATH",
    "DuckDBStore",
    "FieldInfo",
    "IngestError",
    "IngestProblem",
    "IngestReport",
    "Merge",
    "StoredEvents",
    "connected_components",
    "message_of_row",
    "quote_ident",
    "quote_str",
]

DEFAULT_PATH: Final = "segflow.duckdb"
BATCH_ROWS: Final = 65_536
STAGE_ROWS: Final = 1_000_000
"""Rows collected as Arrow before they are appended to the staging table."""
KEEP_TEMPS_ROWS: Final = 100_000
"""Up to this many staged rows, a committed message load keeps its temporary tables."""
READ_BYTES: Final = 8 << 20
ROOTS: Final = ("properties", "context", "traits")
STEPS: Final = 5
"""Progress steps of a table load."""

StrPath = str | os.PathLike[str]
Progress = Callable[[int, int], None]

_STAGE: Final = "_sf_stage"
_VALID: Final = "_sf_valid"
"""The staged rows that passed validation."""
_NEW: Final = "_sf_new"
"""The valid rows not stored yet (and first of their message id in the load)."""
_TSTAGE: Final = "_sf_tstage"
_CORE: Final = (
    ("message_id", "VARCHAR", pa.string()),
    ("type", "VARCHAR", pa.string()),
    ("event", "VARCHAR", pa.string()),
    ("user_id", "VARCHAR", pa.string()),
    ("anonymous_id", "VARCHAR", pa.string()),
    ("previous_id", "VARCHAR", pa.string()),
    ("group_id", "VARCHAR", pa.string()),
    ("timestamp", "TIMESTAMP", pa.timestamp("us")),
    ("received_at", "TIMESTAMP", pa.timestamp("us")),
    ("sent_at", "TIMESTAMP", pa.timestamp("us")),
)


DEMO_MARK: Final = "segflow_demo"
"""A table ``segflow demo`` leaves in its store: a later demo may replace that store."""


def quote_ident(name: str) -> str:
    """A SQL identifier for any text (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def quote_str(text: str) -> str:
    """A SQL string literal, for the places DuckDB accepts no parameters."""
    return "'" + text.replace("'", "''") + "'"


def connected_components(
    n: int, u: npt.NDArray[np.int64], v: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Label each of ``n`` nodes with the smallest node id of its component.

    Vectorised union-find: hook every edge's larger root under the smaller one,
    compress paths fully, repeat until no edge joins two roots.  Identity graphs
    are mostly stars, so this settles in a handful of rounds even for millions.
    """
    parent = np.arange(n, dtype=np.int64)
    while len(u):
        pu, pv = parent[u], parent[v]
        lo, hi = np.minimum(pu, pv), np.maximum(pu, pv)
        live = lo != hi
        if not live.any():
            break
        np.minimum.at(parent, hi[live], lo[live])
        while True:
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
        u, v = u[live], v[live]
    return parent


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Bulk parsing keeps many small objects alive per batch; the cyclic GC would
    rescan them over and over and finds nothing."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass(slots=True)
class FieldInfo:
    """A ``field_catalog`` row: the column type of a dotted path and whether some of
    its values live in ``extra`` instead."""

    type: str
    overflow: bool = False


@dataclass
class _Load:
    """What one load will change, applied by ``DuckDBStore._commit``."""

    new_fields: dict[str, str] = field(default_factory=dict)
    overflow: set[str] = field(default_factory=set)
    select: dict[str, str] = field(default_factory=dict)
    """events column -> SQL over the staged row ``s`` (default: the stage column)."""
    source: str = _NEW
    """The relation the staged rows are read from (the stage plus extracted leaves)."""
    has_traits: bool = True
    """Whether the staged rows can hold trait writes (False: no trait rows to insert)."""
    repeats: list[int] | None = None
    """Lines repeating the message id of an earlier line of the load, when the stager
    knew every id (in-memory messages); None: found in SQL."""
    names: set[str] | None = None
    """The load's event names, when the stager knew them; None: read from the stage."""
    stage_columns: list[str] | None = None
    """The staging table's columns, when the stager knew them."""


@dataclass(frozen=True, slots=True)
class StoredEvents:
    """The events one committed message load added, described for the live evaluator
    (``LiveEvaluator.catch_up``) so that it need not read them back from DuckDB.

    ``rows`` are (seq, profile id after identity resolution, timestamp in µs, the
    parsed message) in ``seq`` order, every event with ``after_seq < seq <= upto_seq``;
    ``fields`` is the field catalog after the load (it says which stored column, typed
    or ``extra``, a value was read back from).  ``plain`` is False when some object key
    holds a dot (a dotted path could then name two values): readers must not rebuild
    field values from the messages then."""

    after_seq: int
    upto_seq: int
    rows: list[tuple[int, str, int, Message]]
    fields: dict[str, FieldInfo]
    columns: frozenset[str]
    """The events table's column names, lower case."""
    traits: int
    """Trait rows the load wrote (with its events)."""
    merges: int
    plain: bool


# -- JSON Lines / in-memory messages ---------------------------------------------


class _MessageStager:
    """Validated messages -> Arrow tables -> the staging table.

    Python checks the core fields of every message (that is what names the line
    and field of a problem); ``properties``/``context``/``traits`` stay JSON text
    (for JSON Lines, the line itself, sliced zero-copy out of the block read) and
    are flattened by DuckDB afterwards.
    """

    def __init__(
        self, store: DuckDBStore, source: str, skip_invalid: bool, json_values: bool = False
    ) -> None:
        self.store = store
        self.source = source
        self.skip_invalid = skip_invalid
        self.json_values = json_values
        """In-memory messages straight from a JSON parser: their values are JSON by
        construction, so they are checked like JSON Lines (core fields only)."""
        self.by_line: dict[int, Message] | None = None
        """Set to a dict to keep every staged message by its line (``StoredEvents``)."""
        self.problems: list[IngestProblem] = []
        self.problem_count = 0
        self.read = 0
        self.invalid = 0
        self.staged = 0
        self.now = utcnow()
        self.tables: list[pa.Table] = []
        self.pending = 0
        self.shapes: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
        self.blocks = False
        """Whether JSON Lines blocks were added (then ids and names are left to SQL)."""
        self.fresh: list[tuple[tuple[str, ...], tuple[str, ...]]] | None = (
            None if store.max_fields is None else []
        )
        """The shapes the current message added (only with a limit on fields)."""
        self.new_paths: set[str] = set()
        """Fields this load adds to the catalog (counted against ``max_fields``)."""
        self.ids: dict[str, int] = {}
        """In-memory messages: message id -> first line (repeats are known here)."""
        self.repeats: list[int] = []
        self.names: set[str] = set()
        self._reset()

    def _reset(self) -> None:
        self.lines: list[int] = []
        self.core: list[list[Any]] = [[] for _ in _CORE]
        self.keep: list[int] = []
        self.raw: list[bytes | None] = []
        self.overrides: dict[int, bytes] = {}

    def problem(self, p: IngestProblem, line: int) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(p.at(self.source, line))

    @property
    def rejecting(self) -> bool:
        """Whether this source will store nothing (then lines are only validated)."""
        return bool(self.problem_count) and not self.skip_invalid

    # -- input ------------------------------------------------------------------------
    def add_block(self, block: bytes, line: int) -> int:
        """Whole lines (``block`` ends with a newline) starting at line ``line + 1``;
        returns the number of the last line."""
        self.blocks = True
        pieces = block.split(b"\n")
        pieces.pop()
        for i, data in enumerate(pieces):
            line += 1
            if not data or data.isspace():
                continue
            self.read += 1
            try:
                raw = orjson.loads(data)
            except orjson.JSONDecodeError as e:
                self.invalid += 1
                self.problem(
                    IngestProblem("", f"malformed JSON: {e.msg} at column {e.colno}"), line
                )
                continue
            try:
                msg = parse_message(raw, flatten=False)
            except IngestError as e:
                self._invalid(e, line)
                continue
            if self.rejecting:
                continue
            try:
                if msg.type in ("page", "screen") and ("name" in raw or "category" in raw):
                    self.overrides[len(self.keep)] = _objects_json(msg)  # name moved
                    raw = {**raw, "properties": msg.properties}
                for root in ROOTS:
                    obj = raw.get(root)
                    if obj:
                        self._shape((root,), obj)
            except (_TooDeep, TypeError) as e:  # TypeError: orjson's own depth limit
                self.overrides.pop(len(self.keep), None)
                self.invalid += 1
                self.problem(
                    IngestProblem(
                        str(e.args[0]) if isinstance(e, _TooDeep) else "",
                        f"nested more than {MAX_DEPTH} levels deep",
                    ),
                    line,
                )
                continue
            self.keep.append(i)
            self._core(msg, line)
        if self.keep:
            ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
            offsets = np.empty(len(ends) + 1, dtype=np.int32)
            offsets[0] = 0
            offsets[1:] = ends + 1
            lines = pa.StringArray.from_buffers(
                len(ends), pa.py_buffer(offsets.tobytes()), pa.py_buffer(block)
            )
            self._table(lines.take(pa.array(self.keep, pa.int64())))
        self._reset()
        return line

    def add_object(self, raw: object, line: int) -> None:
        """One in-memory message: fully checked (its values need not be JSON)."""
        self.read += 1
        try:
            msg = parse_message(raw, flatten=not self.json_values)
        except IngestError as e:
            self._invalid(e, line)
            return
        if self.rejecting:
            return
        if self.json_values:
            try:
                for root in ROOTS:
                    obj = getattr(msg, root)
                    if obj:
                        self._shape((root,), obj)
                text = _objects_json(msg)
            except (_TooDeep, TypeError) as e:  # TypeError: orjson's own depth limit
                self._forget_fresh()
                self.invalid += 1
                where = str(e.args[0]) if isinstance(e, _TooDeep) else ""
                self.problem(
                    IngestProblem(where, f"nested more than {MAX_DEPTH} levels deep"), line
                )
                return
        else:
            for root in ROOTS:
                obj = getattr(msg, root)
                if obj:
                    self._any_shape((root,), obj)
            text = _objects_json(msg)
        if self.fresh:
            beyond = self._new_fields(msg)
            if beyond is not None:
                self.invalid += 1
                self.problem(beyond, line)
                return
        self.raw.append(text)
        self._core(msg, line)
        if self.ids.setdefault(msg.message_id, line) != line:
            self.repeats.append(line)
        if msg.event is not None:
            self.names.add(msg.event)
        if self.by_line is not None:
            self.by_line[line] = msg
        if len(self.lines) >= BATCH_ROWS:
            self.flush_objects()

    def flush_objects(self) -> None:
        if self.lines:
            self._table(pa.array(self.raw, pa.binary()).cast(pa.string()))
        self._reset()

    def _shape(self, prefix: tuple[str, ...], obj: dict[str, Any]) -> None:
        """Note the keys of an object and of the objects inside it: this is how the
        paths of the dynamic fields are found (one set lookup per object; values
        are typed later, in SQL)."""
        if len(prefix) > MAX_DEPTH:
            raise _TooDeep(".".join(prefix[:-1]))
        self._note((prefix, tuple(obj)))
        for k, v in obj.items():
            if type(v) is dict and v:
                self._shape((*prefix, k), v)

    def _any_shape(self, prefix: tuple[str, ...], obj: Mapping[str, Any]) -> None:
        self._note((prefix, tuple(obj)))
        for k, v in obj.items():
            if isinstance(v, Mapping) and v:
                self._any_shape((*prefix, k), v)

    def _note(self, shape: tuple[tuple[str, ...], tuple[str, ...]]) -> None:
        if self.fresh is None:
            self.shapes.add(shape)
        elif shape not in self.shapes:
            self.shapes.add(shape)
            self.fresh.append(shape)

    def _forget_fresh(self) -> None:
        """Drop the shapes a refused message added (a later message with the same
        shape is checked again)."""
        if self.fresh:
            self.shapes.difference_update(self.fresh)
            self.fresh.clear()

    def _new_fields(self, msg: Message) -> IngestProblem | None:
        """Count the fields first seen in ``msg`` (from its new shapes) against the
        store's ``max_fields``; the problem naming the first field past the limit,
        or None (then they count for the rest of the load)."""
        assert self.fresh is not None and self.store.max_fields is not None
        known = self.store._fields
        added: dict[str, None] = {}
        for prefix, keys in self.fresh:
            obj: Mapping[str, Any] = getattr(msg, prefix[0])
            for k in prefix[1:]:
                obj = obj[k]
            for k in keys:
                v = obj[k]
                if isinstance(v, Mapping) and v:
                    continue  # an object: its leaves are the fields
                path = ".".join((*prefix, k))
                if path not in known and path not in self.new_paths:
                    added[path] = None
        limit = self.store.max_fields
        room = limit - len(known) - len(self.new_paths)
        if len(added) <= room:
            self.new_paths.update(added)
            self.fresh.clear()
            return None
        self._forget_fresh()
        first = list(added)[max(room, 0)]
        return IngestProblem(
            first,
            f"a new field, past the limit of {limit:,} distinct fields"
            " (fields already known are still accepted)",
        )

    def paths(self) -> list[tuple[str, ...]]:
        """Every key path seen (objects included), sorted."""
        return sorted({(*prefix, k) for prefix, keys in self.shapes for k in keys})

    def _invalid(self, e: IngestError, line: int) -> None:
        self.invalid += 1
        for p in e.problems:
            self.problem(p, line)

    def _core(self, msg: Message, line: int) -> None:
        self.lines.append(line)
        core = self.core
        core[0].append(msg.message_id)
        core[1].append(msg.type)
        core[2].append(msg.event)
        core[3].append(msg.user_id)
        core[4].append(msg.anonymous_id)
        core[5].append(msg.previous_id)
        core[6].append(msg.group_id)
        core[7].append(msg.timestamp)
        core[8].append(msg.received_at or self.now)
        core[9].append(msg.sent_at)

    # -- staging ----------------------------------------------------------------------
    def _table(self, raw: pa.Array[Any]) -> None:
        arrays: dict[str, pa.Array[Any]] = {"_line": pa.array(self.lines, pa.int64())}
        for (name, _, typ), values in zip(_CORE, self.core, strict=True):
            arrays[name] = pa.array(values, typ)
        if self.overrides:
            fixed: list[str | None] = [None] * len(raw)
            for i, text in self.overrides.items():
                fixed[i] = text.decode()
            raw = pc.coalesce(pa.array(fixed, pa.string()), raw)
        arrays["_raw"] = raw
        self.tables.append(pa.table(arrays))
        self.pending += len(self.lines)
        if self.pending >= STAGE_ROWS:
            self._write()

    def _write(self) -> None:
        """Move the collected Arrow tables into the staging table (few big inserts:
        DuckDB appends far faster in bulk than batch by batch)."""
        if not self.tables:
            return
        con = self.store.con
        con.register("_sf_batch", pa.concat_tables(self.tables))
        try:
            if self.staged:
                con.execute(f"INSERT INTO {_STAGE} SELECT * FROM _sf_batch")
            else:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {_STAGE} AS SELECT * FROM _sf_batch")
        finally:
            con.unregister("_sf_batch")
        self.staged += self.pending
        self.tables, self.pending = [], 0

    def finish(self, started: float) -> IngestReport:
        committed = False
        try:
            self.flush_objects()
            if not self.rejecting:
                self._write()
            report = IngestReport(
                sources=[self.source],
                read=self.read,
                invalid=self.invalid,
                problems=list(self.problems),
                problem_count=self.problem_count,
            )
            if self.rejecting:
                report.rejected.append(self.source)
            elif self.staged:
                con = self.store.con
                con.execute(f"CREATE OR REPLACE TEMP VIEW {_VALID} AS SELECT * FROM {_STAGE}")
                roots = {r: ("s._raw", f"/{r}") for r in ROOTS}
                load = _Load()
                if not self.blocks:  # in-memory messages: the stager saw every id and name
                    load.repeats, load.names = self.repeats, self.names
                    load.stage_columns = ["_line", *(c for c, _, _ in _CORE), "_raw"]
                fields = _Fields(
                    self.store,
                    load,
                    [],
                    roots,
                    csv=False,
                    known=self.paths(),
                    # in-memory groups (the server's): a file is typed per leaf
                    materialize=not self.blocks and self.staged <= KEEP_TEMPS_ROWS,
                )
                plain = all("." not in k for _, keys in self.shapes for k in keys)
                self.store._commit(fields, report, self.by_line, plain)
                committed = True
        finally:
            # A small committed load's temporaries are left for the next load to replace:
            # finding and dropping them would add two statements to every group commit.
            if not committed or self.staged > KEEP_TEMPS_ROWS:
                self.store._drop_temps()
        report.seconds = time.perf_counter() - started
        return report


def _unreadable(source: str, e: OSError) -> IngestReport:
    problem = IngestProblem("", f"cannot read: {e.strerror or e}", source)
    return IngestReport(sources=[source], rejected=[source], problems=[problem], problem_count=1)


class _TooDeep(Exception):
    """An object nested deeper than ``MAX_DEPTH`` (args[0]: where)."""


def _objects_json(msg: Message) -> bytes:
    """The message's non-empty objects as one JSON document (an empty one is left out:
    ``"traits"`` in the text then means the message may write traits, which is how
    trait rows are found without parsing every document)."""
    doc = {}
    if msg.properties:
        doc["properties"] = msg.properties
    if msg.context:
        doc["context"] = msg.context
    if msg.traits:
        doc["traits"] = msg.traits
    return orjson.dumps(doc, default=_json_default)


def _put(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at a dotted path in a nested dict (later keys win on clashes)."""
    parts = path.split(".")
    node = tree
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = node[p] = {}
        node = nxt
    node[parts[-1]] = value


def _json_default(v: object) -> Any:
    if isinstance(v, Mapping):
        return dict(v)
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, datetime):
        return v.isoformat()
    raise TypeError(f"not a JSON value ({type(v).__name__})")


def _column_ok(path: str, lower: set[str]) -> bool:
    """Whether a path can have its own column: DuckDB names are case-insensitive
    and cannot hold NUL, so such paths live in ``extra`` only (catalog type JSON)."""
    return "\x00" not in path and path.lower() not in lower


# -- dynamic fields ------------------------------------------------------------------


@dataclass
class _Leaf:
    """A dynamic field: a dotted table column, or a path inside a JSON document."""

    path: str
    raw: str
    """DOUBLE | BOOLEAN | VARCHAR | JSON for a dotted column (its whole-column type),
    PER_VALUE for a JSON leaf (each value has its own JSON type)."""
    value: str
    """SQL over the staged row ``s``: the value; for PER_VALUE its minified JSON text
    (NULL when absent), whose first character tells its type."""


_DIGITS: Final = "('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')"


def _column_type(v: str) -> str:
    """SQL: the column type a JSON value (minified text) asks for; NULL for null,
    objects and absent values."""
    c = f"left({v}, 1)"
    return (
        f"CASE WHEN {c} = '\"' THEN 'VARCHAR' WHEN {c} IN ('t', 'f') THEN 'BOOLEAN'"
        f" WHEN {c} = '[' THEN 'JSON' WHEN {c} IN {_DIGITS} THEN 'DOUBLE' END"
    )


_KIND_BITS: Final = {1: "DOUBLE", 2: "BOOLEAN", 4: "VARCHAR", 8: "JSON"}


def _kind_bit(v: str) -> str:
    """SQL: ``_column_type`` as one bit (0 for null/object/absent), for ``bit_or``:
    the cheapest way to learn every type a path holds in one scan."""
    return (
        f"CASE coalesce(ascii({v}), 110) WHEN 34 THEN 4 WHEN 116 THEN 2 WHEN 102 THEN 2"
        " WHEN 91 THEN 8 WHEN 123 THEN 0 WHEN 110 THEN 0 ELSE 1 END"
    )


def _json_text(v: str) -> str:
    """SQL: a JSON string value as text (unescaped only when it has escapes)."""
    return (
        f"CASE WHEN contains({v}, '\\') THEN json_extract_string({v}, '$')"
        f" ELSE substr({v}, 2, length({v}) - 2) END"
    )


def _typed_sql(lf: _Leaf, ctype: str, mixed: bool) -> tuple[str | None, tuple[str, str] | None]:
    """The typed column's value for a leaf, and (condition, JSON value) of what goes
    to ``extra`` instead (None when this load has no value of another type).  The
    JSON value is only computed where the condition holds (DuckDB evaluates CASE
    branches on the matching rows only)."""
    v = lf.value
    if lf.raw == "PER_VALUE":
        if ctype == "JSON":
            return None, (f"{_column_type(v)} IS NOT NULL", f"CAST({v} AS JSON)")
        typed = {
            "DOUBLE": f"TRY_CAST({v} AS DOUBLE)",
            "BOOLEAN": f"CASE {v} WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END",
            "VARCHAR": f"CASE WHEN left({v}, 1) = '\"' THEN {_json_text(v)} END",
        }[ctype]
        if not mixed:
            return typed, None
        return typed, (f"{_column_type(v)} <> '{ctype}'", f"CAST({v} AS JSON)")
    if lf.raw == ctype and ctype != "JSON":
        return v, None
    if lf.raw == "JSON":
        return None, (f"{v} IS NOT NULL", f"CAST({v} AS JSON)")
    return None, (f"{v} IS NOT NULL", f"to_json({v})")


def _nest(path: str, value: str) -> str:
    """SQL: a JSON object holding ``value`` at the dotted path (a NULL value is
    removed again by ``json_merge_patch``)."""
    out = value
    for part in reversed(path.split(".")):
        out = f"json_object({quote_str(part)}, {out})"
    return out


def _pointer_key(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


class _Fields:
    """Finds, types and extracts the dynamic fields of the new rows, in SQL.

    ``roots`` maps ``properties``/``context``/``traits`` to (SQL of the JSON
    document holding it, JSON pointer of it inside that document).  Paths are
    ``known`` (messages: their key shapes were noted while parsing) or found level
    by level with ``json_keys`` (JSON columns of tables).  One scan learns every
    type each path holds (``bit_or`` of one bit per JSON type; the minified JSON
    text's first character tells the type); a new path whose values disagree gets
    the type of its first value in input order (one more scan, only then); paths
    that see other types than their column's are marked ``overflow``.  The
    results are SQL expressions for the insert (typed columns, ``extra``) and the
    trait rows.  Each document is parsed once for all its paths
    (``json_extract`` with a list of pointers), never once per path.
    """

    def __init__(
        self,
        store: DuckDBStore,
        load: _Load,
        dotted: list[_Leaf],
        roots: dict[str, tuple[str, str]],
        csv: bool,
        known: list[tuple[str, ...]] | None = None,
        step: Callable[[], None] | None = None,
        materialize: bool = False,
    ) -> None:
        self.store = store
        self.known = known
        self.step = step or (lambda: None)
        self.con = store.con
        self.load = load
        self.dotted = dotted
        self.roots = roots
        self.csv = csv
        self.docs: list[str] = list(dict.fromkeys(doc for doc, _ in roots.values()))
        self.ptrs: list[list[str]] = [[] for _ in self.docs]
        self.json_paths: dict[str, list[tuple[int, int]]] = {}
        self.leaves: list[_Leaf] = []
        self.materialize = materialize
        """Extract every leaf once into a temporary table (see ``_extract_once``)."""
        self._stage = _NEW
        """The relation ``source`` reads: the new rows, or them with their leaves."""
        self._extracted = False

    def run(self) -> None:
        self.discover()
        if self.materialize:
            self._extract_once()
        self.decide()
        self.step()
        self.traits()
        self.step()

    # -- discovery --------------------------------------------------------------------
    def discover(self) -> None:
        if self.known is not None:
            for keys in self.known:
                doc, ptr = self.roots[keys[0]]
                rest = "".join(f"/{_pointer_key(k)}" for k in keys[1:])
                self._add(self.docs.index(doc), ptr + rest, ".".join(keys))
        else:
            self._discover_sql()
        taken = {lf.path for lf in self.dotted}
        self.leaves = list(self.dotted)
        for path, sources in self.json_paths.items():
            if path in taken:
                continue  # a dotted column wins over the same path in a JSON column
            parts = [f"s._x{d}_{i + 1}" for d, i in sources]
            value = parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"
            self.leaves.append(_Leaf(path, "PER_VALUE", value))

    def _discover_sql(self) -> None:
        """Key paths of the JSON columns, level by level with ``json_keys``."""
        frontier: list[list[tuple[str, str]]] = [[] for _ in self.docs]
        for root, (doc, ptr) in self.roots.items():
            frontier[self.docs.index(doc)].append((ptr, root))
        for _ in range(64):
            if not any(frontier):
                break
            cols = [
                f"json_keys({doc}, [{', '.join(quote_str(p or '$') for p, _ in level)}])"
                if level
                else "NULL"
                for doc, level in zip(self.docs, frontier, strict=True)
            ]
            rows = self.con.execute(f"SELECT DISTINCT {', '.join(cols)} FROM {_NEW} s").fetchall()
            nxt: list[list[tuple[str, str]]] = [[] for _ in self.docs]
            for d, level in enumerate(frontier):
                seen: dict[tuple[str, str], None] = {}
                for row in rows:
                    for (ptr, path), keys in zip(level, row[d] or [None] * len(level), strict=True):
                        for key in keys or ():
                            seen[(f"{ptr}/{_pointer_key(key)}", f"{path}.{key}")] = None
                for child in sorted(seen):
                    self._add(d, *child)
                    nxt[d].append(child)
            frontier = nxt

    def _add(self, doc: int, ptr: str, path: str) -> None:
        ptrs = self.ptrs[doc]
        self.json_paths.setdefault(path, []).append((doc, len(ptrs)))
        ptrs.append(ptr)

    def source(self, *sql: str, where: str = "") -> str:
        """The stage plus the leaf values the SQL refers to (``s._x<doc>_<n>``):
        each document is parsed once for all those paths (``json_extract`` with a
        list), and each value becomes a column of its own."""
        used = " ".join(sql)
        lists, items = [], []
        for d, (doc, ptrs) in enumerate(zip(self.docs, self.ptrs, strict=True)):
            wanted = [i for i in range(1, len(ptrs) + 1) if re.search(rf"s\._x{d}_{i}\b", used)]
            if wanted and self._extracted:  # the lists are columns of the stage
                items += [f"s._l{d}[{i}] AS _x{d}_{i}" for i in wanted]
            elif wanted:
                arg = ", ".join(quote_str(ptrs[i - 1]) for i in wanted)
                lists.append(f"CAST(json_extract({doc}, [{arg}]) AS VARCHAR[]) AS _l{d}")
                items += [f"s._l{d}[{j}] AS _x{d}_{i}" for j, i in enumerate(wanted, 1)]
        cond = f" WHERE {where}" if where else ""
        if not lists:
            if items:
                return f"(SELECT s.*, {', '.join(items)} FROM {self._stage} s{cond})"
            return f"(SELECT * FROM {self._stage} s{cond})" if where else self._stage
        return (
            f"(SELECT s.*, {', '.join(items)} FROM"
            f" (SELECT s.*, {', '.join(lists)} FROM {self._stage} s{cond}) s)"
        )

    def _long_sources(self) -> list[tuple[int, int]] | None:
        """Each leaf's (document, 1-based list position) when the leaves are extracted
        and each comes from one document: statements can then work on the unnested
        lists (one row per value) with one expression each, instead of one expression
        per leaf.  DuckDB takes several times longer to plan a statement with forty
        leaves' expressions than to run it on a server group."""
        if not self._extracted:
            return None
        out: list[tuple[int, int]] = []
        for lf in self.leaves:
            m = re.fullmatch(r"s\._x(\d+)_(\d+)", lf.value)
            if lf.raw != "PER_VALUE" or m is None:
                return None
            out.append((int(m.group(1)), int(m.group(2))))
        return out

    def _unnested(self, where: str = "") -> str:
        """The extracted leaf values, one row each: ``(_line, type, d, i, v)``."""
        cond = f" WHERE {where}" if where else ""
        return " UNION ALL ".join(
            f"SELECT s._line, s.type, {d} AS d, generate_subscripts(s._l{d}, 1) AS i,"
            f" unnest(s._l{d}) AS v FROM {self._stage} s{cond}"
            for d, ptrs in enumerate(self.ptrs)
            if ptrs
        )

    def _extract_once(self) -> None:
        """Parse each JSON document once for every leaf, into ``_sf_leaves`` (the new
        rows plus one list of leaf values per document).  The type scan, the insert
        and the trait rows then read columns instead of each parsing the documents
        again, and the first and last can work on the unnested lists (see
        ``_long_sources``)."""
        lists = [
            f"CAST(json_extract({doc}, [{', '.join(quote_str(p) for p in ptrs)}])"
            f" AS VARCHAR[]) AS _l{d}"
            for d, (doc, ptrs) in enumerate(zip(self.docs, self.ptrs, strict=True))
            if ptrs
        ]
        if not lists:
            return
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE _sf_leaves AS SELECT s.*, {', '.join(lists)}"
            f" FROM {_NEW} s"
        )
        self._stage = "_sf_leaves"
        self._extracted = True

    # -- types --------------------------------------------------------------------------
    def decide(self) -> None:
        """Fix each leaf's column type and the SQL filling its column and ``extra``."""
        if not self.leaves:
            return
        aggs: list[str] = []
        for lf in self.leaves:
            if lf.raw == "VARCHAR" and self.csv:
                v = lf.value
                aggs += [
                    f"count({v})",
                    f"coalesce(bool_and(lower({v}) IN ('true', 'false')), FALSE)",
                    f"coalesce(bool_and(coalesce(isfinite(TRY_CAST({v} AS DOUBLE)), FALSE)),"
                    " FALSE)",
                ]
            elif lf.raw == "PER_VALUE":
                aggs += [f"bit_or({_kind_bit(lf.value)})", "NULL", "NULL"]
            else:
                aggs += [f"count({lf.value})", "NULL", "NULL"]
        long = self._long_sources()
        if long is not None:  # one bit_or per leaf over the unnested lists: a small plan
            bits = {
                (int(d), int(i)): b
                for d, i, b in self.con.execute(
                    f"SELECT d, i, bit_or({_kind_bit('v')}) FROM ({self._unnested()}) GROUP BY d, i"
                ).fetchall()
            }
            row: tuple[Any, ...] = tuple(x for src in long for x in (bits.get(src, 0), None, None))
        else:
            scan = self.con.execute(f"SELECT {', '.join(aggs)} FROM {self.source(*aggs)} s")
            row = scan.fetchone() or ()
        fields = self.store._fields
        kinds: dict[int, set[str]] = {}
        for i, lf in enumerate(self.leaves):
            a, b, c = row[3 * i : 3 * i + 3]
            if lf.raw == "PER_VALUE":
                if a:
                    kinds[i] = {name for bit, name in _KIND_BITS.items() if a & bit}
            elif a:  # an all-empty column adds nothing
                if lf.raw == "VARCHAR" and self.csv:
                    if b:
                        lf.raw, lf.value = "BOOLEAN", f"(lower({lf.value}) = 'true')"
                    elif c:
                        lf.raw, lf.value = "DOUBLE", f"CAST({lf.value} AS DOUBLE)"
                kinds[i] = {lf.raw}
        first = {i: next(iter(ks)) for i, ks in kinds.items() if len(ks) == 1}
        mixed = [
            i
            for i, ks in kinds.items()
            if len(ks) > 1
            and self.leaves[i].path not in fields
            and self.leaves[i].path not in self.load.new_fields
        ]
        if mixed:  # a new path whose values differ in type: the first one decides
            ks_sql = [_column_type(self.leaves[i].value) for i in mixed]
            firsts = [f"arg_min({k}, s._line) FILTER (WHERE {k} IS NOT NULL)" for k in ks_sql]
            got = self.con.execute(
                f"SELECT {', '.join(firsts)} FROM {self.source(*ks_sql)} s"
            ).fetchone()
            assert got is not None
            first.update(zip(mixed, (str(x) for x in got), strict=True))
        lower = set(self.store._lower)
        spills: list[tuple[str, str, str]] = []
        for i, lf in enumerate(self.leaves):
            if i not in kinds:
                continue  # only nulls and objects (or nothing): no column
            info = fields.get(lf.path)
            ctype = info.type if info is not None else self.load.new_fields.get(lf.path)
            if ctype is None:
                ctype = first.get(i, "JSON")
                if ctype != "JSON" and not _column_ok(lf.path, lower):
                    ctype = "JSON"
                self.load.new_fields[lf.path] = ctype
                if ctype != "JSON":
                    lower.add(lf.path.lower())
            mixed_here = bool(kinds[i] - {ctype})
            if mixed_here:
                self.load.overflow.add(lf.path)
            typed, spill = _typed_sql(lf, ctype, mixed_here)
            if typed is not None:
                self.load.select[lf.path] = typed
            if spill is not None:
                spills.append((lf.path, *spill))
        if spills:
            cond = " OR ".join(f"coalesce({c}, FALSE)" for _, c, _ in spills)
            patch = ", ".join(_nest(p, f"CASE WHEN {c} THEN {v} END") for p, c, v in spills)
            self.load.select["extra"] = (
                f"CASE WHEN {cond} THEN CAST(json_merge_patch('{{}}', {patch}) AS VARCHAR) END"
            )
        self.load.source = self.source(*self.load.select.values())

    # -- traits -------------------------------------------------------------------------
    def traits(self) -> None:
        """One trait row per (row, key) from ``traits.*`` of identify rows and
        ``context.traits.*`` of any row; identify traits win a clash."""
        items: list[str] = []
        wanted = ["s.type = 'identify'"]  # rows that can hold trait writes
        for root, (doc, _) in self.roots.items():
            if root == "context":
                wanted.append(f"contains({doc}, '\"traits\"')")
        for lf in self.dotted:
            if lf.path.startswith("context.traits."):
                wanted.append(f"{lf.value} IS NOT NULL")
        for lf in self.leaves:
            if lf.path.startswith("traits."):
                key, prio, only_identify = lf.path[7:], 0, True
            elif lf.path.startswith("context.traits."):
                key, prio, only_identify = lf.path[15:], 1, False
            else:
                continue
            v = lf.value
            if lf.raw == "PER_VALUE":
                k = _column_type(v)
                kind = (
                    f"CASE WHEN {v} = 'null' THEN 'null' WHEN {k} = 'DOUBLE' THEN 'number'"
                    f" WHEN {k} = 'VARCHAR' THEN 'string' WHEN {k} = 'BOOLEAN' THEN 'bool'"
                    f" WHEN {k} = 'JSON' THEN 'json' END"
                )
                c = f"left({v}, 1)"
                num = f"CASE WHEN {c} IN {_DIGITS} THEN CAST({v} AS DOUBLE) END"
                txt = f"CASE WHEN {c} = '\"' THEN {_json_text(v)} END"
                boo = f"CASE WHEN {c} IN ('t', 'f') THEN {c} = 't' END"
                js = f"CASE WHEN {c} = '[' THEN {v} END"
            else:
                name = {"DOUBLE": "number", "BOOLEAN": "bool", "VARCHAR": "string", "JSON": "json"}
                kind = f"CASE WHEN {v} IS NOT NULL THEN '{name[lf.raw]}' END"
                num = v if lf.raw == "DOUBLE" else "NULL::DOUBLE"
                txt = v if lf.raw == "VARCHAR" else "NULL::VARCHAR"
                boo = v if lf.raw == "BOOLEAN" else "NULL::BOOLEAN"
                js = f"CAST({v} AS VARCHAR)" if lf.raw == "JSON" else "NULL::VARCHAR"
            if only_identify:
                kind = f"CASE WHEN s.type = 'identify' THEN {kind} END"
            items.append(
                f"{{'key': {quote_str(key)}, 'prio': {prio}, 'kind': {kind}, 'num': {num},"
                f" 'str': {txt}, 'bool': {boo}, 'json': {js}}}"
            )
        if not items:
            self.load.has_traits = False
            return
        long = self._long_sources()
        if long is not None:
            self._traits_long(long, " OR ".join(wanted))
            return
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_TSTAGE} AS SELECT _line, t.key AS key,"
            " t.kind AS kind, t.num AS num, t.str AS str, t.bool AS bool, t.json AS json"
            f" FROM (SELECT s._line, unnest([{', '.join(items)}]) AS t"
            f" FROM {self.source(*items, where=' OR '.join(wanted))} s)"
            " WHERE t.kind IS NOT NULL"
            " QUALIFY row_number() OVER (PARTITION BY _line, t.key ORDER BY t.prio) = 1"
        )

    def _traits_long(self, sources: list[tuple[int, int]], wanted: str) -> None:
        """``traits`` over the unnested leaf values: one set of expressions for every
        trait leaf (the same rows and values as the per-leaf form)."""
        keys: list[str] = []
        for lf, (d, i) in zip(self.leaves, sources, strict=True):
            if lf.path.startswith("traits."):
                key, prio, only = lf.path[7:], 0, "TRUE"
            elif lf.path.startswith("context.traits."):
                key, prio, only = lf.path[15:], 1, "FALSE"
            else:
                continue
            keys.append(f"({d}, {i}, {quote_str(key)}, {prio}, {only})")
        v, c = "s.v", "left(s.v, 1)"
        kind = (
            "CASE WHEN m.identify_only AND s.type <> 'identify' THEN NULL"
            f" WHEN {v} = 'null' THEN 'null' WHEN {c} = '\"' THEN 'string'"
            f" WHEN {c} IN ('t', 'f') THEN 'bool'"
            f" WHEN {c} = '[' THEN 'json' WHEN {c} IN {_DIGITS} THEN 'number' END"
        )
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_TSTAGE} AS SELECT _line, key, kind, num, str,"
            " bool, json FROM (SELECT s._line, m.key, m.prio,"
            f" {kind} AS kind,"
            f" CASE WHEN {c} IN {_DIGITS} THEN CAST({v} AS DOUBLE) END AS num,"
            f" CASE WHEN {c} = '\"' THEN {_json_text(v)} END AS str,"
            f" CASE WHEN {c} IN ('t', 'f') THEN {c} = 't' END AS bool,"
            f" CASE WHEN {c} = '[' THEN {v} END AS json"
            f" FROM ({self._unnested(wanted)}) s"
            f" JOIN (VALUES {', '.join(keys)}) m(d, i, key, prio, identify_only)"
            " ON m.d = s.d AND m.i = s.i)"
            " WHERE kind IS NOT NULL"
            " QUALIFY row_number() OVER (PARTITION BY _line, key ORDER BY prio) = 1"
        )


# -- flat tables -------------------------------------------------------------------

_TABLE_COLUMNS: Final[dict[str, str]] = {
    **{spelling: name for name, pair in ALIASES.items() for spelling in pair},
    "type": "type",
    "event": "event",
    "timestamp": "timestamp",
    "properties": "properties",
    "context": "context",
    "traits": "traits",
}
_TEMPORAL: Final = (
    "TIMESTAMP",
    "DATE",
    "TIMESTAMP_NS",
    "TIMESTAMP_MS",
    "TIMESTAMP_S",
    "TIMESTAMP WITH TIME ZONE",
)
_NUMERIC: Final = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
)
_KNOWN_COLUMNS: Final = (
    "message_id, type, event, user_id, anonymous_id, previous_id, group_id, timestamp,"
    " received_at, sent_at, properties, context, traits, or properties.X, context.X, traits.X"
)


class _TableStager:
    """A CSV or Parquet event table -> the staging table, in one DuckDB scan.

    Every row gets its problems as a list (so one query reports them all with row
    numbers); dotted columns are staged raw and typed once the whole column has
    been seen (CSV cells are text: a column is BOOLEAN if every cell is true/false,
    DOUBLE if every cell is a number, else VARCHAR).
    """

    def __init__(self, store: DuckDBStore, path: StrPath, skip_invalid: bool) -> None:
        self.store = store
        self.con = store.con
        self.path = os.fspath(path)
        self.source = self.path
        self.skip_invalid = skip_invalid
        self.csv = Path(self.path).suffix.lower() not in (".parquet", ".pq")

    def fail(self, problems: list[IngestProblem]) -> IngestError:
        return IngestError([p.at(self.source) for p in problems])

    def run(self, progress: Progress | None) -> IngestReport:
        started = time.perf_counter()
        step = _stepper(progress)
        try:
            self._read_source()
            core, dotted, roots = self._columns()
            self._stage(core, dotted, roots)
            step()
            report = self._problems()
            step()
            if report.problem_count and not self.skip_invalid:
                report.rejected.append(self.source)
            else:
                if self.csv:  # text: parse timestamps and ids once, not in every step
                    self.con.execute(
                        f"CREATE OR REPLACE TEMP TABLE {_VALID} AS SELECT * EXCLUDE"
                        f" (_bad, _problems) FROM {_STAGE} WHERE NOT _bad"
                    )
                    self.con.execute(f"DROP VIEW {_STAGE}")
                    self.con.execute("DROP VIEW _sf_srcv")
                    self.con.execute("DROP TABLE _sf_src")
                else:
                    self.con.execute(
                        f"CREATE OR REPLACE TEMP VIEW {_VALID} AS SELECT * FROM {_STAGE}"
                        " WHERE NOT _bad"
                    )
                docs = {r: (f"s._j_{r}", "") for r in roots}
                fields = _Fields(self.store, _Load(), dotted, docs, self.csv, step=step)
                self.store._commit(fields, report)
                step()
        finally:
            self.store._drop_temps()
        report.seconds = time.perf_counter() - started
        return report

    def _read_source(self) -> None:
        lit = quote_str(self.path)
        try:
            if self.csv:
                self.con.execute(
                    "CREATE OR REPLACE TEMP TABLE _sf_src AS SELECT * FROM"
                    f" read_csv({lit}, header = true, all_varchar = true)"
                )
                self.con.execute(
                    "CREATE OR REPLACE TEMP VIEW _sf_srcv AS SELECT *, rowid + 1 AS _row"
                    " FROM _sf_src"
                )
            else:
                self.con.execute(
                    "CREATE OR REPLACE TEMP VIEW _sf_srcv AS SELECT * EXCLUDE"
                    " (file_row_number), file_row_number + 1 AS _row FROM"
                    f" read_parquet({lit}, file_row_number = true)"
                )
        except duckdb.Error as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise self.fail([IngestProblem("", f"cannot read: {first}")]) from e

    def _columns(self) -> tuple[dict[str, tuple[str, str]], list[_Leaf], list[str]]:
        """Map the file's columns to core fields, dotted leaves and JSON columns."""
        described = self.con.execute("DESCRIBE SELECT * FROM _sf_srcv").fetchall()
        problems: list[IngestProblem] = []
        core: dict[str, tuple[str, str]] = {}  # field -> (column, type)
        dotted: list[_Leaf] = []
        for name, typ, *_ in described:
            if name == "_row":
                continue
            col = f"s.{quote_ident(name)}"
            base = typ.split("(")[0]
            field_name = _TABLE_COLUMNS.get(name)
            if field_name is not None:
                if field_name in core:
                    other = core[field_name][0]
                    problems.append(IngestProblem(name, f"duplicates column {other!r}"))
                    continue
                core[field_name] = (name, typ)
                if field_name in ROOTS and base not in ("VARCHAR", "JSON", "STRUCT", "MAP"):
                    problems.append(
                        IngestProblem(name, f"expected JSON text or a struct, got {typ}")
                    )
                continue
            root, dot, rest = name.partition(".")
            if root not in ROOTS or not dot:
                problems.append(IngestProblem(name, f"unknown column (expected {_KNOWN_COLUMNS})"))
                continue
            if "" in rest.split("."):
                problems.append(IngestProblem(name, "empty key in dotted column name"))
                continue
            if base == "BOOLEAN":
                dotted.append(_Leaf(name, "BOOLEAN", col))
            elif base in _NUMERIC:
                dotted.append(_Leaf(name, "DOUBLE", f"CAST({col} AS DOUBLE)"))
            elif base == "VARCHAR":
                dotted.append(_Leaf(name, "VARCHAR", col))
            elif typ.endswith("]") or base in ("STRUCT", "MAP", "UNION", "JSON"):
                dotted.append(_Leaf(name, "JSON", f"CAST(to_json({col}) AS VARCHAR)"))
            else:
                dotted.append(_Leaf(name, "VARCHAR", f"CAST({col} AS VARCHAR)"))
        if "timestamp" not in core:
            problems.append(IngestProblem("timestamp", "missing column"))
        if "user_id" not in core and "anonymous_id" not in core:
            problems.append(
                IngestProblem("user_id", "missing column (need user_id or anonymous_id)")
            )
        for name in ("timestamp", "received_at", "sent_at"):
            if name in core:
                col_name, typ = core[name]
                if typ.split("(")[0] not in ("VARCHAR", *_TEMPORAL):
                    problems.append(
                        IngestProblem(col_name, f"expected ISO 8601 text or a timestamp, got {typ}")
                    )
        if problems:
            raise self.fail(problems)
        roots = [r for r in ROOTS if r in core]
        return core, dotted, roots

    def _stage(
        self, core: dict[str, tuple[str, str]], dotted: list[_Leaf], roots: list[str]
    ) -> None:
        """A view over the source: normalised core fields, whether the row is bad and
        its problems, the raw dotted values and the JSON columns.  A view, not a
        table: Parquet is read again by each step instead of copied (100M rows do not
        have to fit anywhere); only a CSV is copied once, because parsing it is the
        expensive part."""

        def col(name: str) -> str | None:
            return f"s.{quote_ident(core[name][0])}" if name in core else None

        def text(name: str) -> str:
            c = col(name)
            return f"NULLIF(CAST({c} AS VARCHAR), '')" if c else "NULL::VARCHAR"

        def when(name: str) -> tuple[str, str]:
            """(raw text, naive UTC timestamp) of a time column (session zone is UTC)."""
            c = col(name)
            if c is None:
                return "NULL::VARCHAR", "NULL::TIMESTAMP"
            if core[name][1] == "VARCHAR":
                raw = f"NULLIF(trim({c}), '')"
                return raw, f"CAST(TRY_CAST({raw} AS TIMESTAMPTZ) AS TIMESTAMP)"
            return f"CAST({c} AS VARCHAR)", f"CAST({c} AS TIMESTAMP)"

        def nm(name: str) -> str:
            return quote_str(core[name][0] if name in core else name)

        sel: dict[str, str] = {}
        for name in ("user_id", "anonymous_id", "previous_id", "group_id", "event"):
            sel[name] = text(name)
        typ = sel["type"] = f"lower({text('type')})" if "type" in core else "'track'"
        ts_raw, ts = when("timestamp")
        rc_raw, rc = when("received_at")
        st_raw, st = when("sent_at")
        sel["timestamp"] = ts
        now = quote_str(utcnow().isoformat(sep=" "))
        sel["received_at"] = f"coalesce({rc}, CAST({now} AS TIMESTAMP))"
        sel["sent_at"] = st
        json_cols: dict[str, str] = {}
        for root in roots:
            c = col(root)
            base = core[root][1].split("(")[0]
            json_cols[root] = (
                f"CAST(to_json({c}) AS VARCHAR)" if base in ("STRUCT", "MAP") else f"{c}"
            )
        content = [ts_raw, typ, *(sel[k] for k in ("event", "user_id", "anonymous_id"))]
        content += [sel["previous_id"], sel["group_id"], *(lf.value for lf in dotted)]
        content += list(json_cols.values())
        derived = f"'h:' || md5(CAST(json_array({', '.join(content)}) AS VARCHAR))"
        sel["message_id"] = f"coalesce({text('message_id')}, {derived})"

        known = "('track', 'identify', 'page', 'screen', 'alias', 'group')"
        uid, aid = sel["user_id"], sel["anonymous_id"]
        checks: list[tuple[str, str, str]] = [  # (condition, field, message SQL)
            (f"{ts_raw} IS NULL", nm("timestamp"), "'missing'"),
            (
                f"{ts_raw} IS NOT NULL AND {ts} IS NULL",
                nm("timestamp"),
                f"'not an ISO 8601 timestamp: ' || {ts_raw}",
            ),
            (f"{typ} IS NULL", nm("type"), "'missing'"),
            (f"{typ} NOT IN {known}", nm("type"), f"'unknown message type \"' || {typ} || '\"'"),
            (
                f"{typ} = 'track' AND {sel['event']} IS NULL",
                nm("event"),
                "'missing (required for track)'",
            ),
            (
                f"{typ} = 'alias' AND {sel['previous_id']} IS NULL",
                nm("previous_id"),
                "'missing (alias needs previous_id)'",
            ),
            (
                f"{typ} = 'alias' AND {uid} IS NULL",
                nm("user_id"),
                "'missing (alias needs user_id)'",
            ),
            (
                f"{typ} IS DISTINCT FROM 'alias' AND {uid} IS NULL AND {aid} IS NULL",
                nm("user_id"),
                "'missing (a message needs user_id or anonymous_id)'",
            ),
            (
                f"{typ} = 'group' AND {sel['group_id']} IS NULL",
                nm("group_id"),
                "'missing (required for group)'",
            ),
        ]
        for name, raw, parsed in (("received_at", rc_raw, rc), ("sent_at", st_raw, st)):
            checks.append(
                (
                    f"{raw} IS NOT NULL AND {parsed} IS NULL",
                    nm(name),
                    f"'not an ISO 8601 timestamp: ' || {raw}",
                )
            )
        for name, expr in json_cols.items():
            checks.append((f"NOT json_valid({expr})", nm(name), "'not valid JSON'"))
            checks.append(
                (
                    f"json_valid({expr}) AND json_type({expr}) NOT IN ('OBJECT', 'NULL')",
                    nm(name),
                    f"'expected an object, got ' || lower(json_type({expr}))",
                )
            )
        bad = " OR ".join(f"coalesce({c}, FALSE)" for c, _, _ in checks)
        listed = ", ".join(
            f"CASE WHEN coalesce({c}, FALSE) THEN {{'f': {f}, 'm': {m}}} END" for c, f, m in checks
        )
        items = ["s._row AS _line"]
        items += [f"{sel[n]} AS {quote_ident(n)}" for n, _, _ in _CORE]
        items += [f"{json_cols.get(r, 'NULL::VARCHAR')} AS _j_{r}" for r in ROOTS]
        for i, lf in enumerate(dotted):
            items.append(f"{lf.value} AS _d{i}")
            lf.value = f"s._d{i}"
        items.append(f"({bad}) AS _bad")
        items.append(f"list_filter([{listed}], x -> x IS NOT NULL) AS _problems")
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {_STAGE} AS SELECT {', '.join(items)} FROM _sf_srcv s"
        )

    def _problems(self) -> IngestReport:
        """Counts, and the problems of the first ``MAX_PROBLEMS`` bad rows (the list of
        problems is only computed for bad rows)."""
        read, bad = self.con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE _bad) FROM {_STAGE}"
        ).fetchone() or (0, 0)
        total = 0
        rows: list[tuple[int, list[dict[str, str]]]] = []
        if bad:
            rows = self.con.execute(
                f"SELECT _line, _problems FROM {_STAGE} WHERE _bad"
                f" ORDER BY _line LIMIT {MAX_PROBLEMS}"
            ).fetchall()
            total = sum(len(ps) for _, ps in rows)
            if bad > len(rows):
                (total,) = self.con.execute(
                    f"SELECT sum(len(_problems)) FROM {_STAGE} WHERE _bad"
                ).fetchone() or (0,)
        problems = [
            IngestProblem(p["f"], p["m"], self.source, row + 1 if self.csv else None, int(row))
            for row, ps in rows
            for p in ps
        ]
        return IngestReport(
            sources=[self.source],
            read=int(read),
            invalid=int(bad),
            problems=problems[:MAX_PROBLEMS],
            problem_count=int(total),
        )


def _stepper(progress: Progress | None) -> Callable[[], None]:
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, STEPS)

    if progress is not None:
        progress(0, STEPS)
    return step


# -- the store -------------------------------------------------------------------


_KNOWN_IDENTITIES: Final = (
    "SELECT NOT EXISTS (SELECT 1 FROM _sf_bn b LEFT JOIN identities i"
    " ON i.kind = b.kind AND i.value = b.value"
    " WHERE b.kind = 'previous' OR i.value IS NULL OR b.first_seen < i.first_seen)"
    " AND NOT EXISTS (SELECT 1 FROM _sf_edges e"
    " JOIN identities a ON a.kind = e.k1 AND a.value = e.v1"
    " JOIN identities b ON b.kind = e.k2 AND b.value = e.v2"
    " WHERE a.profile_id <> b.profile_id)"
)
"""Whether a load leaves the identity graph as it is: every identity is stored already
(seen no earlier than now), the load links no two profiles, and it has no alias.
The stored graph is closed under the linking rules, so then no profile changes."""


class DuckDBStore:
    """Events, identities, traits and profiles in one DuckDB file.

    ``con`` is the connection (the batch evaluator runs its SQL on it).  The
    session time zone is UTC so text timestamps without an offset mean UTC.
    """

    def __init__(self, path: StrPath = DEFAULT_PATH) -> None:
        self.path = os.fspath(path)
        self.con = duckdb.connect(self.path)
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(DDL)
        migrate_change_log(self.con)
        self._keep_event_codes()
        number_profiles(self.con)
        for table in MARKS:  # a store without the marks: clustered as it is
            clustered_upto(self.con, table)
        self.tail_chunk_rows = TAIL_CHUNK_ROWS
        """From this many rows a sorted load is a clustered run of its own, and
        ``compact_tail`` re-sorts this many at a time (``store.duckdb.clustering``)."""
        self.max_fields: int | None = None
        """Most distinct fields (dotted paths in the catalog) message loads may make
        (None: no limit).  A message bringing a field past it is refused: every field
        is a column of the events table, and each column costs every later insert."""
        self._fields: dict[str, FieldInfo] = {}
        self._columns: list[str] = []
        """The events table's columns (as of the last ``_load_catalog``)."""
        self._lower: set[str] = set()
        self._event_names: set[str] = set()
        """The numbered event names (``event_names``), as of the last load."""
        self._identities_changed = True
        self._staged_hashes: tuple[npt.NDArray[np.int64], npt.NDArray[np.uint64]] | None = None
        """A load's staged lines and ``hash(message_id)``, those to be stored once
        repeats are dropped (so the message index needs no read after the commit)."""
        self._threads_before: int | None = None
        """DuckDB's thread count before a kept ``threads(n, keep=True)``."""
        self.last_load: StoredEvents | None = None
        """What the latest ``ingest_messages(..., describe=True)`` stored (else None)."""
        self._messages: MessageIndex | None = None
        """The stored message ids' hashes (built by the first load that needs it)."""
        self._load_catalog()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _keep_event_codes(self) -> None:
        """Add ``events.event_code`` (see ``store.duckdb.schema``), numbering the names of
        events stored without it."""
        if "event_code" in table_columns(self.con, "events"):
            return
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("ALTER TABLE events ADD COLUMN event_code INTEGER")
            self._code_events()
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def _code_events(self) -> None:
        """Give every stored event that has a name but no code its name's code,
        numbering names not numbered yet."""
        self._number_event_names("events")
        self.con.execute(
            "UPDATE events SET event_code = n.code FROM event_names n"
            " WHERE events.event = n.name AND events.event_code IS NULL"
        )

    def _number_event_names(self, source: str) -> None:
        """Give every event name in ``source`` not numbered yet the next code."""
        self.con.execute(
            "INSERT INTO event_names (name, code)"
            " SELECT n.event, (SELECT coalesce(max(code), 0) FROM event_names)"
            "  + row_number() OVER (ORDER BY n.event)"
            f" FROM (SELECT DISTINCT event FROM {source} WHERE event IS NOT NULL) n"
            " ANTI JOIN event_names e ON e.name = n.event"
        )

    def _load_catalog(self) -> None:
        rows = self.con.execute("SELECT path, type, overflow FROM field_catalog").fetchall()
        self._fields = {p: FieldInfo(t, bool(o)) for p, t, o in rows}
        self._columns = list(table_columns(self.con, "events"))
        self._lower = {c.lower() for c in self._columns}
        self._read_event_names()

    def _read_event_names(self) -> None:
        self._event_names = {
            str(n) for (n,) in self.con.execute("SELECT name FROM event_names").fetchall()
        }

    @property
    def fields(self) -> dict[str, FieldInfo]:
        """The field catalog: dotted path -> column type and overflow flag."""
        return dict(self._fields)

    @contextmanager
    def threads(self, n: int | None, *, keep: bool = False) -> Iterator[None]:
        """Run DuckDB with ``n`` threads inside the block (None: as configured).  A group
        commit of a few thousand rows is dozens of small statements: extra threads only
        add scheduling and cache traffic there, and take a core from the server's event
        loop.  ``keep``: leave ``n`` set after the block (the server's writer, until it goes
        idle: ``SET threads`` restarts DuckDB's pool, twice a group);
        ``restore_threads`` goes back."""
        if n is None:
            yield
            return
        if self._threads_before is None:
            row = self.con.execute("SELECT current_setting('threads')").fetchone()
            before = int(row[0]) if row else n
            if before == n:
                yield
                return
            self.con.execute(f"SET threads = {int(n)}")
            self._threads_before = before
        try:
            yield
        finally:
            if not keep:
                self.restore_threads()

    def defer_checkpoints(self, wal_bytes: int) -> None:
        """Let the write-ahead log grow to ``wal_bytes`` before a commit checkpoints it
        (with DuckDB's default, 16 MB, a busy server's group commits stall every so often
        folding the log into the file; ``checkpoint_if`` does it when idle)."""
        self.con.execute(f"SET checkpoint_threshold = '{int(wal_bytes)}B'")

    def wal_bytes(self) -> int:
        """The size of the write-ahead log (what the next checkpoint folds in)."""
        try:
            return os.path.getsize(self.path + ".wal")
        except OSError:
            return 0

    def checkpoint_if(self, wal_bytes: int) -> bool:
        """Checkpoint when the write-ahead log holds more than ``wal_bytes``."""
        if self.wal_bytes() <= wal_bytes:
            return False
        self.con.execute("CHECKPOINT")
        return True

    def restore_threads(self) -> None:
        """Undo a kept ``threads(n, keep=True)``."""
        if self._threads_before is not None:
            self.con.execute(f"SET threads = {self._threads_before}")
            self._threads_before = None

    # -- ingestion -------------------------------------------------------------------
    def ingest_jsonl(
        self,
        paths: StrPath | Iterable[StrPath],
        *,
        skip_invalid: bool = False,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Load JSON Lines files of Segment messages, one transaction per file.

        A file with an invalid line stores nothing (unless ``skip_invalid``); the other
        files still load.  Raises ``IngestError`` listing every problem if any file was
        rejected; ``progress(bytes_done, bytes_total)`` is called as lines are read.
        """
        files = (
            [os.fspath(paths)]
            if isinstance(paths, str | os.PathLike)
            else [os.fspath(p) for p in paths]
        )
        total = sum(os.path.getsize(f) for f in files if os.path.isfile(f))
        done = 0
        report = IngestReport()
        for f in files:
            try:
                fh = open(f, "rb")  # noqa: SIM115  (closed by the with below)
            except OSError as e:
                report.add(_unreadable(f, e))
                continue
            with _gc_paused(), fh:
                done = self._load_jsonl(fh, f, skip_invalid, report, progress, done, total)
            if progress is not None:
                progress(done, total)
        if report.rejected:
            raise IngestError(report.problems, total=report.problem_count, report=report)
        return report

    def _load_jsonl(
        self,
        fh: BinaryIO,
        source: str,
        skip_invalid: bool,
        report: IngestReport,
        progress: Progress | None,
        done: int,
        total: int,
    ) -> int:
        """One file: read in big blocks, whole lines to the stager; returns bytes done."""
        started = time.perf_counter()
        stager = _MessageStager(self, source, skip_invalid)
        try:
            line, rest = 0, b""
            if fh.read(3) == b"\xef\xbb\xbf":  # a UTF-8 byte order mark is skipped
                done += 3
            else:
                fh.seek(0)
            while chunk := fh.read(READ_BYTES):
                done += len(chunk)
                data = rest + chunk
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                if cut:
                    line = stager.add_block(data[:cut], line)
                if progress is not None:
                    progress(done, total)
            if rest:
                stager.add_block(rest + b"\n", line)
        except BaseException:
            self._drop_temps()
            raise
        report.add(stager.finish(started))
        return done

    def ingest_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        source: str = "api",
        *,
        skip_invalid: bool = False,
        json_values: bool = False,
        describe: bool = False,
    ) -> IngestReport:
        """Load in-memory Segment messages in one transaction; problems are reported
        as ``source:N`` with N the 1-based position in ``messages``.

        ``json_values``: the messages come straight from a JSON parser (the HTTP API),
        so only their core fields are checked in Python, as for JSON Lines; values of
        other Python types are then not allowed inside properties/context/traits.
        ``describe``: leave a ``StoredEvents`` of what was stored in ``last_load`` (the
        server hands it to the live evaluator instead of it reading the rows back)."""
        started = time.perf_counter()
        self.last_load = None
        with _gc_paused():
            stager = _MessageStager(self, source, skip_invalid, json_values)
            if describe:
                stager.by_line = {}
            try:
                for i, raw in enumerate(messages, 1):
                    stager.add_object(raw, i)
            except BaseException:
                self._drop_temps()
                raise
            report = stager.finish(started)
        if report.rejected:
            raise IngestError(report.problems, total=report.problem_count, report=report)
        return report

    def ingest_table(
        self, path: StrPath, *, skip_invalid: bool = False, progress: Progress | None = None
    ) -> IngestReport:
        """Load a flat CSV or Parquet event table, vectorised by DuckDB.

        Columns: ``message_id, type (default track), event, user_id, anonymous_id,
        previous_id, group_id, timestamp, received_at (default now), sent_at``, dotted
        ``properties.X`` / ``context.X.Y`` / ``traits.X`` scalars and JSON-text
        ``properties`` / ``context`` / ``traits`` (camelCase spellings accepted).
        Problems name the 1-based data row (and for CSV the file line, assuming no
        line breaks inside quoted fields).  ``progress(step, steps)`` per phase.
        """
        with _gc_paused():
            report = _TableStager(self, path, skip_invalid).run(progress)
        if report.rejected:
            raise IngestError(report.problems, total=report.problem_count, report=report)
        return report

    # -- commit ----------------------------------------------------------------------
    def _drop_temps(self) -> None:
        """Drop the load's temporary views and tables (all named ``_sf_*``)."""
        rows = self.con.execute(
            "SELECT 'VIEW', view_name FROM duckdb_views() WHERE temporary"
            " AND starts_with(view_name, '_sf_')"
            " UNION ALL SELECT 'TABLE', table_name FROM duckdb_tables() WHERE temporary"
            " AND starts_with(table_name, '_sf_')"
        ).fetchall()
        if rows:  # one call: each call is a GIL hand-off, costly in a busy server
            self.con.execute(
                "; ".join(f"DROP {kind} IF EXISTS {quote_ident(name)}" for kind, name in rows)
            )

    def _stage_columns(self) -> list[str]:
        rows = self.con.execute(f"DESCRIBE {_NEW}").fetchall()
        return [r[0] for r in rows]

    def _commit(
        self,
        fields: _Fields,
        report: IngestReport,
        by_line: dict[int, Message] | None = None,
        plain: bool = True,
    ) -> None:
        """Move the valid staged rows (``_sf_valid``) into the store, one transaction.

        Rows whose message id is stored already (found through the message index), or
        repeats an earlier row of this load, are dropped first; the dynamic fields
        are then typed on what remains.  With ``by_line`` (the staged messages by
        line) the stored events are described in ``last_load`` once committed.

        A server commits a group of a few thousand events many times a second, so
        statements the load can do without are skipped (each has a fixed cost, and in
        the server a GIL hand-off): no duplicate bookkeeping when no line repeats, no
        trait statements for a load without trait writes, no event-name numbering
        when every name is numbered, one profiles upsert when no profiles merge.
        """
        con = self.con
        load = fields.load
        now = utcnow()
        described: StoredEvents | None = None
        # one call each for the setting and the transaction's ends: every execute is a
        # GIL hand-off, and in a busy server each waits for the GIL to come back
        con.execute("SET preserve_insertion_order = false; BEGIN TRANSACTION")
        try:
            dropped = self._drop_repeats(load.repeats)
            fresh = report.read - report.invalid - dropped
            report.duplicates += dropped
            report.inserted += fresh
            if fresh:
                fields.run()
                for path, typ in load.new_fields.items():
                    if typ != "JSON":
                        con.execute(f"ALTER TABLE events ADD COLUMN {quote_ident(path)} {typ}")
                    con.execute(
                        "INSERT INTO field_catalog (path, type, overflow) VALUES (?, ?, ?)"
                        " ON CONFLICT DO NOTHING",
                        [path, typ, path in load.overflow],
                    )
                if load.overflow:
                    con.execute(
                        "UPDATE field_catalog SET overflow = TRUE WHERE list_contains(?, path)",
                        [sorted(load.overflow)],
                    )
                merges = self._resolve_identities()
                base = events_seq(con)
                traits = self._insert(load, base, now, bool(merges))
                top: int | None
                if by_line is not None:  # the mark is the last row described
                    described = self._describe(base, by_line, traits, len(merges), plain)
                    top = described.upto_seq if described.rows else None
                else:
                    row = con.execute(
                        "SELECT max(seq) FROM events WHERE seq > $b", {"b": base}
                    ).fetchone()
                    top = row[0] if row else None
                if top is not None:
                    raise_events_seq(con, int(top))
                note_sorted_load(con, "events", fresh, chunk=self.tail_chunk_rows)
                note_sorted_load(con, "traits", traits, chunk=self.tail_chunk_rows)
                if traits or merges:  # else no trait row is new or moved: links hold
                    con.execute(LINK_TRAITS)
                report.merges += merges
            con.execute("COMMIT; RESET preserve_insertion_order")
        except BaseException:
            con.execute("ROLLBACK; RESET preserve_insertion_order")
            self._load_catalog()
            raise
        if fresh and self._messages is not None:
            if self._staged_hashes is not None:  # the stored rows' hashes, seq by line
                staged, hashes = self._staged_hashes
                self._messages.add(hashes, staged + base)
            else:
                self._messages.add_since(con, base)
        self._staged_hashes = None
        if load.new_fields or load.overflow:  # else the catalog is as it was loaded
            self._load_catalog()
        if described is not None:
            self.last_load = replace(
                described, fields=dict(self._fields), columns=frozenset(self._lower)
            )

    def message_index(self) -> MessageIndex:
        """The stored message ids' hashes, built by one scan on first use (the server
        builds it at start, so that its first group commit does not)."""
        if self._messages is None:
            self._messages = MessageIndex.build(self.con)
        return self._messages

    @contextmanager
    def _stored_repeats(self) -> Iterator[tuple[str, dict[str, int]] | None]:
        """A query for the staged lines whose message id is stored already (None when
        no line can be).  The message index names the few stored events that can match
        (equal hash); only those are compared, by ``seq``, instead of every stored
        message id."""
        con = self.con
        got = con.execute(f"SELECT _line, hash(message_id) AS h FROM {_VALID}").fetchnumpy()
        staged = np.asarray(got["_line"], dtype=np.int64)
        hashes = np.asarray(got["h"], dtype=np.uint64)
        self._staged_hashes = (staged, hashes)
        pos, seqs = self.message_index().candidates(hashes)
        if not len(pos):
            yield None
            return
        lines = staged[pos]
        con.register("_sf_cand", pa.table({"_line": lines, "seq": seqs}))
        try:
            yield (
                "SELECT DISTINCT c._line FROM _sf_cand c"
                f" JOIN {_VALID} s ON s._line = c._line"
                " JOIN (SELECT seq, message_id FROM events WHERE seq BETWEEN $lo AND $hi) e"
                " ON e.seq = c.seq AND e.message_id = s.message_id",
                {"lo": int(seqs.min()), "hi": int(seqs.max())},
            )
        finally:
            con.unregister("_sf_cand")

    def _drop_repeats(self, repeats: list[int] | None) -> int:
        """Leave in ``_sf_new`` the valid rows to store: not repeating an earlier line's
        message id nor a stored one.  Returns how many were left out.  ``repeats``: the
        repeated lines when the stager knew them (a small in-memory load, whose lines
        are then handled in Python); None: found in SQL (a file of any size)."""
        con = self.con
        if repeats is not None:
            with self._stored_repeats() as query:
                stored = [] if query is None else con.execute(*query).fetchall()
            drop = sorted({*repeats, *(int(r[0]) for r in stored)})
            if drop and self._staged_hashes is not None:  # the index takes the rest
                staged, hashes = self._staged_hashes
                keep = ~np.isin(staged, np.asarray(drop, dtype=np.int64))
                self._staged_hashes = (staged[keep], hashes[keep])
            if not drop:
                con.execute(f"CREATE OR REPLACE TEMP VIEW {_NEW} AS FROM {_VALID}")
                return 0
            con.register("_sf_lines", pa.table({"_line": pa.array(drop, pa.int64())}))
            try:
                con.execute("CREATE OR REPLACE TEMP TABLE _sf_drop AS FROM _sf_lines")
            finally:
                con.unregister("_sf_lines")
        else:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _sf_drop AS"
                f" SELECT s._line FROM {_VALID} s JOIN"
                f" (SELECT message_id, min(_line) AS first FROM {_VALID} GROUP BY message_id"
                "  HAVING count(*) > 1) d ON s.message_id = d.message_id AND s._line > d.first"
            )
            with self._stored_repeats() as query:
                if query is not None:
                    sql, params = query
                    con.execute(
                        f"INSERT INTO _sf_drop {sql}"
                        " WHERE c._line NOT IN (SELECT _line FROM _sf_drop)",
                        params,
                    )
            self._staged_hashes = None  # which rows are stored is known in SQL only
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {_NEW} AS SELECT s.* FROM {_VALID} s"
            " ANTI JOIN _sf_drop d ON s._line = d._line"
        )
        (dropped,) = con.execute("SELECT count(*) FROM _sf_drop").fetchone() or (0,)
        return int(dropped)

    def _describe(
        self, base: int, by_line: dict[int, Message], traits: int, merges: int, plain: bool
    ) -> StoredEvents:
        """The rows just inserted (``seq > base``): seq, profile, µs and their message.
        One narrow scan of the new rows (zone maps skip the rest of the table)."""
        got = self.con.execute(
            'SELECT seq, profile_id, epoch_us("timestamp") AS ts FROM events'
            " WHERE seq > $base ORDER BY seq",
            {"base": base},
        ).fetchall()
        rows = [(q, p, t, by_line[q - base]) for q, p, t in got]
        upto = rows[-1][0] if rows else base
        return StoredEvents(base, upto, rows, {}, frozenset(), traits, merges, plain)

    def _insert(self, load: _Load, base: int, now: datetime, merged: bool) -> int:
        """Insert the new events, their trait rows, identities, profiles and merges;
        returns the number of trait rows written."""
        con = self.con
        stage = set(load.stage_columns or self._stage_columns())
        # the columns as loaded plus those this load added (no catalog query per load)
        events = self._columns + [p for p, t in load.new_fields.items() if t != "JSON"]
        names: list[str] = []
        exprs: list[str] = []
        for c in events:
            if c in ("seq", "profile_id", "profile_no", "event_code"):
                continue
            if c in load.select:
                expr = load.select[c]
            elif c in stage:
                expr = f"s.{quote_ident(c)}"
            else:
                continue
            names.append(quote_ident(c))
            exprs.append(expr)
        if merged:
            for table, extra in (("events", ""), ("traits", ", linked = FALSE")):
                con.execute(
                    f"UPDATE {table} SET profile_id = m.into_profile, profile_no = m.into_no"
                    f"{extra} FROM _sf_merges m WHERE {table}.profile_id = m.from_profile"
                )
        if load.names is None or not load.names <= self._event_names:
            self._number_event_names(_NEW)
            # the names now numbered, read back: ``load.names`` also holds the names of
            # repeats left out of ``_NEW``, which got no code (a rollback reloads it)
            self._read_event_names()
        con.execute(
            f"INSERT INTO events ({', '.join(names)}, seq, profile_id, profile_no, event_code)"
            f" SELECT {', '.join(exprs)}, $base + s._line,"
            " coalesce(u.profile_id, a.profile_id), coalesce(u.profile_no, a.profile_no), n.code"
            f" FROM {load.source} s"
            " LEFT JOIN _sf_idmap u ON u.kind = 'user' AND u.value = s.user_id"
            " LEFT JOIN _sf_idmap a ON a.kind = 'anonymous' AND a.value = s.anonymous_id"
            " LEFT JOIN event_names n ON n.name = s.event"
            # new profiles are numbered in profile_id order: the same clustering
            " ORDER BY n.code, coalesce(u.profile_no, a.profile_no)",
            {"base": base},
        )
        traits = 0
        if load.has_traits:
            (traits,) = con.execute(
                'INSERT INTO traits (profile_id, profile_no, key, "timestamp", message_id, kind,'
                ' num, str, bool, json) SELECT e.profile_id, e.profile_no, t.key, e."timestamp",'
                f" e.message_id, t.kind, t.num, t.str, t.bool, t.json FROM {_TSTAGE} t"
                " JOIN events e ON e.seq = $base + t._line WHERE e.seq > $base"
                # clustered by key, as events are by name: the batch evaluator's scan
                # of one trait then skips the row groups of the other keys
                " ORDER BY t.key, e.profile_no",
                {"base": base},
            ).fetchone() or (0,)
        if self._identities_changed:
            con.execute(
                "INSERT INTO identities (kind, value, profile_id, first_seen)"
                " SELECT kind, value, profile_id, first_seen FROM _sf_idmap"
                " ON CONFLICT (kind, value) DO UPDATE SET profile_id = excluded.profile_id,"
                " first_seen = excluded.first_seen"
            )
        if not merged:  # first/last seen of the touched profiles, in one upsert
            con.execute(
                "INSERT INTO profiles (profile_id, profile_no, first_seen, last_seen)"
                ' SELECT profile_id, any_value(profile_no), min("timestamp"), max("timestamp")'
                " FROM events WHERE seq > $base GROUP BY profile_id"
                " ON CONFLICT (profile_id) DO UPDATE SET"
                " first_seen = least(first_seen, excluded.first_seen),"
                " last_seen = greatest(last_seen, excluded.last_seen)",
                {"base": base},
            )
            return int(traits)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _sf_prof AS"
            " WITH fresh AS (SELECT profile_id, any_value(profile_no) AS no,"
            ' min("timestamp") AS fs, max("timestamp") AS ls FROM events WHERE seq > $base'
            " GROUP BY profile_id),"
            " old AS (SELECT coalesce(m.into_profile, p.profile_id) AS profile_id,"
            " coalesce(m.into_no, p.profile_no) AS no, p.first_seen AS fs, p.last_seen AS ls"
            " FROM profiles p LEFT JOIN _sf_merges m ON p.profile_id = m.from_profile"
            " WHERE m.from_profile IS NOT NULL"
            " OR p.profile_id IN (SELECT profile_id FROM fresh))"
            " SELECT profile_id, any_value(no) AS profile_no, min(fs) AS first_seen,"
            " max(ls) AS last_seen"
            " FROM (SELECT * FROM fresh UNION ALL SELECT * FROM old) GROUP BY profile_id",
            {"base": base},
        )
        self._drop_merged_profiles()
        con.execute(
            "INSERT INTO profiles (profile_id, profile_no, first_seen, last_seen)"
            " SELECT profile_id, profile_no, first_seen, last_seen FROM _sf_prof"
            " ON CONFLICT (profile_id) DO UPDATE SET first_seen = excluded.first_seen,"
            " last_seen = excluded.last_seen"
        )
        con.execute(
            'INSERT INTO merges (from_profile, into_profile, "at")'
            " SELECT from_profile, into_profile, $now FROM _sf_merges",
            {"now": now},
        )
        return int(traits)

    def _drop_merged_profiles(self) -> None:
        """Remove merged-away profiles.  Deleting many rows from a table with a primary
        key is slow in DuckDB (index upkeep for every row), so past a share of the
        table it is rebuilt from its own DDL instead, far faster for many merges."""
        con = self.con
        (gone,) = con.execute("SELECT count(*) FROM _sf_merges").fetchone() or (0,)
        (total,) = con.execute("SELECT count(*) FROM profiles").fetchone() or (0,)
        if gone <= max(10_000, total // 25):
            con.execute(
                "DELETE FROM profiles WHERE profile_id IN (SELECT from_profile FROM _sf_merges)"
            )
            return
        (ddl,) = con.execute(
            "SELECT sql FROM duckdb_tables() WHERE table_name = 'profiles'"
            " AND schema_name = 'main' AND database_name = current_database()"
        ).fetchone() or ("",)
        con.execute(
            re.sub(r"(?i)^CREATE TABLE\s+(\S+\.)?profiles", "CREATE TABLE _sf_profiles", ddl)
        )
        con.execute(
            "INSERT INTO _sf_profiles SELECT * FROM profiles p"
            " ANTI JOIN _sf_merges m ON p.profile_id = m.from_profile"
        )
        con.execute("DROP TABLE profiles")
        con.execute("ALTER TABLE _sf_profiles RENAME TO profiles")

    def _resolve_identities(self) -> list[Merge]:
        """Resolve the staged messages' identities into ``_sf_idmap`` (every identity
        touched -> its profile) and ``_sf_merges`` (old profile -> new profile).

        Identities are (kind, value) nodes: ``user`` and ``anonymous`` ids, and the
        ``previous`` ids of alias calls.  Edges: a message's user id and anonymous
        id; an alias's user id and previous id; a previous id and any user or
        anonymous id with the same value, whenever either arrives (so an alias may
        name an id the store has not seen yet).  The graph is the batch's nodes and
        edges plus every stored identity of a profile they touch; components come
        from ``connected_components``.  A component's profile id is its user id seen
        first (earliest first_seen, then the smallest id), else its earliest
        anonymous id: a function of the messages, not of the order they arrive in.
        """
        con = self.con
        # both tables in one call (each call is a GIL hand-off in a busy server)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _sf_bn AS SELECT kind, value, min(ts) AS first_seen"
            " FROM (SELECT 'user' AS kind, user_id AS value, \"timestamp\" AS ts"
            f" FROM {_NEW} WHERE user_id IS NOT NULL"
            f" UNION ALL SELECT 'anonymous', anonymous_id, \"timestamp\" FROM {_NEW}"
            " WHERE anonymous_id IS NOT NULL"
            f" UNION ALL SELECT 'previous', previous_id, \"timestamp\" FROM {_NEW}"
            " WHERE previous_id IS NOT NULL) GROUP BY kind, value;"
            " CREATE OR REPLACE TEMP TABLE _sf_edges AS"
            " SELECT DISTINCT 'user' AS k1, user_id AS v1, 'anonymous' AS k2,"
            f" anonymous_id AS v2 FROM {_NEW}"
            " WHERE user_id IS NOT NULL AND anonymous_id IS NOT NULL"
            " UNION SELECT 'user', user_id, 'previous', previous_id"
            f" FROM {_NEW} WHERE user_id IS NOT NULL AND previous_id IS NOT NULL"
        )
        (known,) = con.execute(_KNOWN_IDENTITIES).fetchone() or (False,)
        self._identities_changed = not known
        if known:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _sf_idmap AS SELECT i.kind, i.value,"
                " i.first_seen, i.profile_id AS old_profile, i.profile_id, p.profile_no"
                " FROM identities i SEMI JOIN _sf_bn b ON i.kind = b.kind AND i.value = b.value"
                " LEFT JOIN profiles p ON p.profile_id = i.profile_id;"
                " CREATE OR REPLACE TEMP TABLE _sf_merges"
                " (from_profile VARCHAR, into_profile VARCHAR, into_no INTEGER)"
            )
            return []
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _sf_nodes AS"
            " WITH touched AS (SELECT DISTINCT i.profile_id FROM identities i"
            " JOIN _sf_bn b ON i.value = b.value"
            " AND (i.kind = b.kind OR i.kind = 'previous' OR b.kind = 'previous')),"
            " old AS (SELECT i.* FROM identities i SEMI JOIN touched t"
            " ON i.profile_id = t.profile_id)"
            " SELECT (row_number() OVER () - 1)::BIGINT AS id,"
            " coalesce(b.kind, o.kind) AS kind, coalesce(b.value, o.value) AS value,"
            " least(b.first_seen, o.first_seen) AS first_seen, o.profile_id AS old_profile"
            " FROM _sf_bn b FULL OUTER JOIN old o ON b.kind = o.kind AND b.value = o.value"
        )
        (n,) = con.execute("SELECT count(*) FROM _sf_nodes").fetchone() or (0,)
        edges = con.execute(
            "SELECT a.id AS u, b.id AS v FROM _sf_edges e"
            " JOIN _sf_nodes a ON a.kind = e.k1 AND a.value = e.v1"
            " JOIN _sf_nodes b ON b.kind = e.k2 AND b.value = e.v2"
            " UNION ALL SELECT p.id, o.id FROM _sf_nodes p JOIN _sf_nodes o"
            " ON p.value = o.value AND p.kind = 'previous' AND o.kind <> 'previous'"
            " UNION ALL SELECT id, min(id) OVER (PARTITION BY old_profile) FROM _sf_nodes"
            " WHERE old_profile IS NOT NULL"
        ).fetchnumpy()
        labels = connected_components(
            int(n),
            np.asarray(edges["u"], dtype=np.int64),
            np.asarray(edges["v"], dtype=np.int64),
        )
        con.register(
            "_sf_labels", pa.table({"id": np.arange(int(n), dtype=np.int64), "label": labels})
        )
        try:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _sf_idmap AS"
                " WITH labelled AS (SELECT n.*, l.label FROM _sf_nodes n"
                " JOIN _sf_labels l ON n.id = l.id),"
                " canon AS (SELECT label, arg_min(value, (kind <> 'user',"
                " kind <> 'anonymous', first_seen, value)) AS profile_id"
                " FROM labelled GROUP BY label),"
                # a profile not stored yet takes the next number (by id, not by label:
                # a user and an anonymous id with the same value name one profile)
                f" fresh AS (SELECT profile_id, {NEXT_NUMBER} + row_number() OVER"
                " (ORDER BY profile_id) AS profile_no FROM (SELECT DISTINCT profile_id"
                " FROM canon) ANTI JOIN profiles USING (profile_id))"
                " SELECT n.kind, n.value, n.first_seen, n.old_profile, c.profile_id,"
                " coalesce(p.profile_no, f.profile_no)::INTEGER AS profile_no"
                " FROM labelled n JOIN canon c ON n.label = c.label"
                " LEFT JOIN profiles p ON p.profile_id = c.profile_id"
                " LEFT JOIN fresh f ON f.profile_id = c.profile_id"
            )
        finally:
            con.unregister("_sf_labels")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _sf_merges AS SELECT DISTINCT"
            " old_profile AS from_profile, profile_id AS into_profile,"
            " profile_no AS into_no FROM _sf_idmap"
            " WHERE old_profile IS NOT NULL AND old_profile <> profile_id"
        )
        rows = con.execute(
            "SELECT from_profile, into_profile FROM _sf_merges ORDER BY from_profile"
        ).fetchall()
        return [Merge(a, b) for a, b in rows]

    # -- maintenance -----------------------------------------------------------------
    def compact(self, tables: Sequence[str] = ("events", "traits")) -> dict[str, int]:
        """Rewrite ``events`` clustered by (event code, profile) and ``traits`` by
        (key, profile) in one transaction (or only those of ``tables``).

        Bulk loads arrive clustered; many small loads (the server's group commits) leave
        row groups holding every event name (trait key), which each per-name (per-trait)
        scan of the batch evaluator must then read.  So does a load of several files:
        each file's trait rows, a few row groups, hold every key (``Segflow.ingest``
        re-clusters the traits after such a load; the server sorts what its group
        commits stored, a chunk at a time: ``compact_tail``).  Events stored without
        their name's code (older stores can hold some, after a repeat left out of a
        load) get it first.  Returns the number of rows rewritten by table."""
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            if "events" in tables:
                self._code_events()
            rewritten = {table: rewrite_sorted(con, table) for table in tables}
            for table in tables:
                set_clustered(con, table, newest(con, table))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._read_event_names()
        con.execute("CHECKPOINT")
        return rewritten

    def compact_tail(self, chunk: int | None = None) -> dict[str, int]:
        """Re-sort the oldest ``chunk`` rows stored since the last compaction, per table,
        once that many have gathered (``store.duckdb.clustering``): what keeps a server-fed
        store clustered at the cost of the new rows only.  Returns the rows rewritten
        by table.  Checkpoints after a rewrite: the rewritten rows went to the file
        directly, not to the log, so the log-size trigger would leave the row groups
        they left behind (still read, their rows skipped) until some later checkpoint."""
        done = compact_tail(self.con, chunk or self.tail_chunk_rows)
        if done:
            self.con.execute("CHECKPOINT")
        return done

    # -- reads -----------------------------------------------------------------------
    def resolve_profile(
        self, *, user_id: str | None = None, anonymous_id: str | None = None
    ) -> str | None:
        """The profile an identity belongs to (user id first), or None if unknown."""
        for kind, value in (("user", user_id), ("anonymous", anonymous_id)):
            if value is None:
                continue
            row = self.con.execute(
                "SELECT profile_id FROM identities WHERE kind = ? AND value = ?", [kind, value]
            ).fetchone()
            if row is not None:
                return str(row[0])
        return None

    def identities(self, profile_id: str) -> list[tuple[str, str]]:
        """(kind, value) of every identity of a profile."""
        rows = self.con.execute(
            "SELECT kind, value FROM identities WHERE profile_id = ? ORDER BY kind, value",
            [profile_id],
        ).fetchall()
        return [(str(k), str(v)) for k, v in rows]

    def merges(self) -> list[tuple[str, str, datetime]]:
        """Every recorded merge, oldest first."""
        rows = self.con.execute(
            'SELECT from_profile, into_profile, "at" FROM merges ORDER BY "at", from_profile'
        ).fetchall()
        return [(str(a), str(b), t) for a, b, t in rows]

    def events_for_profile(
        self, profile_id: str, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """A profile's events ordered by (timestamp, message_id), as plain dicts with
        ``properties``/``context``/``traits`` rebuilt from the columns and ``extra``."""
        sql = "SELECT * FROM events WHERE profile_id = $p"
        params: dict[str, Any] = {"p": profile_id}
        if until is not None:
            sql += ' AND "timestamp" <= $t'
            params["t"] = until
        cur = self.con.execute(sql + ' ORDER BY "timestamp", message_id', params)
        names = [d[0] for d in cur.description or ()]
        return [message_of_row(names, row) for row in cur.fetchall()]

    def _events(self) -> Iterator[dict[str, Any]]:
        cur = self.con.execute('SELECT * FROM events ORDER BY "timestamp", message_id')
        names = [d[0] for d in cur.description or ()]
        for row in cur.fetchall():
            yield message_of_row(names, row)

    def traits_as_of(self, profile_id: str, t: datetime | None = None) -> dict[str, Any]:
        """The profile's traits (flat dotted keys) as of ``t`` (default: latest):
        last write wins by (timestamp, message_id); cleared traits are absent."""
        sql = (
            "SELECT key, kind, num, str, bool, json FROM traits WHERE profile_id = $p"
            + (' AND "timestamp" <= $t' if t is not None else "")
            + " QUALIFY row_number() OVER (PARTITION BY key"
            ' ORDER BY "timestamp" DESC, message_id DESC) = 1 ORDER BY key'
        )
        params: dict[str, Any] = {"p": profile_id}
        if t is not None:
            params["t"] = t
        out: dict[str, Any] = {}
        for key, kind, num, s, b, js in self.con.execute(sql, params).fetchall():
            if kind == "number":
                out[key] = num
            elif kind == "string":
                out[key] = s
            elif kind == "bool":
                out[key] = b
            elif kind == "json":
                out[key] = orjson.loads(js)
        return out

    def profile_ids(self) -> list[str]:
        rows = self.con.execute("SELECT profile_id FROM profiles ORDER BY profile_id").fetchall()
        return [str(r[0]) for r in rows]

    def count_events(self) -> int:
        row = self.con.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0

    def count_profiles(self) -> int:
        row = self.con.execute("SELECT count(*) FROM profiles").fetchone()
        return int(row[0]) if row else 0

    def count_trait_rows(self) -> int:
        """Stored trait writes (every write of every key, not only the current ones)."""
        row = self.con.execute("SELECT count(*) FROM traits").fetchone()
        return int(row[0]) if row else 0

    def mark_demo(self) -> None:
        """Leave the mark of ``segflow demo``: a later demo may replace this store."""
        self.con.execute(f"CREATE TABLE {DEMO_MARK} AS SELECT now() AS made_at")

    def made_by_demo(self) -> bool:
        """Whether ``segflow demo`` made this store (``mark_demo``)."""
        return has_table(self.con, DEMO_MARK)

    def catalogue(self) -> Catalogue:
        """What the store has seen: event names, event field paths and trait keys (a
        definition naming something else is most likely a typo)."""
        con = self.con
        events = frozenset(r[0] for r in con.execute("SELECT name FROM event_names").fetchall())
        paths = frozenset(r[0] for r in con.execute("SELECT path FROM field_catalog").fetchall())
        traits = frozenset(r[0] for r in con.execute("SELECT DISTINCT key FROM traits").fetchall())
        return Catalogue(events, paths, traits)


@dataclass(frozen=True)
class Catalogue:
    """Names seen in stored data (``DuckDBStore.catalogue``)."""

    events: frozenset[str]
    paths: frozenset[str]
    traits: frozenset[str]


def message_of_row(names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """An events row as a message-shaped dict: dotted columns nested, ``extra`` merged."""
    out: dict[str, Any] = {}
    nested: dict[str, Any] = {root: {} for root in ROOTS}
    extra = None
    for name, v in zip(names, row, strict=True):
        if name == "extra":
            extra = v
        elif name in ("event_code", "profile_no"):
            continue
        elif "." in name:
            if v is not None:
                _put(nested, name, v)
        else:
            out[name] = v
    if extra:
        _merge(nested, orjson.loads(extra))
    for root in ROOTS:
        out[root] = _prune(nested[root])
    return out


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        node = into.get(k)
        if isinstance(v, dict) and isinstance(node, dict):
            _merge(node, v)
        else:
            into[k] = v


def _prune(tree: dict[str, Any]) -> dict[str, Any]:
    """Drop empty objects (left behind in ``extra`` by removed spill values)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            v = _prune(v)
            if not v:
                continue
        out[k] = v
    return out


if TYPE_CHECKING:
    from segflow.store.protocols import FileEventStore

    def _is_a_file_event_store(store: DuckDBStore) -> FileEventStore:
        return store
