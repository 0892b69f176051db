"""Features and formulas: the normalised form both evaluators consume.

A *feature* is a per-profile value folded from events or traits ("sum of revenue of
Order Completed in 180 d", "trait country as of t").  A *formula* is a boolean tree
over feature values.  Every segment compiles to one formula; features are keyed by
fingerprint so segments that ask the same question share one state and one SQL
aggregate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

import orjson

from segflow.model.definition import (
    CALL_TYPES,
    Absolute,
    Ago,
    Comparison,
    Duration,
    EventFilter,
    Measure,
    Window,
    Within,
    filter_canonical,
    window_canonical,
)
from segflow.model.time import format_instant


def _fp(kind: str, data: object) -> str:
    raw = orjson.dumps([kind, data], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class EventAggregate:
    """``measure`` (of property ``of``) over events matching ``filter`` inside ``window``."""

    filter: EventFilter
    window: Window | None
    measure: Measure
    of: str | None

    @property
    def key(self) -> str:
        return _fp(
            "agg",
            [filter_canonical(self.filter), window_canonical(self.window), self.measure, self.of],
        )


@dataclass(frozen=True, slots=True)
class TraitValue:
    """The trait ``name`` as of t (last write by timestamp, then message id)."""

    name: str

    @property
    def key(self) -> str:
        return _fp("trait", self.name)


@dataclass(frozen=True, slots=True)
class SequenceMatch:
    """True when events matching ``steps`` occur in strictly increasing time order
    inside ``window`` (and within ``span`` from first to last)."""

    steps: tuple[EventFilter, ...]
    window: Window | None
    span: Duration | None

    @property
    def key(self) -> str:
        return _fp(
            "seq",
            [
                [filter_canonical(s) for s in self.steps],
                window_canonical(self.window),
                self.span.canonical() if self.span else None,
            ],
        )


@dataclass(frozen=True, slots=True)
class StaticMembership:
    """Membership of a static segment (a stored snapshot or imported list)."""

    segment_id: str

    @property
    def key(self) -> str:
        return _fp("static", self.segment_id)


CART_ADD: Final = "Product Added"
CART_REMOVE: Final = "Product Removed"
CART_RESET: Final = "Order Completed"
CART_PRODUCT: Final = "properties.product_id"
CART_QUANTITY: Final = "properties.quantity"
CART_PRICE: Final = "properties.price"


@dataclass(frozen=True, slots=True)
class CartTotal:
    """The open cart as of t.  Per product id (a string), the latest Product Added or
    Product Removed after the latest Order Completed (ties at one instant: a remove,
    then the larger quantity, then the larger price); ``items`` sums the quantity (1
    unless a number) of the products whose latest is an add, ``value`` their price x
    quantity (a product without a numeric price adds nothing).  Empty: 0."""

    measure: Literal["items", "value"]

    @property
    def key(self) -> str:
        return _fp("cart", self.measure)

    @property
    def filters(self) -> tuple[EventFilter, EventFilter]:
        """The events it reads: cart actions, and orders (which empty the cart)."""
        return EventFilter((CART_ADD, CART_REMOVE)), EventFilter((CART_RESET,))


Feature: TypeAlias = EventAggregate | TraitValue | SequenceMatch | StaticMembership | CartTotal


# --- describing features ---------------------------------------------------------


def feature_kind(f: Feature) -> str:
    """One word for what a feature folds: event, trait, sequence, cart or static."""
    if isinstance(f, EventAggregate):
        return "event"
    if isinstance(f, TraitValue):
        return "trait"
    if isinstance(f, SequenceMatch):
        return "sequence"
    if isinstance(f, CartTotal):
        return "cart"
    return "static"


def event_names(f: Feature) -> tuple[str, ...]:
    """The event names (the evaluators' names, ``model.definition.call_name``) whose
    stored events a feature reads, sorted; none for traits and static lists."""
    if isinstance(f, EventAggregate):
        filters: tuple[EventFilter, ...] = (f.filter,)
    elif isinstance(f, SequenceMatch):
        filters = f.steps
    elif isinstance(f, CartTotal):
        filters = f.filters
    else:
        return ()
    return tuple(sorted({n for flt in filters for n in flt.names}))


def name_label(name: str) -> str:
    """An evaluator's event name as a reader knows it (page/screen calls by their type)."""
    return f"{CALL_TYPES[name]} calls" if name in CALL_TYPES else name


def _filter_text(f: EventFilter) -> str:
    data = filter_canonical(f)
    names = [name_label(n) for n in f.names]
    text = " or ".join(names)
    pages = data.get("page", data.get("screen"))
    if pages is not None and pages is not True:
        text += f" named {pages}"
    preds = data.get("where")
    if isinstance(preds, list) and preds:
        parts = []
        for p in preds:
            (op, value), *_ = ((k, v) for k, v in p.items() if k != "property")
            parts.append(f"{p['property']} {op} {value}")
        text += " where " + " and ".join(parts)
    return text


def _window_text(w: Window | None) -> str:
    if w is None:
        return ""
    if isinstance(w, Within):
        return f" in the last {w.span.canonical()}"
    if isinstance(w, Ago):
        return f" from {w.from_ago.canonical()} to {w.to_ago.canonical()} ago"
    assert isinstance(w, Absolute)
    until = f" until {format_instant(w.until)}" if w.until is not None else ""
    return f" since {format_instant(w.since)}{until}"


def describe(f: Feature) -> str:
    """A feature in one line of plain words (what an estimate or a plan listing shows)."""
    if isinstance(f, EventAggregate):
        what = f.measure.replace("_", " ") + (f" of {f.of}" if f.of is not None else "")
        return f"{what} of {_filter_text(f.filter)}{_window_text(f.window)}"
    if isinstance(f, TraitValue):
        return f"trait {f.name}"
    if isinstance(f, SequenceMatch):
        steps = " then ".join(_filter_text(s) for s in f.steps)
        span = f" within {f.span.canonical()} of each other" if f.span is not None else ""
        return f"sequence {steps}{_window_text(f.window)}{span}"
    if isinstance(f, CartTotal):
        return f"open cart {f.measure}"
    return f"stored member list of {f.segment_id}"


# --- formulas ------------------------------------------------------------------
# The boolean skeleton (FAll / FAny / FNot) mirrors model.definition's All / AnyOf / Not
# on purpose: a formula is the condition tree with its leaves replaced by feature keys,
# so the evaluators never see definition nodes.


@dataclass(frozen=True, slots=True)
class FAll:
    items: tuple[Formula, ...]


@dataclass(frozen=True, slots=True)
class FAny:
    items: tuple[Formula, ...]


@dataclass(frozen=True, slots=True)
class FNot:
    item: Formula


@dataclass(frozen=True, slots=True)
class FCompare:
    """``cmp`` applied to a feature's value (an aggregate or a trait)."""

    feature: str
    cmp: Comparison


@dataclass(frozen=True, slots=True)
class FAbandoned:
    """Latest trigger (feature ``last``) exists, is at least ``wait`` old, and the
    latest follow-up (feature ``follow``) is not after it."""

    last: str
    follow: str
    wait: Duration


@dataclass(frozen=True, slots=True)
class FFlag:
    """A boolean feature (sequence match, static membership)."""

    feature: str


@dataclass(frozen=True, slots=True)
class FBucket:
    salt: str
    from_: float
    to: float


@dataclass(frozen=True, slots=True)
class FRef:
    """Marks where ``in_segment`` was inlined (kept for explain; evaluates ``item``)."""

    segment_id: str
    item: Formula


Formula: TypeAlias = FAll | FAny | FNot | FCompare | FAbandoned | FFlag | FBucket | FRef
