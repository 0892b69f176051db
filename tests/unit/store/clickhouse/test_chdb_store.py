"""The chDB store: loading a DuckDB store into a directory (MergeTree tables ordered
for the scans, traits linked), a failed load leaving the previous tables, evaluating
there read-only, and one clear error for a missing package, directory or table."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from segflow.model.definition import parse_segment
from segflow.model.history import Event, ProfileHistory, TraitWrite
from segflow.store.clickhouse.batch import ClickHouseBatch
from segflow.store.clickhouse.connection import EngineUnavailable, Session, open_session
from segflow.store.clickhouse.load import STAGING, TABLES, copy_store
from segflow.store.engines import engine_for
from tests.chdb import chdb_engine
from tests.small_store import HISTORIES, SEGMENTS, T0, small_store


@pytest.fixture
def ch(tmp_path: Path) -> Iterator[Session]:
    session = open_session(f"chdb://{tmp_path}")
    yield session
    session.close()


def test_a_load_makes_merge_trees_ordered_for_the_scans(ch: Session) -> None:
    report = copy_store(small_store(), ch)
    assert report.engine == "ClickHouse"
    assert report.rows["events"] == 3 and report.rows["profiles"] == 2
    keys = dict(
        ch.rows(
            "SELECT name, sorting_key FROM system.tables WHERE database = currentDatabase()"
            " AND engine = 'MergeTree'"
        )
    )
    assert set(keys) == set(TABLES)  # no staging table is left
    assert keys["events"] == "event_code, profile_no, timestamp"
    assert keys["traits"] == "key, profile_no"
    (kind,) = ch.rows(
        "SELECT type FROM system.columns WHERE table = 'events' AND name = 'timestamp'"
    )[0]
    assert kind == "Nullable(DateTime64(6, 'UTC'))"
    # traits arrive linked: each write knows when the next one replaced it
    rows = ch.rows(
        "SELECT str, toString(valid_to), linked FROM traits"
        " WHERE key = 'country' ORDER BY timestamp"
    )
    assert rows == [("PL", str(T0 + timedelta(days=1)) + ".000000", True), ("DE", None, True)]


def test_a_second_load_replaces_the_first(ch: Session) -> None:
    copy_store(small_store(), ch)
    copy_store(small_store(HISTORIES[:1]), ch)
    assert ch.rows("SELECT count() FROM profiles") == [(1,)]


def test_a_failed_load_leaves_the_previous_tables(ch: Session) -> None:
    copy_store(small_store(), ch)
    bad = small_store(HISTORIES[:1])
    bad.execute("ALTER TABLE static_members ADD COLUMN added INTERVAL")  # no ClickHouse type
    with pytest.raises(ValueError, match=r"static_members\.added: no ClickHouse type"):
        copy_store(bad, ch)
    assert ch.rows("SELECT count() FROM profiles") == [(2,)]
    assert ch.rows(f"SELECT count() FROM system.tables WHERE name LIKE '{STAGING}%'") == [(0,)]


@pytest.mark.parametrize("number", ["170141183460469231731687303715884105727", "-1e400"])
def test_a_json_number_clickhouse_reads_otherwise_is_refused(ch: Session, number: str) -> None:
    copy_store(small_store(), ch)
    bad = small_store(HISTORIES[:1])
    bad.execute(f'UPDATE events SET extra = \'{{"properties": {{"n": [{number}]}}}}\'')
    with pytest.raises(ValueError, match=r"holds 2 JSON numbers .* e\.g\. \$\.properties\.n\[0\]"):
        copy_store(bad, ch)
    assert ch.rows("SELECT count() FROM profiles") == [(2,)]


def test_evaluation_reads_the_loaded_directory_as_of_an_instant(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path}"
    engine = engine_for(url)
    assert engine.load(small_store(), url).rows["traits"] == 2
    batch = ClickHouseBatch(url)
    try:
        early = batch.evaluate(SEGMENTS, T0 + timedelta(hours=1))
        assert early.sizes() == {"de": 0, "spent": 0}
        late = batch.evaluate(SEGMENTS, T0 + timedelta(days=3))
        assert late.membership_map() == {"de": {"p0"}, "spent": {"p0"}}
        assert late.members("de") == ["p0"] and late.size("spent") == 1
        only = batch.evaluate(SEGMENTS, T0 + timedelta(days=3), only=["de"])
        assert set(only.columns) == {"de"}
    finally:
        batch.close()


def test_an_empty_directory_names_every_missing_table(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable) as e:
        ClickHouseBatch(f"chdb://{tmp_path}")
    assert str(e.value) == (
        f"chDB directory {tmp_path} lacks the tables events, traits, profiles, field_catalog,"
        " static_members: load a store into it first (segflow engine load)"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("chdb://relative/dir", "three slashes, no host"),
        ("chdb:///tmp/x?mode=1", "three slashes, no host"),
        ("postgresql://h/db", "not a chDB URL"),
    ],
)
def test_a_malformed_url_is_refused(url: str, message: str) -> None:
    with pytest.raises(EngineUnavailable, match=message):
        open_session(url)


def test_a_file_or_a_missing_directory_is_named(tmp_path: Path) -> None:
    file = tmp_path / "store.duckdb"
    file.write_text("")
    with pytest.raises(EngineUnavailable, match=f"^chDB path {file} is not a directory$"):
        ClickHouseBatch(f"chdb://{file}")
    missing = tmp_path / "a" / "b"
    with pytest.raises(EngineUnavailable, match=f"^chDB directory {missing} does not exist$"):
        engine_for(f"chdb://{missing}").load(small_store(), f"chdb://{missing}")
    made = tmp_path / "new"
    engine_for(f"chdb://{made}").load(small_store(), f"chdb://{made}")  # its parent exists
    assert made.is_dir()


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd="/"
    )


def test_a_directory_this_user_may_not_write_is_named() -> None:
    """Checked as another user than the directory's owner (root may write anywhere:
    the check runs in a child that gives up root once its modules are imported)."""
    with tempfile.TemporaryDirectory(prefix="segflow-chdb-") as tmp:
        out = _as_another_user(Path(tmp))
    assert out.stdout.strip() == f"chDB directory {tmp} is not writable by this user", out


def _as_another_user(path: Path) -> subprocess.CompletedProcess[str]:
    path.chmod(0o755 if os.geteuid() == 0 else 0o555)
    code = (
        "import os\n"
        "import chdb.session\n"
        "from segflow.store.clickhouse.connection import open_session, EngineUnavailable\n"
        "if os.geteuid() == 0:\n"
        "    os.setgid(65534)\n"
        "    os.setuid(65534)\n"
        "try:\n"
        f"    open_session('chdb://{path}')\n"
        "except EngineUnavailable as e:\n"
        "    print(e)\n"
    )
    try:
        return _run(code)
    finally:
        path.chmod(0o755)


def test_without_chdb_the_extra_to_install_is_named(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['chdb'] = None  # as where the package is not installed\n"
        "from segflow.store.clickhouse.connection import open_session, EngineUnavailable\n"
        "try:\n"
        f"    open_session('chdb://{tmp_path}')\n"
        "except EngineUnavailable as e:\n"
        "    print(e)\n"
    )
    out = _run(code)
    assert out.stdout.strip() == (
        "the chDB engine needs the chdb package: install segflow's 'clickhouse' extra"
        " (pip install 'segflow[clickhouse]')"
    ), out


def test_names_and_values_with_quotes_and_backslashes_stay_data() -> None:
    """ClickHouse reads backslash escapes inside quoted names and strings: a field path
    or value ending in a backslash, or holding quotes, is still one name or value."""
    names = ["a\\", "b\\\\", "c`'\\n"]
    hs = [
        ProfileHistory(
            f"p{i}",
            [Event(T0, "View", {f"properties.{n}": f"{n}'\\"}, message_id=f"m{i}")],
            [TraitWrite(T0, f"w{i}", n, n)],
        )
        for i, n in enumerate(names)
    ]
    conds = {
        f"s{i}": {
            "all": [
                {"event": "View", "where": [{"property": n, "eq": f"{n}'\\"}]},
                {"trait": n, "eq": n},
            ]
        }
        for i, n in enumerate(names)
    }
    segments = [parse_segment({"id": sid, "condition": c}) for sid, c in conds.items()]
    with chdb_engine() as engine:
        got = engine.members(hs, segments, T0 + timedelta(days=1))
    assert got == {f"s{i}": {f"p{i}"} for i in range(len(names))}


def test_a_second_directory_in_one_process_is_named(ch: Session, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(EngineUnavailable, match=f"^cannot open chDB at {other}: .*{ch.path}"):
        open_session(f"chdb://{other}")
