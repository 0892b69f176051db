"""Consent decisions: a statement decides, else the destination's own rule, else the
configured rule of the profile's region and channel, else the configured default;
the configuration's every problem is named by its path."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segflow.model.consent import (
    CHANNELS,
    Consent,
    UnknownConsent,
    decide,
    parse_unknown_consent,
)
from segflow.model.errors import DefinitionError

AT = datetime(2026, 11, 3, 10, 0)  # naive UTC, as the store reads it
US_EMAIL = parse_unknown_consent({"default": "deny", "regions": {"us": {"email": "allow"}}})


def test_a_statement_decides_with_its_time_and_source() -> None:
    no = Consent("email", False, "trait consent.email", AT)
    d = decide(no, "email", None, US_EMAIL, "US")
    assert (d.allowed, d.state) == (False, "denied")
    assert d.reason == (
        "no consent since 2026-11-03T10:00:00.000000Z (source: identify (trait consent.email))"
    )
    yes = Consent("sms", True, "event Consent Updated", AT)
    d = decide(yes, "sms", "deny", US_EMAIL, None)
    assert d.allowed and d.reason.endswith("(source: track Consent Updated)")


def test_unknown_consent_follows_region_then_default_unless_the_destination_says() -> None:
    assert US_EMAIL.regions == {"US": {"email": "allow"}}
    us = decide(None, "email", None, US_EMAIL, "us ")
    assert us.allowed and us.reason == "unknown consent, region US default allow"
    de = decide(None, "email", None, US_EMAIL, "DE")
    assert not de.allowed and de.reason == "unknown consent, default deny"
    nowhere = decide(None, "email", None, US_EMAIL, None)
    assert not nowhere.allowed and nowhere.state == "unknown"
    sms = decide(None, "sms", None, US_EMAIL, "US")  # no rule for sms in US
    assert not sms.allowed
    own = decide(None, "email", "deny", US_EMAIL, "US")
    assert not own.allowed and own.reason == "unknown consent, destination deny"
    allow_all = parse_unknown_consent({"default": "allow", "regions": {"DE": {"email": "deny"}}})
    assert decide(None, "push", None, allow_all, "DE").allowed
    assert not decide(None, "email", None, allow_all, "de").allowed


def test_nothing_configured_denies_unknown_consent() -> None:
    assert parse_unknown_consent(None) == UnknownConsent()
    assert not decide(None, "email", None, UnknownConsent(), "US").allowed
    assert UnknownConsent().region_trait == "address.country"


def test_every_problem_of_the_configuration_is_named_by_its_path() -> None:
    doc = {
        "default": "maybe",
        "regions": {"US": {"email": "yes", "fax": "allow"}, "DE": "allow"},
        "region_trait": "",
        "colour": "red",
    }
    with pytest.raises(DefinitionError) as e:
        parse_unknown_consent(doc, "SEGFLOW_UNKNOWN_CONSENT")
    paths = {p.path for p in e.value.problems}
    assert paths == {
        "SEGFLOW_UNKNOWN_CONSENT.default",
        "SEGFLOW_UNKNOWN_CONSENT.regions.US.email",
        "SEGFLOW_UNKNOWN_CONSENT.regions.US.fax",
        "SEGFLOW_UNKNOWN_CONSENT.regions.DE",
        "SEGFLOW_UNKNOWN_CONSENT.region_trait",
        "SEGFLOW_UNKNOWN_CONSENT.colour",
    }
    with pytest.raises(DefinitionError):
        parse_unknown_consent(["deny"])


rules = st.sampled_from(["allow", "deny"])
configs = st.builds(
    lambda d, r: {"default": d, "regions": r},
    rules,
    st.dictionaries(
        st.sampled_from(["US", "DE", "PL"]),
        st.dictionaries(st.sampled_from(CHANNELS), rules, max_size=3),
        max_size=3,
    ),
)


@given(
    configs,
    st.sampled_from(CHANNELS),
    st.one_of(st.none(), st.sampled_from(["US", "de", "PL", "FR"])),
    st.one_of(st.none(), st.booleans()),
    st.one_of(st.none(), rules),
)
def test_a_statement_always_wins_and_unknown_follows_the_first_rule_that_applies(
    doc: dict[str, object],
    channel: str,
    region: str | None,
    said: bool | None,
    own: str | None,
) -> None:
    policy = parse_unknown_consent(doc)
    consent = Consent(channel, said, "trait consent." + channel, AT) if said is not None else None
    d = decide(consent, channel, own, policy, region)
    if said is not None:
        assert d.allowed is said
        return
    regional = doc["regions"].get((region or "").upper(), {}).get(channel)  # type: ignore[attr-defined]
    expected = own or regional or doc["default"]
    assert d.allowed is (expected == "allow")
    assert d.state == "unknown"
