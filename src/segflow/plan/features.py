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
    Comparison,
    Duration,
    EventFilter,
    Measure,
    Window,
    filter_canonical,
    window_canonical,
)


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


# --- formulas ------------------------------------------------------------------


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
