"""Parsing Segment messages: spellings, time zones, validation that names the field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.model.events import (
    DERIVED_ID_PREFIX,
    IngestError,
    Message,
    parse_message,
)

T = "2026-03-01T12:00:00Z"


def problems(raw: object) -> list[str]:
    with pytest.raises(IngestError) as err:
        parse_message(raw)
    return [str(p) for p in err.value.problems]


def test_snake_case_and_camel_case_give_the_same_message() -> None:
    snake = {
        "type": "identify",
        "message_id": "m1",
        "user_id": "u1",
        "anonymous_id": "a1",
        "timestamp": T,
        "received_at": T,
        "sent_at": T,
        "traits": {"email": "x@example.com"},
    }
    camel = {
        "type": "identify",
        "messageId": "m1",
        "userId": "u1",
        "anonymousId": "a1",
        "timestamp": T,
        "receivedAt": T,
        "sentAt": T,
        "traits": {"email": "x@example.com"},
    }
    assert parse_message(snake) == parse_message(camel)


def test_timestamp_with_offset_becomes_naive_utc() -> None:
    msg = parse_message(
        {"type": "track", "event": "E", "userId": "u", "timestamp": "2026-03-01T14:30:00+02:00"}
    )
    assert msg.timestamp == datetime(2026, 3, 1, 12, 30)
    assert msg.timestamp.tzinfo is None


def test_naive_timestamp_is_taken_as_utc_and_z_is_utc() -> None:
    naive = parse_message(
        {"type": "track", "event": "E", "userId": "u", "timestamp": "2026-03-01T12:00:00"}
    )
    zulu = parse_message({"type": "track", "event": "E", "userId": "u", "timestamp": T})
    assert naive.timestamp == zulu.timestamp == datetime(2026, 3, 1, 12)


def test_datetime_objects_are_accepted_for_in_memory_messages() -> None:
    t = datetime(2026, 3, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    msg = parse_message({"type": "track", "event": "E", "userId": "u", "timestamp": t})
    assert msg.timestamp == datetime(2026, 3, 1, 12)


def test_missing_timestamp_is_named() -> None:
    assert problems({"type": "track", "event": "E", "userId": "u"}) == ["timestamp: missing"]


def test_unparseable_timestamp_is_named() -> None:
    assert problems({"type": "track", "event": "E", "userId": "u", "timestamp": "yesterday"}) == [
        "timestamp: not an ISO 8601 timestamp: 'yesterday'"
    ]


def test_properties_must_be_an_object() -> None:
    got = problems(
        {"type": "track", "event": "E", "userId": "u", "timestamp": T, "properties": [1]}
    )
    assert got == ["properties: expected an object, got an array"]


def test_unknown_type_is_named() -> None:
    got = problems({"type": "foo", "userId": "u", "timestamp": T})
    assert len(got) == 1 and got[0].startswith('type: unknown message type "foo"')


def test_a_message_needs_a_user_id_or_an_anonymous_id() -> None:
    got = problems({"type": "track", "event": "E", "timestamp": T})
    assert got == ["user_id: missing (a message needs user_id or anonymous_id)"]


def test_alias_needs_previous_id_and_user_id() -> None:
    got = problems({"type": "alias", "anonymousId": "a", "timestamp": T})
    assert got == [
        "previous_id: missing (alias needs previous_id)",
        "user_id: missing (alias needs user_id)",
    ]


def test_track_needs_an_event_name() -> None:
    assert problems({"type": "track", "userId": "u", "timestamp": T}) == [
        "event: missing (required for track)"
    ]


def test_every_problem_is_reported_at_once() -> None:
    got = problems({"type": 3, "userId": 2.5, "properties": "x"})
    assert "type: expected a string, got a number" in got
    assert "timestamp: missing" in got
    assert "userId: expected a string, got a number" in got
    assert "properties: expected an object, got a string" in got


def test_the_two_spellings_must_agree() -> None:
    got = problems({"type": "track", "event": "E", "user_id": "a", "userId": "b", "timestamp": T})
    assert got == ["userId: conflicts with user_id ('a' != 'b')"]


def test_not_an_object_is_rejected() -> None:
    assert problems([1, 2]) == ["expected a JSON object, got an array"]


def test_numeric_ids_become_text_and_type_is_case_insensitive() -> None:
    msg = parse_message({"type": "Track", "event": "E", "userId": 42, "timestamp": T})
    assert msg.user_id == "42" and msg.type == "track"


def test_page_name_and_category_are_stored_in_properties() -> None:
    msg = parse_message(
        {
            "type": "page",
            "anonymousId": "a",
            "timestamp": T,
            "name": "Home",
            "category": "Landing",
            "properties": {"url": "/"},
        }
    )
    assert msg.properties == {"url": "/", "name": "Home", "category": "Landing"}


def test_missing_message_id_is_derived_from_content_not_delivery_times() -> None:
    base = {"type": "track", "event": "E", "userId": "u", "timestamp": T, "properties": {"a": 1}}
    one = parse_message({**base, "receivedAt": "2026-03-02T00:00:00Z"})
    two = parse_message({**base, "receivedAt": "2026-03-05T00:00:00Z"})
    other = parse_message({**base, "properties": {"a": 2}})
    assert one.message_id == two.message_id
    assert one.message_id.startswith(DERIVED_ID_PREFIX)
    assert other.message_id != one.message_id


def test_values_that_are_not_json_are_rejected_with_their_path() -> None:
    got = problems(
        {
            "type": "track",
            "event": "E",
            "userId": "u",
            "timestamp": T,
            "properties": {"a": {"b": float("nan")}, "c": object()},
        }
    )
    assert got[0] == "properties.a.b: number must be finite, got nan"
    assert got[1] == "properties.c: not a JSON value (object)"


def test_leaves_are_flattened_dotted_paths() -> None:
    msg = parse_message(
        {
            "type": "track",
            "event": "E",
            "userId": "u",
            "timestamp": T,
            "properties": {"a": {"b": 1, "c": [1, {"d": 2}]}, "e": None, "f": {}},
            "context": {"device": {"type": "mobile"}},
        }
    )
    assert msg.leaves == (
        ("properties.a.b", 1),
        ("properties.a.c", [1, {"d": 2}]),
        ("properties.e", None),
        ("context.device.type", "mobile"),
    )


def test_profile_traits_come_from_identify_and_context_traits_not_group_traits() -> None:
    ident = parse_message(
        {
            "type": "identify",
            "userId": "u",
            "timestamp": T,
            "traits": {"plan": "pro", "address": {"city": "Oslo"}},
            "context": {"traits": {"plan": "free", "age": 30}},
        }
    )
    assert ident.profile_traits() == {"plan": "pro", "address.city": "Oslo", "age": 30}
    group = parse_message(
        {"type": "group", "userId": "u", "groupId": "g", "timestamp": T, "traits": {"seats": 5}}
    )
    assert group.profile_traits() == {}


# -- properties -------------------------------------------------------------------

ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8)
keys = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="."),
    min_size=1,
    max_size=6,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=8,
)
objects = st.dictionaries(keys, json_values, max_size=4)
instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.none()
)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@st.composite
def valid_messages(draw: st.DrawFn) -> tuple[dict[str, Any], datetime]:
    """A valid message in random spellings, and its timestamp as naive UTC."""
    type_ = draw(st.sampled_from(["track", "identify", "page", "screen", "alias", "group"]))
    camel = draw(st.booleans())

    def key(snake: str) -> str:
        if not camel:
            return snake
        head, *rest = snake.split("_")
        return head + "".join(p.title() for p in rest)

    utc = draw(instants)
    tz = draw(offsets)
    raw: dict[str, Any] = {
        "type": type_,
        "timestamp": utc.replace(tzinfo=UTC).astimezone(tz).isoformat(),
        key("message_id"): draw(ids),
    }
    if type_ == "alias":
        raw[key("user_id")] = draw(ids)
        raw[key("previous_id")] = draw(ids)
    else:
        who = draw(st.sampled_from(["user", "anonymous", "both"]))
        if who in ("user", "both"):
            raw[key("user_id")] = draw(ids)
        if who in ("anonymous", "both"):
            raw[key("anonymous_id")] = draw(ids)
    if type_ == "track":
        raw["event"] = draw(ids)
    if type_ == "group":
        raw[key("group_id")] = draw(ids)
    for name in ("properties", "context", "traits"):
        if draw(st.booleans()):
            raw[name] = draw(objects)
    return raw, utc


@settings(max_examples=150, deadline=None)
@given(valid_messages())
def test_valid_messages_parse_and_round_trip(case: tuple[dict[str, Any], datetime]) -> None:
    raw, utc = case
    msg = parse_message(raw)
    assert msg.timestamp == utc
    assert msg.user_id == (raw.get("user_id") or raw.get("userId"))
    assert msg.message_id == (raw.get("message_id") or raw.get("messageId"))
    again = parse_message(msg.to_dict())
    assert again == msg
    assert again.leaves == msg.leaves


junk_fields = st.dictionaries(
    st.sampled_from(
        [
            "type",
            "event",
            "userId",
            "user_id",
            "anonymousId",
            "previousId",
            "groupId",
            "messageId",
            "timestamp",
            "receivedAt",
            "sentAt",
            "properties",
            "context",
            "traits",
            "name",
            "category",
        ]
    ),
    st.one_of(json_values, st.sampled_from(["track", "alias", "2026-01-01", T])),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(junk_fields, json_values))
def test_junk_gives_an_ingest_error_never_a_crash(raw: object) -> None:
    try:
        msg = parse_message(raw)
    except IngestError as e:
        assert e.problems
        assert all(str(p) for p in e.problems)
    else:
        assert isinstance(msg, Message)
        assert parse_message(msg.to_dict()) == msg


# -- the plain-shape fast path agrees with the general parser -------------------------

_TIMES = st.one_of(
    st.builds(
        lambda d, sep, hms, frac, zone: f"{d}{sep}{hms}{frac}{zone}",
        st.sampled_from(["2026-03-01", "20260301", "2026-W09-7", "2026-3-1", ""]),
        st.sampled_from(["T", " ", "", "t"]),
        st.sampled_from(["12", "12:30", "12:30:45", "123045", "25:00", ""]),
        st.sampled_from(["", ".1", ".123456", ".1234567", ",5", "."]),
        st.sampled_from(["", "Z", "z", "+02:00", "-0530", "+02:00Z", "ZZ", "+00:00"]),
    ),
    st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=-3))])),
    st.text(max_size=5),
    st.integers(),
    st.none(),
)
_IDS = st.one_of(st.none(), st.sampled_from(["", "u1", "a1"]), st.integers(-5, 5), st.booleans())
_OBJECTS = st.one_of(st.none(), st.just({}), st.just({"a": 1}), st.just([1]), st.just("x"))


@st.composite
def _messages(draw: st.DrawFn) -> dict[str, Any]:
    """A message as a tracking library sends it, then none to a few fields changed
    (to another spelling, type or value, or removed)."""
    raw: dict[str, Any] = {
        "type": draw(st.sampled_from(["track", "identify", "alias", "group"])),
        "messageId": "m1",
        "userId": "u1",
        "anonymousId": "a1",
        "previousId": "p1",
        "groupId": "g1",
        "event": "Order Completed",
        "timestamp": "2026-03-01T12:00:00.250Z",
        "receivedAt": datetime(2026, 3, 1, 12, 0, 1),
        "sentAt": "2026-03-01T12:00:00+01:00",
        "properties": {"revenue": 42.0},
        "context": {"ip": "1.2.3.4"},
        "traits": {"plan": "pro"},
    }
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*raw, "user_id", "message_id", "received_at", "sent_at"]))
        if draw(st.integers(0, 3)) == 0:
            raw.pop(key, None)
        elif key == "type":
            raw[key] = draw(st.sampled_from(["page", "screen", "Track", "bogus", 7, None]))
        elif key in ("timestamp", "receivedAt", "sentAt"):
            raw[key] = draw(_TIMES)
        elif key in ("properties", "context", "traits"):
            raw[key] = draw(_OBJECTS)
        elif key == "event":
            raw[key] = draw(st.one_of(st.none(), st.sampled_from(["", "Viewed"]), st.integers()))
        else:
            raw[key] = draw(st.one_of(_IDS, st.just("m2")))
    return raw


def _outcome(raw: Mapping[str, Any]) -> Message | str:
    """What ``parse_message(raw, flatten=False)`` gives: the message or its error."""
    try:
        return parse_message(raw, flatten=False)
    except IngestError as e:
        return str(e)


def _general(raw: dict[str, Any]) -> Message | str:
    """The general path (a mapping that is not a dict does not take the fast one)."""
    from types import MappingProxyType

    return _outcome(MappingProxyType(raw))


@settings(max_examples=600, deadline=None)
@given(_messages())
def test_the_fast_path_gives_what_the_general_parser_gives(raw: dict[str, Any]) -> None:
    from segflow.model.events import _plain_message

    fast = _plain_message(raw)
    if fast is not None:
        assert fast == _general(raw)
    assert _outcome(raw) == _general(raw)


@settings(max_examples=600, deadline=None)
@given(_TIMES)
def test_fast_timestamps_are_read_as_parse_time_reads_them(value: object) -> None:
    from segflow.model.events import _plain_time, parse_time

    fast = _plain_time(value)
    problems: list[Any] = []
    slow = parse_time(value, "timestamp", problems)
    if fast is not None:
        assert fast == slow and not problems and fast.tzinfo is None


def test_the_fast_path_takes_what_tracking_libraries_send() -> None:
    from segflow.model.events import _plain_message

    raw = {
        "type": "track",
        "messageId": "m1",
        "userId": "u1",
        "event": "Order Completed",
        "timestamp": "2026-03-01T12:00:00.250Z",
        "receivedAt": datetime(2026, 3, 1, 12, 0, 1),
        "properties": {"revenue": 42.0},
        "context": {"library": {"name": "analytics-python"}},
    }
    msg = _plain_message(raw)
    assert msg is not None and msg == _general(raw)
    assert msg.timestamp == datetime(2026, 3, 1, 12, 0, 0, 250000)


def test_every_invalid_field_of_a_message_is_reported_once() -> None:
    raw = {"type": "trak", "timestamp": "soon", "event": 5, "properties": [1], "userId": "u"}
    with pytest.raises(IngestError) as e:
        parse_message(raw, flatten=False)
    assert [p.field for p in e.value.problems] == ["type", "timestamp", "event", "properties"]
    raw = {**raw, "type": "track"}
    with pytest.raises(IngestError) as e:
        parse_message(raw)
    assert [p.field for p in e.value.problems] == ["timestamp", "event", "properties"]
