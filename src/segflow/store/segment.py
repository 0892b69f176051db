"""Segment's warehouse schema, as any engine reading it in place sees it.

Segment's warehouse loader writes one schema per source: ``tracks`` (every track call,
core columns and ``context_*``), one table per event named by the snake-cased event name
holding the same columns plus one per property, ``identifies`` (one column per trait),
``users``, ``pages`` / ``screens`` (page name and properties), ``aliases`` and
``groups``.  Nested objects are flattened with ``_`` and every name is snake-cased
(``go-snakecase``); arrays are stringified.

This module holds what does not depend on the engine: how a definition's field path
or trait name is spelled as a Segment column, which columns of which tables are the
calls' fields and trait writes (and their segflow type, chosen once across tables),
and the rewriting of a plan's trait names.  Each engine's ``warehouse`` module writes
the views (``segment_calls``, ``identities``, ``events``, ``traits``, ``profiles``,
``field_catalog``) in its own SQL (docs/engines.md, "Reading a Segment warehouse in
place")."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from segflow.batch.compile import Field
from segflow.plan.features import StaticMembership, TraitValue
from segflow.plan.planner import Plan
from segflow.store.engines import EngineUnavailable

CALL_TABLES: Final = {
    "pages": "page",
    "screens": "screen",
    "identifies": "identify",
    "aliases": "alias",
    "groups": "group",
}
"""Segment's tables of the calls other than track, and the call type of their rows."""

SEGMENT_TABLES: Final = frozenset({"tracks", "users", "accounts", *CALL_TABLES})
"""Tables of a Segment schema that are not per-event tables."""

RESERVED: Final = frozenset(
    {
        "id",
        "anonymous_id",
        "user_id",
        "event",
        "event_text",
        "timestamp",
        "original_timestamp",
        "sent_at",
        "received_at",
        "uuid",
        "uuid_ts",
        "loaded_at",
        "previous_id",
        "group_id",
    }
)
"""Segment's own columns: a property or trait of one of these names is discarded by
its loader, so it is never read as a field."""

PRECEDENCE: Final = ("VARCHAR", "DOUBLE", "BOOLEAN")
"""The column type a path takes when its tables disagree (the others go to ``extra``)."""

TRAIT_KINDS: Final = {"VARCHAR": "string", "DOUBLE": "number", "BOOLEAN": "bool"}
"""A trait write's kind by the segflow type of its column."""

REQUIRED_COLUMNS: Final = ("id", "timestamp")
"""Columns every call table of Segment's has."""

CALL_COLUMNS: Final = (
    "message_id",
    "type",
    "event",
    "user_id",
    "anonymous_id",
    "previous_id",
    "group_id",
    "timestamp",
    "received_at",
    "sent_at",
)
"""The core columns of ``segment_calls``, before the typed fields and ``extra``."""

KindOf = Callable[[str], str | None]
"""segflow's column type (``VARCHAR``, ``DOUBLE``, ``BOOLEAN``) of an engine's column
type; None for a type Segment's loader does not make."""


class SegmentUnsupported(EngineUnavailable):
    """A definition names something a Segment warehouse cannot hold as segflow does."""


# -- names -------------------------------------------------------------------------------


def _lower(c: str) -> bool:
    return "a" <= c <= "z"


def _upper(c: str) -> bool:
    return "A" <= c <= "Z"


def _digit(c: str) -> bool:
    return "0" <= c <= "9"


def snakecase(s: str) -> str:
    """A name as Segment's warehouse loader spells it (the ``go-snakecase`` rules: words
    split at case changes and at every character that is not an ASCII letter or digit,
    lower-cased, joined by ``_``)."""
    b = s.encode()
    text = "".join(chr(x) if x < 128 else "\x00" for x in b)  # non-ASCII bytes split words
    n = len(text)
    i = 0
    has_lower = has_under = lower_since_under = False
    while i < n:
        c = text[i]
        if _lower(c):
            has_lower = True
            if has_under:
                lower_since_under = True
        elif _digit(c):
            pass
        elif c == "_" and 0 < i < n - 1 and (_lower(text[i + 1]) or _digit(text[i + 1])):
            has_under = True
            lower_since_under = False
        else:
            break
        i += 1
    if i == n:
        return text
    out = list(text[:i])
    if _upper(text[i]) and (not has_lower or (has_under and not lower_since_under)):
        while i < n and (_upper(text[i]) or _digit(text[i])):
            out.append(text[i].lower())
            i += 1
        while i < n and (_lower(text[i]) or _digit(text[i])):
            out.append(text[i])
            i += 1
    while i < n:
        if not (_lower(text[i]) or _upper(text[i]) or _digit(text[i])):
            i += 1
            continue
        if out:
            out.append("_")
        while i < n and (_upper(text[i]) or _digit(text[i])):
            out.append(text[i].lower())
            i += 1
        while i < n and (_lower(text[i]) or _digit(text[i])):
            out.append(text[i])
            i += 1
    return "".join(out)


def segment_column(path: str) -> tuple[str, str]:
    """(root, Segment column) a segflow field path is loaded into: nested keys joined
    by ``_``, snake-cased; ``context`` keeps its ``context_`` prefix."""
    root, _, rest = path.partition(".")
    flat = rest.replace(".", "_")
    if root == "context":
        return root, snakecase(f"context_{flat}")
    return root, snakecase(flat)


def view_column(root: str, column: str) -> str:
    """The ``events`` column (and field catalog path) of a Segment column under a root:
    ``properties.<column>``, ``traits.<column>``, ``context.<column without context_>``."""
    if root == "context":
        return f"context.{column.removeprefix('context_')}"
    return f"{root}.{column}"


def field_column(path: str) -> str:
    """The ``events`` column a definition's field path reads (``view_column`` of where
    Segment loads it); raises ``SegmentUnsupported`` for a name Segment discards."""
    root, column = segment_column(path)
    if root != "context" and column in RESERVED:
        raise SegmentUnsupported(
            f"field {path!r} cannot be read from a Segment warehouse: Segment's loader"
            f" discards properties and traits named like its own column {column!r}"
        )
    return view_column(root, column)


def trait_key(name: str) -> str:
    """The ``traits`` key a definition's trait name reads (its Segment column)."""
    key = snakecase(name.replace(".", "_"))
    if key in RESERVED:
        raise SegmentUnsupported(
            f"trait {name!r} cannot be read from a Segment warehouse: Segment's loader"
            f" discards traits named like its own column {key!r}"
        )
    return key


# -- the tables as found -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceField:
    """A Segment column read as a field: its events column, type and source column."""

    path: str
    kind: str
    column: str
    data_type: str


@dataclass
class Source:
    """One table whose rows are calls (``type``), read in place; ``columns`` maps each
    column to the engine's type of it, which ``kind_of`` reads as segflow's."""

    table: str
    type: str
    columns: dict[str, str]
    kind_of: KindOf
    skip_events: tuple[str, ...] = ()
    """For ``tracks``: the event slugs whose calls are read from their own tables."""
    own: bool = True
    """Whether the table's other columns are the calls' properties (not ``tracks``,
    whose rows carry none)."""

    def fields(self, skipped: list[str], max_name: int | None = None) -> list[SourceField]:
        """The columns read as fields (those the views cannot name go to ``skipped``:
        a type Segment does not make, a ``.`` in the name, a path over ``max_name``
        bytes)."""
        out = []
        for name, data_type in self.columns.items():
            if name.startswith("context_"):
                root = "context"
            elif name in RESERVED:
                continue
            elif self.type in ("page", "screen") or (self.type == "track" and self.own):
                root = "properties"
            elif self.type == "identify":
                root = "traits"
            else:
                continue
            kind = self.kind_of(data_type)
            path = view_column(root, name)
            too_long = max_name is not None and len(path.encode()) > max_name
            if kind is None or "." in name or too_long:
                skipped.append(f"{self.table}.{name}")
                continue
            out.append(SourceField(path, kind, name, data_type))
        return out

    def traits(self) -> dict[str, list[tuple[str, str]]]:
        """Trait key -> [(column, data type)], the identify trait before the context one."""
        out: dict[str, list[tuple[str, str]]] = {}
        for name, data_type in self.columns.items():
            if self.kind_of(data_type) is None or "." in name:
                continue
            if name.startswith("context_traits_") and len(name) > len("context_traits_"):
                out.setdefault(name.removeprefix("context_traits_"), []).append((name, data_type))
        if self.type == "identify":
            for name, data_type in self.columns.items():
                if self.kind_of(data_type) is None or "." in name:
                    continue
                if name not in RESERVED and not name.startswith("context_"):
                    out.setdefault(name, []).insert(0, (name, data_type))
        return out


def arrange_sources(
    columns: Mapping[str, Mapping[str, str]], kind_of: KindOf, where: str
) -> tuple[list[Source], list[str]]:
    """The call tables among ``columns`` (table -> column -> engine type; per-event
    tables are those with ``event_text``) and the per-event tables' names.

    ``EngineUnavailable`` names a missing ``tracks`` or a call table without Segment's
    core columns; ``where`` names the schema in those messages."""
    if "tracks" not in columns:
        raise EngineUnavailable(
            f"{where} has no table tracks: not a Segment warehouse schema"
            " (--segment-schema names the source's schema)"
        )
    events = sorted(
        t for t, cols in columns.items() if "event_text" in cols and t not in SEGMENT_TABLES
    )
    wanted = ["tracks", *(t for t in CALL_TABLES if t in columns), *events]
    for t in wanted:
        missing = [c for c in REQUIRED_COLUMNS if c not in columns[t]]
        if missing:
            raise EngineUnavailable(
                f"{where}: table {t} has no column {', '.join(missing)}:"
                " not a table of Segment's warehouse schema"
            )
    sources = [Source(t, "track", dict(columns[t]), kind_of) for t in events]
    sources.append(
        Source("tracks", "track", dict(columns["tracks"]), kind_of, tuple(events), own=False)
    )
    sources += [
        Source(t, CALL_TABLES[t], dict(columns[t]), kind_of) for t in CALL_TABLES if t in columns
    ]
    return sources, events


@dataclass(frozen=True)
class Layout:
    """Where one source's columns go in ``segment_calls``: for each typed field (in
    ``Fields.fields`` order) its type and the column holding it (None: NULL there), and
    per root the columns whose values have another type than the field's (``extra``)."""

    typed: list[tuple[str, SourceField | None]]
    spill: dict[str, list[tuple[str, SourceField]]]


@dataclass
class Fields:
    """The typed field paths of a set of sources: each path's segflow type (the first
    of ``PRECEDENCE`` among its tables' types) and whether another table holds it as
    another type (those values go to ``extra``)."""

    sources: list[Source]
    max_name: int | None = None
    fields: dict[str, tuple[str, bool]] = field(default_factory=dict)
    """events column -> (type, overflow)."""
    per_source: list[list[SourceField]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        kinds: dict[str, set[str]] = {}
        for s in self.sources:
            fs = s.fields(self.skipped, self.max_name)
            self.per_source.append(fs)
            for f in fs:
                kinds.setdefault(f.path, set()).add(f.kind)
        for path in sorted(kinds):
            ks = kinds[path]
            chosen = next(k for k in PRECEDENCE if k in ks)
            self.fields[path] = (chosen, len(ks) > 1)

    def layouts(self) -> Iterator[tuple[Source, Layout]]:
        """Each source with where its columns go in ``segment_calls``."""
        for s, fs in zip(self.sources, self.per_source, strict=True):
            mine = {f.path: f for f in fs}
            typed: list[tuple[str, SourceField | None]] = []
            spill: dict[str, list[tuple[str, SourceField]]] = {}
            for path, (kind, _) in self.fields.items():
                f = mine.get(path)
                typed.append((kind, f if f is not None and f.kind == kind else None))
                if f is not None and f.kind != kind:
                    root, key = path.split(".", 1)
                    spill.setdefault(root, []).append((key, f))
            yield s, Layout(typed, spill)

    def trait_keys(self) -> set[str]:
        return {k for s in self.sources for k in s.traits()}


# -- evaluation --------------------------------------------------------------------------


class SegmentCatalog(Mapping[str, Field]):
    """The typed fields of the attached views, looked up by a definition's path under
    the column Segment's loader gives it (iterating gives the views' own paths)."""

    def __init__(self, fields: Mapping[str, Field]) -> None:
        self.fields = dict(fields)

    def __getitem__(self, path: str) -> Field:
        column = field_column(path)
        found = self.fields[column]
        return found if column == path else replace(found, column=column)

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def get(self, path: str, default: Field | None = None) -> Field | None:  # type: ignore[override]
        try:
            return self[path]
        except KeyError:
            return default


def segment_plan(plan: Plan) -> Plan:
    """``plan`` reading trait names as Segment's columns (in place); a static segment's
    members, kept in the segflow store, are refused by name."""
    for k, f in list(plan.features.items()):
        if isinstance(f, TraitValue):
            plan.features[k] = TraitValue(trait_key(f.name))
        elif isinstance(f, StaticMembership):
            raise SegmentUnsupported(
                f"static segment {f.segment_id!r} cannot be evaluated on a Segment"
                " warehouse: its members are kept in the segflow store"
            )
    return plan
