"""PostgreSQL's spelling of segflow's nodes (from version 15)."""

from __future__ import annotations

from typing import Final

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres as SqlglotPostgres
from sqlglot.errors import ErrorLevel
from sqlglot.generator import Generator

from segflow.batch.dialects.nodes import (
    AsJsonText,
    BucketHash,
    ChainStep,
    JsonBoolean,
    JsonExists,
    JsonField,
    JsonNumber,
    JsonString,
    JsonText,
    Latest,
    ParseTimestamp,
    TopValue,
    Transform,
    UnsupportedNode,
    chain_key,
    chain_start,
    dialect_name,
    quoted_column,
    transforms,
)

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
        raise UnsupportedNode("JsonField with a computed path", dialect_name(gen))
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
    side = quoted_column("_side")
    chain = exp.select(
        chain_key(e, "c"),
        quoted_column("ts", "c"),
        exp.alias_(chain_start(e, "c"), "start", quoted=True),
        exp.alias_(exp.Literal.number(0), "_side", quoted=True),
    ).from_(
        exp.Subquery(
            this=e.args["chain"].copy(),
            alias=exp.TableAlias(this=exp.to_identifier("c", quoted=True)),
        )
    )
    events = exp.select(
        chain_key(e, "e"),
        quoted_column("ts", "e"),
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
                    raise UnsupportedNode("ASOF JOIN", dialect_name(self))
                self.unsupported(f"ASOF JOIN is not supported on {dialect_name(self)}")
            return super().join_sql(expression)
