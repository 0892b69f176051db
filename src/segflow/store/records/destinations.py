"""Destinations as stores hand them out: a destination's configuration, one queued
delivery, one full sync, and the record a destination receives for a membership
change.

A delivery's ``status`` is pending | delivered | dead (``dead`` is the dead-letter
list); a sync's is requested | running | done | failed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import orjson

from segflow.model.changes import LoggedChange
from segflow.model.time import format_instant, utcnow

PENDING: Final = "pending"
DELIVERED: Final = "delivered"
DEAD: Final = "dead"
KINDS: Final = ("webhook", "redis", "nats", "kafka", "files", "ad_audience", "esp")
CREDENTIALS: Final = ("api_key", "sasl_password")
"""Settings a destination is given but never shows back (an update that leaves one
out keeps it)."""
SKIP: Final = "skip"
MARK: Final = "mark"


@dataclass(frozen=True)
class Destination:
    """One configured destination.  ``fields`` maps trait keys to the names they are
    sent under (traits not listed are not sent); ``held_out`` is ``skip`` (held-out
    members are never sent) except for destinations made through the webhook API,
    which mark them as that API always has."""

    id: str
    name: str
    kind: str
    segments: tuple[str, ...]
    config: Mapping[str, Any]
    groups: tuple[str, ...] = ()
    """Priority groups it receives: every resolved member (``group:segment``) of each."""
    events: tuple[str, ...] = ("entered", "exited")
    changes: bool = True
    fields: tuple[tuple[str, str], ...] = ()
    batch_size: int = 100
    schedule: str | None = None
    held_out: str = SKIP
    channel: str | None = None
    """The consent channel its profiles must have granted (None: no consent check)."""
    unknown_consent: str | None = None
    """What a profile that never stated consent on ``channel`` gets: deny or allow;
    None: the configured rule (``model.consent.UnknownConsent``, by region)."""
    created_at: datetime = field(default_factory=utcnow)
    from_seq: int = 0

    def spec(self) -> dict[str, Any]:
        return {
            "segments": list(self.segments),
            "groups": list(self.groups),
            "events": list(self.events),
            "changes": self.changes,
            "fields": dict(self.fields),
            "batch_size": self.batch_size,
            "schedule": self.schedule,
            "held_out": self.held_out,
            "channel": self.channel,
            "unknown_consent": self.unknown_consent,
            "config": dict(self.config),
        }

    def to_dict(self, *, with_secret: bool = False) -> dict[str, Any]:
        """The destination as the API and the CLI show it (a webhook's signing secret
        only in the answer that created it)."""
        spec = self.spec()
        config = dict(spec.pop("config"))
        for k in CREDENTIALS:  # never shown back
            config.pop(k, None)
        if not with_secret:
            config.pop("secret", None)
        spec.pop("held_out")
        return {
            "id": self.id,
            "name": self.name,
            "type": self.kind,
            **spec,
            "config": config,
            "created_at": format_instant(self.created_at),
        }


@dataclass(frozen=True)
class Delivery:
    id: int
    destination_id: str
    change_seq: int
    idempotency_key: str
    body: bytes
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "destination_id": self.destination_id,
            "change_seq": self.change_seq,
            "idempotency_key": self.idempotency_key,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": (
                format_instant(self.next_attempt_at) if self.next_attempt_at else None
            ),
            "last_error": self.last_error,
            "body": orjson.loads(self.body),
        }


@dataclass(frozen=True)
class Sync:
    """One full sync of a destination's segments, with its counts: ``members`` in the
    segments, ``held_out`` of them left out, ``sent`` records that left."""

    id: int
    destination_id: str
    trigger: str
    status: str
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    members: int
    held_out: int
    sent: int
    detail: Any
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        def t(v: datetime | None) -> str | None:
            return format_instant(v) if v is not None else None

        return {
            "id": self.id,
            "destination_id": self.destination_id,
            "trigger": self.trigger,
            "status": self.status,
            "requested_at": t(self.requested_at),
            "started_at": t(self.started_at),
            "finished_at": t(self.finished_at),
            "members": self.members,
            "held_out": self.held_out,
            "sent": self.sent,
            "detail": self.detail,
            "error": self.error,
        }


def idempotency_key(segment_id: str, profile_id: str, seq: int | str) -> str:
    """The key every record carries, the same on every re-send: receivers dedupe on it."""
    return f"{segment_id}:{profile_id}:{seq}"


def change_record(
    change: LoggedChange,
    dest: Destination,
    held: bool,
    traits: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a destination receives for one membership change (a priority group's
    resolved member names ``group`` and ``group_segment``)."""
    rec: dict[str, Any] = {
        "type": "segment.entered" if change.entered else "segment.exited",
        "idempotency_key": idempotency_key(change.segment_id, change.profile_id, change.seq),
        "destination_id": dest.id,
    }
    if dest.kind == "webhook":
        rec["webhook_id"] = dest.id
    rec.update(
        {
            "seq": change.seq,
            "segment_id": change.segment_id,
            "profile_id": change.profile_id,
            "at": format_instant(change.at),
            "reason": change.reason,
            "version": change.version,
            "held_out": held,
            **change.group_fields(),
        }
    )
    if dest.fields:
        rec["traits"] = dict(traits or {})
    return rec
