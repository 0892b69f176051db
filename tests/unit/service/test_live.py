"""LiveEvaluator over a real DuckDB file: start, catch-up, timers, merges, edits,
deletes, privacy deletes, explain and subscriptions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from segflow.model.changes import LoggedChange
from segflow.model.definition import parse_segment
from segflow.model.errors import DefinitionError
from segflow.model.time import format_instant
from segflow.realtime import VirtualClock
from segflow.service.handle import Segflow
from segflow.service.live import LiveEvaluator
from segflow.store.duckdb.batch import evaluate

T = datetime(2026, 1, 1)


def at(hours: float) -> datetime:
    return T + timedelta(hours=hours)


def track(who: dict[str, str], name: str, hours: float, mid: str, **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        **who,
        "timestamp": format_instant(at(hours)),
        "messageId": mid,
        "properties": props,
    }


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Segflow]:
    sf = Segflow(tmp_path / "live.duckdb")
    sf.registry.save(
        [
            parse_segment(
                {"id": "buyers", "condition": {"event": "Order Completed", "within": "7d"}}
            ),
            parse_segment(
                {
                    "id": "big",
                    "protected": True,
                    "condition": {
                        "event": "Order Completed",
                        "measure": "sum",
                        "of": "properties.revenue",
                        "gte": 100,
                    },
                }
            ),
            parse_segment({"id": "pl", "condition": {"trait": "country", "eq": "PL"}}),
            parse_segment({"id": "quiet", "condition": {"not": {"in_segment": "buyers"}}}),
        ]
    )
    sf.store.ingest_messages(
        [
            track({"userId": "u1"}, "Order Completed", 0, "m1", revenue=60),
            {
                "type": "identify",
                "userId": "u1",
                "timestamp": format_instant(at(1)),
                "messageId": "m2",
                "traits": {"country": "PL"},
            },
            track({"anonymousId": "a1"}, "Product Viewed", 2, "m3"),
        ]
    )
    yield sf
    sf.close()


WEEKLY: dict[str, Any] = {
    "id": "weekly",
    "mode": "scheduled",
    "schedule": "0 6 * * 1",  # Mondays 06:00; 2026-01-01 is a Thursday
    "condition": {"event": "Order Completed", "within": "7d"},
}


def kinds(changes: Sequence[LoggedChange]) -> list[tuple[str, str, bool, str]]:
    return [(c.segment_id, c.profile_id, c.entered, c.reason) for c in changes]


def test_start_logs_current_members_and_segments_of_is_a_lookup(app: Segflow) -> None:
    live = LiveEvaluator(app, VirtualClock(at(3)))
    got = live.start()
    # a first start dates each entry at the instant the profile entered, with its reason
    assert sorted((*k, c.at) for k, c in zip(kinds(got), got, strict=True)) == [
        ("buyers", "u1", True, "event", at(0)),
        ("pl", "u1", True, "trait_changed", at(1)),
        ("quiet", "a1", True, "event", at(2)),
    ]
    assert live.segments_of("u1") == {"buyers": at(0), "pl": at(1)}
    assert live.segments_of("nobody") == {}
    assert LiveEvaluator(app, VirtualClock(at(4))).start() == []


def test_catch_up_then_window_expires_at_the_exact_instant(app: Segflow) -> None:
    clock = VirtualClock(at(3))
    live = LiveEvaluator(app, clock)
    live.start()
    seen: list[LoggedChange] = []
    stop = live.subscribe(seen.extend)
    app.store.ingest_messages([track({"anonymousId": "a1"}, "Order Completed", 4, "m4")])
    clock.set(at(5))
    got = live.catch_up()
    assert kinds(got) == [
        ("buyers", "a1", True, "event"),
        ("quiet", "a1", False, "event"),
    ]
    assert got[0].at == at(4)
    assert live.catch_up() == []
    assert live.next_deadline() == at(7 * 24)
    clock.set(at(8 * 24))
    expired = live.tick()
    assert {(c.profile_id, c.at) for c in expired if c.segment_id == "buyers"} == {
        ("u1", at(7 * 24)),
        ("a1", at(7 * 24 + 4)),
    }
    assert all(c.reason == "window_expired" for c in expired)
    assert seen == got + expired
    stop()
    clock.set(at(9 * 24))
    app.store.ingest_messages([track({"userId": "u1"}, "Order Completed", 9 * 24, "m5")])
    assert live.catch_up() and len(seen) == len(got + expired)


def test_merge_rebuilds_the_target_from_the_union_history(app: Segflow) -> None:
    clock = VirtualClock(at(3))
    live = LiveEvaluator(app, clock)
    live.start()
    app.store.ingest_messages(
        [
            track({"anonymousId": "a1"}, "Order Completed", 4, "m4", revenue=50),
            {
                "type": "identify",
                "userId": "u1",
                "anonymousId": "a1",
                "timestamp": format_instant(at(5)),
                "messageId": "m5",
            },
        ]
    )
    clock.set(at(6))
    got = live.catch_up()
    assert ("big", "u1", True, "merged") in kinds(got)
    assert all(not c.entered for c in got if c.profile_id == "a1")
    assert live.segments_of("a1") == {}
    assert set(live.segments_of("u1")) == {"buyers", "big", "pl"}
    assert app.store.profile_ids() == ["u1"]


def test_save_previews_then_hands_over_without_a_gap(app: Segflow) -> None:
    clock = VirtualClock(at(3))
    live = LiveEvaluator(app, clock)
    live.start()
    edited = parse_segment(
        {"id": "buyers", "condition": {"event": "Product Viewed", "within": "7d"}}
    )
    preview = live.preview_edit(edited)
    assert (preview.entering, preview.leaving) == (["a1"], ["u1"])
    assert live.members("buyers") == ["u1"]
    version, diff, changes = live.save(edited)
    assert version == 2 and diff == preview
    assert sorted(kinds(changes)) == [
        ("buyers", "a1", True, "definition_changed"),
        ("buyers", "u1", False, "definition_changed"),
        ("quiet", "a1", False, "definition_changed"),
        ("quiet", "u1", True, "definition_changed"),
    ]
    assert {c.version for c in changes if c.segment_id == "buyers"} == {2}
    assert all(c.at == at(3) for c in changes)
    clock.set(at(7 * 24 + 3))
    assert kinds(live.tick()) == [
        ("buyers", "a1", False, "window_expired"),
        ("quiet", "a1", True, "window_expired"),
    ]
    again = live.save(edited)
    assert again[0] == 2 and again[2] == []


def test_delete_and_privacy_delete_log_exits(app: Segflow) -> None:
    live = LiveEvaluator(app, VirtualClock(at(3)))
    live.start()
    with pytest.raises(DefinitionError, match="used by: quiet"):
        live.delete("buyers")
    assert kinds(live.delete("pl")) == [("pl", "u1", False, "deleted")]
    with pytest.raises(KeyError):
        live.members("pl")
    assert kinds(live.forget_profile("u1")) == [("buyers", "u1", False, "deleted")]
    assert live.segments_of("u1") == {}


def test_explain_now_and_in_the_past(app: Segflow) -> None:
    live = LiveEvaluator(app, VirtualClock(at(3)))
    assert live.explain("pl", "u1", at(0))["member"] is False
    live.start()
    now = live.explain("buyers", "u1")
    assert now["member"] is True
    assert now["condition"]["feature"]["value"] == 1
    assert live.explain("pl", "u1", at(0.5))["member"] is False
    assert live.explain("pl", "u1", at(1))["member"] is True
    with pytest.raises(KeyError):
        live.explain("nope", "u1")
    with pytest.raises(KeyError):
        live.explain("pl", "nobody")


def write_scores(app: Segflow, rows: Sequence[tuple[str, float, str | None]], run: str) -> None:
    """Trait writes that belong to no event, as a scores refresh makes them: key ``tier``,
    ``message_id`` ``scores/<run>`` (``None`` clears the trait)."""
    for pid, hours, value in rows:
        app.store.con.execute(
            'INSERT INTO traits (profile_id, profile_no, key, "timestamp", message_id, kind,'
            # a profile the store does not know has no number: 0, which no profile has
            " str) SELECT $1, coalesce((SELECT profile_no FROM profiles WHERE profile_id = $1),"
            " 0), 'tier', $2, $3, $4, $5",
            [pid, at(hours), f"scores/{run}", "null" if value is None else "string", value],
        )


def batch_members(app: Segflow, segment_id: str, when: datetime) -> list[str]:
    res = evaluate(app.store.con, app.registry.current().values(), when, only=[segment_id])
    return sorted(res.members(segment_id))


def test_trait_writes_of_no_event_enter_and_exit_live_members(app: Segflow) -> None:
    app.registry.save([parse_segment({"id": "gold", "condition": {"trait": "tier", "eq": "Gold"}})])
    clock = VirtualClock(at(3))
    live = LiveEvaluator(app, clock)
    live.start()
    assert live.members("gold") == []
    # u1's score is as of the past (applied now, like a late event), a1's is due later;
    # a write for a profile the store does not know brings nobody into the universe
    write_scores(app, [("u1", 2, "Gold"), ("a1", 10, "Gold"), ("ghost", 2, "Gold")], "r1")
    clock.set(at(5))
    got = live.catch_up()
    assert [(c.segment_id, c.profile_id, c.entered, c.reason, c.at) for c in got] == [
        ("gold", "u1", True, "trait_changed", at(5))
    ]
    assert live.members("gold") == batch_members(app, "gold", at(5)) == ["u1"]
    assert live.segments_of("ghost") == {}
    assert live.catch_up() == []
    assert live.next_deadline() == at(10)
    clock.set(at(11))
    assert kinds(live.tick()) == [("gold", "a1", True, "trait_changed")]
    assert live.members("gold") == batch_members(app, "gold", at(11)) == ["a1", "u1"]
    # the next run clears u1's tier and demotes a1 at its own instant
    write_scores(app, [("u1", 11, None), ("a1", 12, "Silver")], "r2")
    got = live.catch_up()
    assert [(c.profile_id, c.entered, c.reason, c.at) for c in got] == [
        ("u1", False, "trait_changed", at(11))
    ]
    clock.set(at(13))
    assert [(c.profile_id, c.entered, c.reason, c.at) for c in live.tick()] == [
        ("a1", False, "trait_changed", at(12))
    ]
    assert live.members("gold") == batch_members(app, "gold", at(13)) == []
    # a restarted evaluator agrees with what was logged
    assert LiveEvaluator(app, VirtualClock(at(14))).start() == []


def test_trait_writes_of_no_event_stored_while_stopped_apply_at_restart(app: Segflow) -> None:
    app.registry.save([parse_segment({"id": "gold", "condition": {"trait": "tier", "eq": "Gold"}})])
    LiveEvaluator(app, VirtualClock(at(3))).start()
    write_scores(app, [("u1", 2, "Gold")], "r1")  # written after the log's mark at 3h
    app.store.ingest_messages([track({"userId": "u1"}, "Product Viewed", 4, "m9")])
    live = LiveEvaluator(app, VirtualClock(at(6)))
    got = live.start()
    assert [(c.segment_id, c.profile_id, c.entered, c.reason, c.at) for c in got] == [
        ("gold", "u1", True, "trait_changed", at(6))
    ]
    assert live.members("gold") == batch_members(app, "gold", at(6)) == ["u1"]
    assert LiveEvaluator(app, VirtualClock(at(7))).start() == []


def test_merge_and_save_rebuild_with_trait_writes_of_no_event(app: Segflow) -> None:
    clock = VirtualClock(at(3))
    live = LiveEvaluator(app, clock)
    live.start()
    write_scores(app, [("a1", 2, "Gold")], "r1")
    _, diff, changes = live.save(
        parse_segment({"id": "gold", "condition": {"trait": "tier", "eq": "Gold"}})
    )
    assert diff.entering == ["a1"] and kinds(changes) == [
        ("gold", "a1", True, "definition_changed")
    ]
    app.store.ingest_messages(
        [
            {
                "type": "identify",
                "userId": "u1",
                "anonymousId": "a1",
                "timestamp": format_instant(at(4)),
                "messageId": "m6",
            }
        ]
    )
    clock.set(at(5))
    got = live.catch_up()
    assert ("gold", "u1", True, "merged") in kinds(got)
    assert live.members("gold") == batch_members(app, "gold", at(5)) == ["u1"]
    assert live.explain("gold", "u1")["member"] is True


def test_save_prepared_off_the_lock_catches_up_with_what_came_since(app: Segflow) -> None:
    """Events, trait writes and expiring windows between the snapshot ``prepare_save``
    reads and the save all count: the memberships after the save are the batch
    evaluator's at that instant."""
    clock = VirtualClock(at(3))
    live = LiveEvaluator(app, clock)
    live.start()
    edited = parse_segment(
        {
            "id": "buyers",
            "condition": {
                "any": [
                    {"event": "Product Viewed", "within": "7d"},
                    {"event": "Order Completed", "within": "7d"},
                ]
            },
        }
    )
    snapshot = live.open_snapshot()
    app.store.ingest_messages(
        [
            track({"anonymousId": "a2"}, "Product Viewed", 5, "m5"),
            {
                "type": "identify",
                "userId": "u1",
                "timestamp": format_instant(at(5)),
                "messageId": "m6",
                "traits": {"country": "DE"},
            },
        ]
    )
    prepared = live.prepare_save(edited, snapshot)
    assert prepared is not None
    assert sorted(prepared.states) == ["a1", "u1"]  # as of the snapshot
    clock.set(at(7 * 24 + 1))  # u1's order (hour 0) has left the window
    version, _diff, _changes = live.save(edited, prepared)
    assert version == 2
    now = clock.now()
    expected = evaluate(app.store.con, app.registry.current().values(), now).membership_map()
    for sid, members in expected.items():
        assert live.members(sid) == sorted(members), sid
    assert live.members("buyers") == ["a1", "a2"]
    assert live.members("pl") == []


def test_a_prepared_save_is_not_used_when_another_definition_changed(app: Segflow) -> None:
    live = LiveEvaluator(app, VirtualClock(at(3)))
    live.start()
    edited = parse_segment({"id": "buyers", "condition": {"event": "Product Viewed"}})
    prepared = live.prepare_save(edited, live.open_snapshot())
    live.save(parse_segment({"id": "pl", "condition": {"trait": "country", "eq": "DE"}}))
    live.save(edited, prepared)
    assert live.members("buyers") == ["a1"]
    assert live.members("pl") == []
    assert live.members("quiet") == ["u1"]


def test_a_prepared_save_keeps_scheduled_members_until_their_refresh(app: Segflow) -> None:
    """A save prepared off the lock hands over as a full reload does: a scheduled
    segment left unchanged keeps its logged members until its cron instant, one
    edited is evaluated at once, and a segment saved with ``emit_events: false`` is
    silent."""
    weekly = dict(WEEKLY)
    app.registry.save([parse_segment(weekly)])
    monday = datetime(2026, 1, 5, 6)
    clock = VirtualClock(at(3))
    live = LiveEvaluator(app, clock)
    live.start()
    app.store.ingest_messages([track({"anonymousId": "a1"}, "Order Completed", 4, "m4")])
    clock.set(at(5))
    live.catch_up()
    assert live.members("weekly") == ["u1"]  # a1's order waits for Monday

    hidden = parse_segment(
        {"id": "viewers", "emit_events": False, "condition": {"event": "Product Viewed"}}
    )
    snapshot = live.open_snapshot()
    app.store.ingest_messages([track({"anonymousId": "a2"}, "Order Completed", 5, "m5")])
    prepared = live.prepare_save(hidden, snapshot)
    assert prepared is not None
    clock.set(at(6))
    _version, _diff, changes = live.save(hidden, prepared)
    assert "weekly" not in {c.segment_id for c in changes}
    assert live.members("weekly") == ["u1"]
    assert live.next_deadline() == monday
    assert "viewers" in live.silent
    assert live.members("viewers") == ["a1"]

    edited = parse_segment({**weekly, "condition": {"event": "Order Completed", "within": "30d"}})
    prepared = live.prepare_save(edited, live.open_snapshot())
    assert prepared is not None
    clock.set(at(7))
    _version, _diff, changes = live.save(edited, prepared)
    assert sorted((c.segment_id, c.profile_id, c.reason) for c in changes) == [
        ("weekly", "a1", "definition_changed"),
        ("weekly", "a2", "definition_changed"),
    ]
    assert live.members("weekly") == ["a1", "a2", "u1"]
    assert live.next_deadline() == monday
    clock.set(monday)
    assert live.tick() == []


def test_a_back_dated_event_changes_nothing_in_the_past(app: Segflow) -> None:
    clock = VirtualClock(at(30 * 24))
    live = LiveEvaluator(app, clock)
    live.start()
    clock.set(at(30 * 24 + 1))
    live.tick()
    clock.set(at(30 * 24 + 2))
    # a1 (stale state: nothing happened to it for a month) and a new profile n1 get an
    # order from 20 days ago: long out of "buyers" (7 days), still in "big"'s sum
    app.store.ingest_messages(
        [
            track({"anonymousId": "a1"}, "Order Completed", 10 * 24, "m6", revenue=500),
            track({"anonymousId": "n1"}, "Order Completed", 10 * 24, "m7", revenue=500),
        ]
    )
    got = live.catch_up()
    assert sorted((c.segment_id, c.profile_id, c.entered, c.at) for c in got) == [
        ("big", "a1", True, at(30 * 24 + 2)),
        ("big", "n1", True, at(30 * 24 + 2)),
        ("quiet", "n1", True, at(30 * 24 + 2)),  # a new profile, known from now
    ]
    assert "buyers" not in live.segments_of("a1") and "buyers" not in live.segments_of("n1")
    res = evaluate(app.store.con, app.registry.current().values(), clock.now())
    for sid in ("buyers", "big", "quiet"):
        assert live.members(sid) == sorted(res.members(sid)), sid


def test_catch_up_fires_what_came_due_while_the_inputs_were_stored(app: Segflow) -> None:
    clock = VirtualClock(at(3))
    live = LiveEvaluator(app, clock)
    live.start()
    app.store.ingest_messages([track({"anonymousId": "a1"}, "Order Completed", 4, "m4")])
    clock.set(at(8 * 24))  # the order's 7 days are over before the catch-up
    got = live.catch_up()
    # stamped after the last evaluation (at 3 h): in order, at its exact instants, and
    # evaluated up to now before the catch-up returns
    buyers = [(c.profile_id, c.entered, c.at) for c in got if c.segment_id == "buyers"]
    assert buyers == [("a1", True, at(4)), ("u1", False, at(7 * 24)), ("a1", False, at(7 * 24 + 4))]
    assert "buyers" not in live.segments_of("a1") and "buyers" not in live.segments_of("u1")
    assert live.tick() == []


def test_first_start_dates_entries_at_the_instants_profiles_entered(app: Segflow) -> None:
    day = 24
    app.store.ingest_messages(
        [
            track({"userId": "u2"}, "Order Completed", 0, "n1", revenue=30),
            track({"userId": "u2"}, "Order Completed", 20 * day, "n2", revenue=90),
            track({"userId": "u3"}, "Order Completed", 5 * day, "n3", revenue=150),
            {
                "type": "identify",
                "userId": "u3",
                "timestamp": format_instant(at(6 * day)),
                "messageId": "n4",
                "traits": {"country": "PL"},
            },
            {
                "type": "identify",
                "userId": "u3",
                "timestamp": format_instant(at(9 * day)),
                "messageId": "n5",
                "traits": {"country": "DE"},
            },
            {
                "type": "identify",
                "userId": "u3",
                "timestamp": format_instant(at(11 * day)),
                "messageId": "n6",
                "traits": {"country": "PL"},
            },
        ]
    )
    now = at(22 * day)
    got = LiveEvaluator(app, VirtualClock(now)).start()
    assert all(c.entered and c.reason != "definition_changed" for c in got)
    entries = {(c.segment_id, c.profile_id): c for c in got}
    assert entries[("buyers", "u2")].at == at(20 * day)
    assert entries[("big", "u2")].at == at(20 * day)  # 30 + 90
    assert entries[("big", "u3")].at == at(5 * day)
    assert entries[("pl", "u3")].at == at(11 * day)
    assert entries[("quiet", "u3")].at == at(12 * day)  # the order's 7 days ran out
    assert entries[("quiet", "u3")].reason == "window_expired"
    # the batch evaluator agrees: a member at each entry, not a microsecond before
    segments = app.registry.current().values()
    res = evaluate(app.store.con, segments, now)
    assert {k for k in entries} == {
        (sid, pid) for sid in ("buyers", "big", "pl", "quiet") for pid in res.members(sid)
    }
    first_seen = dict(
        app.store.con.execute("SELECT profile_id, first_seen FROM profiles").fetchall()
    )
    assert entries[("quiet", "a1")].at == first_seen["a1"] == at(2)
    for (sid, pid), c in entries.items():
        if c.at == first_seen[pid]:
            continue  # known from then (the batch evaluator knows no before)
        assert pid in evaluate(app.store.con, segments, c.at).members(sid), (sid, pid)
        before = evaluate(app.store.con, segments, c.at - timedelta(microseconds=1))
        assert pid not in before.members(sid), (sid, pid, c.at)


def test_scheduled_segment_changes_only_at_its_cron_instants(app: Segflow) -> None:
    weekly = dict(WEEKLY)
    app.registry.save([parse_segment(weekly)])
    monday = datetime(2026, 1, 5, 6)
    clock = VirtualClock(at(3))
    live = LiveEvaluator(app, clock)
    got = live.start()
    # never evaluated: evaluated at once
    assert [
        (c.segment_id, c.profile_id, c.at, c.reason) for c in got if c.segment_id == "weekly"
    ] == [("weekly", "u1", at(3), "scheduled_refresh")]
    app.store.ingest_messages([track({"anonymousId": "a1"}, "Order Completed", 4, "m4")])
    clock.set(at(5))
    got = live.catch_up()
    assert {c.segment_id for c in got} == {"buyers", "quiet"}
    assert live.members("weekly") == ["u1"]
    assert live.next_deadline() == monday

    clock.set(monday)
    got = live.tick()
    assert [(c.segment_id, c.profile_id, c.entered, c.at, c.reason) for c in got] == [
        ("weekly", "a1", True, monday, "scheduled_refresh")
    ]
    segments = app.registry.current().values()
    assert live.members("weekly") == evaluate(app.store.con, segments, monday).members("weekly")

    clock.set(datetime(2026, 1, 9))
    got = live.tick()
    assert {(c.segment_id, c.entered) for c in got} == {("buyers", False), ("quiet", True)}
    assert live.members("weekly") == ["a1", "u1"]  # over since the 8th, shown until Monday
    assert live.segments_of("u1")["weekly"] == at(3)

    clock.set(monday + timedelta(days=7))
    got = live.tick()
    assert sorted((c.segment_id, c.profile_id, c.entered) for c in got) == [
        ("weekly", "a1", False),
        ("weekly", "u1", False),
    ]
    assert {c.at for c in got} == {monday + timedelta(days=7)}
    assert LiveEvaluator(app, VirtualClock(clock.now() + timedelta(hours=1))).start() == []

    # stopped over the next Monday: the restart refreshes at the missed instant
    app.store.ingest_messages([track({"userId": "u1"}, "Order Completed", 14 * 24, "m9")])
    again = LiveEvaluator(app, VirtualClock(datetime(2026, 1, 20)))
    got = again.start()
    weekly_changes = [(c.profile_id, c.entered, c.at) for c in got if c.segment_id == "weekly"]
    assert weekly_changes == [("u1", True, monday + timedelta(days=14))]


def test_replay_refreshes_scheduled_segments_at_their_cron_instants(app: Segflow) -> None:
    weekly = {
        "id": "weekly",
        "mode": "scheduled",
        "schedule": "0 6 * * 1",
        "condition": {"event": "Order Completed", "within": "7d"},
    }
    app.registry.save([parse_segment(weekly)])
    monday = datetime(2026, 1, 5, 6)
    out = LiveEvaluator(app, VirtualClock(T)).replay(until=datetime(2026, 1, 13))
    assert [(c.profile_id, c.entered, c.at, c.reason) for c in out if c.segment_id == "weekly"] == [
        ("u1", True, monday, "scheduled_refresh"),
        ("u1", False, monday + timedelta(days=7), "scheduled_refresh"),
    ]
    assert ("buyers", "u1", False, at(7 * 24)) in [
        (c.segment_id, c.profile_id, c.entered, c.at) for c in out
    ]


def test_a_priority_group_logs_moves_at_save_expiry_reorder_and_delete(app: Segflow) -> None:
    from segflow.model.groups import Group

    clock = VirtualClock(at(3))
    live = LiveEvaluator(app, clock)
    live.start()
    seen: list[LoggedChange] = []
    live.subscribe(seen.extend)
    live.save_group(Group("tiers", "Tiers", ("buyers", "pl", "quiet")))
    assert sorted(kinds(seen)) == [
        ("tiers:buyers", "u1", True, "definition_changed"),
        ("tiers:quiet", "a1", True, "definition_changed"),
    ]
    seen.clear()
    clock.set(at(8 * 24))
    live.tick()
    moved = [(*k, c.at) for k, c in zip(kinds(seen), seen, strict=True) if ":" in k[0]]
    assert moved == [
        ("tiers:buyers", "u1", False, "window_expired", at(7 * 24)),
        ("tiers:pl", "u1", True, "window_expired", at(7 * 24)),
    ]
    seen.clear()
    live.save_group(Group("tiers", "Tiers", ("quiet", "pl")))
    assert sorted(kinds(seen)) == [
        ("tiers:pl", "u1", False, "definition_changed"),
        ("tiers:quiet", "u1", True, "definition_changed"),
    ]
    assert live.members("tiers:quiet") == ["a1", "u1"] and live.members("tiers:pl") == []
    seen.clear()
    live.delete_group("tiers")
    assert sorted(kinds(seen)) == [
        ("tiers:quiet", "a1", False, "deleted"),
        ("tiers:quiet", "u1", False, "deleted"),
    ]
    with pytest.raises(KeyError):
        live.members("tiers:quiet")
