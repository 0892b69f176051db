"""Member-page cursors and size history on a real DuckDB store."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segflow.model.changes import LoggedChange, Reason
from segflow.service.handle import Segflow
from segflow.service.segments import decode_cursor, encode_cursor, size_history
from segflow.store.changes import MembershipChangeLog

T0 = datetime(2026, 11, 20, 10, 0, 0)


@given(st.none() | st.datetimes(min_value=datetime(1970, 1, 2)), st.text(max_size=50))
def test_cursor_round_trips(at: datetime | None, after: str) -> None:
    assert decode_cursor(encode_cursor(at, after)) == (at, after)


@pytest.mark.parametrize("bad", ["", "garbage", "eyJ4IjoxfQ", "!!!"])
def test_foreign_cursor_is_a_clear_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="not a cursor from a previous page"):
        decode_cursor(bad)


def test_size_history_runs_the_change_log_after_earlier_evaluations(tmp_path: Path) -> None:
    app = Segflow(tmp_path / "s.duckdb")
    try:
        app.store.con.execute(
            "INSERT INTO evaluations VALUES ('s', 1, ?, ?, 7), ('x', 1, ?, ?, 9)",
            [T0, T0 - timedelta(days=1), T0, T0],
        )
        log = MembershipChangeLog(app.store.con)
        rows = [
            LoggedChange("s", "a", True, T0, Reason.EVENT, 1),
            LoggedChange("s", "b", True, T0, Reason.EVENT, 1),
            LoggedChange("s", "a", False, T0 + timedelta(hours=1), Reason.WINDOW_EXPIRED, 1),
            LoggedChange("other", "a", True, T0, Reason.EVENT, 1),
        ]
        log.append(rows)
        points = size_history(app, "s")
        assert [(p["size"], p["source"]) for p in points] == [
            (7, "evaluation"),
            (2, "changes"),
            (1, "changes"),
        ]
        assert size_history(app, "x") == [
            {"at": "2026-11-20T10:00:00.000000Z", "size": 9, "source": "evaluation"}
        ]
    finally:
        app.close()
