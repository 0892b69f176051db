"""The Spark store: loading a DuckDB store into a directory (Parquet files, traits
linked), a failed load leaving the previous tables, evaluating there read-only, and
one clear error for a missing package, Java, directory or table."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from segflow.store.engines import engine_for
from segflow.store.spark.batch import SparkBatch
from segflow.store.spark.connection import EngineUnavailable, Session, open_session
from segflow.store.spark.load import LOADS, TABLES, copy_store
from tests.small_store import HISTORIES, SEGMENTS, T0, small_store
from tests.spark import MASTER

pytestmark = pytest.mark.spark


def _url(path: Path) -> str:
    return f"spark://{MASTER}{path}"


@pytest.fixture
def sp(tmp_path: Path) -> Iterator[Session]:
    session = open_session(_url(tmp_path))
    yield session
    session.close()


def test_a_load_writes_a_parquet_file_per_table(sp: Session) -> None:
    report = copy_store(small_store(), sp)
    assert report.rows["traits"] == 2 and report.rows["profiles"] == 2
    files = sorted(p.name for p in (sp.path / "tables").iterdir())
    assert files == sorted(f"{t}.parquet" for t in TABLES)
    assert sp.rows("SELECT count(*) FROM traits WHERE linked") == [(2,)]


def test_a_second_load_replaces_the_first(sp: Session) -> None:
    copy_store(small_store(), sp)
    copy_store(small_store(HISTORIES[:1]), sp)
    assert sp.rows("SELECT count(*) FROM profiles") == [(1,)]
    assert len(list(sp.path.glob(f"{LOADS}*"))) == 1  # the first load's files are gone


def test_a_failed_load_leaves_the_previous_tables(sp: Session) -> None:
    copy_store(small_store(), sp)
    bad = small_store(HISTORIES[:1])
    bad.execute("DROP TABLE static_members")
    bad.execute("CREATE VIEW static_members AS SELECT CAST('x' AS INTEGER) AS n")
    with pytest.raises(duckdb.ConversionException):
        copy_store(bad, sp)
    assert sp.rows("SELECT count(*) FROM profiles") == [(2,)]
    assert len(list(sp.path.glob(f"{LOADS}*"))) == 1


@pytest.mark.parametrize("number", ["170141183460469231731687303715884105727", "-1e400"])
def test_a_json_number_spark_may_read_otherwise_is_refused(sp: Session, number: str) -> None:
    copy_store(small_store(), sp)
    bad = small_store(HISTORIES[:1])
    bad.execute(f'UPDATE events SET extra = \'{{"properties": {{"n": [{number}]}}}}\'')
    with pytest.raises(ValueError, match=r"holds 2 JSON numbers .* copied to Spark"):
        copy_store(bad, sp)
    assert sp.rows("SELECT count(*) FROM profiles") == [(2,)]


def test_evaluation_reads_the_loaded_directory_as_of_an_instant(tmp_path: Path) -> None:
    url = _url(tmp_path)
    engine = engine_for(url)
    assert engine.name == "Spark"
    assert engine.load(small_store(), url).rows["traits"] == 2
    batch = SparkBatch(url)
    try:
        early = batch.evaluate(SEGMENTS, T0 + timedelta(hours=1))
        assert early.sizes() == {"de": 0, "spent": 0}
        late = batch.evaluate(SEGMENTS, T0 + timedelta(days=3))
        assert late.membership_map() == {"de": {"p0"}, "spent": {"p0"}}
        only = batch.evaluate(SEGMENTS, T0 + timedelta(days=3), only=["de"])
        assert set(only.columns) == {"de"}
        assert "== Physical Plan ==" in batch.explain(SEGMENTS, T0)
    finally:
        batch.close()


def test_an_empty_directory_names_every_missing_table(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable) as e:
        SparkBatch(_url(tmp_path))
    assert str(e.value) == (
        f"Spark directory {tmp_path} lacks the tables events, traits, profiles, field_catalog,"
        " static_members: load a store into it first (segflow engine load)"
    )


@pytest.mark.parametrize(
    "url",
    ["spark://local[2]relative", "spark://yarn/tmp/x", "spark://local[0]/tmp/x",
     "spark://local/tmp/x?mode=1", "spark://local"],
)  # fmt: skip
def test_a_malformed_url_is_refused(url: str) -> None:
    with pytest.raises(EngineUnavailable, match=r"^not a Spark URL: expected spark://local\[N\]"):
        open_session(url)


def test_a_file_or_a_missing_directory_is_named(tmp_path: Path) -> None:
    file = tmp_path / "store.duckdb"
    file.write_text("")
    with pytest.raises(EngineUnavailable, match=f"^Spark path {file} is not a directory$"):
        SparkBatch(_url(file))
    missing = tmp_path / "a" / "b"
    with pytest.raises(EngineUnavailable, match=f"^Spark directory {missing} does not exist$"):
        engine_for(_url(missing)).load(small_store(), _url(missing))
    made = tmp_path / "new"
    engine_for(_url(made)).load(small_store(), _url(made))  # its parent exists
    assert (made / "tables" / "events.parquet").is_file()


def _run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd="/", env=env
    )


def _opening(path: Path, before: str = "") -> str:
    return (
        f"{before}from segflow.store.spark.connection import open_session, EngineUnavailable\n"
        "try:\n"
        f"    open_session('{_url(path)}')\n"
        "except EngineUnavailable as e:\n"
        "    print(e)\n"
    )


def test_without_pyspark_the_extra_to_install_is_named(tmp_path: Path) -> None:
    before = "import sys\nsys.modules['pyspark'] = None  # as where it is not installed\n"
    out = _run(_opening(tmp_path, before))
    assert out.stdout.strip() == (
        "the Spark engine needs the pyspark package: install segflow's 'spark' extra"
        " (pip install 'segflow[spark]')"
    ), out


def test_without_java_it_is_named(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "PATH")}
    out = _run(_opening(tmp_path), {**env, "PATH": str(Path(sys.executable).parent)})
    assert out.stdout.strip() == (
        "the Spark engine needs Java (17 or later): none on PATH or in JAVA_HOME"
    ), out
