"""``segflow.api.limits``: the nesting check and the instant range."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from segflow.api.limits import request_instant, too_deep


def _chain(levels: int, inner: Any = 1) -> Any:
    for i in range(levels):
        inner = {"k": inner} if i % 2 else [inner]
    return inner


@pytest.mark.parametrize("levels", [0, 1, 5, 10])
def test_nesting_up_to_the_limit_passes(levels: int) -> None:
    assert too_deep([("m", {"p": _chain(levels - 1)} if levels else {"p": 1})], 10) is None


def test_the_first_container_past_the_limit_is_named() -> None:
    doc = {"a": [{"b": 1}], "deep": {"x": {"y": {"z": {}}}}}
    assert too_deep([("", doc)], 3) == "deep.x.y.z"
    assert too_deep([("", doc)], 4) is None
    roots = [("batch[0]", {"ok": 1}), ("batch[1]", {"l": [[[[]]]]})]
    assert too_deep(roots, 3) == "batch[1].l[0][0][0]"


def test_scalars_strings_and_wide_values_are_not_depth() -> None:
    wide = {f"k{i}": [1, "[[[[", {"a": "{{{{"}] for i in range(1000)}
    assert too_deep([("", wide), ("s", "text"), ("n", None)], 3) is None


def test_a_very_deep_value_is_found_without_recursing_through_it() -> None:
    assert too_deep([("", _chain(100_000))], 64) == "k" + "[0].k" * 32  # level 65


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1)),
        ("2999-12-31T23:59:59.999999Z", datetime(2999, 12, 31, 23, 59, 59, 999999)),
        ("2026-11-20T12:00:00+02:00", datetime(2026, 11, 20, 10)),
    ],
)
def test_instants_in_range_parse(text: str, expected: datetime) -> None:
    assert request_instant(text) == expected


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "soon"])
def test_instants_out_of_range_or_malformed_raise(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text)):
        request_instant(text)
