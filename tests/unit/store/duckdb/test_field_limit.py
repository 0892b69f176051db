"""``DuckDBStore.max_fields``: message loads make at most that many fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from segflow.model.events import IngestError
from segflow.store.duckdb.store import DuckDBStore


def _msg(n: int, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"m{n}",
        "userId": "u",
        "event": "E",
        "timestamp": "2026-11-20T10:00:00Z",
        "properties": properties,
        **extra,
    }


@pytest.mark.parametrize("json_values", [True, False])
def test_every_message_with_a_field_past_the_limit_is_refused(
    tmp_path: Path, json_values: bool
) -> None:
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        store.max_fields = 4
        store.ingest_messages([_msg(0, {"a": 1, "b": {"c": "x"}})], json_values=json_values)
        messages = [
            _msg(1, {"a": 2, "d": True}),  # one new field: 3
            _msg(2, {"e": [1], "f": None}),  # two more: 5, refused
            _msg(3, {"e": [1], "f": None}),  # the same shape: refused again
            _msg(4, {"b": {"c": "y"}}, context={"ip": "1.2.3.4"}),  # 4: fits
        ]
        with pytest.raises(IngestError) as e:
            store.ingest_messages(messages, json_values=json_values, skip_invalid=False)
        assert [(p.line, p.field) for p in e.value.problems] == [(2, "properties.f")]
        report = store.ingest_messages(messages, json_values=json_values, skip_invalid=True)
        assert (report.inserted, report.invalid) == (2, 2)
        assert [(p.line, p.field) for p in report.problems] == [
            (2, "properties.f"),
            (3, "properties.f"),
        ]
        assert sorted(store.fields) == [
            "context.ip",
            "properties.a",
            "properties.b.c",
            "properties.d",
        ]
        report = store.ingest_messages([_msg(5, {"a": 3, "d": False})], json_values=json_values)
        assert report.inserted == 1


def test_no_limit_by_default(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        store.ingest_messages([_msg(0, {f"k{i}": i for i in range(50)})], json_values=True)
        assert len(store.fields) == 50
