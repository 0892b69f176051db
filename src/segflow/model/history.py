"""What the evaluators read about one profile: its events and trait writes.

The reference interpreter (``segflow.plan.interpret``), the batch evaluator's tests and
the real-time engine all take these shapes.
"""

from __future__ import annotations

import copyreg
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""A field or trait that has no value (absent, or cleared with null)."""


@dataclass(frozen=True, slots=True)
class Event:
    """An event as the evaluators see it: time, name and flattened fields
    (``properties.x``, ``context.a.b``) holding scalars or non-scalar JSON values.  A
    page or screen call's name is ``PAGE_CALLS``/``SCREEN_CALLS`` (``call_name``)."""

    timestamp: datetime
    name: str | None
    fields: Mapping[str, Any] = field(default_factory=dict)
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class TraitWrite:
    timestamp: datetime
    message_id: str
    key: str
    value: Any  # None clears the trait


@dataclass
class ProfileHistory:
    profile_id: str
    events: Sequence[Event] = ()
    traits: Sequence[TraitWrite] = ()
    static_segments: frozenset[str] = frozenset()


# MISSING must stay the one sentinel through deepcopy (explain) and pickle (state stores).
copyreg.pickle(_Missing, lambda _m: "MISSING")

__all__ = ["MISSING", "Event", "ProfileHistory", "TraitWrite"]
