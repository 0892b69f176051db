"""The load ledger: a file is stored whole with its ledger entry or not at all, so a
load killed part-way resumes by running it again and stores nothing twice."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segflow.model.events import IngestError
from segflow.store.duckdb.store import DuckDBStore


def _parquet(path: Path, first: int, n: int) -> Path:
    pq.write_table(
        pa.table(
            {
                "message_id": [f"m{i}" for i in range(first, first + n)],
                "type": ["identify" if i % 3 == 0 else "track" for i in range(first, first + n)],
                "event": [None if i % 3 == 0 else "Viewed" for i in range(first, first + n)],
                "user_id": [f"u{i % 4}" if i % 2 else None for i in range(first, first + n)],
                "anonymous_id": [f"a{i % 5}" for i in range(first, first + n)],
                "timestamp": [f"2026-01-01T00:00:{i % 60:02d}Z" for i in range(first, first + n)],
                "traits.plan": [f"p{i}" if i % 3 == 0 else None for i in range(first, first + n)],
            }
        ),
        path,
    )
    return path


def _state(store: DuckDBStore) -> tuple[object, ...]:
    con = store.con
    return (
        con.execute("SELECT message_id, profile_id FROM events ORDER BY message_id").fetchall(),
        con.execute("SELECT * FROM identities ORDER BY kind, value").fetchall(),
        con.execute("SELECT profile_id, first_seen, last_seen FROM profiles ORDER BY 1").fetchall(),
        con.execute("SELECT profile_id, key, message_id FROM traits ORDER BY 3, 2").fetchall(),
    )


def test_a_file_in_the_ledger_is_skipped_unread(tmp_path: Path) -> None:
    f = _parquet(tmp_path / "a.parquet", 0, 30)
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        first = store.ingest_table(f, once=True)
        assert (first.inserted, first.skipped) == (30, [])
        again = store.ingest_table(f, once=True)
        assert (again.read, again.inserted, again.skipped) == (0, 0, [str(f)])
        assert str(again) == f"{f}: already loaded, skipped"
        moved = tmp_path / "moved.parquet"
        moved.write_bytes(f.read_bytes())
        assert store.ingest_table(moved, once=True).skipped == [str(moved)]
        forced = store.ingest_table(f)
        assert (forced.inserted, forced.duplicates) == (0, 30)
        assert store.count_events() == 30


def test_a_file_with_only_stored_events_enters_the_ledger(tmp_path: Path) -> None:
    f = _parquet(tmp_path / "a.parquet", 0, 10)
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text(
        '{"type":"track","event":"A","userId":"u1","timestamp":"2026-01-01T00:00:00Z",'
        '"messageId":"j1"}\n'
    )
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        store.ingest_table(f)
        assert store.ingest_table(f, once=True).duplicates == 10
        assert store.ingest_table(f, once=True).skipped == [str(f)]
        assert store.ingest_jsonl(jsonl, once=True).inserted == 1
        assert store.ingest_jsonl([jsonl, jsonl], once=True).skipped == [str(jsonl)] * 2


def test_a_rejected_file_stays_out_of_the_ledger(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "message_id,type,event,user_id,timestamp\nm1,track,A,u1,2026-01-01\nm2,track,A,u1,\n"
    )
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        with pytest.raises(IngestError):
            store.ingest_table(bad, once=True)
        bad.write_text("message_id,type,event,user_id,timestamp\nm1,track,A,u1,2026-01-01\n")
        assert store.ingest_table(bad, once=True).inserted == 1


_CRASHING_LOAD = textwrap.dedent(
    """
    import os, sys
    import segflow.store.duckdb.store as store_module
    from segflow.store.duckdb.store import DuckDBStore

    real = store_module.record_loaded
    def record_then_die(con, file, *args):
        real(con, file, *args)
        if file.path.endswith(sys.argv[2]):
            os._exit(9)  # killed after every row of the file is written, before COMMIT
    store_module.record_loaded = record_then_die
    store = DuckDBStore(sys.argv[1])
    for path in sys.argv[3:]:
        store.ingest_table(path, once=True)
    """
)


def test_a_load_killed_before_commit_resumes_to_the_state_of_one_clean_load(
    tmp_path: Path,
) -> None:
    files = [_parquet(tmp_path / f"f{k}.parquet", 40 * k - 5 * k, 40) for k in range(3)]
    db = tmp_path / "crashed.duckdb"
    run = subprocess.run(
        [sys.executable, "-c", _CRASHING_LOAD, str(db), "f1.parquet", *map(str, files)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
    )
    assert run.returncode == 9, run.stderr.decode()
    with DuckDBStore(db) as store:  # the first file only: the second is not half in
        (ledger,) = store.con.execute("SELECT count(*) FROM loaded_files").fetchone() or (0,)
        assert (ledger, store.count_events()) == (1, 40)
        reports = [store.ingest_table(f, once=True) for f in files]
        assert [r.skipped != [] for r in reports] == [True, False, False]
        assert [r.inserted for r in reports] == [0, 35, 35]
        assert [r.inserted for r in (store.ingest_table(f, once=True) for f in files)] == [0] * 3
        resumed = _state(store)
    with DuckDBStore(tmp_path / "clean.duckdb") as clean:
        for f in files:
            clean.ingest_table(f)
        assert resumed == _state(clean)


def test_a_new_store_killed_before_any_checkpoint_opens_again(tmp_path: Path) -> None:
    db = tmp_path / "new.duckdb"
    code = "import os, sys; from segflow.store.duckdb.store import DuckDBStore\n"
    code += "DuckDBStore(sys.argv[1]); os._exit(9)"
    run = subprocess.run(
        [sys.executable, "-c", code, str(db)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
    )
    assert run.returncode == 9, run.stderr.decode()
    with DuckDBStore(db) as store:
        assert store.count_events() == 0
