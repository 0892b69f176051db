"""ClickHouse's spelling of segflow's nodes (as chDB, embedded ClickHouse, runs it).

The query runs with the session settings of ``SETTINGS``: a LEFT JOIN's unmatched
columns are NULL (``join_use_nulls``), an aggregate over no rows is NULL as in SQL
(``aggregate_functions_null_for_empty``), a JSON text writes ``/`` unescaped as DuckDB
does, and the session's time zone is UTC.  Timestamps are ``DateTime64(6, 'UTC')``:
microseconds, as DuckDB's."""

from __future__ import annotations

from typing import Final

from sqlglot import exp
from sqlglot.dialects.clickhouse import ClickHouse as SqlglotClickHouse
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
from segflow.model.time import INSTANT_TEXT

TIMESTAMP: Final = "DateTime64(6, 'UTC')"

SETTINGS: Final[dict[str, int | str]] = {
    "join_use_nulls": 1,
    "aggregate_functions_null_for_empty": 1,
    "output_format_json_escape_forward_slashes": 0,
    "session_timezone": "UTC",
}
"""Settings every batch query runs with (``store.clickhouse.batch``)."""

FIRST_MICROS: Final = -62_135_596_800_000_000
"""0001-01-01T00:00:00 UTC in µs since 1970; ``PAST_MICROS``: 10000-01-01."""
PAST_MICROS: Final = 253_402_300_800_000_000


def _clickhouse_bucket_hash(gen: Generator, e: BucketHash) -> str:
    """The digest's first four bytes, reversed, read as a little-endian UInt32."""
    return f"reinterpretAsUInt32(reverse(substring(MD5({gen.sql(e, 'this')}), 1, 4)))"


def _clickhouse_parse_timestamp(gen: Generator, e: ParseTimestamp) -> str:
    """The text's parts taken by the regular expression, checked (month, day of that
    month, hour, minute, second, offset), then counted in microseconds from the days
    since 1970-01-01 of the proleptic Gregorian calendar (Howard Hinnant's
    ``days_from_civil``, valid for every year 0001-9999): an instant outside ClickHouse's
    calendar range keeps its order against every other, as on DuckDB."""
    v = gen.sql(e, "this")
    g = f"extractGroups(ifNull({v}, ''), {gen.sql(exp.Literal.string(INSTANT_TEXT))})"

    def part(i: int) -> str:
        return f"toInt64OrZero(_ts_g[{i}])"

    y, mo, d = part(1), part(2), part(3)
    h, mi, s = part(4), part(5), part(6)
    us = "toInt64OrZero(rightPad(substring(_ts_g[7], 1, 6), 6, '0'))"
    off_h, off_m = part(10), part(11)
    era_y = f"({y} - if({mo} <= 2, 1, 0))"
    era = f"intDiv({era_y}, 400)"
    yoe = f"({era_y} - {era} * 400)"
    doy = f"intDiv(153 * ({mo} + if({mo} > 2, -3, 9)) + 2, 5) + {d} - 1"
    doe = f"({yoe} * 365 + intDiv({yoe}, 4) - intDiv({yoe}, 100) + {doy})"
    days = f"({era} * 146097 + {doe} - 719468)"
    leap = f"(({y} % 4 = 0 AND {y} % 100 != 0) OR {y} % 400 = 0)"
    month_days = f"[31, if({leap}, 29, 28), 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][{mo}]"
    offset = f"if(_ts_g[9] = '-', -1, 1) * ({off_h} * 60 + {off_m})"
    micros = f"((({days} * 24 + {h}) * 60 + {mi} - {offset}) * 60 + {s}) * 1000000 + {us}"
    valid = (
        f"length(_ts_g) = 11 AND {y} >= 1 AND {mo} BETWEEN 1 AND 12 AND {d} >= 1"
        f" AND {d} <= {month_days} AND {h} <= 23 AND {mi} <= 59 AND {s} <= 59"
        f" AND {off_h} <= 23 AND {off_m} <= 59"
        # an offset can move it out of years 1-9999 UTC: no instant, as in Python
        f" AND {micros} >= {FIRST_MICROS} AND {micros} < {PAST_MICROS}"
    )
    return (
        f"arrayMap(_ts_g -> if({valid}, fromUnixTimestamp64Micro({micros}, 'UTC'), NULL), [{g}])[1]"
    )


def _clickhouse_top_value(gen: Generator, e: TopValue) -> str:
    """``sumMap`` counts each value (its keys come sorted, byte-wise: by code point for
    UTF-8); the first key of greatest count.  No value: NULL."""
    v = gen.sql(e, "this")
    cond = f"NOT {v} IS NULL"
    if e.args.get("where") is not None:
        cond = f"({gen.sql(e, 'where')}) AND {cond}"
    counts = f"sumMapIf(([assumeNotNull({v})], [toUInt64(1)]), {cond})"
    return (
        "arrayMap(_top -> if(empty(_top.1), NULL, _top.1[indexOf(_top.2, arrayMax(_top.2))]),"
        f" [{counts}])[1]"
    )


def _keys(gen: Generator, e: JsonField) -> str:
    """The JSON pointer literal as ClickHouse's JSON functions' key arguments."""
    path = e.args["path"]
    if not isinstance(path, exp.Literal) or not path.is_string:
        raise UnsupportedNode("JsonField with a computed path", dialect_name(gen))
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.this.split("/")[1:]]
    return ", ".join(gen.sql(exp.Literal.string(x)) for x in parts)


def _clickhouse_json(template: str) -> Transform:
    """A JSON read spelled by ``template`` over ``{type}`` (``JSONType`` of the field)
    and ``{f}`` (a JSON function's name made into the call on the document and keys)."""

    def sql(gen: Generator, e: JsonField) -> str:
        doc, keys = gen.sql(e, "this"), _keys(gen, e)
        return template.format(
            type=f"JSONType({doc}, {keys})",
            has=f"JSONHas({doc}, {keys})",
            number=f"JSONExtractFloat({doc}, {keys})",
            string=f"JSONExtractString({doc}, {keys})",
            boolean=f"JSONExtractBool({doc}, {keys})",
            raw=f"JSONExtractRaw({doc}, {keys})",
        )

    return sql


def _clickhouse_latest(gen: Generator, e: Latest) -> str:
    """``argMax`` over a tuple of the ordering (tuples compare element by element); the
    value goes in a one-element tuple, which is never NULL (``argMax`` skips rows whose
    value is NULL)."""
    order = ", ".join(gen.sql(k) for k in e.expressions)
    return f"argMax(tuple({gen.sql(e, 'this')}), tuple({order})).1"


def _clickhouse_chain_step(gen: Generator, e: ChainStep) -> str:
    """An ASOF join: each event takes the chain row of the greatest ``ts`` strictly
    before its own (ClickHouse's ASOF join with ``>``); events with none are left out."""
    query = (
        exp.select(
            chain_key(e, "e"),
            quoted_column("ts", "e"),
            exp.alias_(chain_start(e, "c"), "start", quoted=True),
        )
        .from_(
            exp.Subquery(
                this=e.this.copy(), alias=exp.TableAlias(this=exp.to_identifier("e", quoted=True))
            )
        )
        .join(
            exp.Subquery(
                this=e.args["chain"].copy(),
                alias=exp.TableAlias(this=exp.to_identifier("c", quoted=True)),
            ),
            on=exp.and_(
                exp.EQ(this=chain_key(e, "e"), expression=chain_key(e, "c")),
                exp.GT(this=quoted_column("ts", "e"), expression=quoted_column("ts", "c")),
            ),
            join_type="ASOF",
        )
    )
    return gen.sql(query)


def _clickhouse_any_value(gen: Generator, e: exp.AnyValue) -> str:
    """ClickHouse's ``any`` skips NULLs, as DuckDB's ``ANY_VALUE``."""
    return gen.func("any", e.this)


class SegflowClickHouse(SqlglotClickHouse):
    """ClickHouse (as chDB runs it): every segflow node, with DuckDB's values."""

    class Generator(SqlglotClickHouse.Generator):
        TRANSFORMS = transforms(
            SqlglotClickHouse.Generator.TRANSFORMS,
            {
                exp.AnyValue: _clickhouse_any_value,
                exp.LogicalOr: lambda gen, e: gen.func("max", e.this),
                BucketHash: _clickhouse_bucket_hash,
                ParseTimestamp: _clickhouse_parse_timestamp,
                TopValue: _clickhouse_top_value,
                JsonNumber: _clickhouse_json(
                    "if({type} IN ('Int64', 'UInt64', 'Double'), {number}, NULL)"
                ),
                JsonString: _clickhouse_json("if({type} = 'String', {string}, NULL)"),
                JsonBoolean: _clickhouse_json("if({type} = 'Bool', {boolean}, NULL)"),
                JsonExists: _clickhouse_json("toBool({has})"),
                JsonText: _clickhouse_json("if({has}, {raw}, NULL)"),
                AsJsonText: lambda gen, e: gen.func("toJSONString", e.this),
                Latest: _clickhouse_latest,
                ChainStep: _clickhouse_chain_step,
            },
        )

        def identifier_sql(self, expression: exp.Identifier) -> str:
            """A quoted name with ``\\`` and ``"`` escaped by a backslash: ClickHouse reads
            backslash escapes inside quoted names, so sqlglot's doubled quote alone would
            let a name ending in ``\\`` run on into the SQL after it."""
            if not expression.quoted:
                return super().identifier_sql(expression)
            return '"' + expression.name.replace("\\", "\\\\").replace('"', '\\"') + '"'

        def datatype_sql(self, expression: exp.DataType) -> str:
            if expression.is_type(exp.DataType.Type.TIMESTAMP):
                return f"Nullable({TIMESTAMP})"
            return super().datatype_sql(expression)

        def filter_sql(self, expression: exp.Filter) -> str:
            agg = expression.this
            if isinstance(agg, exp.AnyValue):
                return self.func("anyIf", agg.this, expression.expression.this)
            return super().filter_sql(expression)
