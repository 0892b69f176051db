"""The ClickHouse spellings of segflow's nodes, run on chDB: the bucket is
``model.bucket.bucket_of`` exactly, the timestamp reader reads every ISO-8601
date-time as the interpreter does and nothing else as a different instant, and the
typed JSON reads take what DuckDB's take."""

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

from segflow.batch.compile import BatchCompiler, json_pointer, parse_ts, ts_lit
from segflow.batch.dialects import (
    AsJsonText,
    ChainStep,
    JsonBoolean,
    JsonExists,
    JsonNumber,
    JsonString,
    JsonText,
    Latest,
    SegflowClickHouse,
    SegflowDuckDB,
    TopValue,
)
from segflow.model.bucket import bucket_of
from segflow.plan.interpret import as_time
from segflow.plan.planner import Plan
from segflow.store.clickhouse.connection import Session, open_session
from tests.unit.batch.test_parse_ts import TEXTS

EPOCH = datetime(1970, 1, 1)
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)


@pytest.fixture(scope="module")
def ch() -> Iterator[Session]:
    """One chDB session for the module's examples (values arrive as parameters)."""
    with tempfile.TemporaryDirectory(prefix="segflow-chdb-nodes-") as tmp:
        session = open_session(f"chdb://{tmp}")
        yield session
        session.close()


def _one(ch: Session, sql: str) -> Any:
    return ch.arrow(sql).column(0).to_pylist()


def text(value: str) -> str:
    """A string as a ClickHouse expression of its UTF-8 bytes (every text exactly)."""
    return f"unhex('{value.encode().hex()}')"


def texts(values: list[str]) -> str:
    return f"arrayJoin([{', '.join(text(v) for v in values) or ''}])"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ids=st.lists(TEXT, min_size=1, max_size=60, unique=True), salt=TEXT)
def test_the_clickhouse_bucket_is_the_python_bucket(ch: Session, ids: list[str], salt: str) -> None:
    bucket = BatchCompiler(Plan(), {}, datetime(2026, 1, 1), dialect="clickhouse").bucket_sql(salt)
    sql = bucket.sql(dialect=SegflowClickHouse)
    got = _one(ch, f"SELECT {sql} FROM (SELECT {texts(ids)} AS profile_id) AS p")
    assert got == [bucket_of(i, salt) for i in ids]


READ = parse_ts(exp.column("v")).sql(dialect=SegflowClickHouse)


def _micros(ch: Session, value: str) -> int | None:
    (micros,) = _one(ch, f"SELECT toUnixTimestamp64Micro({READ}) FROM (SELECT {text(value)} AS v)")
    return None if micros is None else int(micros)


def _read(ch: Session, value: str) -> datetime | None:
    micros = _micros(ch, value)
    return None if micros is None else EPOCH + timedelta(microseconds=micros)


PYTHON_RANGE = range(
    (datetime.min - EPOCH) // timedelta(microseconds=1),
    (datetime.max - EPOCH) // timedelta(microseconds=1) + 1,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_a_text_is_never_read_as_another_instant(ch: Session, text: str) -> None:
    micros = _micros(ch, text)
    if micros is None:
        return
    if micros not in PYTHON_RANGE:  # a time of 0001-01-01 with a positive offset, ...
        with pytest.raises(OverflowError):  # which Python's calendar cannot hold
            as_time(text)
        return
    assert EPOCH + timedelta(microseconds=micros) == as_time(text), text


INSTANTS = st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30))
OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    t=INSTANTS,
    zone=st.one_of(st.none(), st.just(UTC), OFFSETS),
    sep=st.sampled_from(["T", " "]),
    spec=st.sampled_from(["auto", "minutes", "seconds", "microseconds"]),
)
def test_every_iso_date_time_is_read_as_the_interpreter_reads_it(
    ch: Session, t: datetime, zone: timezone | None, sep: str, spec: str
) -> None:
    text = t.replace(tzinfo=zone).isoformat(sep=sep, timespec=spec)
    if zone is UTC and text.endswith("+00:00"):
        text = text[:-6] + "Z"
    expected = as_time(text)
    assert expected is not None
    assert _read(ch, text) == expected, text


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-09T12:00:00.5z",
        " 2026-03-09 12:00 ",
        "2026-03-09T12:00+02",
        "2026-03-09T12:00:00-05:30",
        "1850-06-01",
        "2400-02-29T23:59:59.999999Z",
    ],
)
def test_the_documented_forms_are_read(ch: Session, text: str) -> None:
    assert _read(ch, text) == as_time(text) is not None


@pytest.mark.parametrize(
    "text",
    ["now", "today", "epoch", "infinity", "2026-02-29", "2026-01-01T24:00", "2026-01-01T12",
     "20260101", "2026-13-01", "2026-01-01T12:00+24:00", "0000-01-01", "2026-01-01Z"],
)  # fmt: skip
def test_words_and_impossible_dates_are_no_instant(ch: Session, text: str) -> None:
    assert _read(ch, text) is None


DOCUMENTS = [
    '{"a": {"b": 2}}',
    '{"a": {"b": 2.5}}',
    '{"a": {"b": -1e300}}',
    '{"a": {"b": 12345678901234567890}}',
    '{"a": {"b": "x/y \\u00e9 \\"q\\""}}',
    '{"a": {"b": ""}}',
    '{"a": {"b": true}}',
    '{"a": {"b": false}}',
    '{"a": {"b": null}}',
    '{"a": {"b": [1, "x"]}}',
    '{"a": {"b": {"c": 1}}}',
    '{"a": {"c": 1}}',
    '{"a": 1}',
    '{"a/b": {"~c": "slash"}}',
    "{}",
]
PATHS = ["a.b", "a/b.~c", "a"]
READS = {
    "number": JsonNumber,
    "string": JsonString,
    "boolean": JsonBoolean,
    "exists": JsonExists,
}


def _reads(dialect: type, path: str) -> str:
    ptr = exp.Literal.string(json_pointer(path))
    doc = exp.column("doc")
    parts = [k(this=doc.copy(), path=ptr.copy()).sql(dialect=dialect) for k in READS.values()]
    return ", ".join(parts)


@pytest.mark.parametrize("path", PATHS)
def test_typed_json_reads_are_duckdbs(ch: Session, path: str) -> None:
    con = duckdb.connect()
    try:
        expected = con.execute(
            f"SELECT {_reads(SegflowDuckDB, path)}"
            " FROM (SELECT CAST(unnest($docs) AS JSON) AS doc)",
            {"docs": DOCUMENTS},
        ).fetchall()
    finally:
        con.close()
    table = ch.arrow(
        f"SELECT {_reads(SegflowClickHouse, path)} FROM (SELECT {texts(DOCUMENTS)} AS doc)"
    )
    got = list(zip(*(c.to_pylist() for c in table.columns), strict=True))
    assert got == expected


def test_json_texts_of_equal_values_are_equal(ch: Session) -> None:
    """A value's JSON text is one text whether it comes from a typed column or from
    the overflow document: ``distinct`` counts it once."""
    ptr = exp.Literal.string(json_pointer("a"))
    raw = JsonText(this=exp.column("doc"), path=ptr).sql(dialect=SegflowClickHouse)
    cases: list[tuple[str, str]] = [
        ("toNullable('x/y é\"')", '{"a": "x/y é\\""}'),
        ("toNullable(2.5)", '{"a": 2.5}'),
        ("toNullable(true)", '{"a": true}'),
    ]
    for value, doc in cases:
        typed = AsJsonText(this=exp.maybe_parse(value, dialect="clickhouse")).sql(
            dialect=SegflowClickHouse
        )
        (same,) = _one(ch, f"SELECT {typed} = {raw} FROM (SELECT {text(doc)} AS doc)")
        assert same, (value, doc)
    (absent,) = _one(ch, f"SELECT {raw} FROM (SELECT '{{}}' AS doc)")
    assert absent is None


def test_top_value_breaks_ties_to_the_smallest_code_point(ch: Session) -> None:
    top = TopValue(this=exp.column("v"), where=exp.column("ok")).sql(dialect=SegflowClickHouse)
    rows = "[('b', true), ('é', true), ('é', true), ('z', true), ('z', true), ('c', false),"
    rows += " ('c', false), ('c', false), (NULL, true), (NULL, true), (NULL, true)]"
    source = f"(SELECT t.1 AS v, t.2 AS ok FROM (SELECT arrayJoin({rows}) AS t))"
    assert _one(ch, f"SELECT {top} FROM {source}") == ["z"]  # 'z' < 'é' by code point
    assert _one(ch, f"SELECT {top} FROM {source} WHERE v = 'c'") == [None]
    assert _one(ch, f"SELECT {top} FROM {source} WHERE v IS NULL") == [None]


def test_latest_takes_the_value_of_the_greatest_row_even_when_null(ch: Session) -> None:
    latest = Latest(this=exp.column("v"), expressions=[exp.column("t"), exp.column("n")])
    sql = latest.sql(dialect=SegflowClickHouse)
    rows = "[(1, 1, toNullable(10.0)), (2, 1, 20.0), (2, 2, NULL), (0, 9, 30.0)]"
    source = f"(SELECT x.1 AS t, x.2 AS n, x.3 AS v FROM (SELECT arrayJoin({rows}) AS x))"
    assert _one(ch, f"SELECT {sql} FROM {source}") == [None]
    assert _one(ch, f"SELECT {sql} FROM {source} WHERE NOT v IS NULL") == [20.0]


@pytest.mark.parametrize(
    "t",
    [
        datetime(1, 1, 1),
        datetime(1850, 3, 1, 10, 0, 0, 123456),
        datetime(1969, 12, 31, 23, 59, 59, 999999),
        datetime(2400, 2, 29, 12),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
    ],
)
def test_instant_literals_hold_every_microsecond_of_every_year(ch: Session, t: datetime) -> None:
    """A definition's instant outside ClickHouse's documented calendar (1900 to 2299)
    is still the very microsecond, compared as such."""
    sql = ts_lit(t).sql(dialect=SegflowClickHouse)
    assert _one(ch, f"SELECT toUnixTimestamp64Micro({sql})") == [
        (t - EPOCH) // timedelta(microseconds=1)
    ]


def test_a_chain_step_joins_the_latest_strictly_earlier_chain_row(ch: Session) -> None:
    def rows(values: str) -> exp.Select:
        return exp.select("x.1 AS k", "toDateTime64(x.2, 6, 'UTC') AS ts").from_(
            f"(SELECT arrayJoin([{values}]) AS x)"
        )

    step = ChainStep(
        this=rows("(1, 20), (1, 21), (1, 10), (2, 30)"),
        chain=rows("(1, 10), (1, 20), (3, 5)"),
        key=exp.to_identifier("k", quoted=True),
        first=True,
    )
    sql = step.sql(dialect=SegflowClickHouse)
    got = ch.rows(f"SELECT k, toUnixTimestamp(ts), toUnixTimestamp(start) FROM ({sql}) ORDER BY ts")
    assert got == [(1, 20, 10), (1, 21, 20)]
