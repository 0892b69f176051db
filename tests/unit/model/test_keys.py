"""A publishable key's allowed origins: one canonical form, bad ones named."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segflow.model.keys import MAX_ORIGINS, normalize_origins


def test_origins_take_the_form_a_browser_sends() -> None:
    assert normalize_origins(
        [
            "HTTPS://Shop.Example/",
            "https://shop.example:443",
            "http://localhost:3000",
            "http://127.0.0.1:80",
            " https://[::1]:8443 ",
        ]
    ) == ("https://shop.example", "http://localhost:3000", "http://127.0.0.1", "https://[::1]:8443")
    assert normalize_origins([]) == ()


@pytest.mark.parametrize(
    ("origin", "why"),
    [
        ("*", "not an origin"),
        ("shop.example", "not an origin"),
        ("https://shop.example/path", "not an origin"),
        ("https://user@shop.example", "not an origin"),
        ("ftp://shop.example", "not an origin"),
        ("https://shop.example?x=1", "not an origin"),
        ("https://shop.example:0", "no valid port"),
        ("https://shop.example:99999", "no valid port"),
    ],
)
def test_a_bad_origin_is_named(origin: str, why: str) -> None:
    with pytest.raises(ValueError, match=r"origins\[1\]") as e:
        normalize_origins(["https://ok.example", origin])
    assert why in str(e.value)


def test_too_many_origins() -> None:
    with pytest.raises(ValueError, match="at most"):
        normalize_origins([f"https://s{i}.example" for i in range(MAX_ORIGINS + 1)])


hosts = st.text(alphabet=string.ascii_lowercase + string.digits + ".-", min_size=1, max_size=30)


@given(st.sampled_from(["http", "https"]), hosts, st.none() | st.integers(1, 65535))
def test_normalizing_is_idempotent(scheme: str, host: str, port: int | None) -> None:
    origin = f"{scheme}://{host}" + (f":{port}" if port is not None else "")
    (once,) = normalize_origins([origin.upper()])
    assert normalize_origins([once]) == (once,)
    assert once.startswith(f"{scheme}://{host}")
