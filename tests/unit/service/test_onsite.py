"""The on-site read's pure parts: the analytics.js cookie, origins, CORS headers and
the visitor index as identities merge."""

from __future__ import annotations

import json
import re
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from segflow.service.onsite import (
    ASSIGNED,
    MAX_ID,
    MOVED,
    VisitorError,
    VisitorIndex,
    answer_headers,
    cookie_value,
    decode_id,
    origin_allowed,
    public_of,
    query_values,
    visitor_id,
)

COOKIE_SAFE = re.compile(r"[!#-+\--:<-\[\]-~]+")
"""RFC 6265 cookie-octets (what may stand unencoded in a Cookie header)."""
ids = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
    min_size=1,
    max_size=MAX_ID,
).filter(str.isprintable)


@given(ids)
def test_an_id_comes_back_however_analytics_js_wrote_it(anonymous_id: str) -> None:
    quoted = json.dumps(anonymous_id)
    forms = [quote(quoted, safe="")]
    if COOKIE_SAFE.fullmatch(anonymous_id):  # raw in the header: no ; space , " or \\
        forms.append(quoted)
    if not (anonymous_id.startswith('"') or anonymous_id.endswith('"')):
        forms.append(quote(anonymous_id, safe=""))  # plain (a quote there would be read as JSON)
    for raw in forms:
        header = f"ajs_user_id=%22u%22; ajs_anonymous_id={raw}; _ga=GA1.1"
        assert visitor_id(None, header) == anonymous_id
    # a parameter arrives decoded: only its JSON quotes come off
    assert visitor_id(quoted, None) == anonymous_id


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["key", "anonymous_id", "other"]),
            st.text(st.characters(codec="utf-8"), max_size=12),
        ),
        max_size=5,
    )
)
def test_query_values_are_read_as_starlette_reads_them(params: list[tuple[str, str]]) -> None:
    raw = urlencode(params).encode()
    got = query_values(raw)
    parsed = QueryParams(raw)
    for name in ("key", "anonymous_id"):
        assert got.get(name) == parsed.get(name)


def test_cookie_values() -> None:
    assert cookie_value("a=1; ajs_anonymous_id=x; b=2") == "x"
    assert cookie_value("ajs_anonymous_id_old=y; ajs_anonymous_id=x") == "x"
    assert cookie_value("ajs_anonymous_id=first; ajs_anonymous_id=second") == "first"
    assert cookie_value("a=1") is None and cookie_value(None) is None and cookie_value("") is None
    assert visitor_id(None, "ajs_anonymous_id=") is None
    assert visitor_id(None, 'ajs_anonymous_id=""') is None
    assert visitor_id("", "ajs_anonymous_id=x") is None  # the parameter, even empty, wins


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ('"abc', "not a JSON string"),
        ("abc%22", "not a JSON string"),
        ("%22%5B1%5D%22", None),  # "[1]" quoted: a fine id
        ("[1]", None),
        ('"1', "not a JSON string"),
        ("%ff", "percent-encoded UTF-8"),
        ("%22a%5Cnb%22", "control characters"),
        ("x" * (MAX_ID + 1), "longer than"),
    ],
)
def test_malformed_cookies_are_named(raw: str, why: str | None) -> None:
    if why is None:
        assert visitor_id(None, f"ajs_anonymous_id={raw}")
        return
    with pytest.raises(VisitorError) as e:
        visitor_id(None, f"ajs_anonymous_id={raw}")
    assert e.value.where == "cookie ajs_anonymous_id" and why in e.value.message


def test_a_quoted_number_is_not_an_id() -> None:
    with pytest.raises(VisitorError, match="anonymous_id"):
        decode_id('"1"x', "anonymous_id", percent=False)


def test_origins_and_headers() -> None:
    assert origin_allowed((), "https://any.example")
    assert origin_allowed(("https://a.example",), None)
    assert not origin_allowed(("https://a.example",), "https://b.example")
    h = answer_headers("https://a.example")
    assert h["Access-Control-Allow-Origin"] == "https://a.example"
    assert h["Access-Control-Allow-Credentials"] == "true"
    assert h["Vary"] == "Origin, Cookie" and h["Cache-Control"].startswith("private, max-age=")
    assert "Access-Control-Allow-Origin" not in answer_headers(None)
    assert public_of({"b": 1, "a": 2, "c": 3}, frozenset({"a", "b"})) == ["a", "b"]


def test_the_visitor_index_follows_merges_and_forgets_erased_profiles() -> None:
    idx = VisitorIndex()
    sent: list[list[tuple[int, str, str]]] = []
    idx.listeners.append(sent.append)
    idx.seed([("a1", "a1"), ("a2", "a1"), ("b1", "bob")])
    assert idx.resolve("a2") == "a1" and idx.resolve("bob") is None
    # a1's profile merges into ada's, which later merges into ann's
    idx.apply([(MOVED, "a1", "ada"), (ASSIGNED, "a3", "ada")])
    idx.apply([(MOVED, "ada", "ann")])
    assert {idx.resolve(a) for a in ("a1", "a2", "a3")} == {"ann"}
    # repeats change nothing and are not passed on
    idx.apply([(MOVED, "ada", "ann"), (ASSIGNED, "b1", "bob")])
    assert len(sent) == 2
    assert sorted(idx.snapshot()) == [("a1", "ann"), ("a2", "ann"), ("a3", "ann"), ("b1", "bob")]
    # an id that becomes a profile of its own again (after an erasure) stops moving
    idx.apply([(ASSIGNED, "z", "ada")])
    assert idx.resolve("a3") == "ada"
    idx.forget("ada")
    assert [idx.resolve(a) for a in ("a1", "a2", "a3", "z", "b1")] == [None] * 4 + ["bob"]


def test_a_merge_cycle_ends() -> None:
    idx = VisitorIndex()
    idx.seed([("a", "p")])
    idx.apply([(MOVED, "p", "q"), (MOVED, "q", "p")])
    assert idx.resolve("a") in {"p", "q"}
