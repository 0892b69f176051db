"""Consent per channel read from stored identify traits and ``Consent Updated`` events
(latest statement wins), and destinations that declare a channel: only consented
profiles are queued, unknown ones by the destination's policy, suppressed ids never.
A real DuckDB store fed through ingestion."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from segflow.model.changes import LoggedChange, Reason
from segflow.service.handle import Segflow
from segflow.store.records.destinations import Destination

T0 = datetime(2026, 11, 20, 10, 0, 0)


def _identify(user: str, n: int, day: int, traits: dict[str, Any]) -> dict[str, Any]:
    return {"type": "identify", "userId": user, "messageId": f"{user}-{n}",
            "timestamp": f"2026-11-{day:02d}T00:00:00Z", "traits": traits}  # fmt: skip


def _consent_event(user: str, n: int, day: int, props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "track", "event": "Consent Updated", "userId": user,
            "messageId": f"{user}-{n}", "timestamp": f"2026-11-{day:02d}T00:00:00Z",
            "properties": props}  # fmt: skip


@pytest.fixture
def sf(tmp_path: Path) -> Iterator[Segflow]:
    msgs = [
        _identify("ann", 1, 1, {"consent": {"email": True, "sms": False}}),
        _consent_event("ann", 2, 3, {"channel": "sms", "granted": True}),  # later: wins
        _identify("bob", 1, 5, {"consent_email": "opt_out", "consent_push": "yes"}),
        _consent_event("bob", 2, 2, {"email": True}),  # earlier than the trait: loses
        _identify("cy", 1, 1, {"name": "Cy"}),  # never said anything
    ]
    f = tmp_path / "e.jsonl"
    f.write_bytes(b"\n".join(orjson.dumps(m) for m in msgs) + b"\n")
    app = Segflow(tmp_path / "c.duckdb")
    app.ingest([f])
    yield app
    app.close()


def test_the_latest_statement_per_channel_wins_from_traits_or_events(sf: Segflow) -> None:
    got = {
        pid: {ch: (c.granted, c.source) for ch, c in states.items()}
        for pid, states in sf.consent.consent().items()
    }
    assert got == {
        "ann": {"email": (True, "trait consent.email"),
                "sms": (True, "event Consent Updated")},
        "bob": {"email": (False, "trait consent_email"), "push": (True, "trait consent_push")},
    }  # fmt: skip
    assert set(sf.consent.consent(["bob"], "push")) == {"bob"}
    assert sf.consent.consent(["cy"]) == {}


def _change(seq: int, pid: str) -> LoggedChange:
    return LoggedChange("s", pid, True, T0, Reason.EVENT, 1, seq, T0)


def test_a_channel_destination_gets_consented_profiles_and_suppression_wins(
    sf: Segflow,
) -> None:
    ds = sf.destination_store(suppressed=lambda pid: pid == "ann")
    base = Destination(id="", name="", kind="redis", segments=("s",), config={"stream": "x"})
    strict = ds.create(replace(base, channel="email"))
    lenient = ds.create(replace(base, channel="email", unknown_consent="allow"))
    plain = ds.create(base)
    ds.enqueue([_change(1, "ann"), _change(2, "bob"), _change(3, "cy")])

    def sent(dest: Destination) -> set[str]:
        return {orjson.loads(d.body)["profile_id"] for d in ds.deliveries(destination_id=dest.id)}

    # ann granted email but is suppressed; bob opted out; cy never said
    assert sent(strict) == set()
    assert sent(lenient) == {"cy"}
    assert sent(plain) == {"bob", "cy"}
    assert ds.reachable(lenient, ["ann", "bob", "cy"]) == ["cy"]
    assert ds.reachable(plain, ["ann", "bob", "cy"]) == ["bob", "cy"]


def test_unknown_consent_follows_the_configured_rule_of_the_profiles_region(
    tmp_path: Path,
) -> None:
    from segflow.model.consent import parse_unknown_consent

    users = [f"u{i}" for i in range(1200)]  # past the short id list a region read takes
    msgs = [
        _identify(u, 1, 1, {"address": {"country": "us" if i % 2 else "DE"}})
        for i, u in enumerate(users)
    ] + [_identify("said_no", 1, 2, {"address": {"country": "US"}, "consent": {"email": False}})]
    f = tmp_path / "e.jsonl"
    f.write_bytes(b"\n".join(orjson.dumps(m) for m in msgs) + b"\n")
    app = Segflow(tmp_path / "r.duckdb")
    try:
        app.ingest([f])
        policy = parse_unknown_consent({"default": "deny", "regions": {"US": {"email": "allow"}}})
        ds = app.destination_store(unknown=policy)
        base = Destination(id="", name="", kind="redis", segments=("s",), config={"stream": "x"})
        by_region = ds.create(replace(base, channel="email"))
        own = ds.create(replace(base, channel="email", unknown_consent="deny"))
        sms = ds.create(replace(base, channel="sms"))
        us = {u for i, u in enumerate(users) if i % 2}
        everyone = [*users, "said_no", "nowhere"]
        assert set(ds.reachable(by_region, everyone)) == us  # the long read
        assert ds.reachable(own, everyone) == []
        assert ds.reachable(sms, everyone) == []
        ds.enqueue([_change(1, "u1"), _change(2, "u2"), _change(3, "said_no")])  # the short one
        sent = {orjson.loads(d.body)["profile_id"] for d in ds.deliveries()}
        assert sent == {"u1"}
    finally:
        app.close()
