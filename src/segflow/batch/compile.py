"""Compile a feature plan into one SQL query (through sqlglot) evaluated as of an instant.

Shape of the query::

    WITH ev0 AS (SELECT profile_id, <one FILTERed aggregate per feature on these names>
                 FROM events WHERE "timestamp" <= :t AND event IN (<one name set>)
                 GROUP BY profile_id),
         ev1 AS (...),
         tr  AS (<traits as of :t, one row per profile, four typed columns per trait>),
         sq_k AS (<chain of ChainStep joins per sequence feature>)
    SELECT p.profile_id, <formula of segment 0> AS s0, ...
    FROM profiles p LEFT JOIN ev0 ... LEFT JOIN tr ... LEFT JOIN sq_k ...

Scans group by, and join on, ``profile_no`` where the store keeps profile numbers
(store.duckdb.numbers), else ``profile_id`` (written ``profile_id`` above).

Features are grouped by their event-name set so each scan touches only the rows its
aggregates can use: a row pays for the aggregates of its own event, not all of them.

The tree holds typed nodes only (sqlglot's, and segflow's from ``batch.dialects``); the
``dialect`` chosen spells them, and a node it cannot compute raises there.

Every user-supplied name becomes a quoted identifier and every value a literal
escaped by sqlglot; nothing is pasted into SQL text.  Two-valued logic: each leaf is
wrapped in ``COALESCE(..., FALSE)`` so ``NOT`` over a missing value holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final, TypeVar

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel

from segflow.batch.dialects import (
    AsJsonText,
    BucketHash,
    ChainStep,
    JsonBoolean,
    JsonExists,
    JsonNumber,
    JsonString,
    JsonText,
    Latest,
    ParseTimestamp,
    TopValue,
    dialect_class,
)
from segflow.model.definition import (
    CALL_TYPES,
    Absolute,
    Ago,
    Comparison,
    EventFilter,
    PropertyPredicate,
    Window,
    Within,
    is_number,
)
from segflow.plan.features import (
    CART_ADD,
    CART_PRICE,
    CART_PRODUCT,
    CART_QUANTITY,
    CART_REMOVE,
    CART_RESET,
    CartTotal,
    EventAggregate,
    FAbandoned,
    FAll,
    FAny,
    FBucket,
    FCompare,
    FFlag,
    FNot,
    Formula,
    FRef,
    SequenceMatch,
    StaticMembership,
    TraitValue,
)
from segflow.plan.planner import Plan

TRUE = exp.true()
FALSE = exp.false()
T = TypeVar("T")
E = TypeVar("E", bound=exp.Expression)
MAX_EVENT_SCANS: Final = 32
MAX_TRAIT_SCANS: Final = 32
MAX_SEQUENCE_SCANS: Final = 32
"""Most event scans (each a join) one query holds: a plan over more event-name sets
packs several into one scan.  DuckDB's cost per join grows with the joins before it
(every probe carries every column joined so far), so a definition over hundreds of
event names took seconds to evaluate as one join per name."""


@dataclass(frozen=True, slots=True)
class Field:
    """What the store knows of an event field path."""

    type: str  # DOUBLE | BOOLEAN | VARCHAR | JSON (only ever non-scalar)
    overflow: bool = False
    column: str | None = None
    """The events column (and ``extra`` path) holding the field when it is not named
    by the path itself (a warehouse whose columns follow its own naming)."""


Catalog = Mapping[str, Field]


def _pack(items: list[T], most: int) -> list[list[T]]:
    """``items`` in at most ``most`` consecutive runs of near-equal length."""
    if len(items) <= most:
        return [[x] for x in items]
    size, extra = divmod(len(items), most)
    out: list[list[T]] = []
    start = 0
    for i in range(most):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def _balanced(items: list[E], join: Callable[[E, E], E]) -> E:
    """``items`` joined pairwise into a balanced tree (its depth grows as the log of
    their number, where a chain would nest as deep as there are items)."""
    while len(items) > 1:
        items = [join(a, b) for a, b in zip(items[::2], items[1::2], strict=False)] + (
            [items[-1]] if len(items) % 2 else []
        )
    return items[0]


def ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(ident(name), table=ident(table) if table else None)


def lit(v: object) -> exp.Expression:
    if isinstance(v, bool):
        return exp.Boolean(this=v)
    if is_number(v):
        # A whole number as an integer, anything else as a DOUBLE: a bare "2.0" is a
        # DECIMAL to DuckDB, which then casts every BIGINT count compared with it to a
        # 128-bit decimal, row by row (an integer needs no cast; a DOUBLE column takes
        # either constant as a DOUBLE, so the comparison is the same).
        x = float(v)  # type: ignore[arg-type]
        if x.is_integer() and abs(x) < 2**53:
            return exp.Literal.number(int(x))
        return exp.cast(exp.Literal.number(repr(x)), "DOUBLE")
    if isinstance(v, str):
        return exp.Literal.string(v)
    if isinstance(v, datetime):
        return ts_lit(v)
    raise TypeError(f"no literal for {v!r}")


def ts_lit(t: datetime) -> exp.Expression:
    return exp.cast(exp.Literal.string(t.isoformat(sep=" ", timespec="microseconds")), "TIMESTAMP")


def and_(*parts: exp.Expression) -> exp.Expression:
    real = [p for p in parts if p is not TRUE]
    if any(p is FALSE for p in real):
        return FALSE
    if not real:
        return TRUE
    return exp.and_(*real) if len(real) > 1 else real[0]


def or_(*parts: exp.Expression) -> exp.Expression:
    real = [p for p in parts if p is not FALSE]
    if any(p is TRUE for p in real):
        return TRUE
    if not real:
        return FALSE
    return exp.or_(*real) if len(real) > 1 else real[0]


def never_null(e: exp.Expression) -> bool:
    """Whether ``e`` is non-NULL on every row, judged from its shape alone: constants,
    a COALESCE ending in one, IS [NOT] NULL, and comparisons and logic over such."""
    if isinstance(e, exp.Boolean | exp.Literal | exp.Is):
        return True
    if isinstance(e, exp.Coalesce):
        return any(never_null(x) for x in [e.this, *e.expressions])
    if isinstance(e, exp.Cast | exp.Not | exp.Paren):
        return never_null(e.this)
    if isinstance(e, exp.EQ | exp.NEQ | exp.GT | exp.GTE | exp.LT | exp.LTE | exp.And | exp.Or):
        return never_null(e.this) and never_null(e.expression)
    if isinstance(e, exp.Between):
        return all(never_null(e.args[k]) for k in ("this", "low", "high"))
    if isinstance(e, exp.In):
        return never_null(e.this) and all(never_null(x) for x in e.expressions)
    return False


def coalesce_false(e: exp.Expression) -> exp.Expression:
    """``e`` with NULL read as FALSE; unwrapped where it cannot be NULL (a count compared
    with a number: each COALESCE is a pass over every profile)."""
    if never_null(e):
        return e
    return exp.func("COALESCE", e, FALSE)


def parse_ts(e: exp.Expression) -> exp.Expression:
    """An ISO-8601 text as a naive UTC timestamp (NULL when it is not one); each dialect
    spells the reading (``dialects.ParseTimestamp``)."""
    return ParseTimestamp(this=e)


def json_pointer(path: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in path.split("."))


@dataclass(frozen=True, slots=True)
class Typed:
    """A value split by type: at most one of number/string/boolean/time is non-NULL."""

    number: exp.Expression | None
    string: exp.Expression | None
    boolean: exp.Expression | None
    present: exp.Expression


def compare_typed(v: Typed, cmp: Comparison, at: datetime) -> exp.Expression:
    """The shared comparison semantics for traits and event properties.

    A missing value or a value of the wrong type makes every operator false, except
    ``not_exists``.
    """
    op, x = cmp.op, cmp.value
    if op == "exists":
        return v.present
    if op == "not_exists":
        return exp.not_(v.present)
    if op in ("gt", "gte", "lt", "lte"):
        if v.number is None:
            return FALSE
        klass = {"gt": exp.GT, "gte": exp.GTE, "lt": exp.LT, "lte": exp.LTE}[op]
        return klass(this=v.number, expression=lit(x))
    if op == "between":
        if v.number is None:
            return FALSE
        return exp.Between(this=v.number, low=lit(x[0]), high=lit(x[1]))
    if op in ("eq", "ne"):
        target = _slot(v, x)
        if target is None:
            return FALSE
        klass2 = exp.EQ if op == "eq" else exp.NEQ
        return klass2(this=target, expression=lit(x))
    if op in ("in", "not_in"):
        groups: dict[str, list[object]] = {}
        for item in x:
            groups.setdefault(_kind(item), []).append(item)
        parts = []
        for _kind_name, items in sorted(groups.items()):
            target = _slot(v, items[0])
            if target is None:
                continue
            member = exp.In(this=target, expressions=[lit(i) for i in items])
            parts.append(
                member
                if op == "in"
                else exp.and_(
                    exp.not_(member), exp.Not(this=exp.Is(this=target, expression=exp.null()))
                )
            )
        return or_(*parts)
    if op in ("contains", "starts_with", "ends_with"):
        if v.string is None:
            return FALSE
        if op == "contains":
            return exp.GT(
                this=exp.StrPosition(this=v.string, substr=lit(x)),
                expression=exp.Literal.number(0),
            )
        klass3 = exp.StartsWith if op == "starts_with" else exp.EndsWith
        return klass3(this=v.string, expression=lit(x))
    # time operators read ISO-8601 strings
    if v.string is None:
        return FALSE
    t = parse_ts(v.string)
    return compare_time(t, cmp, at)


def compare_time(t: exp.Expression, cmp: Comparison, at: datetime) -> exp.Expression:
    op, x = cmp.op, cmp.value
    if op == "exists":
        return exp.Not(this=exp.Is(this=t, expression=exp.null()))
    if op == "not_exists":
        return exp.Is(this=t, expression=exp.null())
    if op == "within_last":
        lo = at - timedelta(microseconds=x.us)
        return exp.and_(
            exp.GT(this=t, expression=ts_lit(lo)), exp.LTE(this=t, expression=ts_lit(at))
        )
    if op == "older_than":
        return exp.LTE(this=t, expression=ts_lit(at - timedelta(microseconds=x.us)))
    if op == "before":
        return exp.LT(this=t, expression=ts_lit(x))
    if op == "after":
        return exp.GT(this=t, expression=ts_lit(x))
    raise ValueError(f"{op} does not apply to a time value")


def _kind(v: object) -> str:
    if isinstance(v, bool):
        return "bool"
    if is_number(v):
        return "number"
    return "string"


def _slot(v: Typed, x: object) -> exp.Expression | None:
    return {"bool": v.boolean, "number": v.number, "string": v.string}[_kind(x)]


# -------------------------------------------------------------------------------


def _sum_of(parts: list[exp.Expression]) -> exp.Expression:
    total: exp.Expression = exp.func("COALESCE", parts[0], exp.Literal.number(0))
    for p in parts[1:]:
        total = exp.Add(this=total, expression=exp.func("COALESCE", p, exp.Literal.number(0)))
    return exp.Paren(this=total)


PARTIAL_COMBINE: Mapping[str, Callable[[list[exp.Expression]], exp.Expression]] = {
    # DuckDB's LEAST/GREATEST skip NULLs: NULL only when no name had a matching event.
    "count": _sum_of,
    "sum": _sum_of,
    "min": lambda parts: exp.func("LEAST", *parts),
    "max": lambda parts: exp.func("GREATEST", *parts),
    "first_time": lambda parts: exp.func("LEAST", *parts),
    "last_time": lambda parts: exp.func("GREATEST", *parts),
}
"""How to combine per-event-name partial aggregates into the feature's value."""


@dataclass
class CompiledQuery:
    """The query and how its output columns map back to segment ids."""

    sql: str
    expression: exp.Expression
    columns: dict[str, str] = field(default_factory=dict)  # segment id -> column


class BatchCompiler:
    """Turns a plan into SQL for one instant ``at``; holds per-compile naming state."""

    def __init__(
        self,
        plan: Plan,
        catalog: Catalog,
        at: datetime,
        dialect: str = "duckdb",
        event_codes: Mapping[str, int] | None = None,
        profile_key: str = "profile_id",
    ) -> None:
        self.plan = plan
        self.catalog = catalog
        self.event_codes = event_codes
        self.key = profile_key
        """The column scans group by and join on: ``profile_no`` where the store keeps
        profile numbers (store.duckdb.numbers; hashing an integer, not text, is most of what
        the joins cost), else ``profile_id``.  The result is keyed by ``profile_id``."""
        self.at = at
        self.dialect: type[Dialect] = dialect_class(dialect)
        """segflow's dialect class (``batch.dialects``): the engine the SQL is for."""
        self.values: dict[str, exp.Expression] = {}  # feature key -> its value in the final select
        self.trait_tables: dict[str, str] = {}  # trait feature key -> the CTE holding it
        self.flag_columns: dict[str, exp.Column] = {}  # sequence feature key -> its column

    # -- event rows ---------------------------------------------------------
    def field_typed(self, path: str) -> Typed:
        """A field of the event row split by type, reading the overflow JSON when needed."""
        info = self.catalog.get(path)
        if info is None:
            return Typed(None, None, None, FALSE)
        path = info.column or path
        c = col(path)
        number: exp.Expression | None
        string: exp.Expression | None
        boolean: exp.Expression | None
        number = c if info.type == "DOUBLE" else None
        string = c if info.type == "VARCHAR" else None
        boolean = c if info.type == "BOOLEAN" else None
        present: exp.Expression = (
            exp.Not(this=exp.Is(this=c, expression=exp.null())) if info.type != "JSON" else FALSE
        )
        if info.overflow or info.type == "JSON":
            ptr = exp.Literal.string(json_pointer(path))
            jnum = JsonNumber(this=col("extra"), path=ptr)
            jstr = JsonString(this=col("extra"), path=ptr.copy())
            jbool = JsonBoolean(this=col("extra"), path=ptr.copy())
            number = exp.func("COALESCE", number, jnum) if number is not None else jnum
            string = exp.func("COALESCE", string, jstr) if string is not None else jstr
            boolean = exp.func("COALESCE", boolean, jbool) if boolean is not None else jbool
            present = or_(present, JsonExists(this=col("extra"), path=ptr.copy()))
        return Typed(number, string, boolean, present)

    def predicate(self, p: PropertyPredicate) -> exp.Expression:
        """A property test that may be NULL where the field is missing or mistyped:
        it only ever stands, AND-ed, in a WHERE or FILTER clause, which keeps a row
        only when it is TRUE, so NULL already reads as FALSE there and a COALESCE
        would only cost a pass over every row."""
        return compare_typed(self.field_typed(p.path), p.cmp, self.at)

    def filter_sql(self, f: EventFilter) -> exp.Expression:
        """The filter as a WHERE/FILTER condition (NULL means no match: never negate it)."""
        return and_(self.names_sql(f.names), self.where_sql(f))

    def where_sql(self, f: EventFilter) -> exp.Expression:
        """The property tests as a WHERE/FILTER condition (NULL means no match)."""
        return and_(*(self.predicate(p) for p in f.where))

    def window_sql(self, w: Window | None) -> exp.Expression:
        ts = col("timestamp")
        if w is None:
            return TRUE
        if isinstance(w, Within):
            return exp.GT(this=ts, expression=ts_lit(self.at - timedelta(microseconds=w.span.us)))
        if isinstance(w, Ago):
            return exp.and_(
                exp.GT(this=ts, expression=ts_lit(self.at - timedelta(microseconds=w.from_ago.us))),
                exp.LTE(this=ts, expression=ts_lit(self.at - timedelta(microseconds=w.to_ago.us))),
            )
        assert isinstance(w, Absolute)
        lower = exp.GTE(this=ts, expression=ts_lit(w.since))
        if w.until is None:
            return lower
        return exp.and_(lower, exp.LT(this=ts, expression=ts_lit(w.until)))

    def names_sql(self, names: tuple[str, ...]) -> exp.Expression:
        """Match event names; with the store's name codes an integer compare, which
        is an order of magnitude cheaper per row than comparing strings.  Page and
        screen calls (``PAGE_CALLS``, ``SCREEN_CALLS``) are the calls of that type
        without an event name (``model.definition.call_name``)."""
        calls = [
            and_(
                exp.EQ(this=col("type"), expression=lit(CALL_TYPES[n])),
                exp.Is(this=col("event"), expression=exp.null()),
            )
            for n in names
            if n in CALL_TYPES
        ]
        names = tuple(n for n in names if n not in CALL_TYPES)
        named: exp.Expression
        if not names:
            return or_(*calls)
        if self.event_codes is not None:
            codes = sorted({self.event_codes[n] for n in names if n in self.event_codes})
            if not codes:
                return or_(*calls)
            if len(codes) == 1:
                named = exp.EQ(this=col("event_code"), expression=exp.Literal.number(codes[0]))
            else:
                named = exp.In(
                    this=col("event_code"), expressions=[exp.Literal.number(c) for c in codes]
                )
        elif len(names) == 1:
            named = exp.EQ(this=col("event"), expression=lit(names[0]))
        else:
            named = exp.In(this=col("event"), expressions=[lit(n) for n in names])
        return or_(named, *calls)

    def aggregate(self, a: EventAggregate, *, check_names: bool = True) -> exp.Expression:
        """One filtered aggregate; ``check_names=False`` when the scan already keeps
        only events with the filter's names."""
        flt = self.filter_sql(a.filter) if check_names else self.where_sql(a.filter)
        cond = and_(flt, self.window_sql(a.window))
        m = a.measure
        if m == "count":
            agg: exp.Expression = exp.Count(this=exp.Star())
        elif m == "first_time":
            agg = exp.Min(this=col("timestamp"))
        elif m == "last_time":
            agg = exp.Max(this=col("timestamp"))
        elif m == "distinct":
            assert a.of is not None
            agg = exp.Count(this=exp.Distinct(expressions=[self.distinct_value(a.of)]))
        elif m == "top":
            assert a.of is not None
            s = self.field_typed(a.of).string
            if s is None or cond is FALSE:
                return exp.cast(exp.null(), "VARCHAR")
            return TopValue(this=s, where=None if cond is TRUE else cond)
        else:
            assert a.of is not None
            num = self.field_typed(a.of).number
            if num is None:
                return exp.Literal.number(0) if m == "sum" else exp.cast(exp.null(), "DOUBLE")
            klass = {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}[m]
            agg = klass(this=num)
        if cond is FALSE:
            if m in ("count", "distinct", "sum"):
                return exp.Literal.number(0)
            return exp.cast(
                exp.null(), "TIMESTAMP" if m in ("first_time", "last_time") else "DOUBLE"
            )
        if cond is TRUE:
            return agg
        if m == "count":  # counts the TRUE values, as FILTER keeps rows, but cheaper
            return exp.CountIf(this=cond)
        return exp.Filter(this=agg, expression=exp.Where(this=cond))

    def distinct_value(self, path: str) -> exp.Expression:
        info = self.catalog.get(path)
        if info is None:
            return exp.null()
        path = info.column or path
        if not info.overflow and info.type != "JSON":
            return col(path)
        ptr = exp.Literal.string(json_pointer(path))
        typed = AsJsonText(this=col(path)) if info.type != "JSON" else exp.null()
        return exp.func("COALESCE", typed, JsonText(this=col("extra"), path=ptr))

    # -- query ---------------------------------------------------------------
    def window_floor(self, w: Window | None) -> datetime | None:
        """The earliest instant the window can count (None: no lower bound)."""
        if isinstance(w, Within):
            return self.at - timedelta(microseconds=w.span.us)
        if isinstance(w, Ago):
            return self.at - timedelta(microseconds=w.from_ago.us)
        if isinstance(w, Absolute):
            return w.since
        return None

    def scan_floor(self, features: Iterable[EventAggregate]) -> exp.Expression:
        """``timestamp >= the earliest floor`` when every feature of a scan has one: each
        aggregate's FILTER already implies it, so the result is unchanged while DuckDB
        skips the older row groups and aggregates fewer rows."""
        floors = [self.window_floor(f.window) for f in features]
        if not floors or any(x is None for x in floors):
            return TRUE
        return exp.GTE(this=col("timestamp"), expression=ts_lit(min(x for x in floors if x)))

    def compile(self) -> CompiledQuery:
        plan = self.plan
        aggs = {k: f for k, f in plan.features.items() if isinstance(f, EventAggregate)}
        traits = {k: f for k, f in plan.features.items() if isinstance(f, TraitValue)}
        seqs = {k: f for k, f in plan.features.items() if isinstance(f, SequenceMatch)}
        statics = {k: f for k, f in plan.features.items() if isinstance(f, StaticMembership)}
        carts = {k: f for k, f in plan.features.items() if isinstance(f, CartTotal)}

        key = self.key
        query = exp.select(col("profile_id", "p")).from_(exp.alias_(exp.to_table("profiles"), "p"))
        ctes: list[tuple[str, exp.Expression]] = []
        # scan group (event-name set) -> [(column, feature)]; a decomposable feature over
        # several names is split into one partial per name, combined in the final select,
        # so every event row is read by the scan of its own name only.
        groups: dict[tuple[str, ...], list[tuple[str, EventAggregate]]] = {}
        partials: dict[str, list[str]] = {}
        for k, f in sorted(aggs.items()):
            names = f.filter.names
            if len(names) > 1 and f.measure in PARTIAL_COMBINE:
                for j, n in enumerate(names):
                    groups.setdefault((n,), []).append((f"{k}_{j}", f))
                    partials.setdefault(k, []).append(f"{k}_{j}")
            else:
                groups.setdefault(names, []).append((k, f))
        for i, packed in enumerate(_pack(sorted(groups.items()), MAX_EVENT_SCANS)):
            name = f"ev{i}"
            scan = (
                exp.select(col(key))
                .from_("events")
                .where(
                    and_(
                        exp.LTE(this=col("timestamp"), expression=ts_lit(self.at)),
                        self.scan_floor(f for _, members in packed for _, f in members),
                        self.names_sql(tuple(n for names, _ in packed for n in names)),
                    )
                )
                .group_by(col(key))
            )
            for names, members in packed:
                for column, f in members:
                    self.values[column] = col(f"f_{column}", name)
                    # a scan shared by several name sets filters each aggregate by its own
                    own = replace(f, filter=replace(f.filter, names=names))
                    agg = self.aggregate(own, check_names=len(packed) > 1)
                    scan = scan.select(exp.alias_(agg, f"f_{column}", quoted=True), copy=False)
            ctes.append((name, scan))
            query = query.join(exp.to_table(name), on=self._on(name), join_type="LEFT", copy=False)
        for k, parts in partials.items():
            self.values[k] = PARTIAL_COMBINE[aggs[k].measure]([self.values.pop(p) for p in parts])
        for packed_traits in _pack(sorted(traits.items()), MAX_TRAIT_SCANS):
            name = f"tr_{packed_traits[0][0]}"
            for k, _t in packed_traits:
                self.trait_tables[k] = name
            cte = (
                self.trait_cte(*packed_traits[0])
                if len(packed_traits) == 1
                else self.traits_pivot(packed_traits)
            )
            ctes.append((name, cte))
            query = query.join(exp.to_table(name), on=self._on(name), join_type="LEFT", copy=False)
        for packed_seqs in _pack(sorted(seqs.items()), MAX_SEQUENCE_SCANS):
            name = f"sq_{packed_seqs[0][0]}"
            for k, _s in packed_seqs:
                self.flag_columns[k] = col("matched" if len(packed_seqs) == 1 else f"m_{k}", name)
            cte = (
                self.sequence_cte(packed_seqs[0][1])
                if len(packed_seqs) == 1
                else self.sequences_pivot(packed_seqs)
            )
            ctes.append((name, cte))
            query = query.join(exp.to_table(name), on=self._on(name), join_type="LEFT", copy=False)
        for k, c in sorted(carts.items()):
            name = f"ct_{k}"
            ctes.append((name, self.cart_cte(c)))
            query = query.join(exp.to_table(name), on=self._on(name), join_type="LEFT", copy=False)
            self.values[k] = col("total", name)
        for k, st in sorted(statics.items()):
            name = f"st_{k}"
            sub = (
                exp.select(col("profile_id"), exp.alias_(TRUE, "member", quoted=True))
                .from_("static_members")
                .where(exp.EQ(this=col("segment_id"), expression=lit(st.segment_id)))
            )
            ctes.append((name, sub))
            # static lists are kept by profile id (they outlive profile numbers)
            on = exp.EQ(this=col("profile_id", "p"), expression=col("profile_id", name))
            query = query.join(exp.to_table(name), on=on, join_type="LEFT", copy=False)

        columns: dict[str, str] = {}
        for i, sid in enumerate(sorted(plan.formulas)):
            cname = f"s{i}"
            columns[sid] = cname
            query = query.select(exp.alias_(self.formula(plan.formulas[sid]), cname), copy=False)
        for name, body in ctes:
            query = query.with_(name, as_=body, copy=False)
        # IMMEDIATE: a node the dialect cannot spell raises (dialects.UnsupportedNode)
        sql = query.sql(dialect=self.dialect, unsupported_level=ErrorLevel.IMMEDIATE)
        return CompiledQuery(sql, query, columns)

    def _on(self, table: str) -> exp.Expression:
        return exp.EQ(this=col(self.key, "p"), expression=col(self.key, table))

    def _trait_valid(self) -> tuple[exp.Expression, exp.Expression]:
        """Conditions of the trait writes valid at ``at`` (to AND with the key's)."""
        at = ts_lit(self.at)
        valid_to = col("valid_to")
        return (
            exp.LTE(this=col("timestamp"), expression=at),
            exp.or_(
                exp.Is(this=valid_to, expression=exp.null()),
                exp.GT(this=valid_to, expression=at.copy()),
            ),
        )

    def traits_pivot(self, items: list[tuple[str, TraitValue]]) -> exp.Expression:
        """Several traits' values as of ``at`` in one grouped scan (a plan over more
        traits than ``MAX_TRAIT_SCANS`` shares scans, as ``trait_cte`` explains)."""
        keys = exp.In(this=col("key"), expressions=[lit(t.name) for _k, t in items])
        query = (
            exp.select(col(self.key)).from_("traits").where(exp.and_(*self._trait_valid(), keys))
        )
        for k, t in items:
            mine = exp.EQ(this=col("key"), expression=lit(t.name))
            for part in ("kind", "num", "str", "bool"):
                agg = exp.Filter(
                    this=exp.AnyValue(this=col(part)), expression=exp.Where(this=mine.copy())
                )
                query = query.select(exp.alias_(agg, f"t{part[0]}_{k}", quoted=True), copy=False)
        return query.group_by(col(self.key))

    def trait_cte(self, k: str, t: TraitValue) -> exp.Expression:
        """The trait's value as of ``at``, in four typed columns: the one write of each
        (profile, key) whose validity ``[timestamp, valid_to)`` holds ``at``.  The
        validity intervals of one (profile, key) are disjoint once ``LINK_TRAITS`` has
        run (``store.duckdb.batch.evaluate`` runs it first and checks that the result has a row
        per profile), so this is a plain filtered scan with no grouping; with traits
        clustered by key it reads only the key's row groups.  One scan and join per
        trait instead of one grouped pivot of them all, which would probe a hash table
        of every profile at random for each trait row."""
        query = (
            exp.select(col(self.key))
            .from_("traits")
            .where(exp.and_(*self._trait_valid(), exp.EQ(this=col("key"), expression=lit(t.name))))
        )
        for part in ("kind", "num", "str", "bool"):
            query = query.select(exp.alias_(col(part), f"t{part[0]}_{k}", quoted=True), copy=False)
        return query

    def sequences_pivot(self, items: list[tuple[str, SequenceMatch]]) -> exp.Expression:
        """Several sequences' matches in one CTE (one join): their ``sequence_cte``
        rows, tagged with their position, unioned and pivoted (a plan over more
        sequences than ``MAX_SEQUENCE_SCANS`` shares joins, as ``MAX_EVENT_SCANS``
        explains)."""
        key = self.key
        parts: list[exp.Query] = [
            exp.select(col(key), exp.alias_(exp.Literal.number(j), "_i"), col("matched")).from_(
                exp.Subquery(this=self.sequence_cte(s), alias=exp.TableAlias(this=ident(f"q{j}")))
            )
            for j, (_k, s) in enumerate(items)
        ]
        union = _balanced(parts, lambda a, b: exp.union(a, b, distinct=False))
        query = exp.select(col(key)).from_(union.subquery("u")).group_by(col(key))
        for j, (k, _s) in enumerate(items):
            mine = exp.EQ(this=col("_i"), expression=exp.Literal.number(j))
            agg = exp.Filter(
                this=exp.LogicalOr(this=col("matched")), expression=exp.Where(this=mine)
            )
            query = query.select(exp.alias_(agg, f"m_{k}", quoted=True), copy=False)
        return query

    def cart_cte(self, c: CartTotal) -> exp.Expression:
        """``CartTotal`` per profile (no row: an empty cart): each product's latest
        action after the profile's latest order, its fields each read by ``Latest``
        over (time, removed, quantity, price), summed over the products whose latest
        action is an add."""
        key = self.key
        at = ts_lit(self.at)
        product = self.field_typed(CART_PRODUCT).string
        if product is None:
            return exp.select(col(key), exp.alias_(lit(0), "total")).from_("events").where(FALSE)
        qty_n = self.field_typed(CART_QUANTITY).number
        qty = exp.func("COALESCE", qty_n, lit(1.0)) if qty_n is not None else lit(1.0)
        price_n = self.field_typed(CART_PRICE).number
        price = price_n if price_n is not None else exp.cast(exp.null(), "DOUBLE")
        removed = self.names_sql((CART_REMOVE,))
        orders = (
            exp.select(col(key), exp.alias_(exp.Max(this=col("timestamp")), "reset"))
            .from_("events")
            .where(
                and_(exp.LTE(this=col("timestamp"), expression=at), self.names_sql((CART_RESET,)))
            )
            .group_by(col(key))
        )

        # each product's latest action: the row greatest by (time, removed, quantity,
        # price), every line field read from that one row (ties hold equal values)
        floor = exp.cast(exp.Literal.string("-infinity"), "DOUBLE")
        order = [col("timestamp", "e"), removed, qty, exp.func("COALESCE", price.copy(), floor)]
        line = {
            name: Latest(this=value.copy(), expressions=[o.copy() for o in order])
            for name, value in (("removed", removed), ("qty", qty), ("price", price))
        }
        reset = col("reset", "o")
        lines = (
            exp.select(
                col(key, "e"),
                *(exp.alias_(v, f"line_{n}", quoted=True) for n, v in line.items()),
            )
            .from_(exp.alias_(exp.to_table("events"), "e"))
            .join(
                orders.subquery("o"),
                on=exp.EQ(this=col(key, "e"), expression=col(key, "o")),
                join_type="LEFT",
            )
            .where(
                and_(
                    exp.LTE(this=col("timestamp", "e"), expression=at.copy()),
                    self.names_sql((CART_ADD, CART_REMOVE)),
                    exp.Not(this=exp.Is(this=product, expression=exp.null())),
                    exp.or_(
                        exp.Is(this=reset, expression=exp.null()),
                        exp.GT(this=col("timestamp", "e"), expression=reset.copy()),
                    ),
                )
            )
            .group_by(col(key, "e"), product.copy())
        )

        def part(name: str) -> exp.Expression:
            return col(f"line_{name}")

        amount = (
            part("qty")
            if c.measure == "items"
            else exp.Mul(this=part("qty"), expression=part("price"))
        )
        total = exp.Filter(
            this=exp.Sum(this=amount), expression=exp.Where(this=exp.not_(part("removed")))
        )
        return (
            exp.select(col(key), exp.alias_(total, "total"))
            .from_(lines.subquery("l"))
            .group_by(col(key))
        )

    def sequence_cte(self, s: SequenceMatch) -> exp.Expression:
        """Profiles with a chain e0 < e1 < ... of the steps' events inside the window
        (and last - first <= span), built forwards: each event of step i joins the
        latest strictly earlier event of step i-1 that ends a chain and keeps that
        chain's start (``dialects.ChainStep``: an ASOF join on DuckDB).  That start is
        the latest any chain ending at the event can have (starts only grow with time),
        so a last-step event within ``span`` of it exists exactly when the greedy
        earliest chain from some first-step event fits, which is what
        ``plan.interpret.sequence_matched`` checks.  The joins' sides are the
        steps' own events, not chains from every first-step event, so each join is no
        larger than its steps."""
        key = self.key
        steps = [
            exp.select(col(key), exp.alias_(col("timestamp"), "ts"))
            .from_("events")
            .where(
                and_(
                    exp.LTE(this=col("timestamp"), expression=ts_lit(self.at)),
                    self.filter_sql(f),
                    self.window_sql(s.window),
                )
            )
            for f in s.steps
        ]
        chain: exp.Expression = steps[0]  # (key, ts[, start]) of the events ending a chain
        for i in range(1, len(steps)):
            chain = ChainStep(this=steps[i], chain=chain, key=ident(key), first=i == 1)
        start = col("start" if len(steps) > 1 else "ts", "c")
        ok: exp.Expression = TRUE
        if s.span is not None:
            limit = exp.Interval(  # type: ignore[no-untyped-call]
                this=exp.Literal.string(str(s.span.us)), unit=exp.var("MICROSECONDS")
            )
            ok = exp.LTE(this=col("ts", "c"), expression=exp.Add(this=start, expression=limit))
        return (
            exp.select(
                col(key, "c"),
                exp.alias_(exp.LogicalOr(this=ok), "matched", quoted=True),
            )
            .from_(exp.Subquery(this=chain, alias=exp.TableAlias(this=exp.to_identifier("c"))))
            .group_by(col(key, "c"))
        )

    # -- formulas --------------------------------------------------------------
    def formula(self, f: Formula) -> exp.Expression:
        if isinstance(f, FAll):
            return and_(*(self.formula(i) for i in f.items))
        if isinstance(f, FAny):
            return or_(*(self.formula(i) for i in f.items))
        if isinstance(f, FNot):
            inner = self.formula(f.item)
            if inner is TRUE:
                return FALSE
            if inner is FALSE:
                return TRUE
            return exp.not_(inner)
        if isinstance(f, FRef):
            return self.formula(f.item)
        if isinstance(f, FCompare):
            return coalesce_false(self.compare_feature(f))
        if isinstance(f, FAbandoned):
            last = self.values[f.last]
            follow = self.values[f.follow]
            return coalesce_false(
                exp.and_(
                    exp.LTE(
                        this=last, expression=ts_lit(self.at - timedelta(microseconds=f.wait.us))
                    ),
                    exp.or_(
                        exp.Is(this=follow, expression=exp.null()),
                        exp.LTE(this=follow, expression=last),
                    ),
                )
            )
        if isinstance(f, FFlag):
            flag = self.flag_columns.get(f.feature, col("member", f"st_{f.feature}"))
            return coalesce_false(flag)
        if isinstance(f, FBucket):
            h = self.bucket_sql(f.salt)
            # a bucket is in [0, 100): the bounds at the ends hold for every profile
            return and_(
                exp.GTE(this=h, expression=lit(f.from_)) if f.from_ > 0 else TRUE,
                exp.LT(this=h, expression=lit(f.to)) if f.to < 100 else TRUE,
            )
        raise TypeError(f"cannot compile {f!r}")

    def bucket_sql(self, salt: str) -> exp.Expression:
        """``int(md5(profile_id + ':' + salt)[:8], 16) % 10000 / 100`` (see model.bucket);
        each dialect spells the hash (``dialects.BucketHash``)."""
        key = exp.DPipe(
            this=exp.DPipe(this=col("profile_id", "p"), expression=exp.Literal.string(":")),
            expression=lit(salt),
        )
        return exp.Div(
            this=exp.Mod(this=BucketHash(this=key), expression=exp.Literal.number(10000)),
            expression=exp.Literal.number("100.0"),
        )

    def compare_feature(self, f: FCompare) -> exp.Expression:
        feat = self.plan.features[f.feature]
        if isinstance(feat, TraitValue):
            table = self.trait_tables[f.feature]
            kind = col(f"tk_{f.feature}", table)
            v = Typed(
                number=col(f"tn_{f.feature}", table),
                string=col(f"ts_{f.feature}", table),
                boolean=col(f"tb_{f.feature}", table),
                present=exp.and_(
                    exp.Not(this=exp.Is(this=kind, expression=exp.null())),
                    exp.NEQ(this=kind, expression=exp.Literal.string("null")),
                ),
            )
            return compare_typed(v, f.cmp, self.at)
        value: exp.Expression = self.values[f.feature]
        if isinstance(feat, CartTotal):
            value = exp.func("COALESCE", value, exp.Literal.number(0))
            present = exp.Not(this=exp.Is(this=value, expression=exp.null()))
            return compare_typed(Typed(value, None, None, present), f.cmp, self.at)
        assert isinstance(feat, EventAggregate)
        if feat.measure in ("first_time", "last_time"):
            return compare_time(value, f.cmp, self.at)
        if feat.measure == "top":
            present = exp.Not(this=exp.Is(this=value, expression=exp.null()))
            return compare_typed(Typed(None, value, None, present), f.cmp, self.at)
        if feat.measure in ("count", "distinct", "sum"):
            value = exp.func("COALESCE", value, exp.Literal.number(0))
        v = Typed(
            number=value,
            string=None,
            boolean=None,
            present=exp.Not(this=exp.Is(this=value, expression=exp.null())),
        )
        return compare_typed(v, f.cmp, self.at)
