"""Ad audience normalisation and hashing against known SHA-256 vectors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segflow.model.audiences import (
    hashed_row,
    is_region,
    normalize_email,
    normalize_phone,
    sha256_hex,
)
from segflow.service.sinks import AudienceSink, Record
from segflow.store.records.destinations import Destination

TEST_EMAIL = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
"""sha256("test@example.com")"""
PHONE_PLUS = "cb6880e416769253645cb9c6b8989154bf66a56a77fc14c81fb1019663cbb928"
"""sha256("+14155552671"): Google's form"""
PHONE_DIGITS = "758fbf68945f21c416814c539ab578876c8d98fb69e6da692def92cd52417fe0"
"""sha256("14155552671"): Meta's form"""


def test_known_vectors() -> None:
    assert sha256_hex("test@example.com") == TEST_EMAIL
    assert hashed_row("  Test@Example.COM\t", None, "meta", None) == (TEST_EMAIL, "")
    assert hashed_row(None, "+1 (415) 555-2671", "google", None) == ("", PHONE_PLUS)
    assert hashed_row(None, "415.555.2671", "meta", "US") == ("", PHONE_DIGITS)
    assert hashed_row("test@example.com", "+14155552671", "google", None) == (
        TEST_EMAIL,
        PHONE_PLUS,
    )


@pytest.mark.parametrize(
    ("raw", "platform", "want"),
    [
        (" John.Doe@Example.com ", "meta", "john.doe@example.com"),
        (" John.Doe@Example.com ", "google", "john.doe@example.com"),
        ("J.o.h.n@GMail.com", "google", "john@gmail.com"),
        ("j.ohn@googlemail.com", "google", "john@googlemail.com"),
        ("j.ohn+tag@gmail.com", "google", "john+tag@gmail.com"),  # only dots are removed
        ("J.o.h.n@GMail.com", "meta", "j.o.h.n@gmail.com"),
        ("a.b@gmail.com.au", "google", "a.b@gmail.com.au"),
        ("no-at-sign", "google", None),
        ("@example.com", "meta", None),
        ("", "meta", None),
        (42, "meta", None),
        (None, "google", None),
    ],
)
def test_email_normalisation(raw: object, platform: str, want: str | None) -> None:
    assert normalize_email(raw, platform) == want


@pytest.mark.parametrize(
    ("raw", "platform", "region", "want"),
    [
        ("+1 415 555 2671", "google", None, "+14155552671"),
        ("+1-415-555-2671", "meta", None, "14155552671"),
        ("(415) 555-2671", "google", "US", "+14155552671"),
        ("415 555 2671", "google", None, None),  # no country code, no default region
        ("020 7946 0958", "google", "GB", "+442079460958"),  # leading trunk 0 dropped
        ("020 7946 0958", "meta", "GB", "442079460958"),
        ("0044 20 7946 0958", "meta", "GB", "442079460958"),
        ("+44 (0)20 7946 0958", "google", "US", "+442079460958"),
        (14155552671, "meta", "US", "14155552671"),
        ("12", "google", "US", None),
        ("call me", "meta", "US", None),
        (True, "meta", "US", None),
    ],
)
def test_phone_normalisation(raw: object, platform: str, region: str | None, want: str) -> None:
    assert normalize_phone(raw, platform, region) == want


@given(st.text(max_size=40), st.sampled_from(["meta", "google"]))
def test_normalised_email_is_stable_and_lower_case(raw: str, platform: str) -> None:
    out = normalize_email(raw, platform)
    if out is not None:
        assert out == out.strip().lower()
        assert normalize_email(out, platform) == out


def test_regions() -> None:
    assert is_region("US") and is_region("GB")
    assert not is_region("us") and not is_region("XX") and not is_region(1)


def _record(n: int, kind: str, traits: dict[str, object]) -> Record:
    body = {"type": f"segment.{kind}", "profile_id": f"p{n}", "traits": traits}
    return Record(str(n), f"s:p{n}:{n}", orjson.dumps(body))


@pytest.mark.parametrize(
    ("platform", "header", "phone"),
    [("meta", ["email", "phone"], PHONE_DIGITS), ("google", ["Email", "Phone"], PHONE_PLUS)],
)
def test_sink_writes_add_and_remove_files_skipping_members_without_ids(
    tmp_path: Path, platform: str, header: list[str], phone: str
) -> None:
    dest = Destination(
        id="dst_a",
        name="ads",
        kind="ad_audience",
        segments=("s",),
        config={"path": str(tmp_path), "platform": platform, "default_region": "US"},
    )
    sink = AudienceSink(dest)
    sink.send(
        [
            _record(1, "entered", {"email": " TEST@example.com", "phone": "415-555-2671"}),
            _record(2, "entered", {"email": None, "phone": "not a phone"}),
            _record(3, "exited", {"email": None, "phone": "+1 415 555 2671"}),
        ]
    )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    by_name = {f["name"]: f for f in manifest["files"]}
    assert set(by_name) == {"add-1-3.csv", "remove-1-3.csv"}
    assert by_name["add-1-3.csv"]["rows"] == 1 and by_name["add-1-3.csv"]["skipped"] == 1
    assert by_name["remove-1-3.csv"]["rows"] == 1 and by_name["remove-1-3.csv"]["skipped"] == 0
    added = list(csv.reader((tmp_path / "add-1-3.csv").open()))
    assert added == [header, [TEST_EMAIL, phone]]
    removed = list(csv.reader((tmp_path / "remove-1-3.csv").open()))
    assert removed == [header, ["", phone]]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
