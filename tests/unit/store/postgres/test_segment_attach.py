"""``engine attach``: views over a Segment warehouse schema read in place (names as
Segment's loader spells them, types across tables, rows added later), what cannot be
read as segflow does refused by name, and one clear error for a missing schema,
table or grant, with nothing half made."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pytest
from psycopg import sql

from segflow.model.definition import parse_segment
from segflow.store.engines import EngineUnavailable, attach_segment, engine_for
from segflow.store.postgres.connection import connect
from segflow.store.postgres.warehouse import attach, open_batch
from segflow.store.segment import SegmentUnsupported
from tests.postgres import schema_url, server, temporary_schema
from tests.segment_warehouse import (
    AT,
    MESSAGES,
    SEGMENTS,
    T0,
    duckdb_members,
    warehouse,
    write_segment_schema,
)


def test_camel_case_nested_and_mixed_fields_read_as_duckdb_reads_them() -> None:
    expected = duckdb_members(MESSAGES, SEGMENTS, AT)
    with warehouse(MESSAGES) as batch:
        got = batch.evaluate(SEGMENTS, AT).membership_map()
        kinds = dict(batch.con.execute("SELECT path, overflow FROM field_catalog").fetchall())
    assert got == expected
    # a merged profile (a1 -> u1, then alias a1 -> u2) reads all its events and traits
    assert expected["spent"] == {"u1"} and expected["ada"] == {"u1"}
    assert expected["camel"] == expected["nested"] == expected["agent"] == {"u1"}
    assert expected["oslo"] == expected["home"] == {"u1"}
    # identify traits win over context traits of the same call; later writes win
    assert expected["trial"] == expected["pro"] == set() and expected["gold"] == {"u1"}
    # revenue is a number in one event table and text in another: one typed column,
    # the other type's values in extra, as DuckDB's ingestion keeps them
    assert kinds["properties.revenue"] is True
    assert expected["text_revenue"] == {"u1", "u3"}


def test_views_read_rows_the_warehouse_gets_after_attach() -> None:
    segment = parse_segment(
        {
            "id": "big",
            "condition": {"event": "Order Completed", "of": "revenue", "measure": "max", "gt": 100},
        }
    )
    with temporary_schema() as source_url, temporary_schema() as url:
        source = source_url.rsplit("%3D", 1)[1]
        con = connect(url)
        write_segment_schema(con, source, MESSAGES)
        attach(con, source)
        kinds = con.execute(
            "SELECT DISTINCT c.relkind::text FROM pg_class c"
            " WHERE c.relnamespace = current_schema()::regnamespace"
        ).fetchall()
        assert kinds == [("v",)]  # views only: nothing copied
        batch = open_batch(url)
        assert batch.evaluate([segment], AT).members("big") == []
        row = {"id": "m9", "user_id": "u9", "event": "order_completed"}
        for table in ("tracks", "order_completed"):
            con.execute(
                sql.SQL(
                    "INSERT INTO {} (id, user_id, event, event_text, timestamp{})"
                    " VALUES (%s, %s, %s, 'Order Completed', %s{})"
                ).format(
                    sql.Identifier(source, table),
                    sql.SQL(", revenue" if table != "tracks" else ""),
                    sql.SQL(", 150" if table != "tracks" else ""),
                ),
                [row["id"], row["user_id"], row["event"], T0],
            )
        assert batch.evaluate([segment], AT).members("big") == ["u9"]
        batch.close()
        con.close()


def test_a_static_segment_is_refused_by_name() -> None:
    static = parse_segment({"id": "list", "mode": "static", "members": ["u1"]})
    ref = parse_segment({"id": "uses", "condition": {"in_segment": "list"}})
    with warehouse(MESSAGES) as batch, pytest.raises(SegmentUnsupported, match="'list'"):
        batch.evaluate([static, ref], AT)


def test_a_discarded_property_is_refused_at_evaluation() -> None:
    seg = parse_segment(
        {
            "id": "x",
            "condition": {"event": "Refund", "where": [{"property": "user_id", "eq": "u3"}]},
        }
    )
    with warehouse(MESSAGES) as batch, pytest.raises(SegmentUnsupported, match="user_id"):
        batch.evaluate([seg], AT)


@contextmanager
def schemas() -> Iterator[tuple[str, str, str]]:
    """(Segment schema, its URL, the URL of the schema the views go into)."""
    with temporary_schema() as source_url, temporary_schema() as url:
        yield source_url.rsplit("%3D", 1)[1], source_url, url


def test_a_missing_schema_or_tracks_table_is_named() -> None:
    with schemas() as (source, _, url):
        with pytest.raises(EngineUnavailable, match="has no schema 'segflow_absent'"):
            attach_segment(url, "segflow_absent")
        with pytest.raises(EngineUnavailable) as err:
            attach_segment(url, source)
        assert str(err.value) == (
            f"PostgreSQL schema {source!r} has no table tracks: not a Segment warehouse"
            " schema (--segment-schema names the source's schema)"
        )
        # nothing was made in the target schema
        con = connect(url)
        assert con.execute(
            "SELECT count(*) FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
        ).fetchone() == (0,)
        con.close()


def test_a_user_without_select_is_told_what_to_grant() -> None:
    role = f"segflow_reader_{uuid.uuid4().hex[:8]}"
    admin = server()
    with schemas() as (source, source_url, url):
        write_segment_schema(connect(source_url), source, MESSAGES)
        target = url.rsplit("%3D", 1)[1]
        admin.execute(f"CREATE ROLE {role} LOGIN")
        try:
            reader = url.replace("postgres@", f"{role}@", 1)
            admin.execute(f"GRANT USAGE, CREATE ON SCHEMA {target} TO {role}")
            with pytest.raises(EngineUnavailable) as err:
                attach_segment(reader, source)
            assert str(err.value) == (
                f"PostgreSQL user {role} may not use schema {source!r}: grant USAGE on it"
            )
            admin.execute(f"GRANT USAGE ON SCHEMA {source} TO {role}")
            admin.execute(f"GRANT SELECT ON {source}.tracks, {source}.pages TO {role}")
            with pytest.raises(EngineUnavailable) as err:
                attach_segment(reader, source)
            assert str(err.value) == (
                f"PostgreSQL user {role} may not read {source}.identifies, aliases,"
                " order_completed, refund: grant SELECT on them"
            )
            admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {source} TO {role}")
            report = attach_segment(reader, source)
            assert report.event_tables == ["order_completed", "refund"]
        finally:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")
            admin.close()


def test_views_go_into_a_schema_of_their_own() -> None:
    with schemas() as (source, source_url, url):
        write_segment_schema(connect(source_url), source, MESSAGES)
        with pytest.raises(EngineUnavailable, match="cannot go into the Segment schema"):
            attach_segment(source_url, source)
        con = connect(url)
        con.execute("CREATE TABLE events (x int)")
        with pytest.raises(EngineUnavailable, match="already holds events"):
            attach(con, source)
        con.close()


def test_a_refused_attach_leaves_the_earlier_one_in_place() -> None:
    with schemas() as (source, source_url, url), temporary_schema() as wide_url:
        write_segment_schema(connect(source_url), source, MESSAGES)
        con = connect(url)
        attach(con, source)
        # two event tables whose columns together pass PostgreSQL's limit of a view
        wide = wide_url.rsplit("%3D", 1)[1]
        for table in ("left_one", "right_one"):
            cols = ", ".join(f"{table}_{i} text" for i in range(900))
            con.execute(
                f"CREATE TABLE {wide}.{table} (id text, timestamp timestamptz, event text,"
                f" event_text text, {cols})"
            )
        con.execute(f"CREATE TABLE {wide}.tracks (id text, timestamp timestamptz, event text)")
        with pytest.raises(EngineUnavailable, match=r"refused the views.*nothing was changed"):
            attach(con, wide)
        assert con.execute("SELECT source_schema FROM segment_source").fetchone() == (source,)
        assert con.execute("SELECT count(*) FROM events").fetchone() == (len(MESSAGES),)
        con.close()


def test_a_store_is_not_loaded_over_attached_views() -> None:
    with warehouse(MESSAGES) as batch:
        url = schema_url(str((batch.con.execute("SELECT current_schema()").fetchone() or [""])[0]))
        with pytest.raises(EngineUnavailable, match="reads the Segment warehouse schema"):
            engine_for(url).load(duckdb.connect(), url)
        assert batch.con.execute("SELECT count(*) FROM segment_source").fetchone() == (1,)


def test_a_track_call_without_an_event_table_is_read_from_tracks() -> None:
    refunded = parse_segment({"id": "refunded", "condition": {"event": "Refund"}})
    priced = parse_segment(
        {
            "id": "priced",
            "condition": {"event": "Refund", "where": [{"property": "revenue", "exists": True}]},
        }
    )
    with schemas() as (source, source_url, url):
        con = connect(source_url)
        write_segment_schema(con, source, MESSAGES)
        con.execute(f"DROP TABLE {source}.refund")
        con.close()
        report = attach_segment(url, source)
        assert report.event_tables == ["order_completed"]
        batch = open_batch(url)
        result = batch.evaluate([refunded, priced], AT)
        assert result.members("refunded") == ["u3"] and result.members("priced") == []
        batch.close()


def test_a_reader_needs_select_on_the_views_only() -> None:
    role = f"segflow_reader_{uuid.uuid4().hex[:8]}"
    admin = server()
    with schemas() as (source, source_url, url):
        write_segment_schema(connect(source_url), source, MESSAGES)
        attach_segment(url, source)
        target = url.rsplit("%3D", 1)[1]
        admin.execute(f"CREATE ROLE {role} LOGIN")
        try:
            admin.execute(f"GRANT USAGE ON SCHEMA {target} TO {role}")
            reader = url.replace("postgres@", f"{role}@", 1)
            with pytest.raises(EngineUnavailable) as err:
                open_batch(reader)
            assert str(err.value) == (
                f"PostgreSQL user {role} may not read {target}.segment_source:"
                " grant SELECT on the views engine attach made"
            )
            admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {target} TO {role}")
            batch = open_batch(reader)  # no grant at all on the Segment schema
            assert batch.evaluate(SEGMENTS, AT).membership_map() == duckdb_members(
                MESSAGES, SEGMENTS, AT
            )
            batch.close()
        finally:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")
            admin.close()
