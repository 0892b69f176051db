"""Consent: whether a profile may be contacted on a channel, and who said so when.

Consent is profile state fed by what the store already receives: identify traits
(``consent: {email: true}``, stored as ``consent.email``, or ``consent_email``) and
``Consent Updated`` track events (``{"channel": "sms", "granted": false}``, or
``{"email": true, "push": false}``).  The latest statement per channel wins, by event
time.  A destination that declares a channel receives only profiles whose consent on
it is granted; a profile that never said anything is ``unknown`` and follows the
destination's ``unknown_consent`` (``deny`` unless set to ``allow``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

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
