"""Every segflow node renders on each dialect, or raises naming the node and the dialect.

The DuckDB spellings are run on DuckDB here (and by every batch and conformance test);
the PostgreSQL spellings are pinned as text here and run on a server in
``test_postgres_nodes`` and the engines' conformance test; the ClickHouse spellings are
run on chDB in ``test_chdb_nodes`` and the engines' conformance test.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pytest
import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.postgres import Postgres as SqlglotPostgres
from sqlglot.errors import ErrorLevel

from segflow.batch.compile import BatchCompiler, Field
from segflow.batch.dialects import (
    DIALECTS,
    NODES,
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
    SegflowClickHouse,
    SegflowDuckDB,
    SegflowPostgres,
    SegflowSpark,
    TopValue,
    UnsupportedNode,
    dialect_class,
    transforms,
)
from segflow.model.definition import load_segment_text
from segflow.plan.planner import build_plan

AT = datetime(2026, 11, 1, 12, 0)
DOC = exp.column("doc")
PTR = exp.Literal.string("/a/b")
V = exp.column("v")

SAMPLES: dict[type[exp.Expression], exp.Expression] = {
    BucketHash: BucketHash(this=V),
    ParseTimestamp: ParseTimestamp(this=V),
    TopValue: TopValue(this=V, where=exp.column("ok")),
    JsonNumber: JsonNumber(this=DOC, path=PTR),
    JsonString: JsonString(this=DOC, path=PTR),
    JsonBoolean: JsonBoolean(this=DOC, path=PTR),
    JsonExists: JsonExists(this=DOC, path=PTR),
    JsonText: JsonText(this=DOC, path=PTR),
    AsJsonText: AsJsonText(this=V),
    Latest: Latest(this=V, expressions=[exp.column("t"), exp.column("n")]),
    ChainStep: ChainStep(
        this=exp.select("k", "ts").from_("x"),
        chain=exp.select("k", "ts").from_("y"),
        key=exp.to_identifier("k", quoted=True),
        first=True,
    ),
}

DUCKDB_TS = (  # the tracker form by the plain cast, the rest by the grammar's parts
    "CASE WHEN REGEXP_FULL_MATCH(v, '[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3])"
    ":[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?Z') THEN TRY_CAST(v AS TIMESTAMP)"
    " ELSE LIST_TRANSFORM([REGEXP_EXTRACT(v, "
)
DUCKDB_SQL: dict[type[exp.Expression], str] = {
    BucketHash: "(((CAST((MD5_NUMBER(v) & 4294967295) AS UBIGINT) & 255) << 24)"
    " | (((CAST((MD5_NUMBER(v) & 4294967295) AS UBIGINT) >> 8) & 255) << 16)"
    " | (((CAST((MD5_NUMBER(v) & 4294967295) AS UBIGINT) >> 16) & 255) << 8)"
    " | (CAST((MD5_NUMBER(v) & 4294967295) AS UBIGINT) >> 24))",
    ParseTimestamp: DUCKDB_TS,
    TopValue: "ARRAY_SORT(LIST_TRANSFORM(MAP_ENTRIES(HISTOGRAM(v) FILTER(WHERE ok)),"
    " top_entry -> {'n': -top_entry.value, 'k': top_entry.key}))[1].k",
    JsonNumber: "CASE WHEN JSON_TYPE(doc, '/a/b') IN ('DOUBLE', 'BIGINT', 'UBIGINT', 'HUGEINT')"
    " THEN CAST(JSON_EXTRACT_STRING(doc, '/a/b') AS DOUBLE) END",
    JsonString: "CASE WHEN JSON_TYPE(doc, '/a/b') = 'VARCHAR'"
    " THEN JSON_EXTRACT_STRING(doc, '/a/b') END",
    JsonBoolean: "CASE WHEN JSON_TYPE(doc, '/a/b') = 'BOOLEAN'"
    " THEN CAST(JSON_EXTRACT_STRING(doc, '/a/b') AS BOOLEAN) END",
    JsonExists: "JSON_EXISTS(doc, '/a/b')",
    JsonText: "CAST(JSON_EXTRACT(doc, '/a/b') AS TEXT)",
    AsJsonText: "CAST(TO_JSON(v) AS TEXT)",
    Latest: "ARG_MAX(v, {'k0': t, 'k1': n})",
    ChainStep: 'SELECT "e"."k", "e"."ts", "c"."ts" AS start FROM (SELECT k, ts FROM x) AS e'
    ' ASOF JOIN (SELECT k, ts FROM y) AS c ON "e"."k" = "c"."k" AND "e"."ts" > "c"."ts"',
}

PG_PATH = "ARRAY['a', 'b']::TEXT[]"
POSTGRES_SQL: dict[type[exp.Expression], str] = {
    BucketHash: "CAST(CAST('x' || SUBSTR(MD5(v), 1, 8) AS BIT(32)) AS BIGINT)",
    ParseTimestamp: "SEGFLOW_PARSE_TS(v)",
    TopValue: "(SELECT top_value.v FROM UNNEST(ARRAY_AGG(v) FILTER(WHERE ok)) AS top_value(v)"
    " WHERE NOT top_value.v IS NULL GROUP BY top_value.v"
    ' ORDER BY COUNT(*) DESC, top_value.v COLLATE "C" LIMIT 1)',
    JsonNumber: f"CASE WHEN JSONB_TYPEOF(doc #> {PG_PATH}) = 'number'"
    f" THEN CAST((doc #>> {PG_PATH}) AS DOUBLE PRECISION) END",
    JsonString: f"CASE WHEN JSONB_TYPEOF(doc #> {PG_PATH}) = 'string' THEN (doc #>> {PG_PATH}) END",
    JsonBoolean: f"CASE WHEN JSONB_TYPEOF(doc #> {PG_PATH}) = 'boolean'"
    f" THEN CAST((doc #>> {PG_PATH}) AS BOOLEAN) END",
    JsonExists: f"(NOT (doc #> {PG_PATH}) IS NULL)",
    JsonText: f"CAST((doc #> {PG_PATH}) AS TEXT)",
    AsJsonText: "CAST(TO_JSONB(v) AS TEXT)",
    Latest: "(ARRAY_AGG(v ORDER BY t DESC NULLS LAST, n DESC NULLS LAST))[1]",
    ChainStep: 'SELECT "k", "ts", "start" FROM (SELECT "k", "ts", "_side",'
    ' (MAX(ARRAY["ts", "start"]) FILTER(WHERE "_side" = 0) OVER (PARTITION BY "k"'
    " ORDER BY \"ts\" RANGE BETWEEN UNBOUNDED PRECEDING AND INTERVAL '1 MICROSECOND'"
    ' PRECEDING))[2] AS "start" FROM (SELECT "c"."k", "c"."ts", "c"."ts" AS "start",'
    ' 0 AS "_side" FROM (SELECT k, ts FROM y) AS "c" UNION ALL SELECT "e"."k", "e"."ts",'
    ' CAST(NULL AS TIMESTAMP) AS "start", 1 AS "_side" FROM (SELECT k, ts FROM x) AS "e")'
    ' AS "u") AS "w" WHERE "_side" = 1 AND NOT "start" IS NULL',
}


def test_every_node_has_a_sample() -> None:
    assert set(SAMPLES) == set(NODES)
    assert set(DIALECTS) == {"duckdb", "postgres", "clickhouse", "spark"}


@pytest.mark.parametrize("node", NODES, ids=lambda n: n.__name__)
def test_duckdb_spells_every_node(node: type[exp.Expression]) -> None:
    sql = SAMPLES[node].sql(dialect=SegflowDuckDB)
    if node is ParseTimestamp:  # long; what it reads: tests/unit/batch/test_parse_ts.py
        t = sql[len("CASE WHEN ") : sql.index(" >= TIMESTAMP '0001-01-01'")]
        assert t.startswith(DUCKDB_SQL[node])
        assert sql == (
            f"CASE WHEN {t} >= TIMESTAMP '0001-01-01'"
            f" AND {t} < TIMESTAMP '10000-01-01' THEN {t} END"
        )
        return
    assert sql == DUCKDB_SQL[node]


@pytest.mark.parametrize("node", NODES, ids=lambda n: n.__name__)
def test_postgres_spells_every_node(node: type[exp.Expression]) -> None:
    assert SAMPLES[node].sql(dialect=SegflowPostgres) == POSTGRES_SQL[node]


@pytest.mark.parametrize("node", NODES, ids=lambda n: n.__name__)
def test_clickhouse_spells_every_node(node: type[exp.Expression]) -> None:
    """Rendered with no gap reported (run on chDB in ``test_chdb_nodes`` and the
    engines' conformance test)."""
    sql = SAMPLES[node].sql(dialect=SegflowClickHouse, unsupported_level=ErrorLevel.IMMEDIATE)
    assert sql and node.__name__ not in sql


@pytest.mark.parametrize("node", NODES, ids=lambda n: n.__name__)
def test_spark_spells_every_node(node: type[exp.Expression]) -> None:
    """Rendered with no gap reported (run on Spark in ``test_spark_nodes`` and the
    engines' conformance test)."""
    sql = SAMPLES[node].sql(dialect=SegflowSpark, unsupported_level=ErrorLevel.IMMEDIATE)
    assert sql and node.__name__ not in sql


def test_a_spark_json_read_spells_the_pointer_as_bracketed_keys() -> None:
    ptr = exp.Literal.string("/a~1b/it's/~0")
    sql = JsonString(this=DOC, path=ptr).sql(dialect=SegflowSpark)
    assert """TRY_VARIANT_GET(PARSE_JSON(doc), '$["a/b"]["it\\'s"]["~"]')""" in sql
    quotes = exp.Literal.string('/say "it\'s"')
    with pytest.raises(UnsupportedNode, match=r"^JsonField with a key holding quotes"):
        JsonString(this=DOC, path=quotes).sql(dialect=SegflowSpark)


@pytest.mark.parametrize(
    "dialect", [SegflowPostgres, SegflowClickHouse, SegflowSpark], ids=lambda d: d.__name__
)
def test_a_json_read_at_a_computed_path_raises(dialect: type[Dialect]) -> None:
    node = JsonString(this=DOC, path=exp.column("p"))
    with pytest.raises(UnsupportedNode, match=r"^JsonField with a computed path is not supported"):
        node.sql(dialect=dialect)


def test_a_dialect_lacking_a_node_raises_naming_it() -> None:
    class Bare(SegflowPostgres):
        class Generator(SegflowPostgres.Generator):
            TRANSFORMS = transforms(SqlglotPostgres.Generator.TRANSFORMS, {})

    for node, e in SAMPLES.items():
        with pytest.raises(UnsupportedNode, match=f"^{node.__name__} is not supported on Bare"):
            e.sql(dialect=Bare)


def test_sqlglot_names_stay_sqlglots() -> None:
    # segflow's dialects do not replace sqlglot's for other users in the process
    assert Dialect.get_or_raise("duckdb").__class__ is not SegflowDuckDB
    assert Dialect.get_or_raise("postgres").__class__ is not SegflowPostgres
    assert Dialect.get_or_raise("clickhouse").__class__ is not SegflowClickHouse
    assert Dialect.get_or_raise("spark").__class__ is not SegflowSpark
    assert dialect_class("duckdb") is SegflowDuckDB


def test_sqlglot_nodes_spelled_per_dialect() -> None:
    cond = exp.column("ok")
    s, x = exp.column("s"), exp.Literal.string("Z")
    count_if = exp.CountIf(this=cond)
    ends = exp.EndsWith(this=s, expression=x)
    starts = exp.StartsWith(this=s, expression=x)
    assert count_if.sql(dialect=SegflowDuckDB) == "COUNT_IF(ok)"
    assert count_if.sql(dialect=SegflowPostgres) == "COUNT(*) FILTER(WHERE ok)"
    assert ends.sql(dialect=SegflowDuckDB) == "SUFFIX(s, 'Z')"
    assert ends.sql(dialect=SegflowPostgres) == "(RIGHT(s, LENGTH('Z')) = 'Z')"
    assert starts.sql(dialect=SegflowDuckDB) == "STARTS_WITH(s, 'Z')"
    assert starts.sql(dialect=SegflowPostgres) == "STARTS_WITH(s, 'Z')"
    assert count_if.sql(dialect=SegflowClickHouse) == "countIf(ok)"
    assert ends.sql(dialect=SegflowClickHouse) == "endsWith(s, 'Z')"
    assert starts.sql(dialect=SegflowClickHouse) == "startsWith(s, 'Z')"
    assert count_if.sql(dialect=SegflowSpark) == "COUNT_IF(ok)"
    assert ends.sql(dialect=SegflowSpark) == "ENDSWITH(s, 'Z')"
    assert starts.sql(dialect=SegflowSpark) == "STARTSWITH(s, 'Z')"


def test_duckdb_json_nodes_read_by_type() -> None:
    huge = 2**127 - 1  # a HUGEINT to DuckDB's JSON reader
    doc = f"""'{{"a": {{"b": 2}}, "n": null, "s": "x", "t": true, "h": {huge}}}'"""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS SELECT JSON {doc} AS doc")

    def read(node: type[exp.Expression], ptr: str) -> object:
        sql = node(this=exp.column("doc"), path=exp.Literal.string(ptr)).sql(dialect=SegflowDuckDB)
        row = con.execute(f"SELECT {sql} FROM t").fetchone()
        assert row is not None
        return row[0]

    assert [read(JsonNumber, p) for p in ("/a/b", "/s", "/h", "/x")] == [
        2.0,
        None,
        float(huge),
        None,
    ]
    assert [read(JsonString, p) for p in ("/s", "/a/b", "/t")] == ["x", None, None]
    assert [read(JsonBoolean, p) for p in ("/t", "/s")] == [True, None]
    assert [read(JsonExists, p) for p in ("/n", "/a", "/x")] == [True, True, False]
    assert [read(JsonText, p) for p in ("/a", "/s", "/x")] == ['{"b":2}', '"x"', None]


def test_duckdb_top_value_breaks_ties_to_the_smallest() -> None:
    top = TopValue(this=exp.column("v"), where=exp.column("ok")).sql(dialect=SegflowDuckDB)
    con = duckdb.connect()
    rows = [("b", True), ("a", True), ("c", True), ("c", False), ("c", False), (None, True)]
    con.execute("CREATE TABLE t (v VARCHAR, ok BOOLEAN)")
    con.executemany("INSERT INTO t VALUES (?, ?)", rows)
    assert con.execute(f"SELECT {top} FROM t").fetchone() == ("a",)


COUNTS = """
id: counts
name: Counts, traits, names and a bucket
condition:
  all:
    - {event: Order Completed, within: 30d, gte: 2}
    - event: Product Viewed
      where: [{property: category, ends_with: Watches}, {property: category, starts_with: Lux}]
    - {trait: country, eq: PL}
    - bucket: {salt: s, from: 0, to: 50}
"""


def test_a_plan_of_supported_nodes_compiles_for_postgres() -> None:
    plan = build_plan(load_segment_text(COUNTS))
    catalog = {"properties.category": Field("VARCHAR")}
    sql = BatchCompiler(plan, catalog, AT, dialect="postgres").compile().sql
    assert "COUNT(*) FILTER(WHERE" in sql
    assert "(RIGHT(\"properties.category\", LENGTH('Watches')) = 'Watches')" in sql
    assert "AS BIT(32)) AS BIGINT) % 10000 AS DOUBLE PRECISION) / 100.0 < 50" in sql
    for duckdb_only in ("COUNT_IF", "SUFFIX", "MD5_NUMBER", "UBIGINT"):
        assert duckdb_only not in sql
    assert sqlglot.parse_one(sql, read="postgres")


@pytest.mark.parametrize(
    ("definition", "catalog", "spelled"),
    [
        (  # a field kept in the overflow JSON
            "{event: Product Viewed, where: [{property: category, eq: Luxury}]}",
            {"properties.category": Field("VARCHAR", overflow=True)},
            "JSONB_TYPEOF(\"extra\" #> ARRAY['properties', 'category']::TEXT[]) = 'string'",
        ),
        (
            "{event: Product Viewed, where: [{property: seen, before: '2026-01-01T00:00:00Z'}]}",
            {"properties.seen": Field("VARCHAR")},
            'SEGFLOW_PARSE_TS("properties.seen")',
        ),
        ("{sequence: [{event: A}, {event: B}], within: 7d}", {}, "INTERVAL '1 MICROSECOND'"),
        (
            "{event: A, measure: top, of: category, eq: x}",
            {"properties.category": Field("VARCHAR")},
            "UNNEST(ARRAY_AGG(",
        ),
        (
            "{computed: cart_value, gt: 10}",
            {"properties.product_id": Field("VARCHAR"), "properties.price": Field("DOUBLE")},
            "(ARRAY_AGG(",
        ),
    ],
)
def test_a_plan_of_every_kind_compiles_for_postgres(
    definition: str, catalog: dict[str, Field], spelled: str
) -> None:
    plan = build_plan(load_segment_text(f"id: x\nname: x\ncondition: {definition}\n"))
    sql = BatchCompiler(plan, catalog, AT, dialect="postgres").compile().sql
    assert spelled in sql
    for duckdb_only in ("ASOF", "ARG_MAX", "TRY_CAST", "STRUCT", "HISTOGRAM", "JSON_TYPE"):
        assert duckdb_only not in sql


def test_sqlglot_nodes_postgres_lacks_raise_only_when_compiling() -> None:
    arg_max = exp.ArgMax(this=exp.column("a"), expression=exp.column("b"))
    # transpiling text reports the gap as sqlglot does; the compiler's path raises
    assert arg_max.sql(dialect=SegflowPostgres)
    with pytest.raises(UnsupportedNode, match=r"^ArgMax is not supported on Postgres"):
        arg_max.sql(dialect=SegflowPostgres, unsupported_level=sqlglot.ErrorLevel.IMMEDIATE)


def test_an_engine_without_a_segflow_dialect_is_refused() -> None:
    has = "duckdb, postgres, clickhouse, spark"
    with pytest.raises(ValueError, match=f"no dialect 'bigquery' \\(it has: {has}\\)"):
        dialect_class("bigquery")
    with pytest.raises(ValueError, match="'trino'"):
        BatchCompiler(build_plan([]), {}, AT, dialect="trino")
