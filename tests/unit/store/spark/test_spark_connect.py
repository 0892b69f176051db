"""The Spark engine through a Spark Connect server (``sc://host:port/dir``): a loaded
store and a Segment warehouse read in place give DuckDB's memberships, sessions are
released, and a malformed URL or a server that does not answer is one clear error."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

import pytest

from segflow.store.engines import EngineUnavailable, attach_segment, engine_for
from segflow.store.spark.batch import SparkBatch
from segflow.store.spark.connection import open_session
from segflow.store.spark.warehouse import SegmentSparkBatch, open_batch
from tests.segment_warehouse import AT, MESSAGES, duckdb_members, write_segment_parquet
from tests.segment_warehouse import SEGMENTS as SEGMENT_LIBRARY
from tests.small_store import SEGMENTS, T0, small_store
from tests.spark import MASTER, connect_server

pytestmark = pytest.mark.spark


def _url(path: Path) -> str:
    return f"{connect_server()}{path}"


def test_local_mode_still_opens_after_a_connect_session(tmp_path: Path) -> None:
    remote = open_session(_url(tmp_path))
    remote.close()
    local = open_session(f"spark://{MASTER}{tmp_path}")
    try:
        assert not local.remote and local.rows("SELECT 1") == [(1,)]
    finally:
        local.close()


def test_a_loaded_store_evaluates_on_the_server(tmp_path: Path) -> None:
    url = _url(tmp_path)
    assert engine_for(url).name == "Spark"
    assert engine_for(url).load(small_store(), url).rows["traits"] == 2
    batch = SparkBatch(url)
    try:
        assert batch.session.remote
        late = batch.evaluate(SEGMENTS, T0 + timedelta(days=3))
        assert late.membership_map() == {"de": {"p0"}, "spent": {"p0"}}
        assert batch.evaluate(SEGMENTS, T0 + timedelta(hours=1)).sizes() == {"de": 0, "spent": 0}
        assert "== Physical Plan ==" in batch.explain(SEGMENTS, T0)
    finally:
        batch.close()


def test_a_segment_warehouse_is_read_in_place_through_the_server(tmp_path: Path) -> None:
    write_segment_parquet(tmp_path / "lake", MESSAGES)
    url = _url(tmp_path / "engine")
    report = attach_segment(url, str(tmp_path / "lake"))
    assert report.event_tables == ["order_completed", "refund"]
    batch = open_batch(url)
    assert isinstance(batch, SegmentSparkBatch)
    try:
        got = batch.evaluate(SEGMENT_LIBRARY, AT).membership_map()
    finally:
        batch.close()
    assert got == duckdb_members(MESSAGES, SEGMENT_LIBRARY, AT)


def test_each_directory_has_a_session_of_its_own(tmp_path: Path) -> None:
    url = _url(tmp_path)
    engine_for(url).load(small_store(), url)
    first, second = open_session(url), open_session(url)
    try:
        first.spark.sql("SELECT 1 AS x").createOrReplaceTempView("mine")
        assert first.rows("SELECT x FROM mine") == [(1,)]
        assert "mine" not in {t.name for t in second.spark.catalog.listTables()}
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize(
    "url",
    ["sc://127.0.0.1/tmp/x", "sc://127.0.0.1:99999/tmp/x", "sc://127.0.0.1:15002",
     "sc://127.0.0.1:15002/tmp/x;session_id=1", "sc://127.0.0.1:15002/tmp/x;token",
     "sc://a b:1/tmp/x"],
)  # fmt: skip
def test_a_malformed_connect_url_is_refused(url: str) -> None:
    with pytest.raises(EngineUnavailable, match=r"^not a Spark Connect URL"):
        open_session(url)


def test_connection_parameters_reach_the_client_and_a_token_is_never_shown(
    tmp_path: Path,
) -> None:
    url = _url(tmp_path) + ";user_id=segflow-test;user_agent=segflow"
    engine_for(url).load(small_store(), url)
    batch = SparkBatch(url)
    try:
        assert batch.evaluate(SEGMENTS, T0 + timedelta(days=3)).sizes() == {"de": 1, "spent": 1}
    finally:
        batch.close()
    with pytest.raises(EngineUnavailable) as err:
        open_session(f"sc://127.0.0.1:1{tmp_path};token=s3cret;colour=red")
    assert "s3cret" not in str(err.value) and "'colour'" in str(err.value)


def test_a_server_that_does_not_answer_is_named(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EngineUnavailable) as err:
        SparkBatch(f"sc://127.0.0.1:{port}{tmp_path}")
    assert str(err.value).startswith(f"cannot reach the Spark Connect server at 127.0.0.1:{port}: ")
