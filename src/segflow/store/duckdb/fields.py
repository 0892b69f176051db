"""The dynamic fields of a load (every leaf of ``properties``, ``context``, ``traits``):
found, typed and extracted in SQL.

They stay JSON text until DuckDB extracts them vectorised: each document is parsed
once for all its paths, one scan fixes each new path's column type from its first value
in input order, one more inserts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Final, Protocol

import duckdb

from segflow.model.events import IngestReport, Message
from segflow.store.duckdb.load import NEW, TRAIT_STAGE, Load
from segflow.store.duckdb.sql import quote_str
from segflow.store.records.history import FieldInfo


class LoadTarget(Protocol):
    """What staging and field typing need from the store a load goes into
    (``DuckDBStore``): a protocol, so that the store imports the stagers and not the
    other way round."""

    @property
    def con(self) -> duckdb.DuckDBPyConnection: ...

    @property
    def max_fields(self) -> int | None: ...

    @property
    def known_fields(self) -> Mapping[str, FieldInfo]: ...

    @property
    def lower_columns(self) -> AbstractSet[str]: ...

    def commit_load(
        self,
        fields: Fields,
        report: IngestReport,
        by_line: dict[int, Message] | None = None,
        plain: bool = True,
    ) -> None: ...

    def drop_temps(self) -> None: ...


@dataclass
class Leaf:
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


def _typed_sql(lf: Leaf, ctype: str, mixed: bool) -> tuple[str | None, tuple[str, str] | None]:
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


class Fields:
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
        store: LoadTarget,
        load: Load,
        dotted: list[Leaf],
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
        self.leaves: list[Leaf] = []
        self.materialize = materialize
        """Extract every leaf once into a temporary table (see ``_extract_once``)."""
        self._stage = NEW
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
            self.leaves.append(Leaf(path, "PER_VALUE", value))

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
            rows = self.con.execute(f"SELECT DISTINCT {', '.join(cols)} FROM {NEW} s").fetchall()
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
            f" FROM {NEW} s"
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
        fields = self.store.known_fields
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
        lower = set(self.store.lower_columns)
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
            f"CREATE OR REPLACE TEMP TABLE {TRAIT_STAGE} AS SELECT _line, t.key AS key,"
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
            f"CREATE OR REPLACE TEMP TABLE {TRAIT_STAGE} AS SELECT _line, key, kind, num, str,"
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


def _column_ok(path: str, lower: set[str]) -> bool:
    """Whether a path can have its own column: DuckDB names are case-insensitive
    and cannot hold NUL, so such paths live in ``extra`` only (catalog type JSON)."""
    return "\x00" not in path and path.lower() not in lower
