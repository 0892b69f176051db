"""The ready-made segment library: well-formed definitions that make sense on the demo shop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from segflow.demo import SEGMENTS_DIR
from segflow.demo.generator import DEFAULT_END, ShopSummary, generate_shop

REQUIRED_KEYS = ("id", "name", "description", "purpose", "tags", "mode", "emit_events", "condition")
REQUIRED_IDS = {
    "everyone",
    "new_visitors",
    "returning_customers",
    "high_value_customers",
    "cart_abandoners_24h",
    "first_time_purchasers_30d",
    "win_back",
    "loyal",
    "at_risk",
    "viewed_3_plus_no_buy",
    "searched_not_found",
    "category_affinity_luxury",
    "luxury_cart_abandoners",
    "engaged_email_readers",
    "mobile_shoppers",
    "discount_only_shoppers",
}
RARE = {"luxury_cart_abandoners"}
"""Segments too narrow to be reliably non-empty on the small shop these tests generate."""

FILES = sorted(SEGMENTS_DIR.glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), f"{path.name}: not a mapping"
    return doc


@pytest.fixture(scope="module")
def library() -> dict[str, dict[str, Any]]:
    return {load(p)["id"]: load(p) for p in FILES}


def references(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if "in_segment" in node:
            yield node["in_segment"]
        for v in node.values():
            yield from references(v)
    elif isinstance(node, list):
        for v in node:
            yield from references(v)


def test_library_has_every_required_segment(library: dict[str, dict[str, Any]]) -> None:
    assert len(FILES) >= 20
    assert set(library) >= REQUIRED_IDS


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_file_is_one_segment_with_the_required_keys(path: Path) -> None:
    doc = load(path)
    missing = [k for k in REQUIRED_KEYS if k not in doc]
    assert not missing, f"{path.name} lacks {missing}"
    assert doc["id"] == path.stem
    assert doc["mode"] in {"realtime", "scheduled", "static"}
    assert isinstance(doc["tags"], list)
    assert doc["tags"]
    assert isinstance(doc["emit_events"], bool)
    for key in ("name", "description", "purpose"):
        assert isinstance(doc[key], str)
        assert doc[key].strip()


def test_ids_are_unique() -> None:
    ids = [load(p)["id"] for p in FILES]
    assert len(ids) == len(set(ids))


def test_references_point_inside_the_library(library: dict[str, dict[str, Any]]) -> None:
    for sid, doc in library.items():
        for ref in references(doc["condition"]):
            assert ref in library, f"{sid} references unknown segment {ref}"
            assert ref != sid


def test_luxury_cart_abandoners_is_the_design_example(library: dict[str, dict[str, Any]]) -> None:
    assert library["luxury_cart_abandoners"]["condition"] == {
        "all": [
            {
                "event": "Order Completed",
                "within": "180d",
                "measure": "sum",
                "of": "revenue",
                "gt": 5000,
            },
            {
                "event": "Product Viewed",
                "where": [{"property": "category", "eq": "Luxury Watches"}],
                "within": "48h",
            },
            {
                "event": "Product Added",
                "not_followed_by": "Order Completed",
                "for": "24h",
                "within": "7d",
            },
        ]
    }


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_segment_parses(path: Path) -> None:
    definition = pytest.importorskip("segflow.model.definition")
    parse_segment = getattr(definition, "parse_segment", None)
    if parse_segment is None:
        pytest.skip("segflow.model.definition has no parse_segment yet")
    segment = parse_segment(load(path))
    assert segment.id == path.stem


# -- on the demo shop ----------------------------------------------------------


def load_shop(con: duckdb.DuckDBPyConnection, shop: ShopSummary) -> None:
    """Put the shop into the store schema by hand: identities resolved through identify calls.

    Deliberately minimal (no ingestion code): it pins the library against the evaluator.
    """
    from segflow.store.duckdb.schema import DDL

    con.execute(DDL)
    files = ", ".join(f"'{p}'" for p in shop.paths)
    con.execute(f"CREATE TEMP VIEW raw AS SELECT * FROM read_parquet([{files}])")
    described = con.execute("DESCRIBE raw").fetchall()
    fields = [(str(r[0]), str(r[1])) for r in described if "." in str(r[0])]
    traits = [(c, t) for c, t in fields if c.startswith("traits.")]
    event_fields = [(c, t) for c, t in fields if not c.startswith("traits.")]
    for column, type_ in event_fields:
        kind = {"BIGINT": "DOUBLE", "DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN"}.get(type_, "VARCHAR")
        con.execute(f'ALTER TABLE events ADD COLUMN "{column}" {kind}')
        con.execute("INSERT INTO field_catalog VALUES (?, ?, false)", [column, kind])
    con.execute(
        """CREATE TEMP TABLE idmap AS SELECT anonymous_id, min(user_id) AS user_id FROM raw
           WHERE user_id IS NOT NULL AND anonymous_id IS NOT NULL GROUP BY anonymous_id"""
    )
    names = ", ".join(f'"{c}"' for c, _ in event_fields)
    con.execute(
        f"""INSERT INTO events (message_id, seq, type, event, user_id, anonymous_id, profile_id,
                                "timestamp", {names})
            SELECT message_id, row_number() OVER (), type, event, r.user_id, r.anonymous_id,
                   coalesce(r.user_id, m.user_id, r.anonymous_id), "timestamp", {names}
            FROM raw r LEFT JOIN idmap m USING (anonymous_id)"""
    )
    con.execute(
        """INSERT INTO profiles SELECT profile_id, min("timestamp"), max("timestamp")
           FROM events GROUP BY profile_id"""
    )
    for column, type_ in traits:
        value = (
            f"'bool', NULL, NULL, \"{column}\""
            if type_ == "BOOLEAN"
            else f"'string', NULL, \"{column}\", NULL"
        )
        con.execute(
            f"""INSERT INTO traits (profile_id, key, "timestamp", message_id, kind, num, str,
                       bool, json)
                SELECT user_id, '{column.split(".", 1)[1]}', "timestamp",
                       message_id, {value}, NULL
                FROM raw WHERE type = 'identify' AND "{column}" IS NOT NULL"""
        )


@pytest.fixture(scope="module")
def sizes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    run = pytest.importorskip("segflow.store.duckdb.batch")
    pytest.importorskip("segflow.store.duckdb.schema")
    from segflow.model.definition import parse_segment

    shop = generate_shop(tmp_path_factory.mktemp("shop"), customers=4_000, seed=42)
    con = duckdb.connect()
    try:
        load_shop(con, shop)
        # the value scores are traits the demo command computes after loading
        from segflow.store.duckdb.scores import DuckDBScores
        from segflow.traits.refresh import ScoresConfig, refresh_scores

        refresh_scores(DuckDBScores(con), DEFAULT_END, ScoresConfig(classifier=False))
        segments = [parse_segment(load(p)) for p in FILES]
        result = run.evaluate(con, segments, DEFAULT_END)
        out: dict[str, int] = result.sizes()
    finally:
        con.close()
    return out


def test_everyone_is_every_profile(sizes: dict[str, int]) -> None:
    assert sizes["everyone"] == 4_000


@pytest.mark.parametrize("sid", [p.stem for p in FILES if p.stem not in {"everyone", *RARE}])
def test_segment_is_neither_empty_nor_everyone_on_the_demo_shop(
    sizes: dict[str, int], sid: str
) -> None:
    assert 0 < sizes[sid] < sizes["everyone"] * 0.6, f"{sid}: {sizes[sid]} of {sizes['everyone']}"
