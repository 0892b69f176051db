"""JSON Lines and in-memory ingestion: idempotency, atomic files, typed columns, safety."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from segflow.model.events import IngestError
from segflow.store.duckdb.sql import quote_ident
from segflow.store.duckdb.store import DuckDBStore


@pytest.fixture
def store() -> Iterator[DuckDBStore]:
    s = DuckDBStore(":memory:")
    yield s
    s.close()


def write(path: Path, *messages: dict[str, Any] | str) -> Path:
    with path.open("wb") as f:
        for m in messages:
            f.write((m.encode() if isinstance(m, str) else orjson.dumps(m)) + b"\n")
    return path


def track(mid: str, ts: str = "2026-01-01T00:00:00Z", **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Viewed",
        "messageId": mid,
        "userId": "u1",
        "timestamp": ts,
        **extra,
    }


def catalog(store: DuckDBStore) -> dict[str, tuple[str, bool]]:
    return {p: (f.type, f.overflow) for p, f in store.fields.items()}


def test_events_are_stored_with_one_typed_column_per_leaf(
    store: DuckDBStore, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "events.jsonl",
        track(
            "m1",
            properties={"price": 9.5, "sku": "A1", "gift": False},
            context={"device": {"type": "ios"}},
        ),
    )
    report = store.ingest_jsonl(path)
    assert (report.read, report.inserted, report.duplicates) == (1, 1, 0)
    assert catalog(store) == {
        "properties.price": ("DOUBLE", False),
        "properties.sku": ("VARCHAR", False),
        "properties.gift": ("BOOLEAN", False),
        "context.device.type": ("VARCHAR", False),
    }
    row = store.con.execute(
        'SELECT "properties.price", "properties.sku", "properties.gift", "context.device.type",'
        " extra FROM events"
    ).fetchone()
    assert row == (9.5, "A1", False, "ios", None)


def test_reingesting_a_file_adds_nothing(store: DuckDBStore, tmp_path: Path) -> None:
    path = write(tmp_path / "events.jsonl", track("m1"), track("m2"))
    store.ingest_jsonl(path)
    again = store.ingest_jsonl(path)
    assert (again.inserted, again.duplicates) == (0, 2)
    assert store.count_events() == 2


def test_a_message_id_repeated_inside_one_file_is_stored_once(
    store: DuckDBStore, tmp_path: Path
) -> None:
    path = write(tmp_path / "events.jsonl", track("m1"), track("m1", properties={"x": 1}))
    report = store.ingest_jsonl(path)
    assert (report.inserted, report.duplicates) == (1, 1)
    assert store.events_for_profile("u1")[0]["properties"] == {}  # the first one wins


def test_a_bad_line_stores_nothing_from_the_file(store: DuckDBStore, tmp_path: Path) -> None:
    good = write(tmp_path / "good.jsonl", track("m0"))
    store.ingest_jsonl(good)
    bad = {"type": "track", "event": "E", "userId": "u2", "messageId": "m2"}
    path = write(
        tmp_path / "events.jsonl", track("m1", properties={"new_field": 1}), bad, track("m3")
    )
    with pytest.raises(IngestError) as err:
        store.ingest_jsonl(path)
    assert str(err.value).splitlines()[0] == f"{path}:2: timestamp: missing"
    assert [str(p) for p in err.value.problems] == [f"{path}:2: timestamp: missing"]
    assert store.count_events() == 1
    assert store.profile_ids() == ["u1"]
    assert "properties.new_field" not in store.fields
    columns = [r[0] for r in store.con.execute("DESCRIBE events").fetchall()]
    assert "properties.new_field" not in columns
    assert store.con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone() == (
        0,
    )


def test_skip_invalid_loads_the_rest_and_reports_every_bad_line(
    store: DuckDBStore, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "events.jsonl",
        track("m1"),
        "{not json",
        {"type": "foo", "userId": "u", "timestamp": "2026-01-01"},
        "",
        {"type": "track", "event": "E", "timestamp": "2026-01-01"},
        track("m6"),
    )
    report = store.ingest_jsonl(path, skip_invalid=True)
    assert (report.read, report.inserted, report.invalid) == (5, 2, 3)
    shown = [str(p) for p in report.problems]
    assert shown[0].startswith(f"{path}:2: malformed JSON")
    assert shown[1].startswith(f'{path}:3: type: unknown message type "foo"')
    assert shown[2] == f"{path}:5: user_id: missing (a message needs user_id or anonymous_id)"
    assert store.count_events() == 2


def test_camel_case_and_snake_case_messages_load_alike(store: DuckDBStore, tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.jsonl",
        {
            "type": "track",
            "event": "E",
            "messageId": "m1",
            "anonymousId": "a",
            "timestamp": "2026-01-01T00:00:00Z",
        },
        {
            "type": "track",
            "event": "E",
            "message_id": "m2",
            "anonymous_id": "a",
            "timestamp": "2026-01-02T00:00:00Z",
        },
    )
    store.ingest_jsonl(path)
    assert [e["message_id"] for e in store.events_for_profile("a")] == ["m1", "m2"]


def test_timestamps_are_stored_as_naive_utc(store: DuckDBStore, tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.jsonl",
        track("m1", ts="2026-01-01T02:00:00+02:00"),
        track("m2", ts="2026-01-01T00:30:00", receivedAt="2026-01-01T01:00:00-01:00"),
    )
    store.ingest_jsonl(path)
    events = store.events_for_profile("u1")
    assert [e["timestamp"] for e in events] == [
        datetime(2026, 1, 1, 0, 0),
        datetime(2026, 1, 1, 0, 30),
    ]
    assert events[1]["received_at"] == datetime(2026, 1, 1, 2, 0)


def test_a_value_of_another_type_goes_to_extra_and_marks_overflow(
    store: DuckDBStore, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "events.jsonl",
        track("m1", ts="2026-01-01T00:00:00Z", properties={"size": 42}),
        track("m2", ts="2026-01-02T00:00:00Z", properties={"size": "XL"}),
    )
    store.ingest_jsonl(path)
    assert catalog(store)["properties.size"] == ("DOUBLE", True)
    rows = store.con.execute('SELECT "properties.size", extra FROM events ORDER BY seq').fetchall()
    assert rows[0] == (42.0, None)
    assert rows[1][0] is None and orjson.loads(rows[1][1]) == {"properties": {"size": "XL"}}
    assert [e["properties"]["size"] for e in store.events_for_profile("u1")] == [42.0, "XL"]


def test_the_first_value_in_the_file_fixes_the_type(store: DuckDBStore, tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.jsonl",
        track("m1", properties={"v": "text"}),
        track("m2", properties={"v": 1}),
        track("m3", properties={"v": True}),
    )
    store.ingest_jsonl(path)
    assert catalog(store)["properties.v"] == ("VARCHAR", True)


def test_arrays_live_in_extra_and_their_path_has_type_json(
    store: DuckDBStore, tmp_path: Path
) -> None:
    products = [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]
    path = write(tmp_path / "events.jsonl", track("m1", properties={"products": products, "n": 2}))
    store.ingest_jsonl(path)
    assert catalog(store)["properties.products"] == ("JSON", False)
    assert store.events_for_profile("u1")[0]["properties"] == {"products": products, "n": 2.0}


def test_paths_differing_only_in_case_do_not_clash(store: DuckDBStore, tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.jsonl",
        track("m1", properties={"Color": "red"}),
        track("m2", properties={"color": "blue"}),
    )
    store.ingest_jsonl(path)
    assert catalog(store) == {
        "properties.Color": ("VARCHAR", False),
        "properties.color": ("JSON", True),
    }
    assert [e["properties"] for e in store.events_for_profile("u1")] == [
        {"Color": "red"},
        {"color": "blue"},
    ]


def test_sql_injection_in_a_property_key_and_value_is_stored_as_data(
    store: DuckDBStore, tmp_path: Path
) -> None:
    key = 'a"; DROP TABLE events; --'
    value = "x'); DROP TABLE events; --"
    path = write(tmp_path / "events.jsonl", track("m1", properties={key: value, "o'k": 1}))
    store.ingest_jsonl(path)
    assert store.count_events() == 1
    col = quote_ident(f"properties.{key}")
    assert store.con.execute(f"SELECT {col} FROM events").fetchone() == (value,)
    assert store.events_for_profile("u1")[0]["properties"] == {key: value, "o'k": 1.0}


def test_page_name_and_category_become_properties(store: DuckDBStore, tmp_path: Path) -> None:
    page = {
        "type": "page",
        "anonymousId": "a",
        "messageId": "p1",
        "timestamp": "2026-01-01T00:00:00Z",
        "name": "Home",
        "properties": {"url": "/"},
    }
    store.ingest_jsonl(write(tmp_path / "events.jsonl", page))
    assert store.events_for_profile("a")[0]["properties"] == {"url": "/", "name": "Home"}


def test_one_transaction_per_file(store: DuckDBStore, tmp_path: Path) -> None:
    good = write(tmp_path / "a.jsonl", track("m1"))
    bad = write(tmp_path / "b.jsonl", track("m2"), {"type": "track"})
    later = write(tmp_path / "c.jsonl", track("m3"))
    with pytest.raises(IngestError) as err:
        store.ingest_jsonl([good, bad, later])
    report = err.value.report
    assert report is not None
    assert report.rejected == [str(bad)]
    assert report.inserted == 2
    assert sorted(e["message_id"] for e in store.events_for_profile("u1")) == ["m1", "m3"]


def test_progress_reports_bytes(store: DuckDBStore, tmp_path: Path) -> None:
    path = write(tmp_path / "events.jsonl", *(track(f"m{i}") for i in range(50)))
    seen: list[tuple[int, int]] = []
    store.ingest_jsonl(path, progress=lambda done, total: seen.append((done, total)))
    size = path.stat().st_size
    assert seen and seen[-1] == (size, size)


def test_blank_lines_and_a_missing_final_newline_keep_line_numbers(
    store: DuckDBStore, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        orjson.dumps(track("m1")) + b"\n\n   \n" + orjson.dumps({"type": "track", "userId": "u"})
    )
    with pytest.raises(IngestError) as err:
        store.ingest_jsonl(path)
    assert str(err.value).startswith(f"{path}:4: ")


def test_trait_writes_are_stored_one_row_per_key_with_their_kind(
    store: DuckDBStore, tmp_path: Path
) -> None:
    ident = {
        "type": "identify",
        "userId": "u1",
        "messageId": "i1",
        "timestamp": "2026-01-01T00:00:00Z",
        "traits": {
            "age": 30,
            "name": "Ann",
            "vip": True,
            "tags": ["a"],
            "address": {"city": "Oslo"},
            "old": None,
        },
    }
    page = {
        "type": "page",
        "userId": "u1",
        "messageId": "p1",
        "timestamp": "2026-01-02T00:00:00Z",
        "context": {"traits": {"plan": "pro"}},
    }
    store.ingest_jsonl(write(tmp_path / "events.jsonl", ident, page))
    rows = store.con.execute(
        "SELECT key, kind, num, str, bool, json, message_id FROM traits ORDER BY key"
    ).fetchall()
    assert rows == [
        ("address.city", "string", None, "Oslo", None, None, "i1"),
        ("age", "number", 30.0, None, None, None, "i1"),
        ("name", "string", None, "Ann", None, None, "i1"),
        ("old", "null", None, None, None, None, "i1"),
        ("plan", "string", None, "pro", None, None, "p1"),
        ("tags", "json", None, None, None, '["a"]', "i1"),
        ("vip", "bool", None, None, True, None, "i1"),
    ]
    assert store.traits_as_of("u1") == {
        "address.city": "Oslo",
        "age": 30.0,
        "name": "Ann",
        "plan": "pro",
        "tags": ["a"],
        "vip": True,
    }


def test_in_memory_messages_load_like_lines(store: DuckDBStore) -> None:
    report = store.ingest_messages(
        [
            {
                "type": "track",
                "event": "E",
                "userId": "u1",
                "messageId": "m1",
                "timestamp": datetime(2026, 1, 1),
                "properties": {"at": datetime(2026, 1, 2), "n": (1, 2)},
            },
        ]
    )
    assert report.inserted == 1
    assert store.events_for_profile("u1")[0]["properties"] == {
        "at": "2026-01-02T00:00:00",
        "n": [1, 2],
    }
    with pytest.raises(IngestError) as err:
        store.ingest_messages([{"type": "track", "event": "E", "userId": "u"}, {}], source="http")
    assert str(err.value).splitlines()[0] == "http:1: timestamp: missing"
    assert store.count_events() == 1


def test_events_for_profile_until_and_order(store: DuckDBStore, tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.jsonl",
        track("b", ts="2026-01-02T00:00:00Z"),
        track("a", ts="2026-01-02T00:00:00Z"),
        track("c", ts="2026-01-03T00:00:00Z"),
    )
    store.ingest_jsonl(path)
    assert [e["message_id"] for e in store.events_for_profile("u1")] == ["a", "b", "c"]
    until = store.events_for_profile("u1", until=datetime(2026, 1, 2))
    assert [e["message_id"] for e in until] == ["a", "b"]


def test_the_store_file_persists_across_opens(tmp_path: Path) -> None:
    db = tmp_path / "segflow.duckdb"
    path = write(tmp_path / "events.jsonl", track("m1", properties={"n": 1}))
    with DuckDBStore(db) as s:
        s.ingest_jsonl(path)
    with DuckDBStore(db) as s:
        assert s.count_events() == 1
        assert s.fields["properties.n"].type == "DOUBLE"
        assert s.ingest_jsonl(path).inserted == 0


def test_keys_with_slashes_tildes_quotes_and_empty_keys_round_trip(
    store: DuckDBStore, tmp_path: Path
) -> None:
    props = {"a/b": 1, "c~d": "x", "": "empty", 'q"uote': "v", "ü": [1], "n": {"m": True}}
    path = tmp_path / "events.jsonl"
    bom = b"\xef\xbb\xbf"
    path.write_bytes(bom + orjson.dumps(track("m1", properties=props)) + b"\r\n")
    store.ingest_jsonl(path)
    got = store.events_for_profile("u1")[0]["properties"]
    assert got == {"a/b": 1.0, "c~d": "x", "": "empty", 'q"uote': "v", "ü": [1], "n": {"m": True}}


def test_absurdly_deep_nesting_is_a_problem_not_a_crash(store: DuckDBStore, tmp_path: Path) -> None:
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(100):
        deep = {"a": deep}
    path = write(tmp_path / "events.jsonl", track("m1", properties=deep))
    with pytest.raises(IngestError) as err:
        store.ingest_jsonl(path)
    assert "nested more than 64 levels deep" in str(err.value)
    with pytest.raises(IngestError):
        store.ingest_messages([track("m1", properties=deep)])
    with pytest.raises(IngestError) as err:
        store.ingest_messages([track("m1", properties=deep)], json_values=True)
    assert "nested more than 64 levels deep" in str(err.value)


def test_json_values_store_what_the_checked_path_stores(tmp_path: Path) -> None:
    msgs = [
        track("m1", properties={"price": 9.5, "tags": ["a", 1], "n": {"deep": True}}),
        track("m2", properties={"price": "free"}, context={"traits": {"plan": "pro"}}),
        {**track("m3"), "type": "page", "name": "Home", "properties": {"path": "/"}},
        {"type": "identify", "messageId": "m4", "userId": "u1", "traits": {"age": 41},
         "timestamp": "2026-01-02T00:00:00Z"},
    ]  # fmt: skip
    stored = []
    for json_values in (False, True):
        with DuckDBStore(tmp_path / f"{json_values}.duckdb") as s:
            batch = [{**m, "receivedAt": "2026-01-03T00:00:00Z"} for m in msgs]
            s.ingest_messages(orjson.loads(orjson.dumps(batch)), json_values=json_values)
            stored.append((s.events_for_profile("u1"), s.traits_as_of("u1"), s.fields))
    assert stored[0] == stored[1]


def test_a_missing_file_is_reported_and_the_others_load(store: DuckDBStore, tmp_path: Path) -> None:
    good = write(tmp_path / "a.jsonl", track("m1"))
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(IngestError) as err:
        store.ingest_jsonl([missing, good])
    assert str(err.value) == f"{missing}: cannot read: No such file or directory"
    assert store.count_events() == 1


def test_event_names_are_numbered_for_the_batch_evaluator(
    store: DuckDBStore, tmp_path: Path
) -> None:
    from segflow.model.definition import parse_segment
    from segflow.store.duckdb.batch import evaluate

    order = {"type": "track", "event": "Order Completed", "messageId": "o1", "userId": "u2"}
    path = write(
        tmp_path / "events.jsonl",
        track("m1"),
        {**order, "timestamp": "2026-01-02T00:00:00Z"},
        {
            "type": "identify",
            "messageId": "i1",
            "userId": "u3",
            "timestamp": "2026-01-03T00:00:00Z",
        },
    )
    store.ingest_jsonl(path)
    store.ingest_jsonl(write(tmp_path / "more.jsonl", track("m4", event="Searched")))
    rows = store.con.execute(
        "SELECT e.event, e.event_code, n.code FROM events e"
        " LEFT JOIN event_names n ON n.name = e.event ORDER BY e.seq"
    ).fetchall()
    assert [(event, code) for event, code, _ in rows] == [
        ("Viewed", 2),
        ("Order Completed", 1),
        (None, None),
        ("Searched", 3),
    ]
    assert all(code == named for _, code, named in rows)
    seg = parse_segment(
        {"id": "buyers", "name": "Buyers", "condition": {"event": "Order Completed"}}
    )
    result = evaluate(store.con, [seg], datetime(2026, 2, 1))
    assert result.members("buyers") == ["u2"]


def test_a_store_without_event_codes_gets_them_when_opened(tmp_path: Path) -> None:
    import duckdb

    from segflow.store.duckdb.schema import DDL

    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute(DDL)
    con.execute(
        'INSERT INTO events (message_id, seq, type, event, profile_id, "timestamp")'
        " VALUES ('m1', 1, 'track', 'B', 'p', TIMESTAMP '2026-01-01'),"
        " ('m2', 2, 'track', 'A', 'p', TIMESTAMP '2026-01-01');"
        " INSERT INTO profiles VALUES ('p', TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-01')"
    )
    con.close()
    with DuckDBStore(db) as s:
        got = s.con.execute("SELECT event, event_code FROM events ORDER BY seq").fetchall()
        assert got == [("B", 2), ("A", 1)]


def test_a_name_seen_only_in_a_left_out_repeat_is_numbered_when_first_stored(
    store: DuckDBStore,
) -> None:
    """A message repeating an earlier id in the same load is left out; its event name
    gets no code then, so the load that first stores the name must number it (else it
    is stored with no code, invisible to the batch evaluator's name match)."""
    identify = {"type": "identify", "messageId": "m0", "userId": "u1",
                "timestamp": "2026-01-01T00:00:00Z"}  # fmt: skip
    store.ingest_messages([identify, track("m0", event="Viewed")], json_values=True)
    store.ingest_messages([track("m1", event="Viewed")], json_values=True)
    rows = store.con.execute(
        "SELECT e.message_id, e.event_code, n.code FROM events e"
        " LEFT JOIN event_names n ON n.name = e.event WHERE e.type = 'track'"
    ).fetchall()
    assert rows == [("m1", 1, 1)]
