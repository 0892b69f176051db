"""Segflow.ingest: a load of several files leaves the trait rows clustered by key."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

import segflow.service.handle
from segflow.service.handle import Segflow


def _files(tmp_path: Path) -> list[Path]:
    paths = []
    for f in range(2):
        path = tmp_path / f"part{f}.jsonl"
        lines = [
            orjson.dumps(
                {
                    "type": "identify",
                    "messageId": f"m{f}-{i}",
                    "userId": f"u{f}-{i}",
                    "timestamp": "2026-01-01T00:00:00Z",
                    "traits": {"plan": "pro", "country": "PL", "vip": i % 2 == 0},
                }
            )
            for i in range(5)
        ]
        path.write_bytes(b"\n".join(lines) + b"\n")
        paths.append(path)
    return paths


def _keys_in_storage_order(sf: Segflow) -> list[str]:
    return [k for (k,) in sf.store.con.execute("SELECT key FROM traits ORDER BY rowid").fetchall()]


@pytest.mark.parametrize("threshold, clustered", [(1, True), (10**9, False)])
def test_a_load_of_several_files_clusters_the_trait_rows_by_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threshold: int, clustered: bool
) -> None:
    monkeypatch.setattr(segflow.service.handle, "CLUSTER_TRAITS_AFTER", threshold)
    sf = Segflow(tmp_path / "s.duckdb")
    try:
        before = sf.store.con.execute("SELECT count(*) FROM traits").fetchone()
        sf.ingest(_files(tmp_path))
        keys = _keys_in_storage_order(sf)
        assert before == (0,) and len(keys) == 30
        # each file's rows are sorted by key; only a re-clustering sorts them all
        assert (keys == sorted(keys)) is clustered
        rows = sf.store.con.execute(
            "SELECT count(*), count(DISTINCT profile_no), bool_and(linked) FROM traits"
        ).fetchone()
        assert rows == (30, 10, True)
    finally:
        sf.close()
