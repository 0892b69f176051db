"""``parse_ts`` reads a text ending in ``Z`` with the plain TIMESTAMP cast: it must give
exactly what the time-zone-aware cast gives, on every text (both kept to years 1-9999
UTC, the instants Python has)."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from segflow.batch.compile import parse_ts
from segflow.batch.dialects import SegflowDuckDB

DATES = st.sampled_from(
    ["2026-09-10", "2026-9-1", "26-09-10", "2024-02-29", "2026-02-29", "0001-01-01",
     "9999-12-31", "-2026-09-10", "2026/09/10", "20260910", "2026-09-10 (BC)", ""]
)  # fmt: skip
SEPARATORS = st.sampled_from(["T", " ", "t", "  ", ""])
TIMES = st.sampled_from(
    ["16:11:06", "16:11", "16", "00:00:00", "16:11:06.123", "16:11:06.1234567",
     "24:00:00", "23:59:60", "16:11:06,5", "4:1:6", ""]
)  # fmt: skip
ZONES = st.sampled_from(
    ["", "+02:00", "-0530", "+02", " +02:00", "+14:00", "-00", "UTC", " UTC", "GMT",
     "Europe/Paris", " Europe/Paris", "Z", " Z", "z"]
)  # fmt: skip
ENDS = st.sampled_from(["Z", " Z", "ZZ", "", " ", "z"])
ISO_LIKE = st.builds(lambda *parts: "".join(parts), DATES, SEPARATORS, TIMES, ZONES, ENDS)
TEXTS = st.one_of(
    ISO_LIKE,
    st.builds(lambda a, b: a + b, ISO_LIKE, st.text(max_size=4)),
    st.text(max_size=30).map(lambda t: t + "Z"),
)


VALUE = exp.column("v")
OURS = parse_ts(VALUE).sql(dialect=SegflowDuckDB)
_AWARE = exp.cast(exp.TryCast(this=VALUE, to=exp.DataType.build("TIMESTAMPTZ")), "TIMESTAMP").sql(
    dialect=SegflowDuckDB
)
AWARE = (  # instants of years 1-9999 UTC only, as Python reads them
    f"CASE WHEN {_AWARE} >= TIMESTAMP '0001-01-01' AND {_AWARE} < TIMESTAMP '10000-01-01'"
    f" THEN {_AWARE} END"
)
DIFFERENT = (
    f"SELECT v, {OURS}, {AWARE} FROM (SELECT unnest($texts::VARCHAR[]) AS v)"
    f" WHERE {OURS} IS DISTINCT FROM {AWARE}"
)


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """One connection for every example: each reads its texts as a parameter."""
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    yield c
    c.close()


@pytest.mark.slow
@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(TEXTS, min_size=1, max_size=40))
def test_a_z_text_reads_as_the_aware_cast_reads_it(
    con: duckdb.DuckDBPyConnection, texts: list[str]
) -> None:
    rows = con.execute(DIFFERENT, {"texts": [v.replace("\x00", "") for v in texts]}).fetchall()
    assert rows == []


def test_both_forms_of_a_z_instant_and_an_offset() -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    sql = parse_ts(exp.column("v")).sql(dialect=SegflowDuckDB)
    got = [
        con.execute(f"SELECT {sql} FROM (SELECT ? AS v)", [v]).fetchone()
        for v in ("2026-09-10T16:11:06Z", "2026-09-10T16:11:06+02:00", "not a time Z")
    ]
    assert [str(g[0]) if g else None for g in got] == [
        "2026-09-10 16:11:06",
        "2026-09-10 14:11:06",
        "None",
    ]
