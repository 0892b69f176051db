"""Spark SQL's spelling of segflow's nodes (Spark 4, local or on a cluster).

The query runs with the session settings of ``SETTINGS``: the session's time zone is
UTC, so a ``TIMESTAMP`` (microseconds) holds the naive UTC instant DuckDB's does, and
ANSI mode is on (a cast that cannot be made fails rather than giving NULL), as on
DuckDB.  The overflow JSON is read as a ``VARIANT`` (``parse_json``): a document with a
repeated key fails the query, as Spark's reader refuses it."""

from __future__ import annotations

from typing import Final

from sqlglot import exp
from sqlglot.dialects.spark import Spark as SqlglotSpark
from sqlglot.generator import Generator

from segflow.batch.dialects.clickhouse import FIRST_MICROS, PAST_MICROS
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
from segflow.model.time import INSTANT_TEXT

SETTINGS: Final[dict[str, str]] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.parquet.inferTimestampNTZ.enabled": "false",
}
"""Settings every batch query runs with (``store.spark.connection``)."""


def _spark_bucket_hash(gen: Generator, e: BucketHash) -> str:
    """The digest's first eight hex digits read as a base-16 number (``conv`` gives its
    decimal text, at most 4294967295), as a BIGINT."""
    return f"CAST(CONV(SUBSTR(MD5({gen.sql(e, 'this')}), 1, 8), 16, 10) AS BIGINT)"


JAVA_INSTANT_TEXT: Final = INSTANT_TEXT.removesuffix("$") + r"\z"
"""``INSTANT_TEXT`` for Java's regular expressions, whose ``$`` also matches before a
final line terminator (``\\u2028`` among them): ``\\z`` is the end of the text."""


def _spark_parse_timestamp(gen: Generator, e: ParseTimestamp) -> str:
    """The parts of ``INSTANT_TEXT`` joined by ``|`` and split into an array, then
    checked and counted in microseconds from 1970 as on ClickHouse (proleptic
    Gregorian, ``days_from_civil``); ``TIMESTAMP_MICROS`` makes the instant."""
    v = gen.sql(e, "this")
    regex = gen.sql(exp.Literal.string(JAVA_INSTANT_TEXT))
    joined = "|".join(f"${i}" for i in range(1, 12))
    groups = f"SPLIT(REGEXP_REPLACE({v}, {regex}, '{joined}'), '[|]')"

    def group(i: int) -> str:
        return f"COALESCE(TRY_CAST(_ts_g[{i - 1}] AS BIGINT), 0)"

    # each part read once, as BIGINT: year, month, day, hour, minute, second,
    # microseconds, the offset in minutes east, its hours, its minutes
    us = "COALESCE(TRY_CAST(RPAD(SUBSTR(_ts_g[6], 1, 6), 6, '0') AS BIGINT), 0)"
    off = f"IF(_ts_g[8] = '-', -1, 1) * ({group(10)} * 60 + {group(11)})"
    parts = ", ".join([*(group(i) for i in range(1, 7)), us, off, group(10), group(11)])
    y, mo, d, h, mi, s, us, offset, off_h, off_m = (f"_ts_p[{i}]" for i in range(10))
    era_y = f"({y} - IF({mo} <= 2, 1, 0))"
    era = f"({era_y} DIV 400)"
    yoe = f"({era_y} - {era} * 400)"
    doy = f"(153 * ({mo} + IF({mo} > 2, -3, 9)) + 2) DIV 5 + {d} - 1"
    doe = f"({yoe} * 365 + {yoe} DIV 4 - {yoe} DIV 100 + {doy})"
    days = f"({era} * 146097 + {doe} - 719468)"
    leap = f"(({y} % 4 = 0 AND {y} % 100 != 0) OR {y} % 400 = 0)"
    month_days = (
        f"TRY_ELEMENT_AT(ARRAY(31, IF({leap}, 29, 28), 31, 30, 31, 30, 31, 31, 30, 31, 30, 31),"
        f" CAST({mo} AS INT))"
    )
    seconds = f"((({days} * 24 + {h}) * 60 + {mi} - {offset}) * 60 + {s})"
    micros = f"{seconds} * 1000000 + {us}"
    valid = (
        f"{y} >= 1 AND {mo} BETWEEN 1 AND 12 AND {d} >= 1"
        f" AND {d} <= {month_days} AND {h} <= 23 AND {mi} <= 59 AND {s} <= 59"
        f" AND {off_h} <= 23 AND {off_m} <= 59"
        # an offset can move it out of years 1-9999 UTC: no instant, as in Python
        f" AND _ts_m >= {FIRST_MICROS} AND _ts_m < {PAST_MICROS}"
    )
    # a lambda per step names what it computes, so each is spelled (and run) once
    instant = f"TRANSFORM(ARRAY({micros}), _ts_m -> IF({valid}, TIMESTAMP_MICROS(_ts_m), NULL))[0]"
    checked = f"TRANSFORM(ARRAY(ARRAY({parts})), _ts_p -> {instant})[0]"
    reads = f"TRANSFORM(ARRAY({groups}), _ts_g -> {checked})[0]"
    return f"CASE WHEN {v} RLIKE {regex} THEN {reads} END"


def _spark_top_value(gen: Generator, e: TopValue) -> str:
    """``MODE`` with ``deterministic``: the smallest of the most frequent values (strings
    compare by UTF-8 bytes, i.e. by code point); it skips NULLs."""
    sql = f"MODE({gen.sql(e, 'this')}, TRUE)"
    if e.args.get("where") is not None:
        sql += f" FILTER(WHERE {gen.sql(e, 'where')})"
    return sql


def _variant_path(gen: Generator, e: JsonField) -> str:
    """The JSON pointer literal as a variant path of bracketed keys (``$["a"]["b"]``)."""
    path = e.args["path"]
    if not isinstance(path, exp.Literal) or not path.is_string:
        raise UnsupportedNode("JsonField with a computed path", dialect_name(gen))
    keys = [p.replace("~1", "/").replace("~0", "~") for p in path.this.split("/")[1:]]
    parts = []
    for key in keys:
        if '"' not in key and "\\" not in key:
            parts.append(f'["{key}"]')
        elif "'" not in key and "\\" not in key:
            parts.append(f"['{key}']")
        else:
            raise UnsupportedNode("JsonField with a key holding quotes or '\\'", dialect_name(gen))
    return gen.sql(exp.Literal.string("$" + "".join(parts)))


def _json_text(variant: str) -> str:
    """A variant's JSON text, a number spelled by its value (Spark's reader keeps no
    ``2.0`` apart from ``2``): an integer's digits (a whole DOUBLE's too), any other
    number its DOUBLE's text, so a value from a document or from a DOUBLE column is
    one text."""
    kind = f"SCHEMA_OF_VARIANT({variant})"
    number = f"CAST({variant} AS DOUBLE)"
    return (
        f"CASE WHEN {kind} = 'BIGINT' THEN CAST(CAST({variant} AS BIGINT) AS STRING)"
        f" WHEN {kind} IN ('DOUBLE', 'FLOAT') OR {kind} LIKE 'DECIMAL(%' THEN"
        f" CASE WHEN {number} % 1 = 0 AND ABS({number}) < 9.0E18"
        f" THEN CAST(CAST({number} AS BIGINT) AS STRING) ELSE CAST({number} AS STRING) END"
        f" ELSE TO_JSON({variant}) END"
    )


def _spark_json(template: str) -> Transform:
    """A JSON read spelled by ``template`` over ``{value}`` (the variant at the path,
    NULL when absent; a JSON null is a variant null, not NULL), ``{type}`` (its
    ``SCHEMA_OF_VARIANT``) and ``{text}`` (its JSON text, as ``AsJsonText`` spells it)."""

    def sql(gen: Generator, e: JsonField) -> str:
        value = f"TRY_VARIANT_GET(PARSE_JSON({gen.sql(e, 'this')}), {_variant_path(gen, e)})"
        return template.format(
            value=value, type=f"SCHEMA_OF_VARIANT({value})", text=_json_text(value)
        )

    return sql


def _spark_latest(gen: Generator, e: Latest) -> str:
    """``MAX_BY`` over a struct of the ordering (structs compare field by field); the
    value goes in a struct of its own, so a NULL value is kept."""
    order = ", ".join(f"'k{i}', {gen.sql(k)}" for i, k in enumerate(e.expressions))
    return f"MAX_BY(NAMED_STRUCT('v', {gen.sql(e, 'this')}), NAMED_STRUCT({order})).v"


def _spark_chain_step(gen: Generator, e: ChainStep) -> str:
    """No ASOF join: the chain rows and the step's events in one window per key ordered
    by microseconds since 1970, each event reading the greatest ``(ts, start)`` of the
    chain rows at least a microsecond (timestamps' resolution) before it."""
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
        "MAX(CASE WHEN `_side` = 0 THEN NAMED_STRUCT('ts', `ts`, 'start', `start`) END)"
        f" OVER (PARTITION BY {key} ORDER BY UNIX_MICROS(`ts`)"
        " RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING).start"
    )
    return (
        f"SELECT {key}, `ts`, `start` FROM (SELECT {key}, `ts`, {gen.sql(side)},"
        f" {latest} AS `start` FROM ({gen.sql(union)}) AS `u`) AS `w`"
        f" WHERE {gen.sql(side)} = 1 AND NOT `start` IS NULL"
    )


def _spark_any_value(gen: Generator, e: exp.AnyValue, where: str | None = None) -> str:
    """``ANY_VALUE`` skipping NULLs (its second argument), as DuckDB's."""
    sql = f"ANY_VALUE({gen.sql(e, 'this')}, TRUE)"
    return sql + (f" FILTER(WHERE {where})" if where else "")


class SegflowSpark(SqlglotSpark):
    """Spark SQL (from version 4): every segflow node, with DuckDB's values."""

    class Generator(SqlglotSpark.Generator):
        TRANSFORMS = transforms(
            SqlglotSpark.Generator.TRANSFORMS,
            {
                exp.AnyValue: _spark_any_value,
                BucketHash: _spark_bucket_hash,
                ParseTimestamp: _spark_parse_timestamp,
                TopValue: _spark_top_value,
                JsonNumber: _spark_json(
                    "CASE WHEN {type} IN ('BIGINT', 'DOUBLE', 'FLOAT') OR {type} LIKE 'DECIMAL(%'"
                    " THEN CAST({value} AS DOUBLE) END"
                ),
                JsonString: _spark_json(
                    "CASE WHEN {type} = 'STRING' THEN CAST({value} AS STRING) END"
                ),
                JsonBoolean: _spark_json(
                    "CASE WHEN {type} = 'BOOLEAN' THEN CAST({value} AS BOOLEAN) END"
                ),
                JsonExists: _spark_json("(NOT {value} IS NULL)"),
                JsonText: _spark_json("{text}"),
                AsJsonText: lambda gen, e: _json_text(f"CAST({gen.sql(e, 'this')} AS VARIANT)"),
                Latest: _spark_latest,
                ChainStep: _spark_chain_step,
            },
        )

        def filter_sql(self, expression: exp.Filter) -> str:
            agg = expression.this
            if isinstance(agg, exp.AnyValue):
                return _spark_any_value(self, agg, self.sql(expression.expression, "this"))
            return super().filter_sql(expression)


# Spark's string literals know \b, \n, \r, \t and \\ but read \a, \f and \v as the
# letters a, f and v: those characters are written as they are (a text holding them,
# a bucket's salt for one, must reach MD5 unchanged).
SegflowSpark.ESCAPED_SEQUENCES = {
    ch: esc for ch, esc in SegflowSpark.ESCAPED_SEQUENCES.items() if ch not in "\a\f\v"
}
