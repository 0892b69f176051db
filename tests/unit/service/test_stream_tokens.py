"""Stream tokens: five minutes, one scope, dead with the key that asked for them."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from segflow.service import stream_tokens
from segflow.service.stream_tokens import StreamTokens

T0 = datetime(2026, 12, 1, 12, 0)


def active(key_id: str) -> bool:
    return key_id == "key_a"


def test_a_token_opens_its_scope_until_it_expires() -> None:
    tokens = StreamTokens()
    issued = tokens.issue("key_a", T0)
    assert issued.expires_at == T0 + timedelta(minutes=5)
    assert tokens.verify(issued.token, T0 + timedelta(minutes=4), active) is None
    why = tokens.verify(issued.token, T0 + timedelta(minutes=5), active)
    assert why is not None and "expired" in why
    assert tokens.verify(issued.token, T0, active) == "unknown stream token"


def test_scope_key_and_form_are_checked() -> None:
    tokens = StreamTokens()
    issued = tokens.issue("key_a", T0)
    why = tokens.verify(issued.token, T0, active, scope="segments.read")
    assert why is not None and "changes.stream" in why
    revoked = tokens.issue("key_b", T0)
    why = tokens.verify(revoked.token, T0, active)
    assert why is not None and "revoked" in why
    assert tokens.verify("sfa_admin", T0, active) == "not a stream token"
    assert tokens.verify(issued.token + "x", T0, active) == "unknown stream token"


def test_tokens_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_tokens, "MAX_LIVE", 3)
    tokens = StreamTokens()
    first = tokens.issue("key_a", T0)
    for _ in range(3):
        tokens.issue("key_a", T0)
    assert tokens.verify(first.token, T0, active) == "unknown stream token"
    later = tokens.issue("key_a", T0 + timedelta(minutes=6))  # prunes the expired
    assert tokens.verify(later.token, T0 + timedelta(minutes=6), active) is None
