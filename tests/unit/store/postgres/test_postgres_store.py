"""The PostgreSQL store: loading a DuckDB store into a schema (monthly partitions, BRIN
on time, traits linked), evaluating there read-only, and one clear error for an
unreachable server, a missing table or a missing privilege."""

from __future__ import annotations

import uuid
from datetime import timedelta

import duckdb
import pytest

from segflow.model.definition import parse_segment
from segflow.model.history import Event, ProfileHistory
from segflow.store.postgres.batch import PostgresBatch
from segflow.store.postgres.connection import EngineUnavailable, connect, describe
from segflow.store.postgres.load import copy_store
from tests.helpers import load
from tests.postgres import URL, server, temporary_schema
from tests.small_store import HISTORIES, T0


def test_a_load_partitions_events_by_month_with_a_brin_index() -> None:
    con = duckdb.connect()
    load(con, HISTORIES)
    with temporary_schema() as url:
        pg = connect(url)
        report = copy_store(con, pg)
        assert report.rows["events"] == 3 and report.rows["profiles"] == 2
        assert report.partitions == 3  # January, February, March 2026
        parts = pg.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'"
            " AND p.relnamespace = current_schema()::regnamespace ORDER BY 1"
        ).fetchall()
        assert [r[0] for r in parts] == [
            "events_2026_01",
            "events_2026_02",
            "events_2026_03",
            "events_default",
        ]
        for index in ("events_timestamp_brin", "events_event_code_brin"):
            (am,) = pg.execute(
                "SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam"
                " WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace",
                [index],
            ).fetchone() or (None,)
            assert am == "brin", index
            # built after the rows: every block range is summarised (one that is not
            # matches every scan)
            unsummarised = pg.execute(
                "SELECT sum(brin_summarize_new_values(i.inhrelid)) FROM pg_inherits i"
                " WHERE i.inhparent = (current_schema() || '.' || %s)::regclass",
                [index],
            ).fetchone()
            assert unsummarised == (0,), index
        # traits arrive linked: each write knows when the next one replaced it
        rows = pg.execute(
            "SELECT str, valid_to, linked FROM traits WHERE key = 'country' ORDER BY timestamp"
        ).fetchall()
        assert rows == [("PL", T0 + timedelta(days=1), True), ("DE", None, True)]
        pg.close()


def test_a_second_load_replaces_the_first() -> None:
    con = duckdb.connect()
    load(con, HISTORIES)
    fewer = duckdb.connect()
    load(fewer, HISTORIES[:1])
    with temporary_schema() as url:
        pg = connect(url)
        copy_store(con, pg)
        copy_store(fewer, pg)
        assert pg.execute("SELECT count(*) FROM profiles").fetchone() == (1,)
        pg.close()


def test_evaluation_reads_the_loaded_schema_as_of_an_instant() -> None:
    con = duckdb.connect()
    load(con, HISTORIES)
    segments = [
        parse_segment({"id": "de", "condition": {"trait": "country", "eq": "DE"}}),
        parse_segment(
            {
                "id": "spent",
                "condition": {"event": "Order", "measure": "sum", "of": "revenue", "gte": 25},
            }
        ),
    ]
    with temporary_schema() as url:
        copy_store(con, connect(url))
        batch = PostgresBatch(url)
        try:
            early = batch.evaluate(segments, T0 + timedelta(hours=1))
            assert early.sizes() == {"de": 0, "spent": 0}
            late = batch.evaluate(segments, T0 + timedelta(days=3))
            assert late.membership_map() == {"de": {"p0"}, "spent": {"p0"}}
            assert late.members("de") == ["p0"] and late.size("spent") == 1
            only = batch.evaluate(segments, T0 + timedelta(days=3), only=["de"])
            assert set(only.columns) == {"de"}
        finally:
            batch.close()


def test_an_unreachable_server_is_named_without_its_password() -> None:
    with pytest.raises(EngineUnavailable, match="cannot connect to PostgreSQL at") as err:
        PostgresBatch("postgresql://someone:secret@127.0.0.1:1/nowhere")
    assert "someone@127.0.0.1:1/nowhere" in str(err.value)
    assert "secret" not in str(err.value)


def test_a_url_of_another_engine_is_refused() -> None:
    with pytest.raises(EngineUnavailable, match="not a PostgreSQL URL"):
        PostgresBatch("mysql://root@127.0.0.1/test")
    assert describe("postgresql://u:pw@h:5433/db") == "u@h:5433/db"


def test_an_empty_schema_names_every_missing_table() -> None:
    with temporary_schema() as url, pytest.raises(EngineUnavailable) as err:
        PostgresBatch(url)
    assert str(err.value) == (
        f"PostgreSQL schema {url.rsplit('%3D', 1)[1]!r} lacks the tables events, traits,"
        " profiles, field_catalog, static_members: load a store into it first"
        " (segflow engine load)"
    )


def test_a_search_path_naming_no_schema_is_named() -> None:
    server().close()
    with pytest.raises(EngineUnavailable, match="search_path names no schema"):
        PostgresBatch(f"{URL}?options=-csearch_path%3Dsegflow_absent_{uuid.uuid4().hex[:8]}")


def test_a_user_without_select_is_told_what_to_grant() -> None:
    con = duckdb.connect()
    load(con, HISTORIES)
    role = f"segflow_reader_{uuid.uuid4().hex[:8]}"
    admin = server()
    with temporary_schema() as url:
        copy_store(con, connect(url))
        schema = url.rsplit("%3D", 1)[1]
        admin.execute(f"CREATE ROLE {role} LOGIN")
        try:
            admin.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
            admin.execute(f"GRANT SELECT ON {schema}.events, {schema}.traits TO {role}")
            reader = url.replace("postgres@", f"{role}@", 1)
            with pytest.raises(EngineUnavailable) as err:
                PostgresBatch(reader)
            assert str(err.value) == (
                f"PostgreSQL user {role} may not read {schema}.profiles, field_catalog,"
                " static_members: grant SELECT on them"
            )
        finally:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")
            admin.close()


def test_a_field_path_longer_than_postgres_names_is_refused() -> None:
    con = duckdb.connect()
    long = "properties." + "x" * 60
    load(con, [ProfileHistory("p0", [Event(T0, "View", {long: 1}, message_id="a")], [])])
    with temporary_schema() as url, pytest.raises(ValueError, match="at most 63 bytes"):
        copy_store(con, connect(url))


def test_an_unknown_engine_scheme_names_the_known_ones() -> None:
    from segflow.store.engines import engine_for

    with pytest.raises(EngineUnavailable, match=r"no batch engine for mysql://: .*postgresql://"):
        engine_for("mysql://root@127.0.0.1/shop")
    assert engine_for("postgres://x@h/db").name == "PostgreSQL"
