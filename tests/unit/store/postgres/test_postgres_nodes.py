"""The PostgreSQL spellings of segflow's nodes, run on a server: the bucket is
``model.bucket.bucket_of`` exactly, and ``segflow_parse_ts`` reads every ISO-8601
date-time as the interpreter does and nothing else as a different instant."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from segflow.batch.compile import BatchCompiler, parse_ts
from segflow.batch.dialects import SegflowPostgres
from segflow.model.bucket import bucket_of
from segflow.plan.interpret import as_time
from segflow.plan.planner import Plan
from segflow.store.postgres.connection import connect
from segflow.store.postgres.schema import PARSE_TIMESTAMP_DDL
from tests.postgres import temporary_schema
from tests.unit.batch.test_parse_ts import TEXTS

Connection = psycopg.Connection[tuple[object, ...]]
NO_NUL = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")


@pytest.fixture(scope="module")
def pg() -> Iterator[Connection]:
    """One schema for the module's examples, with the store's timestamp reader."""
    with temporary_schema() as url:
        con = connect(url)
        con.execute(PARSE_TIMESTAMP_DDL)
        yield con
        con.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ids=st.lists(st.text(NO_NUL, max_size=12), min_size=1, max_size=40, unique=True),
    salt=st.text(NO_NUL, max_size=12),
)
def test_the_postgres_bucket_is_the_python_bucket(
    pg: Connection, ids: list[str], salt: str
) -> None:
    bucket = BatchCompiler(Plan(), {}, datetime(2026, 1, 1)).bucket_sql(salt)
    sql = bucket.sql(dialect=SegflowPostgres)
    pg.execute("CREATE TEMP TABLE IF NOT EXISTS p (profile_id TEXT)")
    pg.execute("TRUNCATE p")
    with pg.cursor() as cur:
        cur.executemany("INSERT INTO p VALUES (%s)", [(i,) for i in ids])
    rows = pg.execute(f"SELECT p.profile_id, {sql} FROM p".encode()).fetchall()  # no parameters
    assert dict(rows) == {i: bucket_of(i, salt) for i in ids}


READ = f"SELECT {parse_ts(exp.column('v')).sql(dialect=SegflowPostgres)} FROM (SELECT %s AS v) t"


def _read(pg: Connection, text: str) -> object:
    row = pg.execute(READ, [text]).fetchone()
    return row[0] if row else None


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_a_text_is_never_read_as_another_instant(pg: Connection, text: str) -> None:
    got = _read(pg, text.replace("\x00", ""))
    assert got is None or got == as_time(text)


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
    pg: Connection, t: datetime, zone: timezone | None, sep: str, spec: str
) -> None:
    text = t.replace(tzinfo=zone).isoformat(sep=sep, timespec=spec)
    if zone is UTC and text.endswith("+00:00"):
        text = text[:-6] + "Z"
    expected = as_time(text)
    assert expected is not None
    assert _read(pg, text) == expected, text


@pytest.mark.parametrize(
    "text", ["now", "today", "tomorrow", "epoch", "infinity", "2026-02-29", "2026-01-01T24:00"]
)
def test_words_and_impossible_dates_are_no_instant(pg: Connection, text: str) -> None:
    assert _read(pg, text) is None
