"""The server's checkpoint policy on a real DuckDB file: the log grows to a set size
under load and is folded in on demand."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from segflow.store.duckdb.store import DuckDBStore


def _messages(n: int) -> list[dict[str, object]]:
    return [
        {
            "type": "track",
            "messageId": f"m{i}",
            "userId": f"u{i % 7}",
            "event": "Product Viewed",
            "timestamp": datetime(2026, 11, 1, 12, 0, i % 60),
            "properties": {"price": i},
        }
        for i in range(n)
    ]


def test_checkpoint_if_folds_the_log_only_past_the_size(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "c.duckdb")
    try:
        store.defer_checkpoints(1 << 30)
        store.ingest_messages(_messages(200), source="test")
        logged = store.wal_bytes()
        assert logged > 0
        assert not store.checkpoint_if(logged)
        assert store.wal_bytes() == logged
        assert store.checkpoint_if(logged - 1)
        assert store.wal_bytes() == 0
        assert store.count_events() == 200
    finally:
        store.close()
    reopened = DuckDBStore(tmp_path / "c.duckdb")
    try:
        assert reopened.count_events() == 200
    finally:
        reopened.close()
