"""The Spark spellings of segflow's nodes, run on Spark: the bucket is
``model.bucket.bucket_of`` exactly, the timestamp reader reads every ISO-8601
date-time as the interpreter does and nothing else as a different instant, and the
typed JSON reads take what DuckDB's take.  Each test reads many values in one query,
as planning a Spark query costs more than running it on a few rows."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from segflow.batch.compile import BatchCompiler, json_pointer, parse_ts
from segflow.batch.dialects import (
    AsJsonText,
    JsonText,
    Latest,
    SegflowDuckDB,
    SegflowSpark,
    TopValue,
)
from segflow.model.bucket import bucket_of
from segflow.plan.interpret import as_time
from segflow.plan.planner import Plan
from segflow.store.spark.connection import Session, open_session
from tests.unit.batch.test_parse_ts import TEXTS
from tests.unit.store.clickhouse.test_chdb_nodes import DOCUMENTS, PATHS, READS

pytestmark = pytest.mark.spark

EPOCH = datetime(1970, 1, 1)
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)


@pytest.fixture(scope="module")
def sp() -> Iterator[Session]:
    """One Spark session for the module's examples (values arrive as parameters)."""
    with tempfile.TemporaryDirectory(prefix="segflow-spark-nodes-") as tmp:
        session = open_session(f"spark://local[2]{tmp}")
        yield session
        session.close()


def values_view(sp: Session, values: list[str]) -> str:
    """A view ``t`` of ``values`` (``v``) numbered in their order (``i``)."""
    rows = list(enumerate(values)) or [(0, "")]
    frame = sp.spark.createDataFrame(rows, "i INT, v STRING")
    frame.createOrReplaceTempView("t")
    return "t"


def column(sp: Session, values: list[str], expression: str) -> list[Any]:
    """``expression`` over a column ``v`` holding ``values``, in their order."""
    return [r[0] for r in sp.rows(f"SELECT {expression} FROM {values_view(sp, values)} ORDER BY i")]


def _check_buckets(sp: Session, ids: list[str], salt: str) -> None:
    bucket = BatchCompiler(Plan(), {}, datetime(2026, 1, 1), dialect="spark").bucket_sql(salt)
    sql = bucket.sql(dialect=SegflowSpark)
    view = values_view(sp, ids)
    got = sp.rows(f"SELECT {sql} FROM (SELECT i, v AS profile_id FROM {view}) AS p ORDER BY i")
    assert [float(r[0]) for r in got] == [bucket_of(i, salt) for i in ids], repr(salt)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ids=st.lists(TEXT, min_size=1, max_size=200, unique=True), salt=TEXT)
def test_the_spark_bucket_is_the_python_bucket(sp: Session, ids: list[str], salt: str) -> None:
    _check_buckets(sp, ids, salt)


def test_control_characters_reach_the_hash_unchanged(sp: Session) -> None:
    """Spark reads the escapes \\a, \\f and \\v as letters: such characters are written raw."""
    for salt in ["\a", "x\fy", "\v", "\b\t\n\r\\"]:
        _check_buckets(sp, ["user-1", "é"], salt)


READ = f"UNIX_MICROS({parse_ts(exp.column('v')).sql(dialect=SegflowSpark)})"
PYTHON_RANGE = range(
    (datetime.min - EPOCH) // timedelta(microseconds=1),
    (datetime.max - EPOCH) // timedelta(microseconds=1) + 1,
)


def _reads(sp: Session, values: list[str]) -> list[datetime | None]:
    micros = column(sp, values, READ)
    return [None if m is None else EPOCH + timedelta(microseconds=m) for m in micros]


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TEXTS, min_size=1, max_size=300))
def test_a_text_is_never_read_as_another_instant(sp: Session, values: list[str]) -> None:
    for value, micros in zip(values, column(sp, values, READ), strict=True):
        if micros is None:
            continue
        if micros not in PYTHON_RANGE:  # a time of 0001-01-01 with a positive offset, ...
            with pytest.raises(OverflowError):  # which Python's calendar cannot hold
                as_time(value)
            continue
        assert EPOCH + timedelta(microseconds=micros) == as_time(value), value


INSTANTS = st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30))
OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


@st.composite
def iso_texts(draw: st.DrawFn) -> str:
    t = draw(INSTANTS)
    zone = draw(st.one_of(st.none(), st.just(UTC), OFFSETS))
    sep = draw(st.sampled_from(["T", " "]))
    spec = draw(st.sampled_from(["auto", "minutes", "seconds", "microseconds"]))
    value = t.replace(tzinfo=zone).isoformat(sep=sep, timespec=spec)
    return value[:-6] + "Z" if zone is UTC and value.endswith("+00:00") else value


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(iso_texts(), min_size=1, max_size=300))
def test_every_iso_date_time_is_read_as_the_interpreter_reads_it(
    sp: Session, values: list[str]
) -> None:
    assert _reads(sp, values) == [as_time(v) for v in values]


def test_the_documented_forms_are_read_and_the_others_are_not(sp: Session) -> None:
    forms = [
        "2026-03-09T12:00:00.5z",
        " 2026-03-09 12:00 ",
        "2026-03-09T12:00+02",
        "2026-03-09T12:00:00-05:30",
        "1850-06-01",
        "2400-02-29T23:59:59.999999Z",
    ]
    assert _reads(sp, forms) == [as_time(v) for v in forms]
    assert None not in _reads(sp, forms)
    others = ["now", "today", "epoch", "infinity", "2026-02-29", "2026-01-01T24:00",
              "2026-01-01T12", "20260101", "2026-13-01", "2026-01-01T12:00+24:00",
              "0000-01-01", "2026-01-01Z", "0001-01-01T00:00+00:01", "9999-12-31T23:59-00:01",
              "2026-01-01\u2028", "2026-01-01\u0085", "2026-01-01T12:00:00.1234567Z",
              "2026-01-01\n"]  # fmt: skip
    got = _reads(sp, others)
    assert got[:-2] == [None] * (len(others) - 2)
    assert got[-2:] == [as_time(v) for v in others[-2:]]
    assert None not in got[-2:]


def _typed(dialect: type, path: str) -> str:
    ptr = exp.Literal.string(json_pointer(path))
    doc = exp.column("v" if dialect is SegflowSpark else "doc")
    reads = [*READS.values(), JsonText]
    return ", ".join(k(this=doc.copy(), path=ptr.copy()).sql(dialect=dialect) for k in reads)


@pytest.mark.parametrize("path", PATHS)
def test_typed_json_reads_are_duckdbs(sp: Session, path: str) -> None:
    docs = [d for d in DOCUMENTS if "12345678901234567890" not in d]  # refused by a load
    con = duckdb.connect()
    try:
        expected = con.execute(
            f"SELECT {_typed(SegflowDuckDB, path)}"
            " FROM (SELECT CAST(unnest($docs) AS JSON) AS doc)",
            {"docs": docs},
        ).fetchall()
    finally:
        con.close()
    got = sp.rows(f"SELECT {_typed(SegflowSpark, path)} FROM {values_view(sp, docs)} ORDER BY i")
    # the JSON texts are compared as identities (``distinct`` counts them): equal where
    # DuckDB's are equal, and only there
    texts = [r[-1] for r in got]
    want = [r[-1] for r in expected]
    assert [r[:-1] for r in got] == [r[:-1] for r in expected]
    assert [t is None for t in texts] == [t is None for t in want]
    pairs = range(len(docs))
    assert {(i, j) for i in pairs for j in pairs if texts[i] == texts[j]} == {
        (i, j) for i in pairs for j in pairs if want[i] == want[j]
    }


def test_json_texts_of_equal_values_are_equal(sp: Session) -> None:
    """A value's JSON text is one text whether it comes from a typed column or from
    the overflow document: ``distinct`` counts it once; ``2`` and ``2.0`` are one, as
    the interpreter counts them (DuckDB keeps them apart)."""
    ptr = exp.Literal.string(json_pointer("a"))
    raw = JsonText(this=exp.column("doc"), path=ptr).sql(dialect=SegflowSpark)
    cases: list[tuple[str, str, bool]] = [
        ("'x/y é\"'", '{"a": "x/y é\\""}', True),
        ("2.5D", '{"a": 2.5}', True),
        ("0.0001D", '{"a": 0.0001}', True),
        ("1e20D", '{"a": 1e+20}', True),
        ("2.0D", '{"a": 2.0}', True),
        ("2.0D", '{"a": 2}', True),  # one value, as the interpreter counts them
        ("2.5D", '{"a": 2}', False),
        ("true", '{"a": true}', True),
    ]
    for value, doc, equal in cases:
        typed = AsJsonText(this=exp.maybe_parse(value, dialect="spark")).sql(dialect=SegflowSpark)
        view = values_view(sp, [doc])
        ((same,),) = sp.rows(f"SELECT {typed} = {raw} FROM (SELECT v AS doc FROM {view})")
        assert same is equal, (value, doc)
    assert sp.rows(f"SELECT {raw} FROM (SELECT '{{}}' AS doc)") == [(None,)]


def test_top_value_breaks_ties_to_the_smallest_code_point(sp: Session) -> None:
    top = TopValue(this=exp.column("v"), where=exp.column("ok")).sql(dialect=SegflowSpark)
    rows = "('b', true), ('é', true), ('é', true), ('z', true), ('z', true), ('c', false),"
    rows += " ('c', false), ('c', false), (NULL, true), (NULL, true), (NULL, true)"
    source = f"(SELECT * FROM VALUES {rows} AS t(v, ok))"
    assert sp.rows(f"SELECT {top} FROM {source}") == [("z",)]  # 'z' < 'é' by code point
    assert sp.rows(f"SELECT {top} FROM {source} WHERE v = 'c'") == [(None,)]
    assert sp.rows(f"SELECT {top} FROM {source} WHERE v IS NULL") == [(None,)]


def test_latest_takes_the_value_of_the_greatest_row_even_when_null(sp: Session) -> None:
    latest = Latest(this=exp.column("v"), expressions=[exp.column("k"), exp.column("j")])
    sql = latest.sql(dialect=SegflowSpark)
    rows = "('a', 1, 1), (NULL, 2, 0), ('c', 1, 5)"
    assert sp.rows(f"SELECT {sql} FROM VALUES {rows} AS t(v, k, j)") == [(None,)]
    rows = "('a', 1, 1), ('b', 2, 0), ('c', 2, 5)"
    assert sp.rows(f"SELECT {sql} FROM VALUES {rows} AS t(v, k, j)") == [("c",)]
