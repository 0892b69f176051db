"""``engine attach`` on Spark: a Segment warehouse's Parquet tables read in place (names
as Segment's loader spells them, types across tables, files added later, text and
zone-less times), what cannot be read as segflow does refused by name, and one clear
error for a missing directory, table or column, with nothing half made."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segflow.model.definition import parse_segment
from segflow.store.engines import EngineUnavailable, attach_segment, engine_for
from segflow.store.segment import SegmentUnsupported
from segflow.store.spark.warehouse import MARKER, SegmentSparkBatch, open_batch
from tests.segment_warehouse import (
    AT,
    MESSAGES,
    SEGMENTS,
    T0,
    duckdb_members,
    spark_warehouse,
    write_segment_parquet,
)
from tests.spark import MASTER

pytestmark = pytest.mark.spark


def _url(path: Path) -> str:
    return f"spark://{MASTER}{path}"


def _attached(tmp_path: Path) -> tuple[Path, str]:
    """The sample messages as a Segment source, attached in a Spark directory."""
    source = tmp_path / "source"
    write_segment_parquet(source, MESSAGES)
    url = _url(tmp_path / "engine")
    attach_segment(url, str(source))
    return source, url


def _batch(url: str) -> SegmentSparkBatch:
    batch = open_batch(url)
    assert isinstance(batch, SegmentSparkBatch)
    return batch


def test_camel_case_nested_and_mixed_fields_read_as_duckdb_reads_them() -> None:
    expected = duckdb_members(MESSAGES, SEGMENTS, AT)
    with spark_warehouse(MESSAGES) as batch:
        got = batch.evaluate(SEGMENTS, AT).membership_map()
        overflow = dict(batch.session.rows("SELECT path, overflow FROM field_catalog"))
    assert got == expected
    # a merged profile (a1 -> u1, then alias a1 -> u2) reads all its events and traits
    assert expected["spent"] == {"u1"} and expected["ada"] == {"u1"}
    assert expected["trial"] == expected["pro"] == set() and expected["gold"] == {"u1"}
    # revenue is a number in one event table and text in another: one typed column,
    # the other type's values in extra, as DuckDB's ingestion keeps them
    assert overflow["properties.revenue"] is True
    assert expected["text_revenue"] == {"u1", "u3"}


def test_the_report_names_what_was_found_and_nothing_is_copied(tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_segment_parquet(source, MESSAGES)
    report = attach_segment(_url(tmp_path / "engine"), str(source))
    assert report.source == str(source) and report.target == str(tmp_path / "engine")
    assert report.event_tables == ["order_completed", "refund"]
    assert report.call_tables == ["pages", "identifies", "aliases"]
    assert report.trait_keys == 4 and report.fields == 11 and report.skipped == []
    assert [p.name for p in (tmp_path / "engine").iterdir()] == [MARKER]


def test_files_the_source_gets_after_attach_are_read(tmp_path: Path) -> None:
    big = parse_segment(
        {
            "id": "big",
            "condition": {"event": "Order Completed", "of": "revenue", "measure": "max", "gt": 100},
        }
    )
    source, url = _attached(tmp_path)
    batch = _batch(url)
    try:
        assert batch.evaluate([big], AT).members("big") == []
        stamp = pa.array([T0], type=pa.timestamp("us", tz="UTC"))
        core = {
            "id": ["m9"],
            "user_id": ["u9"],
            "event": ["order_completed"],
            "event_text": ["Order Completed"],
            "timestamp": stamp,
        }
        pq.write_table(pa.table(core), source / "tracks" / "part-1.parquet")
        pq.write_table(
            pa.table({**core, "revenue": [150.0]}), source / "order_completed" / "part-1.parquet"
        )
        assert batch.evaluate([big], AT).members("big") == ["u9"]
    finally:
        batch.close()


def test_text_and_zone_less_times_are_read_as_instants(tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_segment_parquet(source, MESSAGES)
    texts = ["2026-03-01T14:00:00.5+02:00", "2026-03-01 12:00:01Z", "not a time", None]
    pq.write_table(
        pa.table(
            {
                "id": ["t1", "t2", "t3", "t4"],
                "anonymous_id": ["z1", "z2", "z3", "z4"],
                "event": ["ping"] * 4,
                "event_text": ["Ping"] * 4,
                "timestamp": texts,
                "sent_at": pa.array([datetime(2026, 3, 1, 12)] * 4, type=pa.timestamp("us")),
            }
        ),
        source / "ping.parquet",
    )
    url = _url(tmp_path / "engine")
    assert attach_segment(url, str(source)).event_tables == ["order_completed", "ping", "refund"]
    batch = _batch(url)
    try:
        batch.reader.snapshot()
        got = batch.session.rows(
            "SELECT message_id, `timestamp`, sent_at FROM events WHERE event = 'Ping'"
            " ORDER BY message_id"
        )
    finally:
        batch.close()
    noon = datetime(2026, 3, 1, 12)
    assert [(m, t) for m, t, _ in got] == [
        ("t1", datetime(2026, 3, 1, 12, 0, 0, 500000)),
        ("t2", datetime(2026, 3, 1, 12, 0, 1)),
        ("t3", None),
        ("t4", None),
    ]
    assert {s for _, _, s in got} == {noon}


def test_a_static_segment_or_a_discarded_property_is_refused_by_name() -> None:
    static = parse_segment({"id": "list", "mode": "static", "members": ["u1"]})
    ref = parse_segment({"id": "uses", "condition": {"in_segment": "list"}})
    discarded = parse_segment(
        {"id": "x", "condition": {"event": "Refund", "where": [{"property": "user_id", "eq": "u"}]}}
    )
    with spark_warehouse(MESSAGES) as batch:
        with pytest.raises(SegmentUnsupported, match="'list'"):
            batch.evaluate([static, ref], AT)
        with pytest.raises(SegmentUnsupported, match="user_id"):
            batch.evaluate([discarded], AT)


def test_a_missing_source_table_or_column_is_named(tmp_path: Path) -> None:
    url = _url(tmp_path / "engine")
    with pytest.raises(EngineUnavailable) as err:
        attach_segment(url, str(tmp_path / "absent"))
    assert str(err.value) == (
        f"Spark has no Segment source directory {tmp_path / 'absent'}: name the directory"
        " holding the source's tables (--segment-schema)"
    )
    source = tmp_path / "source"
    write_segment_parquet(source, MESSAGES)
    (source / "tracks" / "part-0.parquet").unlink()
    (source / "tracks").rmdir()
    with pytest.raises(EngineUnavailable) as err:
        attach_segment(url, str(source))
    assert str(err.value) == (
        f"Spark source {source} has no table tracks: not a Segment warehouse schema"
        " (--segment-schema names the source's schema)"
    )
    pq.write_table(pa.table({"id": ["x"]}), source / "tracks.parquet")
    with pytest.raises(EngineUnavailable, match="table tracks has no column timestamp"):
        attach_segment(url, str(source))
    (source / "refund" / "_delta_log").mkdir()
    with pytest.raises(EngineUnavailable, match="is a Delta table"):
        attach_segment(url, str(source))
    assert not (tmp_path / "engine" / MARKER).exists()  # nothing recorded


def test_a_refused_attach_leaves_the_earlier_one_in_place(tmp_path: Path) -> None:
    source, url = _attached(tmp_path)
    marker = (tmp_path / "engine" / MARKER).read_text()
    with pytest.raises(EngineUnavailable, match="no table tracks"):
        attach_segment(url, str(tmp_path))  # the directory above: no tracks
    assert (tmp_path / "engine" / MARKER).read_text() == marker
    assert _batch(url).reader.source == source
    with pytest.raises(EngineUnavailable, match="inside the Spark directory"):
        attach_segment(url, str(tmp_path / "engine"))


def test_a_store_and_an_attached_source_do_not_share_a_directory(tmp_path: Path) -> None:
    _, url = _attached(tmp_path)
    with pytest.raises(EngineUnavailable, match="reads the Segment source"):
        engine_for(url).load(duckdb.connect(), url)
    assert (tmp_path / "engine" / MARKER).exists()
    loaded = _url(tmp_path / "loaded")
    (tmp_path / "loaded" / "tables").mkdir(parents=True)
    with pytest.raises(EngineUnavailable, match="already holds a loaded store"):
        attach_segment(loaded, str(tmp_path / "source"))
