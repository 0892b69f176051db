"""segflow's expression nodes and the SQL dialects that spell them.

The batch compiler builds one typed sqlglot tree per plan.  Where sqlglot has a node
for what the plan needs (``exp.CountIf``, ``exp.StartsWith``, ``exp.EndsWith``, ...)
the tree holds that node; what sqlglot lacks is a small node defined here (the bucket
hash, the typed reads of the overflow JSON, the ISO-8601 timestamp reader, the most
frequent value, the value of the latest row, a step of a sequence's chain), and
wherever engines share no construct (structs, ASOF joins) the tree says what it needs
with such a node rather than one engine's construct.  Each engine is a subclass of
sqlglot's dialect whose generator ``TRANSFORMS`` spell only what differs, as sqlglot's
own dialects do.

A node an engine cannot compute with the same value raises ``UnsupportedNode`` naming
the node and the dialect; nothing is skipped or approximated.  Engines with no class
here are refused by ``dialect_class``.

The classes have names of their own (``SegflowDuckDB``, ``SegflowPostgres``), so
sqlglot's ``"duckdb"`` and ``"postgres"`` stay sqlglot's: a tree holding segflow's nodes
is rendered with the compiler's ``dialect``.  The parsers and every spelling of
sqlglot's own nodes are inherited unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.duckdb import DuckDB as SqlglotDuckDB
from sqlglot.dialects.postgres import Postgres as SqlglotPostgres
from sqlglot.errors import ErrorLevel, UnsupportedError
from sqlglot.generator import Generator

Transform = Callable[[Generator, Any], str]


class UnsupportedNode(UnsupportedError):
    """A plan needs a node the target engine has no same-valued spelling for."""

    def __init__(self, node: str, dialect: str) -> None:
        super().__init__(
            f"{node} is not supported on {dialect}: segflow's batch compiler has no"
            f" {dialect} spelling for it (segflow.batch.dialects)"
        )
        self.node = node
        self.dialect = dialect


# -- segflow's nodes ------------------------------------------------------------


class BucketHash(exp.Func):
    """The first four bytes of ``md5(this)`` (of its UTF-8 text), big-endian, as an
    unsigned integer: the hash ``model.bucket.bucket_of`` reads."""


class ParseTimestamp(exp.Func):
    """An ISO-8601 text as a naive UTC timestamp; NULL when it is not one."""


class TopValue(exp.AggFunc):
    """The most frequent non-NULL value of ``this`` over the rows where ``where``
    holds (every row when absent); ties go to the smallest value."""

    arg_types = {"this": True, "where": False}  # noqa: RUF012 (sqlglot's own convention)


class JsonField(exp.Func):
    """A value read from the JSON document ``this`` at the JSON pointer ``path``
    (a string literal).  The subclasses say which type they keep."""

    arg_types = {"this": True, "path": True}  # noqa: RUF012 (sqlglot's own convention)


class JsonNumber(JsonField):
    """The field as a DOUBLE when it is a JSON number, else NULL."""


class JsonString(JsonField):
    """The field as text when it is a JSON string, else NULL."""


class JsonBoolean(JsonField):
    """The field as a BOOLEAN when it is a JSON boolean, else NULL."""


class JsonExists(JsonField):
    """Whether the document has the field (a JSON null counts as present)."""


class JsonText(JsonField):
    """The field's JSON text (NULL when absent): one spelling per value, whatever its type."""


class AsJsonText(exp.Func):
    """A scalar value's JSON text, spelled as ``JsonText`` spells the same value."""


class Latest(exp.AggFunc):
    """``this`` of the row whose ``expressions`` (compared in order, each non-NULL) are
    greatest: several of them over one ordering pick their values from the same row
    wherever the orderings' ties hold equal values."""

    arg_types = {"this": True, "expressions": True}  # noqa: RUF012 (sqlglot's own convention)


class ChainStep(exp.Expression):
    """A query: each row ``(key, ts)`` of ``this`` (a step's events) with the ``start``
    of the latest row of ``chain`` (``key``, ``ts`` and, unless ``first``, ``start``)
    of the same key and a strictly earlier ``ts``; rows with none are left out.  A
    first chain's rows start their own chains (``start`` is their ``ts``)."""

    arg_types = {"this": True, "chain": True, "key": True, "first": True}  # noqa: RUF012


NODES: tuple[type[exp.Expression], ...] = (
    BucketHash,
    ParseTimestamp,
    TopValue,
    JsonNumber,
    JsonString,
    JsonBoolean,
    JsonExists,
    JsonText,
    AsJsonText,
    Latest,
    ChainStep,
)
"""Every segflow node: a dialect spells each or raises ``UnsupportedNode`` for it."""


def _dialect_name(gen: Generator) -> str:
    return type(gen.dialect).__name__.removeprefix("Segflow")


def _lacks(gen: Generator, e: exp.Expression) -> str:
    raise UnsupportedNode(type(e).__name__, _dialect_name(gen))


def _reported(node: type[exp.Expression], base: Transform | None) -> Transform:
    """A sqlglot node the dialect has no same-valued spelling for: raised on the batch
    compiler's path (which generates with ``ErrorLevel.IMMEDIATE``), reported as
    sqlglot reports its own gaps elsewhere (transpiling text keeps working)."""

    def sql(gen: Generator, e: Any) -> str:
        if gen.unsupported_level == ErrorLevel.IMMEDIATE:
            raise UnsupportedNode(node.__name__, _dialect_name(gen))
        gen.unsupported(f"{node.__name__} is not supported on {_dialect_name(gen)}")
        if base is not None:
            return base(gen, e)
        method = getattr(gen, f"{e.key}_sql", None)
        return method(e) if method is not None else gen.function_fallback_sql(e)

    return sql


def _key(e: ChainStep, table: str) -> exp.Column:
    return exp.column(e.args["key"].copy(), table=exp.to_identifier(table, quoted=True))


def _quoted_column(name: str, table: str | None = None) -> exp.Column:
    return exp.column(
        exp.to_identifier(name, quoted=True),
        table=exp.to_identifier(table, quoted=True) if table else None,
    )


def _chain_start(e: ChainStep, table: str) -> exp.Column:
    return _quoted_column("ts" if e.args["first"] else "start", table)


def transforms(
    base: dict[type[exp.Expression], Transform],
    spelled: dict[type[exp.Expression], Transform],
    lacking: tuple[type[exp.Expression], ...] = (),
) -> dict[type[exp.Expression], Transform]:
    """A dialect's TRANSFORMS: its base's, every segflow node it does not spell
    raising, ``lacking`` (sqlglot nodes it has no same-valued spelling for) refused."""
    return {
        **base,
        **{n: _lacks for n in NODES},
        **{n: _reported(n, base.get(n)) for n in lacking},
        **spelled,
    }


# -- DuckDB ---------------------------------------------------------------------


def _duckdb_bucket_hash(gen: Generator, e: BucketHash) -> str:
    """``md5_number`` reads the digest little-endian: its low 32 bits are the first
    four bytes swapped, so they are moved back by integer arithmetic (formatting the
    digest as hex text and parsing a slice of it would be a text round trip per row)."""
    low = f"CAST((MD5_NUMBER({gen.sql(e, 'this')}) & 4294967295) AS UBIGINT)"
    return (
        f"((({low} & 255) << 24) | ((({low} >> 8) & 255) << 16)"
        f" | ((({low} >> 16) & 255) << 8) | ({low} >> 24))"
    )


def _duckdb_parse_timestamp(gen: Generator, e: ParseTimestamp) -> str:
    """A text ending in ``Z`` (how tracking libraries write instants) is read by the
    plain TIMESTAMP cast, which gives the same instant as the time-zone-aware cast on
    every such text (a property test checks it) at a fraction of its cost; any other
    text goes through the aware cast, which applies its offset or zone name."""
    v = gen.sql(e, "this")
    return (
        f"CASE WHEN SUFFIX({v}, 'Z') THEN TRY_CAST({v} AS TIMESTAMP)"
        f" ELSE CAST(TRY_CAST({v} AS TIMESTAMPTZ) AS TIMESTAMP) END"
    )


def _duckdb_top_value(gen: Generator, e: TopValue) -> str:
    """The ``HISTOGRAM``'s (value, count) entries sorted by count descending, then
    value: the first entry's value."""
    counts = f"HISTOGRAM({gen.sql(e, 'this')})"
    if e.args.get("where") is not None:
        counts += f" FILTER(WHERE {gen.sql(e, 'where')})"
    return (
        f"ARRAY_SORT(LIST_TRANSFORM(MAP_ENTRIES({counts}),"
        " top_entry -> {'n': -top_entry.value, 'k': top_entry.key}))[1].k"
    )


def _duckdb_json(template: str) -> Transform:
    """A JSON read spelled by ``template`` over ``{type}`` (JSON_TYPE of the field,
    DuckDB's type names) and ``{text}`` (the field as text)."""

    def sql(gen: Generator, e: JsonField) -> str:
        args = f"{gen.sql(e, 'this')}, {gen.sql(e, 'path')}"
        return template.format(type=f"JSON_TYPE({args})", text=f"JSON_EXTRACT_STRING({args})")

    return sql


def _duckdb_latest(gen: Generator, e: Latest) -> str:
    """``ARG_MAX`` over a struct of the ordering (structs compare field by field)."""
    order = exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier(f"k{i}"), expression=k.copy())
            for i, k in enumerate(e.expressions)
        ]
    )
    return gen.sql(exp.ArgMax(this=e.this.copy(), expression=order))


def _duckdb_chain_step(gen: Generator, e: ChainStep) -> str:
    """An ASOF join: each event takes the latest strictly earlier chain row."""
    query = (
        exp.select(
            _key(e, "e"), _quoted_column("ts", "e"), exp.alias_(_chain_start(e, "c"), "start")
        )
        .from_(exp.Subquery(this=e.this.copy(), alias=exp.TableAlias(this=exp.to_identifier("e"))))
        .join(
            exp.Subquery(
                this=e.args["chain"].copy(), alias=exp.TableAlias(this=exp.to_identifier("c"))
            ),
            on=exp.and_(
                exp.EQ(this=_key(e, "e"), expression=_key(e, "c")),
                exp.GT(this=_quoted_column("ts", "e"), expression=_quoted_column("ts", "c")),
            ),
            join_type="ASOF",
        )
    )
    return gen.sql(query)


class SegflowDuckDB(SqlglotDuckDB):
    """The embedded default."""

    class Generator(SqlglotDuckDB.Generator):
        TRANSFORMS = transforms(
            SqlglotDuckDB.Generator.TRANSFORMS,
            {
                exp.EndsWith: lambda gen, e: gen.func("SUFFIX", e.this, e.expression),
                BucketHash: _duckdb_bucket_hash,
                ParseTimestamp: _duckdb_parse_timestamp,
                TopValue: _duckdb_top_value,
                JsonNumber: _duckdb_json(
                    "CASE WHEN {type} IN ('DOUBLE', 'BIGINT', 'UBIGINT', 'HUGEINT')"
                    " THEN CAST({text} AS DOUBLE) END"
                ),
                JsonString: _duckdb_json("CASE WHEN {type} = 'VARCHAR' THEN {text} END"),
                JsonBoolean: _duckdb_json(
                    "CASE WHEN {type} = 'BOOLEAN' THEN CAST({text} AS BOOLEAN) END"
                ),
                JsonExists: lambda gen, e: gen.func("JSON_EXISTS", e.this, e.args["path"]),
                JsonText: lambda gen, e: (
                    f"CAST({gen.func('JSON_EXTRACT', e.this, e.args['path'])} AS TEXT)"
                ),
                AsJsonText: lambda gen, e: f"CAST({gen.func('TO_JSON', e.this)} AS TEXT)",
                Latest: _duckdb_latest,
                ChainStep: _duckdb_chain_step,
            },
        )


# -- PostgreSQL -----------------------------------------------------------------

PARSE_TIMESTAMP_FUNCTION: Final = "segflow_parse_ts"
"""The function the PostgreSQL store defines (``store.postgres.schema``) to read an
ISO-8601 text as a naive UTC timestamp, NULL when it is not one: PostgreSQL has no
TRY_CAST, and its cast accepts words (``now``, ``today``) whose value is not fixed."""


def _postgres_bucket_hash(gen: Generator, e: BucketHash) -> str:
    """The digest's first eight hex digits read as a 32-bit string, then as a
    (non-negative) BIGINT."""
    return f"CAST(CAST('x' || SUBSTR(MD5({gen.sql(e, 'this')}), 1, 8) AS BIT(32)) AS BIGINT)"


def _postgres_ends_with(gen: Generator, e: exp.EndsWith) -> str:
    suffix = gen.sql(e, "expression")
    return f"(RIGHT({gen.sql(e, 'this')}, LENGTH({suffix})) = {suffix})"


def _postgres_top_value(gen: Generator, e: TopValue) -> str:
    """The rows' values gathered into an array and counted in a scalar subquery; ties
    go to the smallest value by code point (``COLLATE "C"``), as on DuckDB."""
    values = f"ARRAY_AGG({gen.sql(e, 'this')})"
    if e.args.get("where") is not None:
        values += f" FILTER(WHERE {gen.sql(e, 'where')})"
    return (
        f"(SELECT top_value.v FROM UNNEST({values}) AS top_value(v)"
        " WHERE NOT top_value.v IS NULL GROUP BY top_value.v"
        ' ORDER BY COUNT(*) DESC, top_value.v COLLATE "C" LIMIT 1)'
    )


def _pointer_array(gen: Generator, e: JsonField) -> str:
    """The JSON pointer literal as the text array ``#>`` takes."""
    path = e.args["path"]
    if not isinstance(path, exp.Literal) or not path.is_string:
        raise UnsupportedNode("JsonField with a computed path", _dialect_name(gen))
    pointer = path.this
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    return f"ARRAY[{', '.join(gen.sql(exp.Literal.string(x)) for x in parts)}]::TEXT[]"


def _postgres_json(template: str) -> Transform:
    """A JSON read spelled by ``template`` over ``{value}`` (the jsonb at the path),
    ``{type}`` (its ``JSONB_TYPEOF``) and ``{text}`` (its text, unquoted)."""

    def sql(gen: Generator, e: JsonField) -> str:
        doc, path = gen.sql(e, "this"), _pointer_array(gen, e)
        return template.format(
            value=f"({doc} #> {path})",
            type=f"JSONB_TYPEOF({doc} #> {path})",
            text=f"({doc} #>> {path})",
        )

    return sql


def _postgres_latest(gen: Generator, e: Latest) -> str:
    """The first value of the rows ordered by the ordering, descending."""
    order = ", ".join(f"{gen.sql(k)} DESC NULLS LAST" for k in e.expressions)
    return f"(ARRAY_AGG({gen.sql(e, 'this')} ORDER BY {order}))[1]"


def _postgres_chain_step(gen: Generator, e: ChainStep) -> str:
    """No ASOF join: the chain rows and the events in one ordered window per key, each
    event reading the ``(ts, start)`` pair of the latest chain row at least a
    microsecond (timestamps' resolution) before it."""
    side = _quoted_column("_side")
    chain = exp.select(
        _key(e, "c"),
        _quoted_column("ts", "c"),
        exp.alias_(_chain_start(e, "c"), "start", quoted=True),
        exp.alias_(exp.Literal.number(0), "_side", quoted=True),
    ).from_(
        exp.Subquery(
            this=e.args["chain"].copy(),
            alias=exp.TableAlias(this=exp.to_identifier("c", quoted=True)),
        )
    )
    events = exp.select(
        _key(e, "e"),
        _quoted_column("ts", "e"),
        exp.alias_(exp.cast(exp.null(), "TIMESTAMP"), "start", quoted=True),
        exp.alias_(exp.Literal.number(1), "_side", quoted=True),
    ).from_(
        exp.Subquery(
            this=e.this.copy(), alias=exp.TableAlias(this=exp.to_identifier("e", quoted=True))
        )
    )
    union = exp.union(chain, events, distinct=False)
    key = gen.sql(e.args["key"])
    latest = (
        f'(MAX(ARRAY["ts", "start"]) FILTER(WHERE "_side" = 0) OVER (PARTITION BY {key}'
        " ORDER BY \"ts\" RANGE BETWEEN UNBOUNDED PRECEDING AND INTERVAL '1 MICROSECOND'"
        " PRECEDING))[2]"
    )
    return (
        f'SELECT {key}, "ts", "start" FROM (SELECT {key}, "ts", {gen.sql(side)},'
        f' {latest} AS "start" FROM ({gen.sql(union)}) AS "u") AS "w"'
        f' WHERE {gen.sql(side)} = 1 AND NOT "start" IS NULL'
    )


def _postgres_any_value(gen: Generator, e: exp.AnyValue, where: str | None = None) -> str:
    """ANY_VALUE (PostgreSQL has it from version 16): the first non-NULL value."""
    v = gen.sql(e, "this")
    keep = f"NOT {v} IS NULL" + (f" AND ({where})" if where else "")
    return f"(ARRAY_AGG({v}) FILTER(WHERE {keep}))[1]"


class SegflowPostgres(SqlglotPostgres):
    """PostgreSQL (from version 15): every segflow node, with DuckDB's values.  The
    timestamp reader calls the store's ``segflow_parse_ts``; JSON reads use jsonb's
    path operators; structs and ARG_MAX, ASOF joins and TRY_CAST have no spelling and
    raise (the compiler's trees use ``Latest`` and ``ChainStep`` instead)."""

    class Generator(SqlglotPostgres.Generator):
        TRANSFORMS = transforms(
            SqlglotPostgres.Generator.TRANSFORMS,
            {
                exp.CountIf: lambda gen, e: f"COUNT(*) FILTER(WHERE {gen.sql(e, 'this')})",
                exp.EndsWith: _postgres_ends_with,
                exp.AnyValue: _postgres_any_value,
                BucketHash: _postgres_bucket_hash,
                ParseTimestamp: lambda gen, e: gen.func(PARSE_TIMESTAMP_FUNCTION, e.this),
                TopValue: _postgres_top_value,
                JsonNumber: _postgres_json(
                    "CASE WHEN {type} = 'number' THEN CAST({text} AS DOUBLE PRECISION) END"
                ),
                JsonString: _postgres_json("CASE WHEN {type} = 'string' THEN {text} END"),
                JsonBoolean: _postgres_json(
                    "CASE WHEN {type} = 'boolean' THEN CAST({text} AS BOOLEAN) END"
                ),
                JsonExists: _postgres_json("(NOT {value} IS NULL)"),
                JsonText: _postgres_json("CAST({value} AS TEXT)"),
                AsJsonText: lambda gen, e: f"CAST({gen.func('TO_JSONB', e.this)} AS TEXT)",
                Latest: _postgres_latest,
                ChainStep: _postgres_chain_step,
            },
            lacking=(exp.ArgMax, exp.Struct, exp.StructExtract, exp.TryCast),
        )

        def filter_sql(self, expression: exp.Filter) -> str:
            agg = expression.this
            if isinstance(agg, exp.AnyValue):
                return _postgres_any_value(self, agg, self.sql(expression.expression, "this"))
            return super().filter_sql(expression)

        def join_sql(self, expression: exp.Join) -> str:
            if expression.method == "ASOF":
                if self.unsupported_level == ErrorLevel.IMMEDIATE:
                    raise UnsupportedNode("ASOF JOIN", _dialect_name(self))
                self.unsupported(f"ASOF JOIN is not supported on {_dialect_name(self)}")
            return super().join_sql(expression)


DIALECTS: dict[str, type[Dialect]] = {"duckdb": SegflowDuckDB, "postgres": SegflowPostgres}


def dialect_class(name: str) -> type[Dialect]:
    """segflow's dialect class for an engine name; an engine it has none for is refused
    (sqlglot's own class would render segflow's nodes as unknown functions)."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(
            f"segflow's batch compiler has no dialect {name!r} (it has: {', '.join(DIALECTS)})"
        ) from None
