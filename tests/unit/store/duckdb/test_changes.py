"""The stored membership change log: ordered, filtered, idempotent."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from segflow.model.changes import LoggedChange, Reason
from segflow.store.duckdb.changes import MembershipChangeLog

T = datetime(2026, 1, 1)


def rows() -> list[LoggedChange]:
    return [
        LoggedChange("a", "p1", True, T, Reason.EVENT, 1),
        LoggedChange("b", "p1", True, T + timedelta(hours=1), Reason.TRAIT_CHANGED, 2),
        LoggedChange("a", "p2", True, T + timedelta(hours=2), Reason.EVENT, 1),
        LoggedChange("a", "p1", False, T + timedelta(days=7), Reason.WINDOW_EXPIRED, 1),
    ]


def test_append_assigns_growing_seq_and_skips_what_is_logged(tmp_path: Path) -> None:
    log = MembershipChangeLog(duckdb.connect(str(tmp_path / "c.duckdb")))
    first = log.append(rows())
    assert [c.seq for c in first] == [1, 2, 3, 4]
    assert log.append(rows()) == []
    more = log.append(
        [*rows(), LoggedChange("a", "p2", False, T + timedelta(days=8), Reason.EVENT, 1)]
    )
    assert [(c.seq, c.profile_id, c.entered) for c in more] == [(5, "p2", False)]
    assert log.count() == 5


def test_query_filters_and_pages_by_seq(tmp_path: Path) -> None:
    log = MembershipChangeLog(duckdb.connect(str(tmp_path / "c.duckdb")))
    log.append(rows())
    assert [c.seq for c in log.query(segment_id="a")] == [1, 3, 4]
    assert [c.seq for c in log.query(profile_id="p1")] == [1, 2, 4]
    assert [c.seq for c in log.query(since=T + timedelta(hours=1))] == [2, 3, 4]
    assert [c.seq for c in log.query(until=T + timedelta(hours=1))] == [1, 2]
    assert [c.seq for c in log.query(after_seq=2, limit=1)] == [3]
    assert log.last_at() == T + timedelta(days=7)
    assert log.current()[("a", "p1")][:2] == (False, 1)


def test_bad_input_is_refused_with_what_and_where(tmp_path: Path) -> None:
    log = MembershipChangeLog(duckdb.connect(str(tmp_path / "c.duckdb")))
    with pytest.raises(ValueError, match="bad reason 'because'"):
        log.append([LoggedChange("a", "p1", True, T, "because", 1)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        log.query(limit=-1)
    assert log.count() == 0


def test_seq_numbers_are_never_given_twice(tmp_path: Path) -> None:
    """The log keeps its high-water mark: rows deleted at the top (a privacy erase)
    do not hand their numbers out again, and ``top`` needs no scan of the log."""
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    log = MembershipChangeLog(con)
    assert log.top() == 0
    log.append(rows())
    assert log.top() == 4
    con.execute("DELETE FROM membership_changes WHERE seq >= 3")
    (new,) = log.append([LoggedChange("a", "p3", True, T, Reason.EVENT, 1)])
    assert new.seq == 5 and log.top() == 5


def test_a_log_from_before_the_mark_continues_after_its_highest_seq(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    log = MembershipChangeLog(con)
    log.append(rows())
    con.execute("DROP TABLE log_marks")  # a log that has no mark yet
    (new,) = MembershipChangeLog(con).append([LoggedChange("a", "p3", True, T, Reason.EVENT, 1)])
    assert new.seq == 5


def test_one_change_per_key_even_when_reasons_differ(tmp_path: Path) -> None:
    """Segment, profile, instant, direction and version make a change's identity; two
    rows that only differ in their reason are one change (the first is kept)."""
    log = MembershipChangeLog(duckdb.connect(str(tmp_path / "c.duckdb")))
    stored = log.append(
        [
            LoggedChange("a", "p1", True, T, Reason.EVENT, 1),
            LoggedChange("a", "p1", True, T, Reason.MERGED, 1),
        ]
    )
    assert [(c.seq, c.reason) for c in stored] == [(1, "event")]
    assert log.append([LoggedChange("a", "p1", True, T, Reason.TRAIT_CHANGED, 1)]) == []


def test_a_log_with_the_old_unique_index_is_rebuilt_without_it(tmp_path: Path) -> None:
    from segflow.store.duckdb.store import DuckDBStore

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE membership_changes (seq BIGINT NOT NULL, segment_id VARCHAR NOT NULL,"
        ' profile_id VARCHAR NOT NULL, entered BOOLEAN NOT NULL, "at" TIMESTAMP NOT NULL,'
        " reason VARCHAR NOT NULL, version INTEGER NOT NULL, recorded_at TIMESTAMP NOT NULL,"
        ' UNIQUE (segment_id, profile_id, "at", entered, version))'
    )
    con.execute(
        "INSERT INTO membership_changes VALUES (1, 'a', 'p1', true, $t, 'event', 1, $t),"
        " (2, 'a', 'p1', false, $u, 'event', 1, $u)",
        {"t": T, "u": T + timedelta(days=1)},
    )
    con.close()
    with DuckDBStore(path) as store:
        kinds = store.con.execute(
            "SELECT constraint_type FROM duckdb_constraints()"
            " WHERE table_name = 'membership_changes'"
        ).fetchall()
        assert ("UNIQUE",) not in kinds
        log = MembershipChangeLog(store.con)
        assert [(c.seq, c.entered) for c in log.query()] == [(1, True), (2, False)]
        (new,) = log.append(
            [*rows()[:1], LoggedChange("a", "p1", True, T + timedelta(days=2), Reason.EVENT, 1)]
        )
        assert new.seq == 3 and log.count() == 3


def test_stored_reason_text_reads_back_as_its_reason(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    MembershipChangeLog(con)
    con.execute(
        "INSERT INTO membership_changes VALUES"
        " (1, 'a', 'p1', false, TIMESTAMP '2026-01-01', 'scheduled_refresh', 3, now())"
    )
    (c,) = MembershipChangeLog(con).query()
    assert c.reason is Reason.SCHEDULED_REFRESH and (c.seq, c.version) == (1, 3)
