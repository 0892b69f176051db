"""The resolution stage resolves identities as the store does: the same profile for
every call and the same merges, call after call."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.store.duckdb.store import DuckDBStore
from segflow.stream.identity import Call, IdentityGraph, Resolver
from segflow.stream.keyed import Merge, MergedAway, Message
from tests.unit.stream.cases import segment_message

T0 = 1_767_225_600_000_000
H = 3_600_000_000


@st.composite
def calls(draw: st.DrawFn) -> list[Call]:
    out = []
    for i in range(draw(st.integers(1, 12))):
        ts = T0 + draw(st.integers(0, 48)) * H
        user = draw(st.sampled_from(("u1", "u2", "u3", "x", None)))
        anon = draw(st.sampled_from(("a1", "a2", "x", None)))
        if user is not None and draw(st.integers(0, 3)) == 0:
            prev = draw(st.sampled_from(("u1", "u2", "a1", "a2", "x", "p")))
            out.append(Call(i, ts, "alias", user, anon, prev, None, {}, f"m{i}"))
        elif user is None and anon is None:
            out.append(Call(i, ts, "track", "u1", None, None, "Viewed", {}, f"m{i}"))
        else:
            out.append(Call(i, ts, "track", user, anon, None, "Viewed", {}, f"m{i}"))
    return out


@settings(max_examples=25, deadline=None)
@given(calls())
def test_profiles_and_merges_equal_the_stores(stream: list[Call]) -> None:
    graph = IdentityGraph()
    store = DuckDBStore(":memory:")
    try:
        for c in stream:
            report = store.ingest_messages([segment_message(c)])
            pid, merged = graph.resolve(c)
            assert sorted((m.from_profile, m.into_profile) for m in report.merges) == [
                (a, pid) for a in merged
            ]
            assert store.resolve_profile(user_id=c.user_id, anonymous_id=c.anonymous_id) == pid
    finally:
        store.close()


def test_a_merge_record_carries_the_union_history() -> None:
    r = Resolver()
    anon = Call(0, T0, "track", None, "a1", None, "Viewed", {}, "m0")
    user = Call(1, T0 + H, "track", "u1", None, None, "Viewed", {}, "m1")
    link = Call(2, T0 + 2 * H, "identify", "u1", "a1", None, None, {"plan": "pro"}, "m2")
    assert [type(x) for x in r.feed(anon) + r.feed(user)] == [Message, Message]
    gone, merge = r.feed(link)
    assert gone == MergedAway(2, "a1", T0 + 2 * H, "u1")
    assert isinstance(merge, Merge)
    assert (merge.profile_id, merge.merged) == ("u1", ("a1",))
    assert [m.message_id for m in merge.history] == ["m0", "m1", "m2"]
    assert "a1" not in r.histories
