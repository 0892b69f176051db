"""Member-page cursors and size history on a real DuckDB store."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segflow.model.changes import LoggedChange, Reason
from segflow.model.definition import Segment, parse_segment
from segflow.service.handle import Segflow
from segflow.service.segments import (
    decode_cursor,
    edit_diff,
    edit_diffs,
    encode_cursor,
    preview,
    size_history,
)
from segflow.store.duckdb.changes import MembershipChangeLog

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


def _store(tmp_path: Path) -> Segflow:
    path = tmp_path / "people.jsonl"
    lines = [
        orjson.dumps(
            {
                "type": "identify",
                "messageId": f"m{i}",
                "userId": f"u{i}",
                "timestamp": "2026-01-01T00:00:00Z",
                "traits": {"plan": "pro" if i < 3 else "free"},
            }
        )
        for i in range(5)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    app = Segflow(tmp_path / "s.duckdb")
    app.ingest([path])
    return app


def _seg(doc: dict[str, Any]) -> Segment:
    return parse_segment({"id": "s", "name": "S", **doc})


def test_previews_diffs_and_members_give_one_answer(tmp_path: Path) -> None:
    app = _store(tmp_path)
    try:
        app.registry.save([_seg({"condition": {"trait": "plan", "eq": "pro"}})])
        assert app.members("s", T0) == ["u0", "u1", "u2"]
        draft = _seg({"condition": {"trait": "plan", "in": ["pro", "free"]}})
        assert preview(app, draft, T0)["size"] == 5
        (diff,) = edit_diffs(app, [draft], T0)
        assert diff == edit_diff(app, draft, T0)
        assert (diff.size_before, diff.size_after, diff.entering) == (3, 5, ["u3", "u4"])
        same = _seg({"condition": {"trait": "plan", "eq": "pro"}})
        assert edit_diffs(app, [same], T0) == []
        assert edit_diff(app, same, T0).entering == []
        static = _seg({"mode": "static", "members": ["u4", "nobody"]})
        assert app.draft_members(static) == ["u4"]
    finally:
        app.close()


def test_a_scheduled_segment_is_due_at_the_cron_instant_itself(tmp_path: Path) -> None:
    app = _store(tmp_path)
    try:
        doc = {"mode": "scheduled", "schedule": "0 * * * *"}
        app.registry.save([_seg({**doc, "condition": {"trait": "plan", "eq": "pro"}})])
        app.evaluate(T0 - timedelta(minutes=30))
        assert app.due_scheduled(T0 - timedelta(microseconds=1)) == []
        assert app.due_scheduled(T0) == ["s"]
    finally:
        app.close()
