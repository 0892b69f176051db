"""DuckDB's spelling of segflow's nodes: the embedded default."""

from __future__ import annotations

from typing import Final

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB as SqlglotDuckDB
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
    chain_key,
    chain_start,
    quoted_column,
    transforms,
)
from segflow.model.time import INSTANT_TEXT


def _duckdb_bucket_hash(gen: Generator, e: BucketHash) -> str:
    """``md5_number`` reads the digest little-endian: its low 32 bits are the first
    four bytes swapped, so they are moved back by integer arithmetic (formatting the
    digest as hex text and parsing a slice of it would be a text round trip per row)."""
    low = f"CAST((MD5_NUMBER({gen.sql(e, 'this')}) & 4294967295) AS UBIGINT)"
    return (
        f"((({low} & 255) << 24) | ((({low} >> 8) & 255) << 16)"
        f" | ((({low} >> 16) & 255) << 8) | ({low} >> 24))"
    )


_FIRST: Final = "TIMESTAMP '0001-01-01'"
_PAST: Final = "TIMESTAMP '10000-01-01'"
_TRACKER_FORM: Final = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?Z"
)
"""The form tracking libraries write, which DuckDB's plain TIMESTAMP cast reads as
``INSTANT_TEXT`` does (a day its month lacks: NULL)."""
_GROUPS: Final = "['y', 'mo', 'd', 'h', 'mi', 's', 'f', 'z', 'sign', 'oh', 'om']"


def _duckdb_parse_timestamp(gen: Generator, e: ParseTimestamp) -> str:
    """``INSTANT_TEXT``'s parts taken by ``REGEXP_EXTRACT`` (empty when absent), the
    ranges a regular expression cannot hold checked, the date and time cast from a
    canonical text (a day its month lacks: NULL) and the offset subtracted.  The form
    trackers write skips the parts: the plain cast reads it (a property test checks
    both against Python's reading)."""
    v = gen.sql(e, "this")
    pattern = gen.sql(exp.Literal.string(INSTANT_TEXT))
    tracker = gen.sql(exp.Literal.string(_TRACKER_FORM))

    def part(name: str) -> str:
        return f"COALESCE(NULLIF(_ts.{name}, ''), '00')"

    clock = f"CONCAT({part('h')}, ':', {part('mi')}, ':', {part('s')})"
    fraction = "RPAD(LEFT(_ts.f, 6), 6, '0')"
    day = "CONCAT(_ts.y, '-', _ts.mo, '-', _ts.d)"
    local = f"TRY_CAST(CONCAT({day}, ' ', {clock}, '.', {fraction}) AS TIMESTAMP)"
    minutes = f"(CAST({part('oh')} AS INTEGER) * 60 + CAST({part('om')} AS INTEGER))"
    offset = f"TO_MINUTES(CASE WHEN _ts.sign = '-' THEN {minutes} ELSE -{minutes} END)"
    valid = (
        f"_ts.y > '0000' AND {part('h')} < '24' AND {part('mi')} < '60' AND {part('s')} < '60'"
        f" AND {part('oh')} < '24' AND {part('om')} < '60'"
    )
    parts = (
        f"LIST_TRANSFORM([REGEXP_EXTRACT({v}, {pattern}, {_GROUPS})],"
        f" _ts -> CASE WHEN {valid} THEN {local} + {offset} END)[1]"
    )
    t = (
        f"CASE WHEN REGEXP_FULL_MATCH({v}, {tracker}) THEN TRY_CAST({v} AS TIMESTAMP)"
        f" ELSE {parts} END"
    )
    # an offset can move it out of years 1-9999 UTC: no instant, as in Python
    # (DuckDB computes the repeated expression once)
    return f"CASE WHEN {t} >= {_FIRST} AND {t} < {_PAST} THEN {t} END"


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
            chain_key(e, "e"), quoted_column("ts", "e"), exp.alias_(chain_start(e, "c"), "start")
        )
        .from_(exp.Subquery(this=e.this.copy(), alias=exp.TableAlias(this=exp.to_identifier("e"))))
        .join(
            exp.Subquery(
                this=e.args["chain"].copy(), alias=exp.TableAlias(this=exp.to_identifier("c"))
            ),
            on=exp.and_(
                exp.EQ(this=chain_key(e, "e"), expression=chain_key(e, "c")),
                exp.GT(this=quoted_column("ts", "e"), expression=quoted_column("ts", "c")),
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
