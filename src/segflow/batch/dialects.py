"""segflow's expression nodes and the SQL dialects that spell them.

The batch compiler builds one typed sqlglot tree per plan.  Where sqlglot has a node
for what the plan needs (``exp.CountIf``, ``exp.StartsWith``, ``exp.EndsWith``, ...)
the tree holds that node; what sqlglot lacks is a small node defined here (the bucket
hash, the typed reads of the overflow JSON, the ISO-8601 timestamp reader, the most
frequent value).  Each engine is a subclass of sqlglot's dialect whose generator
``TRANSFORMS`` spell only what differs, as sqlglot's own dialects do.

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
from typing import Any

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
            },
        )


# -- PostgreSQL -----------------------------------------------------------------


def _postgres_bucket_hash(gen: Generator, e: BucketHash) -> str:
    """The digest's first eight hex digits read as a 32-bit string, then as a
    (non-negative) BIGINT."""
    return f"CAST(CAST('x' || SUBSTR(MD5({gen.sql(e, 'this')}), 1, 8) AS BIT(32)) AS BIGINT)"


def _postgres_ends_with(gen: Generator, e: exp.EndsWith) -> str:
    suffix = gen.sql(e, "expression")
    return f"(RIGHT({gen.sql(e, 'this')}, LENGTH({suffix})) = {suffix})"


class SegflowPostgres(SqlglotPostgres):
    """PostgreSQL: the nodes it computes with DuckDB's values.  The timestamp reader
    (no TRY_CAST), the JSON reads (jsonb types and number texts differ), the most
    frequent value (``mode()`` does not define its ties), structs and ARG_MAX (the cart
    total) and ASOF joins (sequences) have no spelling and raise.  Traits packed into
    one scan read ``ANY_VALUE``, which PostgreSQL has from version 16."""

    class Generator(SqlglotPostgres.Generator):
        TRANSFORMS = transforms(
            SqlglotPostgres.Generator.TRANSFORMS,
            {
                exp.CountIf: lambda gen, e: f"COUNT(*) FILTER(WHERE {gen.sql(e, 'this')})",
                exp.EndsWith: _postgres_ends_with,
                BucketHash: _postgres_bucket_hash,
            },
            lacking=(exp.ArgMax, exp.Struct, exp.StructExtract, exp.TryCast),
        )

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
