"""The SQL holdout bucket is ``model.bucket.bucket_of`` exactly, for any id and salt."""

from __future__ import annotations

from datetime import datetime

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.batch.compile import BatchCompiler
from segflow.batch.dialects import SegflowDuckDB
from segflow.model.bucket import bucket_of
from segflow.plan.planner import Plan

TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12)


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(TEXT, min_size=1, max_size=40, unique=True), salt=TEXT)
def test_the_sql_bucket_is_the_python_bucket(ids: list[str], salt: str) -> None:
    sql = (
        BatchCompiler(Plan(), {}, datetime(2026, 1, 1)).bucket_sql(salt).sql(dialect=SegflowDuckDB)
    )
    con = duckdb.connect()
    con.execute("CREATE TABLE p (profile_id VARCHAR)")
    con.executemany("INSERT INTO p VALUES (?)", [(i,) for i in ids])
    got = dict(con.execute(f"SELECT profile_id, {sql} FROM p").fetchall())
    assert got == {i: bucket_of(i, salt) for i in ids}
