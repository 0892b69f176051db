"""Another DuckDB file as a batch engine: a load copies the batch tables in one
transaction (a failed load leaves the file as it was, a file it made is removed), the
evaluator there answers as the store does, and each bad URL or file gets one error."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from segflow.model.definition import parse_segment
from segflow.store.duckdb.batch import evaluate
from segflow.store.duckdb.engine import TABLES, DuckDBFileBatch, copy_store, path_of
from segflow.store.engines import EngineUnavailable, engine_for
from tests.small_store import HISTORIES, T0, small_store
from tests.small_store import SEGMENTS as SMALL_SEGMENTS

SEGMENTS = [
    *SMALL_SEGMENTS,
    parse_segment({"id": "viewed", "condition": {"event": "View", "within": "7d"}}),
]


def test_the_file_answers_as_the_store_does(tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path}/copy.duckdb"
    store = small_store()
    report = engine_for(url).load(store, url)
    assert report.engine == "DuckDB"
    assert report.rows["events"] == 3 and report.rows["profiles"] == 2
    assert set(report.rows) == set(TABLES)
    for at in (T0 + timedelta(days=2), T0 + timedelta(days=41)):
        expected = evaluate(store, SEGMENTS, at).membership_map()
        batch = engine_for(url).batch(url)
        try:
            assert batch.evaluate(SEGMENTS, at).membership_map() == expected
        finally:
            batch.close()  # type: ignore[attr-defined]


def test_a_second_load_replaces_every_table(tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path}/copy.duckdb"
    copy_store(small_store(), url)
    copy_store(small_store(HISTORIES[1:]), url)
    batch = DuckDBFileBatch(url)
    try:
        got = batch.evaluate(SEGMENTS, T0 + timedelta(days=41)).membership_map()
    finally:
        batch.close()
    assert got == {"de": set(), "spent": set(), "viewed": {"p1"}}


def test_a_failed_load_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path}/copy.duckdb"
    copy_store(small_store(), url)
    broken = small_store()
    broken.execute("DROP TABLE static_members")  # the copy fails at the last table
    broken.execute("CREATE VIEW static_members AS SELECT error('unreadable') AS segment_id")
    with pytest.raises(duckdb.Error):
        copy_store(broken, url)
    batch = DuckDBFileBatch(url)
    try:
        got = batch.evaluate(SEGMENTS, T0 + timedelta(days=41)).membership_map()
    finally:
        batch.close()
    assert got["spent"] == {"p0"}


def test_a_failed_load_into_a_new_file_leaves_no_file(tmp_path: Path) -> None:
    broken = small_store()
    broken.execute("DROP TABLE events")
    broken.execute("CREATE VIEW events AS SELECT error('unreadable') AS x")
    with pytest.raises(duckdb.Error):
        copy_store(broken, f"duckdb://{tmp_path}/new.duckdb")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    ["duckdb://relative.duckdb", "duckdb:///x.duckdb?mode=ro", "duckdb://host/x.duckdb"],
)
def test_a_url_that_names_no_absolute_file_is_refused(url: str) -> None:
    with pytest.raises(EngineUnavailable, match=r"expected duckdb:///absolute/path"):
        path_of(url)


def test_a_missing_file_or_table_is_named(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match=r"does not exist: load a store into it"):
        DuckDBFileBatch(f"duckdb://{tmp_path}/none.duckdb")
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE events (x INTEGER)")
    con.close()
    with pytest.raises(EngineUnavailable, match=r"lacks the tables traits, profiles, identities"):
        DuckDBFileBatch(f"duckdb://{other}")
    with pytest.raises(EngineUnavailable, match=r"no directory"):
        copy_store(small_store(), f"duckdb://{tmp_path}/missing/dir.duckdb")


def test_a_file_held_by_another_process_is_named(tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path}/copy.duckdb"
    copy_store(small_store(), url)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "copy.duckdb")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(EngineUnavailable, match=r"cannot open the DuckDB file .*lock"):
            DuckDBFileBatch(url)
        with pytest.raises(EngineUnavailable, match=r"cannot open the DuckDB file .*lock"):
            copy_store(small_store(), url)
    finally:
        holder.kill()
        holder.wait()


HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(60)
"""
