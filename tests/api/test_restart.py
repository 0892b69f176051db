"""Crash safety: SIGKILL the server process in the middle of ingestion and restart it.

Every acknowledged event is stored, nothing twice; clients retrying what was not
acknowledged (same message ids) complete the data without duplicates; the live
evaluator picks up where it stopped (every buyer enters the segment exactly once).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from segflow.model.definition import parse_segment
from segflow.model.time import format_instant
from segflow.server import ServerProcess
from segflow.service.handle import Segflow
from segflow.store.duckdb.keys import KeyStore

pytestmark = pytest.mark.slow  # kills and restarts server processes


def _batch(client: int, n: int) -> list[dict[str, object]]:
    return [
        {
            "type": "track",
            "messageId": f"c{client}-b{n}-{i}",
            "userId": f"user-{client}-{n}-{i % 5}",
            "event": "Order Completed",
            "timestamp": "2026-11-20T10:00:00Z",
            "properties": {"revenue": float(i)},
        }
        for i in range(50)
    ]


def test_sigkill_mid_ingestion_loses_no_acknowledged_event(tmp_path: Path) -> None:
    db = tmp_path / "crash.duckdb"
    sf = Segflow(db)
    write = KeyStore(sf.store.con).create("write").token
    sf.registry.save(
        [
            parse_segment(
                {"id": "buyers", "name": "Buyers", "condition": {"event": "Order Completed"}}
            )
        ]
    )
    sf.close()

    acked: set[str] = set()
    unacked: list[list[dict[str, object]]] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(c: int, url: str) -> None:
        n = 0
        with httpx.Client(auth=(write, ""), timeout=10) as http:
            while not stop.is_set():
                batch = _batch(c, n)
                n += 1
                try:
                    ok = http.post(url + "/v1/batch", json={"batch": batch}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    if ok:
                        acked.update(str(m["messageId"]) for m in batch)
                    else:
                        unacked.append(batch)
                if not ok:
                    return

    server = ServerProcess(db).start()
    threads = [threading.Thread(target=client, args=(c, server.base_url)) for c in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 500 and time.monotonic() < deadline:
        time.sleep(0.02)
    server.kill()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 500

    with ServerProcess(db) as again, httpx.Client(auth=(write, ""), timeout=30) as http:
        for batch in unacked:  # the clients' retries, same message ids
            r = http.post(again.base_url + "/v1/batch", json={"batch": batch})
            assert r.status_code == 200, r.text
        # a retry of something already acknowledged is harmless too
        assert http.post(again.base_url + "/v1/batch", json={"batch": _batch(0, 0)}).is_success

    sf = Segflow(db)
    try:
        stored = {m for (m,) in sf.store.con.execute("SELECT message_id FROM events").fetchall()}
        (total,) = sf.store.con.execute("SELECT count(*) FROM events").fetchone() or (0,)
        profiles = {
            p for (p,) in sf.store.con.execute("SELECT DISTINCT profile_id FROM events").fetchall()
        }
        entered = sf.store.con.execute(
            "SELECT profile_id FROM membership_changes WHERE segment_id = 'buyers' AND entered"
        ).fetchall()
    finally:
        sf.close()
    assert acked <= stored
    assert total == len(stored)
    expected = acked | {str(m["messageId"]) for b in unacked for m in b}
    assert stored == expected
    assert sorted(p for (p,) in entered) == sorted(profiles)


def test_first_start_shows_members_since_the_instants_they_entered(tmp_path: Path) -> None:
    db = tmp_path / "history.duckdb"
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    first, second = now - timedelta(days=40), now - timedelta(days=3)
    sf = Segflow(db)
    try:
        sf.registry.save(
            [
                parse_segment(
                    {"id": "buyers", "condition": {"event": "Order Completed", "within": "30d"}}
                )
            ]
        )
        sf.store.ingest_messages(
            [
                {
                    "type": "track",
                    "messageId": f"o{i}",
                    "userId": "ann",
                    "event": "Order Completed",
                    "timestamp": format_instant(t),
                }
                for i, t in enumerate((first, second))
            ]
        )
        admin = KeyStore(sf.store.con).create("admin", "test").token
    finally:
        sf.close()
    with ServerProcess(db) as server:
        auth = {"Authorization": f"Bearer {admin}"}
        segs = httpx.get(f"{server.base_url}/v1/profiles/ann/segments", headers=auth).json()
        # in since the second order (the first one's 30 days ran out in between)
        assert segs["segments"] == {"buyers": format_instant(second)}
        log = httpx.get(f"{server.base_url}/v1/changes", headers=auth).json()["changes"]
        assert [(c["at"], c["reason"]) for c in log] == [(format_instant(second), "event")]
