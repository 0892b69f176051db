"""Stored history as stores hand it to the live evaluator: one event row as an engine
input, one trait write, and what one committed message load added."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from segflow.model.events import Message

EventRow: TypeAlias = tuple[str, int, str | None, dict[str, Any], str]
"""One stored event as an engine input: (profile id, ts µs, name, fields, message id)."""


@dataclass(frozen=True, slots=True)
class StoredTrait:
    """One stored trait write (``value`` None clears the trait)."""

    profile_id: str
    ts: int
    message_id: str
    key: str
    value: Any


@dataclass(slots=True)
class FieldInfo:
    """A ``field_catalog`` row: the column type of a dotted path and whether some of
    its values live in ``extra`` instead."""

    type: str
    overflow: bool = False


@dataclass(frozen=True, slots=True)
class StoredEvents:
    """The events one committed message load added, described for the live evaluator
    (``LiveEvaluator.catch_up``) so that it need not read them back from the store.

    ``rows`` are (seq, profile id after identity resolution, timestamp in µs, the
    parsed message) in ``seq`` order, every event with ``after_seq < seq <= upto_seq``;
    ``fields`` is the field catalog after the load (it says which stored column, typed
    or ``extra``, a value was read back from).  ``plain`` is False when some object key
    holds a dot (a dotted path could then name two values): readers must not rebuild
    field values from the messages then."""

    after_seq: int
    upto_seq: int
    rows: list[tuple[int, str, int, Message]]
    fields: dict[str, FieldInfo]
    columns: frozenset[str]
    """The events table's column names, lower case."""
    traits: int
    """Trait rows the load wrote (with its events)."""
    merges: int
    plain: bool
