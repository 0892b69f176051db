"""The demo shop generator: deterministic, well-formed, and shaped like a real store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from segflow.demo import generator
from segflow.demo.generator import CATEGORIES, SCHEMA, ShopSummary, generate_shop, write_jsonl

CUSTOMERS = 1_500
END = datetime(2026, 11, 1)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> ShopSummary:
    return generate_shop(tmp_path_factory.mktemp("shop"), customers=CUSTOMERS, seed=42)


@pytest.fixture(scope="module")
def table(shop: ShopSummary) -> pa.Table:
    return shop.read()


@pytest.fixture(scope="module")
def con(table: pa.Table) -> Iterator[duckdb.DuckDBPyConnection]:
    """The shop as a DuckDB view ``e`` with ``cust``, the customer number from the message id."""
    c = duckdb.connect()
    c.register("raw", table)
    c.execute("CREATE VIEW e AS SELECT *, split_part(message_id, '-', 2) AS cust FROM raw")
    yield c
    c.close()


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    assert row is not None
    return row[0]


# -- determinism ---------------------------------------------------------------


def test_same_seed_gives_identical_data(tmp_path: Path) -> None:
    a = generate_shop(tmp_path / "a", customers=300, seed=7)
    b = generate_shop(tmp_path / "b", customers=300, seed=7)
    assert a.events == b.events
    assert a.read().equals(b.read())


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    a = generate_shop(tmp_path / "a", customers=300, seed=7).read()
    b = generate_shop(tmp_path / "b", customers=300, seed=8).read()
    assert not a.equals(b)
    assert a["message_id"][0].as_py() != b["message_id"][0].as_py()


def test_chunk_size_changes_the_files_not_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generator, "BLOCK", 100)
    one = generate_shop(tmp_path / "one", customers=450, chunk_customers=100)
    two = generate_shop(tmp_path / "two", customers=450, chunk_customers=200)
    assert len(one.paths) == 5
    assert len(two.paths) == 3
    assert one.read().equals(two.read())


def test_default_end_is_a_fixed_instant(shop: ShopSummary) -> None:
    assert shop.end == END
    assert shop.start == END - timedelta(days=365)


def test_aware_end_is_converted_to_naive_utc(tmp_path: Path) -> None:
    cest = timezone(timedelta(hours=2))
    s = generate_shop(tmp_path, customers=50, days=10, end=datetime(2026, 5, 1, 12, tzinfo=cest))
    assert s.end == datetime(2026, 5, 1, 10)
    assert s.end.tzinfo is None


# -- shape and invariants --------------------------------------------------------


def test_columns_and_types_are_the_declared_schema(table: pa.Table) -> None:
    assert table.schema.equals(SCHEMA)
    for core in ("message_id", "type", "event", "user_id", "anonymous_id", "timestamp"):
        assert core in table.column_names
    assert table.schema.field("timestamp").type == pa.timestamp("us")


def test_about_a_hundred_events_per_customer(shop: ShopSummary) -> None:
    assert shop.customers == CUSTOMERS
    assert 60 <= shop.events / CUSTOMERS <= 160
    assert 0 < shop.identified < CUSTOMERS


def test_timestamps_lie_strictly_inside_the_window(shop: ShopSummary, table: pa.Table) -> None:
    span = pc.min_max(table["timestamp"])
    lo, hi = span["min"].as_py(), span["max"].as_py()
    assert shop.start < lo
    assert hi < shop.end
    assert (lo, hi) == (shop.first_event_at, shop.last_event_at)


def test_message_ids_are_unique(con: duckdb.DuckDBPyConnection, shop: ShopSummary) -> None:
    assert scalar(con, "SELECT count(DISTINCT message_id) FROM e") == shop.events


def test_every_event_has_an_identity(con: duckdb.DuckDBPyConnection) -> None:
    assert scalar(con, "SELECT count(*) FROM e WHERE user_id IS NULL AND anonymous_id IS NULL") == 0


def test_types_and_event_names(con: duckdb.DuckDBPyConnection) -> None:
    rows = dict(con.execute("SELECT type, count(DISTINCT event) FROM e GROUP BY type").fetchall())
    assert set(rows) == {"track", "identify", "page"}
    assert rows["identify"] == 0
    assert rows["page"] == 0
    names = {
        r[0] for r in con.execute("SELECT DISTINCT event FROM e WHERE type = 'track'").fetchall()
    }
    assert names == {
        "Product Viewed",
        "Products Searched",
        "Product Added",
        "Product Removed",
        "Product Added to Wishlist",
        "Checkout Started",
        "Order Completed",
        "Email Opened",
        "Email Link Clicked",
    }


def test_orders_have_an_id_positive_revenue_and_a_category(con: duckdb.DuckDBPyConnection) -> None:
    bad = scalar(
        con,
        """SELECT count(*) FROM e WHERE event = 'Order Completed' AND (
             "properties.order_id" IS NULL OR NOT "properties.revenue" > 0
             OR "properties.currency" IS DISTINCT FROM 'USD' OR "properties.category" IS NULL
             OR user_id IS NULL)""",
    )
    assert bad == 0
    assert scalar(
        con,
        """SELECT count(DISTINCT "properties.order_id") = count(*) FROM e
                WHERE event = 'Order Completed'""",
    )


def test_coupon_goes_with_a_discount(con: duckdb.DuckDBPyConnection) -> None:
    bad = scalar(
        con,
        """SELECT count(*) FROM e WHERE event = 'Order Completed'
           AND ("properties.coupon" IS NULL) <> ("properties.discount" = 0)""",
    )
    assert bad == 0
    assert scalar(con, """SELECT count(*) FROM e WHERE "properties.coupon" IS NOT NULL""")


def test_every_order_follows_a_product_added_by_the_same_customer(
    con: duckdb.DuckDBPyConnection,
) -> None:
    orphans = scalar(
        con,
        """SELECT count(*) FROM e o WHERE o.event = 'Order Completed' AND NOT EXISTS (
             SELECT 1 FROM e a WHERE a.event = 'Product Added' AND a.cust = o.cust
             AND a."timestamp" < o."timestamp")""",
    )
    assert orphans == 0


def test_product_events_carry_product_fields(con: duckdb.DuckDBPyConnection) -> None:
    bad = scalar(
        con,
        """SELECT count(*) FROM e WHERE event IN ('Product Viewed', 'Product Added',
             'Product Removed', 'Product Added to Wishlist') AND ("properties.product_id" IS NULL
             OR "properties.category" IS NULL OR NOT "properties.price" > 0)""",
    )
    assert bad == 0
    assert (
        scalar(con, """SELECT min("properties.quantity") FROM e WHERE event = 'Product Added'""")
        == 1
    )


def test_catalogue_prices_fit_their_category(con: duckdb.DuckDBPyConnection) -> None:
    prices = {
        cat: (lo, hi)
        for cat, lo, hi in con.execute(
            """SELECT "properties.category", min("properties.price"), max("properties.price")
               FROM e WHERE event = 'Product Viewed' GROUP BY 1"""
        ).fetchall()
    }
    assert set(prices) == set(CATEGORIES)
    assert prices["Luxury Watches"][0] >= 1_000
    assert prices["Books"][1] < 100


def test_identify_calls_carry_traits(con: duckdb.DuckDBPyConnection) -> None:
    bad = scalar(
        con,
        """SELECT count(*) FROM e WHERE type = 'identify' AND (user_id IS NULL
             OR "traits.email" NOT LIKE '%@%' OR "traits.country" IS NULL
             OR "traits.consent_email" IS NULL OR "traits.vip" IS NULL
             OR TRY_CAST("traits.created_at" AS TIMESTAMPTZ) IS NULL)""",
    )
    assert bad == 0
    assert (
        scalar(
            con,
            """SELECT count(*) FROM e WHERE "traits.email" IS NOT NULL
                          AND type <> 'identify'""",
        )
        == 0
    )


def test_visitors_are_anonymous_until_they_identify(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """CREATE OR REPLACE TEMP VIEW first_id AS
           SELECT cust, min("timestamp") AS at FROM e WHERE type = 'identify' GROUP BY cust"""
    )
    known_too_early = scalar(
        con,
        """SELECT count(*) FROM e JOIN first_id f USING (cust)
           WHERE e."timestamp" < f.at AND e.user_id IS NOT NULL""",
    )
    anonymous_after = scalar(
        con,
        """SELECT count(*) FROM e JOIN first_id f USING (cust)
           WHERE e."timestamp" >= f.at AND e.user_id IS NULL""",
    )
    assert known_too_early == 0
    assert anonymous_after == 0
    browsed_first = scalar(
        con,
        """SELECT count(DISTINCT cust) FROM e JOIN first_id f USING (cust)
           WHERE e."timestamp" < f.at""",
    )
    assert browsed_first > 0


def test_some_visitors_never_identify(con: duckdb.DuckDBPyConnection) -> None:
    never = scalar(
        con, "SELECT count(*) FROM (SELECT cust FROM e GROUP BY cust HAVING count(user_id) = 0)"
    )
    assert 0 < never < CUSTOMERS / 2


def test_emails_go_to_customers_who_consented(con: duckdb.DuckDBPyConnection) -> None:
    bad = scalar(
        con,
        """SELECT count(*) FROM e m WHERE m.event IN ('Email Opened', 'Email Link Clicked')
           AND (m.anonymous_id IS NOT NULL OR m."properties.campaign_id" IS NULL
                OR NOT EXISTS (SELECT 1 FROM e i WHERE i.type = 'identify' AND i.cust = m.cust
                               AND i."timestamp" < m."timestamp" AND i."traits.consent_email"))""",
    )
    assert bad == 0
    assert scalar(con, "SELECT count(*) FROM e WHERE event = 'Email Link Clicked'")


def test_searches_include_zero_result_queries(con: duckdb.DuckDBPyConnection) -> None:
    zero, total, bad = con.execute(
        """SELECT count(*) FILTER (WHERE "properties.results" = 0), count(*),
                  count(*) FILTER (WHERE "properties.query" IS NULL OR "properties.results" < 0)
           FROM e WHERE event = 'Products Searched'"""
    ).fetchall()[0]
    assert bad == 0
    assert 0 < zero < total / 4


def test_context_has_devices_locations_and_sources(con: duckdb.DuckDBPyConnection) -> None:
    devices = {r[0] for r in con.execute('SELECT DISTINCT "context.device.type" FROM e').fetchall()}
    assert devices == {"mobile", "desktop", "tablet", None}
    assert (
        scalar(
            con,
            """SELECT count(*) FROM e WHERE type = 'page' AND ("context.location.country" IS NULL
           OR "context.os.name" IS NULL OR "context.campaign.source" IS NULL)""",
        )
        == 0
    )
    sources = {
        r[0] for r in con.execute('SELECT DISTINCT "context.campaign.source" FROM e').fetchall()
    }
    assert {"google", "newsletter", "direct", "instagram"} <= sources


def test_recent_activity_exists_at_the_end(con: duckdb.DuckDBPyConnection) -> None:
    end = "TIMESTAMP '2026-11-01 00:00:00'"
    views_48h = scalar(
        con,
        f"""SELECT count(*) FROM e WHERE event = 'Product Viewed'
                 AND "timestamp" > {end} - INTERVAL 48 HOUR""",
    )
    adds_week = scalar(
        con,
        f"""SELECT count(*) FROM e WHERE event = 'Product Added'
                 AND "timestamp" BETWEEN {end} - INTERVAL 7 DAY AND {end} - INTERVAL 1 DAY""",
    )
    assert views_48h > 0
    assert adds_week > 0


def test_activity_follows_lifecycles(con: duckdb.DuckDBPyConnection) -> None:
    last = dict(
        con.execute(
            """SELECT bucket, count(*) FROM (
                 SELECT CASE WHEN max("timestamp") > TIMESTAMP '2026-10-01' THEN 'active'
                             WHEN max("timestamp") < TIMESTAMP '2026-07-01' THEN 'gone'
                             ELSE 'fading' END AS bucket
                 FROM e WHERE type <> 'identify' AND event NOT LIKE 'Email%' GROUP BY cust)
               GROUP BY bucket"""
        ).fetchall()
    )
    assert last["active"] > CUSTOMERS / 5
    assert last["gone"] > CUSTOMERS / 10
    assert last["fading"] > 0


# -- files, progress, failures -----------------------------------------------------


def test_progress_reports_every_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generator, "BLOCK", 100)
    seen: list[tuple[int, int]] = []
    generate_shop(tmp_path, customers=250, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(100, 250), (200, 250), (250, 250)]


def test_a_failed_run_keeps_the_previous_shop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = generate_shop(tmp_path, customers=120)
    monkeypatch.setattr(generator, "BLOCK", 50)
    real = generator._block

    def failing(world: generator._World, b: int, lo: int, n: int) -> tuple[pa.Table, int]:
        if b == 2:
            raise RuntimeError("disk full")
        return real(world, b, lo, n)

    monkeypatch.setattr(generator, "_block", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_shop(tmp_path, customers=400, chunk_customers=50)
    assert sorted(tmp_path.iterdir()) == list(before.paths)
    assert pq.read_table(before.paths[0]).num_rows == before.events


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="customers"):
        generate_shop(tmp_path, customers=0)
    with pytest.raises(ValueError, match="days"):
        generate_shop(tmp_path, customers=10, days=1)


# -- JSON Lines ------------------------------------------------------------------


def test_write_jsonl_writes_segment_spec_messages(shop: ShopSummary, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    assert write_jsonl(shop, path, limit=500) == 500
    messages = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert len(messages) == 500
    for m in messages:
        assert m["messageId"]
        assert "userId" in m or "anonymousId" in m
        assert m["timestamp"].endswith("Z")
        assert datetime.fromisoformat(m["timestamp"]).tzinfo == UTC
        assert not any("." in k for k in m)
    identify = next(m for m in messages if m["type"] == "identify")
    assert "@" in identify["traits"]["email"]
    assert isinstance(identify["traits"]["consent_email"], bool)
    track = next(m for m in messages if m.get("event") == "Product Viewed")
    assert set(track["properties"]) >= {"product_id", "category", "price"}
    assert track["context"]["device"]["type"] in {"mobile", "desktop", "tablet"}
    page = next(m for m in messages if m["type"] == "page")
    assert page["name"] == page["properties"]["name"]
    assert "event" not in page


def test_write_jsonl_from_a_table_writes_every_row(table: pa.Table, tmp_path: Path) -> None:
    small = table.slice(0, 1234)
    path = tmp_path / "all.jsonl"
    assert write_jsonl(small, path) == 1234
    assert len(path.read_bytes().splitlines()) == 1234
