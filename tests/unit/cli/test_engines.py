"""``segflow engine load``, ``engine attach`` and ``--engine`` on ``eval``, ``members``
and ``export``: the library's segments evaluated on PostgreSQL (a loaded copy, or a
Segment warehouse read in place, there or on Spark) and on chDB give DuckDB's sizes,
members and files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from segflow.cli import app
from segflow.demo import SEGMENTS_DIR, generate_shop, write_jsonl
from segflow.store.postgres.connection import connect
from tests.postgres import temporary_schema
from tests.segment_warehouse import write_segment_parquet, write_segment_schema
from tests.spark import MASTER

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "SEGFLOW_DB": None})
AT = "2026-11-01T00:00:00Z"


def _rows(output: str) -> list[str]:
    """The sizes table's rows (the timing line differs between runs)."""
    return [line for line in output.splitlines() if line.startswith("│")]


def test_eval_and_members_on_postgres_equal_duckdb(shop: Path) -> None:
    with temporary_schema() as url:
        res = runner.invoke(app, ["engine", "load", url, "--db", str(shop)])
        assert res.exit_code == 0, res.output
        assert "events" in res.output and "monthly partitions" in res.output
        on_pg = runner.invoke(app, ["eval", "--at", AT, "--db", str(shop), "--engine", url])
        assert on_pg.exit_code == 0, on_pg.output
        on_duckdb = runner.invoke(app, ["eval", "--at", AT, "--db", str(shop)])
        assert len(_rows(on_pg.output)) > 20
        assert _rows(on_pg.output) == _rows(on_duckdb.output)
        for segment in ("returning_customers", "cart_abandoners_24h", "holdout_10pct"):
            args = ["members", segment, "--at", AT, "--format", "json", "--db", str(shop)]
            pg = runner.invoke(app, [*args, "--engine", url])
            assert pg.exit_code == 0, pg.output
            assert json.loads(pg.output) == json.loads(runner.invoke(app, args).output)
        out = {e: shop.parent / f"vip-{e}.parquet" for e in ("pg", "duckdb")}
        args = ["export", "returning_customers", "--at", AT, "--db", str(shop)]
        res = runner.invoke(app, [*args, "-o", str(out["pg"]), "--engine", url])
        assert res.exit_code == 0, res.output
        runner.invoke(app, [*args, "-o", str(out["duckdb"])])
        pg_rows, duck_rows = (pq.read_table(p).to_pylist() for p in out.values())
        assert len(pg_rows) > 10 and pg_rows == duck_rows


def test_an_engine_without_the_tables_is_one_clear_error(shop: Path) -> None:
    with temporary_schema() as url:
        res = runner.invoke(app, ["members", "everyone", "--db", str(shop), "--engine", url])
    assert res.exit_code == 2
    assert "lacks the tables events, traits, profiles" in res.output
    assert "segflow engine load" in res.output


def test_an_unreachable_engine_is_one_clear_error(shop: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:1/segflow"
    res = runner.invoke(app, ["eval", "--db", str(shop), "--engine", url])
    assert res.exit_code == 2
    assert "cannot connect to PostgreSQL at postgres@127.0.0.1:1/segflow" in res.output


def test_eval_and_members_on_chdb_equal_duckdb(shop: Path, tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'ch'}"
    res = runner.invoke(app, ["engine", "load", url, "--db", str(shop)])
    assert res.exit_code == 0, res.output
    assert "Copied to ClickHouse" in res.output and "events" in res.output
    on_ch = runner.invoke(app, ["eval", "--at", AT, "--db", str(shop), "--engine", url])
    assert on_ch.exit_code == 0, on_ch.output
    on_duckdb = runner.invoke(app, ["eval", "--at", AT, "--db", str(shop)])
    assert len(_rows(on_ch.output)) > 20
    assert _rows(on_ch.output) == _rows(on_duckdb.output)
    for segment in ("returning_customers", "cart_abandoners_24h", "holdout_10pct"):
        args = ["members", segment, "--at", AT, "--format", "json", "--db", str(shop)]
        ch = runner.invoke(app, [*args, "--engine", url])
        assert ch.exit_code == 0, ch.output
        assert json.loads(ch.output) == json.loads(runner.invoke(app, args).output)


def test_a_chdb_directory_without_the_tables_is_one_clear_error(shop: Path, tmp_path: Path) -> None:
    url = f"chdb://{tmp_path}"
    res = runner.invoke(app, ["members", "everyone", "--db", str(shop), "--engine", url])
    assert res.exit_code == 2
    assert "lacks the tables events, traits, profiles" in res.output
    assert "segflow engine load" in res.output
    missing = runner.invoke(
        app, ["eval", "--db", str(shop), "--engine", f"chdb://{tmp_path / 'none'}"]
    )
    assert missing.exit_code == 2
    assert f"chDB directory {tmp_path / 'none'} does not exist" in missing.output


@pytest.fixture(scope="module")
def segment_shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, Any]]]:
    """A shop's store (the library applied) and its messages."""
    tmp_path = tmp_path_factory.mktemp("segment-shop")
    summary = generate_shop(tmp_path / "data", customers=120, seed=11)
    jsonl = tmp_path / "messages.jsonl"
    write_jsonl(summary, jsonl)
    db = str(tmp_path / "shop.duckdb")
    assert runner.invoke(app, ["ingest", str(jsonl), "--db", db]).exit_code == 0
    applied = runner.invoke(app, ["segments", "apply", str(SEGMENTS_DIR), "--db", db])
    assert applied.exit_code == 0, applied.output
    return db, [json.loads(line) for line in jsonl.open()]


def _attach_and_eval(db: str, url: str, source: str) -> None:
    res = runner.invoke(app, ["engine", "attach", url, "--segment-schema", source])
    assert res.exit_code == 0, res.output
    assert "per-event tables" in res.output and "pages, identifies" in res.output
    there = runner.invoke(app, ["eval", "--at", AT, "--db", db, "--engine", url])
    assert there.exit_code == 0, there.output
    on_duckdb = runner.invoke(app, ["eval", "--at", AT, "--db", db])
    assert len(_rows(there.output)) > 20
    assert _rows(there.output) == _rows(on_duckdb.output)


def test_eval_on_an_attached_segment_warehouse_equals_duckdb(
    segment_shop: tuple[str, list[dict[str, Any]]],
) -> None:
    db, messages = segment_shop
    with temporary_schema() as source_url, temporary_schema() as url:
        source = source_url.rsplit("%3D", 1)[1]
        con = connect(source_url)
        write_segment_schema(con, source, messages)
        con.close()
        _attach_and_eval(db, url, source)


@pytest.mark.spark
def test_eval_on_segment_parquet_tables_attached_on_spark_equals_duckdb(
    segment_shop: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    db, messages = segment_shop
    write_segment_parquet(tmp_path / "lake", messages)
    _attach_and_eval(db, f"spark://{MASTER}{tmp_path / 'engine'}", str(tmp_path / "lake"))


def test_attaching_a_schema_without_tracks_is_one_clear_error() -> None:
    with temporary_schema() as source_url, temporary_schema() as url:
        source = source_url.rsplit("%3D", 1)[1]
        res = runner.invoke(app, ["engine", "attach", url, "--segment-schema", source])
    assert res.exit_code == 2
    assert res.output.strip() == (
        f"PostgreSQL schema {source!r} has no table tracks: not a Segment warehouse schema"
        " (--segment-schema names the source's schema)"
    )


def test_eval_and_members_on_another_duckdb_file_equal_the_store(
    shop: Path, tmp_path: Path
) -> None:
    url = f"duckdb://{tmp_path / 'copy.duckdb'}"
    res = runner.invoke(app, ["engine", "load", url, "--db", str(shop)])
    assert res.exit_code == 0, res.output
    assert "Copied to DuckDB" in res.output
    on_copy = runner.invoke(app, ["eval", "--at", AT, "--db", str(shop), "--engine", url])
    assert on_copy.exit_code == 0, on_copy.output
    on_store = runner.invoke(app, ["eval", "--at", AT, "--db", str(shop)])
    assert len(_rows(on_copy.output)) > 20
    assert _rows(on_copy.output) == _rows(on_store.output)
    args = ["members", "returning_customers", "--at", AT, "--format", "json", "--db", str(shop)]
    copy = runner.invoke(app, [*args, "--engine", url])
    assert copy.exit_code == 0, copy.output
    assert json.loads(copy.output) == json.loads(runner.invoke(app, args).output)
    missing = runner.invoke(
        app, ["eval", "--db", str(shop), "--engine", f"duckdb://{tmp_path / 'none.duckdb'}"]
    )
    assert missing.exit_code == 2
    assert "does not exist: load a store into it first" in missing.output
