"""Edge cases every batch engine must agree on with the interpreter: window bounds to
the microsecond, traits as of an instant, empty sets, wrong types, bucket hashing and
ISO-8601 texts read as instants."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from segflow.model.bucket import bucket_of
from segflow.model.definition import parse_segment
from segflow.model.history import Event, ProfileHistory, TraitWrite
from segflow.plan.interpret import Interpreter
from segflow.plan.planner import build_plan
from tests.engines import Engine

US = timedelta(microseconds=1)
AT = datetime(2026, 3, 10, 12, 0, 0, 500_000)
DAY = timedelta(days=1)


def check(
    engine: Engine, hs: list[ProfileHistory], conds: dict[str, Any], at: datetime = AT
) -> dict[str, set[str]]:
    """Members of each ``conds`` segment on the engine, asserted equal to the
    interpreter's; returned for the tests' own expectations."""
    segments = [parse_segment({"id": sid, "condition": c}) for sid, c in conds.items()]
    got = engine.members(hs, segments, at)
    plan = build_plan(segments)
    for h in hs:
        for sid, member in Interpreter(plan, h, at).segments().items():
            assert (h.profile_id in got[sid]) == member, (engine.engine, sid, h.profile_id)
    return {sid: got[sid] for sid in conds}


def one_event(pid: str, ts: datetime, name: str = "View", **fields: Any) -> ProfileHistory:
    props = {f"properties.{k}": v for k, v in fields.items()}
    return ProfileHistory(pid, [Event(ts, name, props, message_id=f"{pid}-e")], [])


def test_relative_windows_hold_to_the_microsecond(engine: Engine) -> None:
    hs = [
        one_event("at_floor", AT - 7 * DAY),  # t - 7d < ts: out
        one_event("after_floor", AT - 7 * DAY + US),
        one_event("at_t", AT),
        one_event("after_t", AT + US),  # a later event is not seen
        one_event("ago_upper", AT - DAY),  # from_ago 7d to_ago 1d: ts <= t - 1d
        one_event("ago_above", AT - DAY + US),
    ]
    got = check(
        engine,
        hs,
        {
            "within": {"event": "View", "within": "7d"},
            "ago": {"event": "View", "within": {"from_ago": "7d", "to_ago": "1d"}},
            "last_within": {"event": "View", "measure": "last_time", "within_last": "1d"},
            "first_older": {"event": "View", "measure": "first_time", "older_than": "1d"},
        },
    )
    assert got["within"] == {"after_floor", "at_t", "ago_upper", "ago_above"}
    assert got["ago"] == {"after_floor", "ago_upper"}
    assert got["last_within"] == {"at_t", "ago_above"}
    assert got["first_older"] == {"at_floor", "after_floor", "ago_upper"}


def test_absolute_windows_include_since_and_exclude_to(engine: Engine) -> None:
    t0 = datetime(2026, 3, 1)
    hs = [
        one_event("at_since", t0),
        one_event("before_since", t0 - US),
        one_event("before_to", t0 + DAY - US),
        one_event("at_to", t0 + DAY),
    ]
    got = check(
        engine,
        hs,
        {
            "since": {"event": "View", "within": {"since": "2026-03-01T00:00:00Z"}},
            "range": {"event": "View", "within": {"from": "2026-03-01", "to": "2026-03-02"}},
        },
    )
    assert got["since"] == {"at_since", "before_to", "at_to"}
    assert got["range"] == {"at_since", "before_to"}


def test_traits_are_read_as_of_the_instant(engine: Engine) -> None:
    hs = [
        ProfileHistory("written_at_t", [], [TraitWrite(AT, "a", "country", "PL")]),
        ProfileHistory("written_after", [], [TraitWrite(AT + US, "a", "country", "PL")]),
        ProfileHistory(
            "replaced",
            [],
            [TraitWrite(AT - DAY, "a", "country", "PL"), TraitWrite(AT, "b", "country", "DE")],
        ),
        ProfileHistory(
            "replaced_later",
            [],
            [TraitWrite(AT - DAY, "a", "country", "PL"), TraitWrite(AT + US, "b", "country", "DE")],
        ),
        ProfileHistory(
            "cleared",
            [],
            [TraitWrite(AT - DAY, "a", "country", "PL"), TraitWrite(AT - US, "b", "country", None)],
        ),
        ProfileHistory(  # same instant: the greater message id wins
            "tie",
            [],
            [TraitWrite(AT, "m2", "country", "DE"), TraitWrite(AT, "m1", "country", "PL")],
        ),
    ]
    got = check(
        engine,
        hs,
        {
            "pl": {"trait": "country", "eq": "PL"},
            "known": {"trait": "country", "exists": True},
            "unknown": {"trait": "country", "not_exists": True},
        },
    )
    assert got["pl"] == {"written_at_t", "replaced_later"}
    assert got["known"] == {"written_at_t", "replaced", "replaced_later", "tie"}
    assert got["unknown"] == {"written_after", "cleared"}


def test_empty_sets_count_zero_and_measure_nothing(engine: Engine) -> None:
    hs = [
        ProfileHistory("nothing", [], []),
        one_event("other_event", AT - DAY, "Add", price=5),
        one_event("old_order", AT - 40 * DAY, "Order", price=5),
    ]
    got = check(
        engine,
        hs,
        {
            "zero": {"event": "Order", "within": "30d", "eq": 0},
            "sum_zero": {"event": "Order", "measure": "sum", "of": "price", "eq": 0},
            "avg_any": {"event": "Order", "within": "30d", "measure": "avg", "of": "price"}
            | {"gte": 0},
            "not_avg": {
                "not": {"event": "Order", "within": "30d", "measure": "max", "of": "price", "lt": 1}
            },
            "never": {"event": "Order", "measure": "first_time", "not_exists": True},
            "distinct_zero": {"event": "Order", "measure": "distinct", "of": "price", "lt": 1},
            "no_top": {"event": "Order", "measure": "top", "of": "category", "not_exists": True},
            "empty_any": {"any": []},
            "empty_all": {"all": []},
        },
    )
    everyone = {"nothing", "other_event", "old_order"}
    assert got["zero"] == everyone
    assert got["sum_zero"] == {"nothing", "other_event"}
    assert got["avg_any"] == set()
    assert got["not_avg"] == everyone
    assert got["never"] == {"nothing", "other_event"}
    assert got["distinct_zero"] == {"nothing", "other_event"}
    assert got["no_top"] == everyone
    assert got["empty_any"] == set()
    assert got["empty_all"] == everyone


def test_wrong_types_make_every_comparison_false(engine: Engine) -> None:
    hs = [
        one_event("number_category", AT - DAY, category=3, price="12"),
        one_event("string_category", AT - DAY, category="3", price=12),
        ProfileHistory("text_age", [], [TraitWrite(AT - DAY, "a", "age", "x")]),
        ProfileHistory("bool_age", [], [TraitWrite(AT - DAY, "a", "age", True)]),
        ProfileHistory("number_age", [], [TraitWrite(AT - DAY, "a", "age", 40)]),
    ]
    got = check(
        engine,
        hs,
        {
            "cat_text": {"event": "View", "where": [{"property": "category", "eq": "3"}]},
            "cat_number": {"event": "View", "where": [{"property": "category", "eq": 3}]},
            "price_gt": {"event": "View", "where": [{"property": "price", "gt": 5}]},
            "sum_price": {"event": "View", "measure": "sum", "of": "price", "gt": 5},
            "age_gt": {"trait": "age", "gt": 30},
            "not_age_gt": {"not": {"trait": "age", "gt": 30}},
            "age_true": {"trait": "age", "eq": True},
            "age_starts": {"trait": "age", "starts_with": "x"},
        },
    )
    assert got["cat_text"] == {"string_category"}
    assert got["cat_number"] == {"number_category"}
    assert got["price_gt"] == got["sum_price"] == {"string_category"}
    assert got["age_gt"] == {"number_age"}
    assert got["not_age_gt"] == {"number_category", "string_category", "text_age", "bool_age"}
    assert got["age_true"] == {"bool_age"}
    assert got["age_starts"] == {"text_age"}


def test_buckets_are_the_python_hash_on_every_engine(engine: Engine) -> None:
    ids = [f"user-{i}" for i in range(60)] + ["", "ünïcødé", "a:b", "x" * 80, "'quoted'"]
    hs = [ProfileHistory(pid, [], []) for pid in ids]
    got = check(
        engine,
        hs,
        {
            "low": {"bucket": {"salt": "spring", "from": 0, "to": 10}},
            "mid": {"bucket": {"salt": "spring", "from": 10, "to": 55.5}},
            "other_salt": {"bucket": {"salt": "ß:autumn", "from": 0, "to": 50}},
        },
    )
    assert got["low"] == {p for p in ids if bucket_of(p, "spring") < 10}
    assert got["mid"] == {p for p in ids if 10 <= bucket_of(p, "spring") < 55.5}
    assert got["other_salt"] == {p for p in ids if bucket_of(p, "ß:autumn") < 50}
    assert 0 < len(got["other_salt"]) < len(ids)


def test_iso_texts_are_read_as_the_interpreter_reads_them(engine: Engine) -> None:
    texts = [
        "2026-03-09T12:00:00.500000Z",
        "2026-03-09T12:00:00.500001Z",
        "2026-03-09 14:00:00.5+02:00",
        "2026-03-09T06:30:00.5-0530",
        "2026-03-09",
        "2026-03-10T12:00:00.5Z",
        "2026-02-30",
        "not a date",
        "",
        "2026-03-09T25:00:00Z",
    ]
    hs = [one_event(f"t{i}", AT - DAY, when=t) for i, t in enumerate(texts)]
    hs.append(ProfileHistory("trait", [], [TraitWrite(AT - DAY, "a", "signup", texts[0])]))
    got = check(
        engine,
        hs,
        {
            "within_day": {"event": "View", "where": [{"property": "when", "within_last": "1d"}]},
            "older_day": {"event": "View", "where": [{"property": "when", "older_than": "1d"}]},
            "after": {"event": "View", "where": [{"property": "when", "after": "2026-03-09"}]},
            "trait_older": {"trait": "signup", "older_than": "1d"},
        },
    )
    assert got["within_day"] == {"t1", "t5"}
    assert got["older_day"] == {"t0", "t2", "t3", "t4"}
    assert got["trait_older"] == {"trait"}


def test_texts_outside_years_1_to_9999_are_no_instant(engine: Engine) -> None:
    """An offset that moves a text before year 1 or past 9999 UTC, a fifth year digit
    or a BC year: no instant on any engine, as in Python (not a year-0 instant)."""
    texts = [
        "0001-01-01T00:00:00+02:00",
        "9999-12-31T23:00:00-02:00",
        "10000-01-01T00:00:00",
        "0001-01-01T02:00:00+02:00",
        "9999-12-31T23:59:59.999999Z",
    ]
    hs = [one_event(f"t{i}", AT - DAY, when=t) for i, t in enumerate(texts)]
    got = check(
        engine,
        hs,
        {
            "before": {"event": "View", "where": [{"property": "when", "before": "2000-01-01"}]},
            "after": {"event": "View", "where": [{"property": "when", "after": "2000-01-01"}]},
        },
    )
    assert got["before"] == {"t3"}
    assert got["after"] == {"t4"}


def test_only_texts_of_the_instant_grammar_are_instants(engine: Engine) -> None:
    """One grammar on every engine (``model.time.INSTANT_TEXT``): lower-case ``t`` and
    ``z``, minutes without seconds, ``+HH`` offsets, fractions cut to the microsecond;
    no zone names, no hour alone, no basic format, no hour 24 or second 60."""
    texts = [
        "2026-03-09T12:00Z",
        "2026-03-09t12:00:00.5z",
        "2026-03-09T14:00:00.5+02",
        "2026-03-09T12:00:00.5000009Z",
        " 2026-03-09T12:00:00.5Z\n",
        "2026-03-09 12:00:00 UTC",
        "2026-03-09T12",
        "20260309T120000Z",
        "2026-03-09T24:00:00Z",
        "2026-03-08T23:59:60Z",
        "2026-03-09T12:00:00+24:00",
        "2026-03-09+02:00",
        "\xa02026-03-09T12:00:00Z",
    ]
    hs = [one_event(f"t{i}", AT - DAY, when=t) for i, t in enumerate(texts)]
    hs += [
        ProfileHistory(f"trait{i}", [], [TraitWrite(AT - DAY, "a", "signup", t)])
        for i, t in enumerate(texts)
    ]
    got = check(
        engine,
        hs,
        {
            "is_time": {"event": "View", "where": [{"property": "when", "older_than": "1d"}]},
            "trait_time": {"trait": "signup", "older_than": "1d"},
            "trait_no_time": {"not": {"trait": "signup", "before": "3000-01-01"}},
        },
    )
    assert got["is_time"] == {"t0", "t1", "t2", "t3", "t4"}
    assert got["trait_time"] == {f"trait{i}" for i in range(5)}
    assert got["trait_no_time"] >= {f"trait{i}" for i in range(5, len(texts))}
