"""A membership change: one profile entering or leaving one segment, and why.

``LoggedChange`` is the one shape the store, the live evaluator, the API (the change
feed, SSE and webhooks) and the CLI pass around; ``Reason`` is the one list of causes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from segflow.model.groups import group_fields
from segflow.model.time import format_instant


class Reason(StrEnum):
    """Why a membership changed.  The real-time engine gives the first three; the
    service the rest (``scheduled_refresh``: a scheduled segment evaluated at its cron
    instant).  The text is what the change log stores and the API shows."""

    WINDOW_EXPIRED = "window_expired"
    TRAIT_CHANGED = "trait_changed"
    EVENT = "event"
    MERGED = "merged"
    DEFINITION_CHANGED = "definition_changed"
    DELETED = "deleted"
    SCHEDULED_REFRESH = "scheduled_refresh"

    @property
    def code(self) -> int:
        return REASON_CODES[self]

    @classmethod
    def parse(cls, text: str) -> Reason:
        """The reason stored as ``text``; ValueError for anything else."""
        try:
            return _BY_TEXT[text]
        except KeyError:
            raise ValueError(f"bad reason {text!r}") from None


REASON_CODES: Final[dict[Reason, int]] = {
    Reason.WINDOW_EXPIRED: 1,
    Reason.TRAIT_CHANGED: 2,
    Reason.EVENT: 3,
    Reason.MERGED: 8,
    Reason.DEFINITION_CHANGED: 9,
    Reason.DELETED: 10,
    Reason.SCHEDULED_REFRESH: 11,
}
"""Each reason's int code; never renumber one.  The engine's three are its priority
order (when several causes meet at one instant the highest wins) and fit in the two low
bits of a kernel's result (its flag bit is 4); the service's start at 8."""

BY_CODE: Final[dict[int, Reason]] = {c: r for r, c in REASON_CODES.items()}
_BY_TEXT: Final[dict[str, Reason]] = {r.value: r for r in Reason}


@dataclass(frozen=True, slots=True)
class LoggedChange:
    """One membership change: ``at`` is the exact instant the condition flipped,
    ``version`` the segment definition's.  ``seq`` (the change log's order, 0 until
    stored) and ``recorded_at`` (None until stored) are given by the log; two changes
    that differ only in when they were recorded are equal."""

    segment_id: str
    profile_id: str
    entered: bool
    at: datetime
    reason: Reason
    version: int
    seq: int = 0
    recorded_at: datetime | None = field(default=None, compare=False)

    def to_json(self, held_out: bool = False) -> dict[str, Any]:
        """The change as the API and webhooks show it; ``held_out``: the profile is in
        the segment's holdout (receivers leave it out of activation).  A priority
        group's resolved member (``group:segment``) names its group and segment too
        (None for a segment's own change)."""
        out = {
            "seq": self.seq,
            "segment_id": self.segment_id,
            "profile_id": self.profile_id,
            "entered": self.entered,
            "at": format_instant(self.at),
            "reason": self.reason,
            "version": self.version,
            "held_out": held_out,
        }
        out.update(self.group_fields())
        return out

    def group_fields(self) -> dict[str, str | None]:
        """``group`` and ``group_segment`` of a priority group's resolved member
        (``group:segment``); both None for a segment's own change (one shape for all)."""
        return group_fields(self.segment_id)


__all__ = ["BY_CODE", "REASON_CODES", "LoggedChange", "Reason"]
