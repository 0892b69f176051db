"""JSON Lines and in-memory messages -> the staging table.

The core fields of every message are checked in Python (orjson), so a problem names its
line and field; the messages go to DuckDB as Arrow tables, their objects as JSON text
for ``fields`` to type.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from segflow.model.events import (
    MAX_DEPTH,
    MAX_PROBLEMS,
    IngestError,
    IngestProblem,
    IngestReport,
    Message,
    parse_message,
)
from segflow.model.time import utcnow
from segflow.store.duckdb.fields import Fields, LoadTarget
from segflow.store.duckdb.load import CORE, ROOTS, STAGE, VALID, Load

BATCH_ROWS: Final = 65_536
STAGE_ROWS: Final = 1_000_000
"""Rows collected as Arrow before they are appended to the staging table."""
KEEP_TEMPS_ROWS: Final = 100_000
"""Up to this many staged rows, a committed message load keeps its temporary tables."""


class MessageStager:
    """Validated messages -> Arrow tables -> the staging table.

    Python checks the core fields of every message (that is what names the line
    and field of a problem); ``properties``/``context``/``traits`` stay JSON text
    (for JSON Lines, the line itself, sliced zero-copy out of the block read) and
    are flattened by DuckDB afterwards.
    """

    def __init__(
        self, store: LoadTarget, source: str, skip_invalid: bool, json_values: bool = False
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
        self.core: list[list[Any]] = [[] for _ in CORE]
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
        known = self.store.known_fields
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
        for (name, _, typ), values in zip(CORE, self.core, strict=True):
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
                con.execute(f"INSERT INTO {STAGE} SELECT * FROM _sf_batch")
            else:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {STAGE} AS SELECT * FROM _sf_batch")
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
                con.execute(f"CREATE OR REPLACE TEMP VIEW {VALID} AS SELECT * FROM {STAGE}")
                roots = {r: ("s._raw", f"/{r}") for r in ROOTS}
                load = Load()
                if not self.blocks:  # in-memory messages: the stager saw every id and name
                    load.repeats, load.names = self.repeats, self.names
                    load.stage_columns = ["_line", *(c for c, _, _ in CORE), "_raw"]
                fields = Fields(
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
                self.store.commit_load(fields, report, self.by_line, plain)
                committed = True
        finally:
            # A small committed load's temporaries are left for the next load to replace:
            # finding and dropping them would add two statements to every group commit.
            if not committed or self.staged > KEEP_TEMPS_ROWS:
                self.store.drop_temps()
        report.seconds = time.perf_counter() - started
        return report


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


def _json_default(v: object) -> Any:
    if isinstance(v, Mapping):
        return dict(v)
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, datetime):
        return v.isoformat()
    raise TypeError(f"not a JSON value ({type(v).__name__})")
