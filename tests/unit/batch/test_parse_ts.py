"""DuckDB reads a text as an instant exactly as the interpreter does
(``model.time.read_instant``, the ``INSTANT_TEXT`` grammar): the same texts, the same
instants to the microsecond, on every text, near-misses of the grammar included."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from segflow.batch.compile import parse_ts
from segflow.batch.dialects import SegflowDuckDB
from segflow.model.time import parse_instant, read_instant

DATES = st.sampled_from(
    ["2026-09-10", "2026-9-1", "26-09-10", "2024-02-29", "2026-02-29", "0001-01-01",
     "9999-12-31", "0000-12-31", "-2026-09-10", "2026/09/10", "20260910", "2026-W37-4",
     "2026-09-10 (BC)", "٢٠٢٦-09-10", ""]
)  # fmt: skip
SEPARATORS = st.sampled_from(["T", " ", "t", "  ", ""])
TIMES = st.sampled_from(
    ["16:11:06", "16:11", "16", "161106", "00:00:00", "23:59:59", "16:11:06.123",
     "16:11:06.1234567", "16:11:06.123456789", "16:11:06.", "24:00:00", "23:59:60",
     "16:60", "16:11:06,5", "4:1:6", ""]
)  # fmt: skip
ZONES = st.sampled_from(
    ["", "+02:00", "-0530", "+02", " +02:00", "+14:00", "+23:59", "+24:00", "-23:60",
     "-00", "+02:00:30", "UTC", " UTC", "GMT", "Europe/Paris", "Z", " Z", "z"]
)  # fmt: skip
ENDS = st.sampled_from(["", " ", "\n", "\t", "\r\n", "\x0b", "\xa0", "Z", "ZZ", "x"])
ISO_LIKE = st.builds(lambda *parts: "".join(parts), ENDS, DATES, SEPARATORS, TIMES, ZONES, ENDS)
TEXTS = st.one_of(
    ISO_LIKE,
    st.builds(lambda a, b: a + b, ISO_LIKE, st.text(max_size=4)),
    st.text(max_size=30),
)

OURS = parse_ts(exp.column("v")).sql(dialect=SegflowDuckDB)
READ = f"SELECT v, {OURS} FROM (SELECT unnest($texts::VARCHAR[]) AS v)"


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """One connection for every example: each reads its texts as a parameter."""
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    yield c
    c.close()


def _differences(con: duckdb.DuckDBPyConnection, texts: list[str]) -> list[tuple[str, object]]:
    rows = con.execute(READ, {"texts": [t.replace("\x00", "") for t in texts]}).fetchall()
    return [(v, got) for v, got in rows if got != read_instant(v)]


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TEXTS, min_size=1, max_size=40))
def test_duckdb_reads_every_text_as_the_interpreter_does(
    con: duckdb.DuckDBPyConnection, texts: list[str]
) -> None:
    assert _differences(con, texts) == []


def test_the_grammar_by_example(con: duckdb.DuckDBPyConnection) -> None:
    instants = {
        "2026-09-10T16:11:06Z": datetime(2026, 9, 10, 16, 11, 6),
        "2026-09-10T16:11:06.5z": datetime(2026, 9, 10, 16, 11, 6, 500_000),
        "2026-09-10t16:11Z": datetime(2026, 9, 10, 16, 11),
        "2026-09-10 16:11:06+02:00": datetime(2026, 9, 10, 14, 11, 6),
        "2026-09-10T16:11:06-0530": datetime(2026, 9, 10, 21, 41, 6),
        "2026-09-10T16:11:06+02": datetime(2026, 9, 10, 14, 11, 6),
        "2026-09-10T16:11:06.1234567Z": datetime(2026, 9, 10, 16, 11, 6, 123_456),
        " 2026-09-10\n": datetime(2026, 9, 10),
    }
    none = [
        "2026-09-10 16:11:06 UTC",  # a zone name
        "2026-09-10T16",  # an hour alone
        "20260910",  # the basic format
        "2026-02-29",  # not a leap year
        "2026-09-10T24:00:00Z",
        "2026-09-10T23:59:60Z",
        "2026-09-10T16:11:06+24:00",
        "2026-09-10+02:00",  # a date has no offset
        "0001-01-01T00:00:00+00:01",  # before year 1 UTC
        "\xa02026-09-10",  # a no-break space is not a space here
        "٢٠٢٦-09-10",  # nor Arabic-Indic digits
    ]
    for text, instant in instants.items():
        assert read_instant(text) == parse_instant(text) == instant, text
    for text in none:
        assert read_instant(text) is None, text
        with pytest.raises(ValueError, match=r"timestamp|no such|offset|years"):
            parse_instant(text)
    assert _differences(con, [*instants, *none]) == []
