"""Cron schedules (UTC): the one place their instants are computed.

Scheduled segments and the scores refresh fire at a schedule's instants; the live
evaluator, the server's scheduler and the definition checker all ask here, so that
"due at t" means the same everywhere: an instant at or before ``t`` counts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from croniter import croniter

_US = timedelta(microseconds=1)


def is_valid(cron: str) -> bool:
    """Whether ``cron`` is a cron expression this module can schedule."""
    return bool(croniter.is_valid(cron))


def next_after(cron: str, t: datetime) -> datetime:
    """The schedule's first instant strictly after ``t``."""
    nxt: datetime = croniter(cron, t).get_next(datetime)
    return nxt


def latest_by(cron: str, t: datetime) -> datetime:
    """The schedule's latest instant at or before ``t``."""
    last: datetime = croniter(cron, t + _US).get_prev(datetime)
    return last


def fired_between(cron: str, since: datetime, upto: datetime) -> bool:
    """Whether an instant of the schedule falls in ``(since, upto]``."""
    return next_after(cron, since) <= upto
