"""Flat CSV / Parquet event tables, loaded vectorised by DuckDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segflow.model.events import IngestError
from segflow.model.time import utcnow
from segflow.store.duckdb.sql import quote_ident
from segflow.store.duckdb.store import DuckDBStore


@pytest.fixture
def store() -> Iterator[DuckDBStore]:
    s = DuckDBStore(":memory:")
    yield s
    s.close()


def csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def catalog(store: DuckDBStore) -> dict[str, tuple[str, bool]]:
    return {p: (f.type, f.overflow) for p, f in store.fields.items()}


def test_csv_dotted_columns_get_the_type_of_the_whole_column(
    store: DuckDBStore, tmp_path: Path
) -> None:
    path = csv(
        tmp_path / "events.csv",
        """
message_id,type,event,user_id,timestamp,properties.price,properties.sku,properties.gift,context.device.type
m1,track,Viewed,u1,2026-01-01T10:00:00+02:00,10,007,true,ios
m2,track,Viewed,u1,2026-01-02T00:00:00Z,12.5,A2,false,
""",
    )
    report = store.ingest_table(path)
    assert (report.read, report.inserted) == (2, 2)
    assert catalog(store) == {
        "properties.price": ("DOUBLE", False),
        "properties.sku": ("VARCHAR", False),
        "properties.gift": ("BOOLEAN", False),
        "context.device.type": ("VARCHAR", False),
    }
    first, second = store.events_for_profile("u1")
    assert first["timestamp"] == datetime(2026, 1, 1, 8)
    assert first["properties"] == {"price": 10.0, "sku": "007", "gift": True}
    assert first["context"] == {"device": {"type": "ios"}}
    assert second["properties"] == {"price": 12.5, "sku": "A2", "gift": False}


def test_parquet_columns_keep_their_native_types(store: DuckDBStore, tmp_path: Path) -> None:
    table = pa.table(
        {
            "messageId": ["m1", "m2"],
            "event": ["Order Completed", "Order Completed"],
            "anonymousId": ["a1", "a2"],
            "timestamp": pa.array([datetime(2026, 1, 1), datetime(2026, 1, 2)], pa.timestamp("us")),
            "properties.revenue": pa.array([10, 20], pa.int64()),
            "properties.coupon": [None, "X"],
            "properties.first": [True, False],
            "properties.skus": [["a", "b"], ["c"]],
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    store.ingest_table(tmp_path / "events.parquet")
    assert catalog(store) == {
        "properties.revenue": ("DOUBLE", False),
        "properties.coupon": ("VARCHAR", False),
        "properties.first": ("BOOLEAN", False),
        "properties.skus": ("JSON", False),
    }
    (event,) = store.events_for_profile("a2")
    assert event["type"] == "track"  # no type column: every row is a track
    assert event["properties"] == {"revenue": 20.0, "coupon": "X", "first": False, "skus": ["c"]}


def test_rows_without_message_id_get_a_content_hash_so_reloads_add_nothing(
    store: DuckDBStore, tmp_path: Path
) -> None:
    path = csv(
        tmp_path / "events.csv",
        """
event,user_id,timestamp,properties.n
A,u1,2026-01-01T00:00:00Z,1
B,u1,2026-01-01T00:00:00Z,1
A,u1,2026-01-01T00:00:00Z,1
""",
    )
    report = store.ingest_table(path)
    assert (report.inserted, report.duplicates) == (2, 1)  # the third row repeats the first
    ids = [e["message_id"] for e in store.events_for_profile("u1")]
    assert all(i.startswith("h:") for i in ids) and len(set(ids)) == 2
    assert store.ingest_table(path).inserted == 0
    assert store.count_events() == 2


def test_invalid_rows_are_reported_with_row_line_and_column_and_nothing_is_stored(
    store: DuckDBStore, tmp_path: Path
) -> None:
    path = csv(
        tmp_path / "events.csv",
        """
type,event,userId,anonymous_id,timestamp
track,A,u1,,2026-01-01
track,A,u1,,
foo,A,u1,,2026-01-01
track,A,u1,,soon
track,A,,,2026-01-01
""",
    )
    with pytest.raises(IngestError) as err:
        store.ingest_table(path)
    assert [str(p) for p in err.value.problems] == [
        f"{path}:3: row 2: timestamp: missing",
        f'{path}:4: row 3: type: unknown message type "foo"',
        f"{path}:5: row 4: timestamp: not an ISO 8601 timestamp: soon",
        f"{path}:6: row 5: userId: missing (a message needs user_id or anonymous_id)",
    ]
    assert store.count_events() == 0
    assert store.profile_ids() == []


def test_skip_invalid_loads_the_valid_rows(store: DuckDBStore, tmp_path: Path) -> None:
    path = csv(
        tmp_path / "events.csv",
        """
event,user_id,timestamp
A,u1,2026-01-01
A,u1,
B,u1,2026-01-02
""",
    )
    report = store.ingest_table(path, skip_invalid=True)
    assert (report.read, report.inserted, report.invalid) == (3, 2, 1)
    assert [p.row for p in report.problems] == [2]
    assert [e["event"] for e in store.events_for_profile("u1")] == ["A", "B"]


def test_parquet_problems_name_the_row(store: DuckDBStore, tmp_path: Path) -> None:
    pq.write_table(
        pa.table(
            {"event": ["A", None], "user_id": ["u", "u"], "timestamp": ["2026-01-01", "2026-01-02"]}
        ),
        tmp_path / "events.parquet",
    )
    with pytest.raises(IngestError) as err:
        store.ingest_table(tmp_path / "events.parquet")
    assert (
        str(err.value)
        == f"{tmp_path / 'events.parquet'}: row 2: event: missing (required for track)"
    )


@pytest.mark.parametrize("stage_bytes", [None, 0], ids=["staged", "read-per-step"])
def test_parquet_skip_invalid_loads_the_valid_rows_and_leaves_no_stage(
    store: DuckDBStore, tmp_path: Path, stage_bytes: int | None
) -> None:
    store.table_stage_bytes = stage_bytes
    pq.write_table(
        pa.table(
            {
                "event": ["A", None, "B"],
                "user_id": ["u1", "u1", "u1"],
                "timestamp": ["2026-01-01", "2026-01-02", "2026-01-03"],
                "properties.n": [1, 2, 3],
            }
        ),
        tmp_path / "events.parquet",
    )
    report = store.ingest_table(tmp_path / "events.parquet", skip_invalid=True)
    assert (report.read, report.inserted, report.invalid) == (3, 2, 1)
    assert [(p.row, p.field) for p in report.problems] == [(2, "event")]
    stored = store.events_for_profile("u1")
    assert [(e["event"], e["properties"]["n"]) for e in stored] == [("A", 1), ("B", 3)]
    temps = store.con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary"
        " UNION ALL SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal"
    ).fetchall()
    assert temps == []


def test_unknown_and_missing_columns_reject_the_file(store: DuckDBStore, tmp_path: Path) -> None:
    path = csv(tmp_path / "events.csv", "event,user,when\nA,u,2026-01-01\n")
    with pytest.raises(IngestError) as err:
        store.ingest_table(path)
    shown = [str(p) for p in err.value.problems]
    assert shown[0].startswith(f"{path}: user: unknown column")
    assert f"{path}: timestamp: missing column" in shown
    assert f"{path}: user_id: missing column (need user_id or anonymous_id)" in shown


def test_json_text_columns_are_flattened_per_value(store: DuckDBStore, tmp_path: Path) -> None:
    path = csv(
        tmp_path / "events.csv",
        """
message_id,type,event,user_id,timestamp,properties,traits
m1,track,A,u1,2026-01-01,"{""size"": 42, ""tags"": [1], ""dims"": {""w"": 2}}",
m2,track,A,u1,2026-01-02,"{""size"": ""XL"", ""dims"": {""w"": 3}}",
m3,identify,,u1,2026-01-03,,"{""plan"": ""pro"", ""age"": 30, ""address"": {""city"": ""Oslo""}}"
m4,identify,,u1,2026-01-04,,"{""plan"": null}"
""",
    )
    store.ingest_table(path)
    cat = catalog(store)
    assert cat["properties.size"] == ("DOUBLE", True)
    assert cat["properties.tags"] == ("JSON", False)
    assert cat["properties.dims.w"] == ("DOUBLE", False)
    events = store.events_for_profile("u1")
    assert events[0]["properties"] == {"size": 42.0, "tags": [1], "dims": {"w": 2.0}}
    assert events[1]["properties"] == {"size": "XL", "dims": {"w": 3.0}}
    assert store.traits_as_of("u1", datetime(2026, 1, 3)) == {
        "plan": "pro",
        "age": 30.0,
        "address.city": "Oslo",
    }
    assert store.traits_as_of("u1") == {"age": 30.0, "address.city": "Oslo"}


def test_trait_columns_count_for_identify_rows_and_context_traits_for_all(
    store: DuckDBStore, tmp_path: Path
) -> None:
    path = csv(
        tmp_path / "events.csv",
        """
message_id,type,event,group_id,user_id,timestamp,traits.plan,context.traits.email
m1,group,,g1,u1,2026-01-01,enterprise,
m2,identify,,,u1,2026-01-02,pro,
m3,track,A,,u1,2026-01-03,,a@b.c
""",
    )
    store.ingest_table(path)
    assert store.traits_as_of("u1") == {"plan": "pro", "email": "a@b.c"}


def test_a_column_whose_type_disagrees_with_the_catalog_goes_to_extra(
    store: DuckDBStore, tmp_path: Path
) -> None:
    first = csv(
        tmp_path / "a.csv",
        "message_id,event,user_id,timestamp,properties.size\nm1,A,u1,2026-01-01,42\n",
    )
    second = csv(
        tmp_path / "b.csv",
        "message_id,event,user_id,timestamp,properties.size\nm2,A,u1,2026-01-02,XL\n",
    )
    store.ingest_table(first)
    store.ingest_table(second)
    assert catalog(store)["properties.size"] == ("DOUBLE", True)
    rows = store.con.execute('SELECT "properties.size", extra FROM events ORDER BY seq').fetchall()
    assert rows[0] == (42.0, None)
    assert rows[1][0] is None and orjson.loads(rows[1][1]) == {"properties": {"size": "XL"}}


def test_received_at_defaults_to_the_load_time(store: DuckDBStore, tmp_path: Path) -> None:
    path = csv(
        tmp_path / "events.csv",
        "event,user_id,timestamp,received_at\nA,u1,2026-01-01,\nB,u1,2026-01-01,2026-01-01T00:00:05Z\n",
    )
    before = utcnow()
    store.ingest_table(path)
    after = utcnow()
    got = {e["event"]: e["received_at"] for e in store.events_for_profile("u1")}
    assert got["B"] == datetime(2026, 1, 1, 0, 0, 5)
    assert before <= got["A"] <= after


def test_sql_injection_in_a_column_name_and_value_is_stored_as_data(
    store: DuckDBStore, tmp_path: Path
) -> None:
    key = 'properties.a""; DROP TABLE events; --'
    path = csv(
        tmp_path / "events.csv",
        f'event,user_id,timestamp,"{key}"\nA,u1,2026-01-01,"x\'); DROP TABLE events; --"\n',
    )
    store.ingest_table(path)
    name = 'properties.a"; DROP TABLE events; --'
    assert name in store.fields
    assert store.con.execute(f"SELECT {quote_ident(name)} FROM events").fetchone() == (
        "x'); DROP TABLE events; --",
    )


def test_progress_is_reported_per_step(store: DuckDBStore, tmp_path: Path) -> None:
    path = csv(tmp_path / "events.csv", "event,user_id,timestamp\nA,u1,2026-01-01\n")
    seen: list[tuple[int, int]] = []
    store.ingest_table(path, progress=lambda done, total: seen.append((done, total)))
    assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1]
