"""Identity resolution: identify/alias link identities, linked profiles merge."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.model.events import Merge
from segflow.store.duckdb.identity import connected_components
from segflow.store.duckdb.store import DuckDBStore
from tests.helpers import assert_profile_numbers_hold


@pytest.fixture
def store() -> Iterator[DuckDBStore]:
    s = DuckDBStore(":memory:")
    yield s
    s.close()


def at(day: int, hour: int = 0) -> str:
    return f"2026-01-{day:02d}T{hour:02d}:00:00Z"


def track(
    mid: str, ts: str, *, user: str | None = None, anon: str | None = None, **extra: Any
) -> dict[str, Any]:
    m: dict[str, Any] = {
        "type": "track",
        "event": "Viewed",
        "messageId": mid,
        "timestamp": ts,
        **extra,
    }
    if user:
        m["userId"] = user
    if anon:
        m["anonymousId"] = anon
    return m


def identify(
    mid: str, ts: str, user: str, anon: str | None = None, **traits: Any
) -> dict[str, Any]:
    m: dict[str, Any] = {
        "type": "identify",
        "messageId": mid,
        "timestamp": ts,
        "userId": user,
        "traits": traits,
    }
    if anon:
        m["anonymousId"] = anon
    return m


def alias(mid: str, ts: str, user: str, previous: str) -> dict[str, Any]:
    return {
        "type": "alias",
        "messageId": mid,
        "timestamp": ts,
        "userId": user,
        "previousId": previous,
    }


def profiles_of_events(store: DuckDBStore) -> dict[str, str]:
    return dict(store.con.execute("SELECT message_id, profile_id FROM events").fetchall())


def test_identify_merges_the_anonymous_profile_and_rewrites_its_events(store: DuckDBStore) -> None:
    store.ingest_messages([track("e1", at(1), anon="a1"), track("e2", at(2), anon="a1")])
    assert store.profile_ids() == ["a1"]
    report = store.ingest_messages([identify("i1", at(3), "u1", "a1", email="x@y.z")])
    assert report.merges == [Merge("a1", "u1")]
    assert profiles_of_events(store) == {"e1": "u1", "e2": "u1", "i1": "u1"}
    assert store.profile_ids() == ["u1"]
    assert store.resolve_profile(anonymous_id="a1") == "u1"
    assert store.identities("u1") == [("anonymous", "a1"), ("user", "u1")]
    first, last = store.con.execute(
        "SELECT first_seen, last_seen FROM profiles WHERE profile_id = 'u1'"
    ).fetchone() or (None, None)
    assert (first, last) == (datetime(2026, 1, 1), datetime(2026, 1, 3))
    assert [(a, b) for a, b, _ in store.merges()] == [("a1", "u1")]
    # later anonymous events go straight to the user's profile
    store.ingest_messages([track("e3", at(4), anon="a1")])
    assert profiles_of_events(store)["e3"] == "u1"


def test_identify_in_the_same_batch_needs_no_merge(store: DuckDBStore) -> None:
    report = store.ingest_messages(
        [track("e1", at(1), anon="a1"), identify("i1", at(2), "u1", "a1")]
    )
    assert report.merges == []
    assert set(profiles_of_events(store).values()) == {"u1"}
    assert store.profile_ids() == ["u1"]


def test_alias_merges_two_users_into_the_one_seen_first(store: DuckDBStore) -> None:
    store.ingest_messages(
        [
            identify("i1", at(5), "new-id", plan="pro"),
            identify("i0", at(1), "old-id", plan="free", city="Oslo"),
        ]
    )
    report = store.ingest_messages([alias("al", at(6), "new-id", "old-id")])
    assert report.merges == [Merge("new-id", "old-id")]
    assert store.profile_ids() == ["old-id"]
    assert set(profiles_of_events(store).values()) == {"old-id"}
    # traits of both profiles merged; last write (by timestamp) wins
    assert store.traits_as_of("old-id") == {"plan": "pro", "city": "Oslo"}
    assert store.traits_as_of("old-id", datetime(2026, 1, 3)) == {"plan": "free", "city": "Oslo"}


def test_alias_of_an_anonymous_id_links_it(store: DuckDBStore) -> None:
    store.ingest_messages([track("e1", at(1), anon="a9")])
    store.ingest_messages([alias("al", at(2), "u9", "a9")])
    assert profiles_of_events(store) == {"e1": "u9", "al": "u9"}


def test_a_trait_set_to_null_is_cleared(store: DuckDBStore) -> None:
    store.ingest_messages(
        [
            identify("i1", at(1), "u1", coupon="SPRING", vip=True),
            identify("i2", at(2), "u1", coupon=None),
        ]
    )
    assert store.traits_as_of("u1") == {"vip": True}
    assert store.traits_as_of("u1", datetime(2026, 1, 1, 12)) == {"coupon": "SPRING", "vip": True}
    rows = store.con.execute(
        "SELECT key, value FROM traits_as_of(TIMESTAMP '2026-01-03') ORDER BY key"
    ).fetchall()
    assert rows == [("vip", "true")]
    assert store.con.execute("SELECT key FROM current_traits").fetchall() == [("vip",)]


def test_trait_ties_at_the_same_instant_go_to_the_greatest_message_id(store: DuckDBStore) -> None:
    store.ingest_messages(
        [identify("b", at(1), "u1", plan="b"), identify("a", at(1), "u1", plan="a")]
    )
    assert store.traits_as_of("u1") == {"plan": "b"}


def test_a_late_event_can_change_which_user_id_is_canonical(store: DuckDBStore) -> None:
    store.ingest_messages([identify("i1", at(2), "u1", "a1"), identify("i2", at(3), "u2", "a1")])
    assert store.profile_ids() == ["u1"]
    report = store.ingest_messages([track("late", at(1), user="u2")])
    assert report.merges == [Merge("u1", "u2")]
    assert set(profiles_of_events(store).values()) == {"u2"}


def test_a_load_of_known_identities_leaves_the_identity_graph_alone(store: DuckDBStore) -> None:
    store.ingest_messages([identify("i1", at(2), "u1", "a1"), identify("i2", at(2), "u2")])
    before = store.con.execute("SELECT * FROM identities ORDER BY ALL").fetchall()
    report = store.ingest_messages(
        [
            track("t1", at(3), user="u1"),
            track("t2", at(4), anon="a1"),
            track("t3", at(5), user="u2"),
        ]
    )
    assert report.merges == []
    assert store.con.execute("SELECT * FROM identities ORDER BY ALL").fetchall() == before
    assert profiles_of_events(store) == {"i1": "u1", "i2": "u2", "t1": "u1", "t2": "u1", "t3": "u2"}
    store.ingest_messages([track("t4", at(6), user="u1", anon="a9")])
    assert store.resolve_profile(anonymous_id="a9") == "u1"


messages = st.lists(
    st.one_of(
        st.builds(
            lambda d, a: track("", at(d), anon=f"a{a}"),
            st.integers(1, 9),
            st.integers(0, 4),
        ),
        st.builds(
            lambda d, u, a: identify("", at(d), f"u{u}", f"a{a}", n=d),
            st.integers(1, 9),
            st.integers(0, 3),
            st.integers(0, 4),
        ),
        st.builds(
            lambda d, u, p: alias("", at(d), f"u{u}", p),
            st.integers(1, 9),
            st.integers(0, 3),
            st.sampled_from(["a0", "a1", "u0", "u2", "x"]),
        ),
    ),
    min_size=1,
    max_size=12,
)


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(messages, st.randoms(use_true_random=False), st.integers(1, 4))
def test_the_result_does_not_depend_on_arrival_order(
    msgs: list[dict[str, Any]], rnd: random.Random, parts: int
) -> None:
    for i, m in enumerate(msgs):
        m["messageId"] = f"m{i}"

    def load(batches: list[list[dict[str, Any]]]) -> tuple[object, ...]:
        with DuckDBStore(":memory:") as s:
            for b in batches:
                s.ingest_messages(b)
            assert_profile_numbers_hold(s.con)
            return (
                sorted(profiles_of_events(s).items()),
                s.profile_ids(),
                s.con.execute("SELECT * FROM identities ORDER BY ALL").fetchall(),
                [(p, s.traits_as_of(p)) for p in s.profile_ids()],
            )

    shuffled = msgs[:]
    rnd.shuffle(shuffled)
    cuts = sorted(rnd.sample(range(1, len(msgs) + 1), min(parts, len(msgs)) - 1))
    batches = [shuffled[i:j] for i, j in zip([0, *cuts], [*cuts, len(msgs)], strict=True)]
    assert load([msgs]) == load(batches)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 40).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=60),
        )
    )
)
def test_connected_components_match_a_plain_union_find(
    case: tuple[int, list[tuple[int, int]]],
) -> None:
    n, edges = case
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    want = [min(i for i in range(n) if find(i) == find(x)) for x in range(n)]
    u = np.array([a for a, _ in edges], dtype=np.int64)
    v = np.array([b for _, b in edges], dtype=np.int64)
    assert connected_components(n, u, v).tolist() == want


def test_a_bulk_load_resolves_many_identities_set_based(store: DuckDBStore) -> None:
    n = 20_000
    msgs = [track(f"e{i}", at(1 + i % 9), anon=f"a{i}") for i in range(n)]
    msgs += [identify(f"i{i}", at(10), f"u{i // 2}", f"a{i}") for i in range(n)]
    store.ingest_messages(msgs[:n])
    report = store.ingest_messages(msgs[n:])
    assert len(report.merges) == n
    assert store.count_profiles() == n // 2
    assert store.resolve_profile(anonymous_id="a7") == "u3"
