"""Consent: whether a profile may be contacted on a channel, and who said so when.

Consent is profile state fed by what the store already receives: identify traits
(``consent: {email: true}``, stored as ``consent.email``, or ``consent_email``) and
``Consent Updated`` track events (``{"channel": "sms", "granted": false}``, or
``{"email": true, "push": false}``).  The latest statement per channel wins, by event
time.  A destination that declares a channel receives only profiles whose consent on
it is granted; a profile that never said anything is ``unknown`` and follows the
destination's ``unknown_consent`` when it sets one, else the configured
``UnknownConsent``: a rule per region (read from a profile trait) and channel, else
its default (``deny`` unless configured otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from segflow.model.errors import DefinitionError, Problem
from segflow.model.time import format_instant

CHANNELS: Final = ("email", "sms", "push", "ads", "profiling")
CONSENT_EVENT: Final = "Consent Updated"
GRANTED: Final = frozenset({"true", "yes", "granted", "opt_in", "opted_in", "subscribed", "1"})
DENIED: Final = frozenset(
    {"false", "no", "denied", "opt_out", "opted_out", "unsubscribed", "revoked", "0"}
)
"""Text values read as a yes or a no (lower case); anything else says nothing."""
UNKNOWN_POLICIES: Final = ("deny", "allow")


@dataclass(frozen=True)
class Consent:
    """The latest statement on one channel: ``source`` is ``trait <key>`` or ``event
    Consent Updated``; ``at`` its event time."""

    channel: str
    granted: bool
    source: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"granted": self.granted, "source": self.source, "at": format_instant(self.at)}


def allowed(consent: Consent | None, unknown: str = "deny") -> bool:
    """Whether a profile with ``consent`` on a channel may receive it."""
    if consent is None:
        return unknown == "allow"
    return consent.granted


DEFAULT_REGION_TRAIT: Final = "address.country"


@dataclass(frozen=True)
class UnknownConsent:
    """What a profile that never stated consent on a channel gets, where its
    destination does not say: ``regions`` (region code -> channel -> allow | deny),
    read from the trait ``region_trait``, else ``default``."""

    default: str = "deny"
    regions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    region_trait: str = DEFAULT_REGION_TRAIT

    def policy(self, channel: str, region: str | None) -> tuple[str, str | None]:
        """(allow | deny, the region whose rule decided, None for the default)."""
        if region is not None:
            key = region.strip().upper()
            rule = self.regions.get(key, {}).get(channel)
            if rule is not None:
                return rule, key
        return self.default, None

    def to_json(self) -> dict[str, Any]:
        return {
            "default": self.default,
            "regions": {r: dict(c) for r, c in self.regions.items()},
            "region_trait": self.region_trait,
        }


def parse_unknown_consent(doc: Any, where: str = "unknown_consent") -> UnknownConsent:
    """The unknown-consent configuration from its JSON/YAML document,
    ``{default: deny, regions: {US: {email: allow}}, region_trait: address.country}``;
    raises DefinitionError naming each problem's path."""
    if doc is None:
        return UnknownConsent()
    problems: list[Problem] = []
    if not isinstance(doc, Mapping):
        raise DefinitionError([Problem(where, "an object: {default, regions, region_trait}")])
    for k in doc:
        if k not in ("default", "regions", "region_trait"):
            problems.append(Problem(f"{where}.{k}", "unknown key (default, regions, region_trait)"))
    default = doc.get("default", "deny")
    if default not in UNKNOWN_POLICIES:
        problems.append(Problem(f"{where}.default", "allow or deny"))
    trait = doc.get("region_trait", DEFAULT_REGION_TRAIT)
    if not isinstance(trait, str) or not trait:
        problems.append(Problem(f"{where}.region_trait", "a trait key such as address.country"))
    raw = doc.get("regions", {}) or {}
    regions: dict[str, dict[str, str]] = {}
    if not isinstance(raw, Mapping):
        problems.append(Problem(f"{where}.regions", "an object: region code -> channel -> rule"))
        raw = {}
    for region, rules in raw.items():
        path = f"{where}.regions.{region}"
        if not isinstance(region, str) or not region.strip():
            problems.append(Problem(path, "a region code such as US or DE"))
            continue
        if not isinstance(rules, Mapping):
            problems.append(Problem(path, "an object: channel -> allow | deny"))
            continue
        for channel, rule in rules.items():
            if channel not in CHANNELS:
                problems.append(Problem(f"{path}.{channel}", f"one of {', '.join(CHANNELS)}"))
            elif rule not in UNKNOWN_POLICIES:
                problems.append(Problem(f"{path}.{channel}", "allow or deny"))
            else:
                regions.setdefault(region.strip().upper(), {})[channel] = rule
    if problems:
        raise DefinitionError(problems)
    return UnknownConsent(str(default), regions, str(trait))


@dataclass(frozen=True)
class Decision:
    """Whether a profile may receive a channel, and why, in words."""

    allowed: bool
    state: str
    """granted | denied | unknown"""
    reason: str


def decide(
    consent: Consent | None,
    channel: str,
    unknown: str | None,
    policy: UnknownConsent,
    region: str | None,
) -> Decision:
    """The decision for one profile and one destination channel: its latest statement;
    without one, the destination's ``unknown`` rule when it has one, else the
    configured rule of the profile's region, else the configured default."""
    if consent is not None:
        source = source_text(consent.source)
        at = format_instant(consent.at)
        if consent.granted:
            why = f"consented to {channel} since {at} (source: {source})"
            return Decision(True, "granted", why)
        return Decision(False, "denied", f"no consent since {at} (source: {source})")
    if unknown is not None:
        return Decision(
            unknown == "allow", "unknown", f"unknown consent, destination {_rule(unknown)}"
        )
    rule, by = policy.policy(channel, region)
    where = f"region {by} " if by else ""
    return Decision(rule == "allow", "unknown", f"unknown consent, {where}default {_rule(rule)}")


def _rule(rule: str) -> str:
    return "allow" if rule == "allow" else "deny"


def source_text(source: str) -> str:
    """A statement's source as a person reads it: ``identify (trait consent.email)``,
    ``track Consent Updated``."""
    if source.startswith("trait "):
        return f"identify ({source})"
    if source.startswith("event "):
        return "track " + source.removeprefix("event ")
    return source
