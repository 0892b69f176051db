"""Segment definitions: the typed condition tree, its parser and canonical form.

One tree serves every engine.  The parser turns YAML/JSON-shaped dicts into frozen
dataclasses and reports every problem with the JSON path where it occurred
(``condition.all[2].within: "7x" is not a duration``).  ``canonical()`` gives a
key-ordered plain-data form; ``fingerprint()`` hashes it so identical sub-trees
written in different segments are recognised as one feature.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, TypeAlias

import orjson

from segflow.model.bucket import bucket_of
from segflow.model.errors import DefinitionError, Problem
from segflow.model.schedule import is_valid as is_valid_cron
from segflow.model.time import format_instant, parse_instant

# ---------------------------------------------------------------------------
# durations and instants

_DUR_RE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_US: Final = {
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 604_800_000_000,
}

MAX_DURATION_US: Final = 36_500 * _UNIT_US["d"]
"""The longest duration (100 years): longer ones reach past the calendar's ends."""


@dataclass(frozen=True, slots=True)
class Duration:
    """A fixed span of time in microseconds (no calendar months: they are not fixed)."""

    us: int

    def canonical(self) -> str:
        for unit in ("w", "d", "h", "m", "s"):
            size = _UNIT_US[unit]
            if self.us % size == 0:
                return f"{self.us // size}{unit}"
        return f"{self.us / 1_000_000}s"


def parse_duration(value: object) -> Duration:
    """Parse ``30d``, ``1.5h``, ``90s``; raise ValueError naming the bad text."""
    if isinstance(value, str):
        m = _DUR_RE.match(value)
        if m:
            us = round(float(m.group(1)) * _UNIT_US[m.group(2)])
            if us > MAX_DURATION_US:
                raise ValueError(f"{value!r} is longer than the longest duration, 36500d")
            if us > 0:
                return Duration(us)
            raise ValueError(f"{value!r} is not a positive duration")
    raise ValueError(f"{value!r} is not a duration (use a number and one of s m h d w, e.g. 7d)")


# ---------------------------------------------------------------------------
# windows


@dataclass(frozen=True, slots=True)
class Within:
    """``t - span < ts <= t``."""

    span: Duration


@dataclass(frozen=True, slots=True)
class Ago:
    """``t - from_ago < ts <= t - to_ago``."""

    from_ago: Duration
    to_ago: Duration


@dataclass(frozen=True, slots=True)
class Absolute:
    """``since <= ts`` and, when ``until`` is set, ``ts < until``."""

    since: datetime
    until: datetime | None = None


Window: TypeAlias = Within | Ago | Absolute


def window_canonical(w: Window | None) -> object:
    if w is None:
        return None
    if isinstance(w, Within):
        return w.span.canonical()
    if isinstance(w, Ago):
        return {"from_ago": w.from_ago.canonical(), "to_ago": w.to_ago.canonical()}
    if w.until is None:
        return {"since": format_instant(w.since)}
    return {"from": format_instant(w.since), "to": format_instant(w.until)}


# ---------------------------------------------------------------------------
# comparisons

Scalar: TypeAlias = str | int | float | bool

VALUE_OPS: Final = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "ends_with",
    "exists",
    "not_exists",
    "within_last",
    "older_than",
    "before",
    "after",
)
NUMERIC_OPS: Final = frozenset({"gt", "gte", "lt", "lte", "between"})
STRING_OPS: Final = frozenset({"contains", "starts_with", "ends_with"})
TIME_OPS: Final = frozenset({"within_last", "older_than", "before", "after"})
Op: TypeAlias = str


@dataclass(frozen=True, slots=True)
class Comparison:
    """One operator and its operand.

    The operand's Python type is fixed by the operator: numbers for gt/gte/lt/lte,
    a (lo, hi) pair for between, a tuple for in/not_in, a Duration for
    within_last/older_than, a datetime for before/after, None for exists.
    """

    op: Op
    value: Any = None

    def canonical(self) -> dict[str, object]:
        v = self.value
        out: object
        if isinstance(v, Duration):
            out = v.canonical()
        elif isinstance(v, datetime):
            out = format_instant(v)
        elif isinstance(v, tuple):
            out = [_canon_scalar(x) for x in v]
        elif self.op in ("exists", "not_exists"):
            return {"exists": self.op == "exists"}
        else:
            out = _canon_scalar(v)
        return {self.op: out}


def _canon_scalar(v: object) -> object:
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    return v


def is_number(v: object) -> bool:
    """True for int/float but not bool (``True == 1`` must not leak into comparisons)."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def _finite(v: object) -> bool:
    """A number a definition may hold: YAML's ``.inf``/``.nan`` (and JSON's ``NaN`` as
    Python reads it) have no SQL constant and no agreed order (NaN is above every
    number in DuckDB and unordered in Python), so the engines could not agree."""
    return is_number(v) and math.isfinite(v)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# condition nodes


@dataclass(frozen=True, slots=True)
class All:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition


@dataclass(frozen=True, slots=True)
class TraitCondition:
    trait: str
    cmp: Comparison


@dataclass(frozen=True, slots=True)
class PropertyPredicate:
    """A predicate on one event field: ``properties.x``, ``context.a.b`` or ``traits.x``."""

    path: str
    cmp: Comparison


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events count: any of ``names`` with all predicates holding on the same event.

    A page (screen) filter has the one name ``PAGE_CALLS`` (``SCREEN_CALLS``), the name
    every evaluator gives page (screen) calls (``call_name``); its page names are the
    predicate ``properties.name in [...]`` first in ``where``, so the evaluators need
    nothing of their own for page and screen calls."""

    names: tuple[str, ...]
    where: tuple[PropertyPredicate, ...] = ()


PAGE_CALLS: Final = "\x00page"
SCREEN_CALLS: Final = "\x00screen"
CALL_TYPES: Final = {PAGE_CALLS: "page", SCREEN_CALLS: "screen"}
"""The evaluators' event name of page and screen calls -> the message type.  A NUL is no
part of any name a definition accepts, so no track event name can stand for them."""
_CALL_KEYS: Final = {"page": PAGE_CALLS, "screen": SCREEN_CALLS}
PAGE_NAME: Final = "properties.name"


def call_name(type_: str, event: str | None) -> str | None:
    """The name the evaluators match a stored call by: a track call's event name, and
    ``PAGE_CALLS``/``SCREEN_CALLS`` for a page/screen call that has no event name (the
    batch evaluator reads page calls as ``type = 'page' AND event IS NULL``)."""
    if event is None:
        if type_ == "page":
            return PAGE_CALLS
        if type_ == "screen":
            return SCREEN_CALLS
        return None
    return None if event in CALL_TYPES else event


FILTER_KINDS: Final = ("event", "page", "screen")
"""The keys that choose the calls a filter reads: track events, page or screen calls."""

Measure: TypeAlias = Literal[
    "count", "sum", "avg", "min", "max", "distinct", "top", "first_time", "last_time"
]
MEASURES: Final = (
    "count", "sum", "avg", "min", "max", "distinct", "top", "first_time", "last_time"
)  # fmt: skip
MEASURES_WITH_OF: Final = frozenset({"sum", "avg", "min", "max", "distinct", "top"})
TIME_MEASURES: Final = frozenset({"first_time", "last_time"})


@dataclass(frozen=True, slots=True)
class EventCondition:
    filter: EventFilter
    window: Window | None
    measure: Measure
    of: str | None
    cmp: Comparison


@dataclass(frozen=True, slots=True)
class Abandonment:
    """Latest ``filter`` event in ``window`` is at least ``wait`` old and no ``followed_by``
    event came after it."""

    filter: EventFilter
    followed_by: EventFilter
    wait: Duration
    window: Window | None


@dataclass(frozen=True, slots=True)
class SequenceCondition:
    steps: tuple[EventFilter, ...]
    window: Window | None
    span: Duration | None


@dataclass(frozen=True, slots=True)
class InSegment:
    segment_id: str


@dataclass(frozen=True, slots=True)
class Bucket:
    """``from_ <= hash(profile_id, salt) mod 100 < to``."""

    salt: str
    from_: float
    to: float


COMPUTED_TRAITS: Final = {
    "ltv": "number",
    "order_count": "number",
    "aov": "number",
    "first_order_at": "time",
    "last_order_at": "time",
    "days_since_last_order": "days",
    "top_category_30d": "value",
    "wishlist": "list",
    "cart_items": "number",
    "cart_value": "number",
}
"""The computed traits a profile shows that a condition can read, by the kind of value
(``plan.computed`` says which event measure each one is)."""
DAYS_OPS: Final = frozenset({"gt", "gte", "lt", "lte", "between", "exists", "not_exists"})
LIST_OPS: Final = frozenset({"contains", "exists", "not_exists"})
"""A list trait (``wishlist``): ``contains`` an item, ``exists`` (not empty)."""


@dataclass(frozen=True, slots=True)
class ComputedCondition:
    """A computed trait of the profile view (``COMPUTED_TRAITS``) compared as shown
    there; the planner reads it as the event measure it is, so it shares that feature."""

    name: str
    cmp: Comparison


Condition: TypeAlias = (
    All
    | AnyOf
    | Not
    | TraitCondition
    | ComputedCondition
    | EventCondition
    | Abandonment
    | SequenceCondition
    | InSegment
    | Bucket
)


# ---------------------------------------------------------------------------
# canonical form and fingerprint


def filter_canonical(f: EventFilter) -> dict[str, object]:
    """An event filter's canonical plain-data form (its part of ``canonical()``)."""
    where = f.where
    out: dict[str, object]
    if len(f.names) == 1 and f.names[0] in CALL_TYPES:
        pages: object = True
        if where and where[0].path == PAGE_NAME and where[0].cmp.op == "in":
            names = where[0].cmp.value
            pages = names[0] if len(names) == 1 else sorted(names)
            where = where[1:]
        out = {CALL_TYPES[f.names[0]]: pages}
    else:
        out = {"event": f.names[0] if len(f.names) == 1 else sorted(f.names)}
    if where:
        preds = [{"property": p.path, **p.cmp.canonical()} for p in where]
        out["where"] = sorted(preds, key=lambda d: orjson.dumps(d, option=orjson.OPT_SORT_KEYS))
    return out


def canonical(node: Condition) -> Any:
    """Plain data (dicts, lists, scalars) that serialises the node in one canonical way."""
    if isinstance(node, All):
        return {"all": [canonical(c) for c in node.items]}
    if isinstance(node, AnyOf):
        return {"any": [canonical(c) for c in node.items]}
    if isinstance(node, Not):
        return {"not": canonical(node.item)}
    if isinstance(node, TraitCondition):
        return {"trait": node.trait, **node.cmp.canonical()}
    if isinstance(node, ComputedCondition):
        return {"computed": node.name, **node.cmp.canonical()}
    if isinstance(node, EventCondition):
        out = filter_canonical(node.filter)
        if node.window is not None:
            out["within"] = window_canonical(node.window)
        out["measure"] = node.measure
        if node.of is not None:
            out["of"] = node.of
        out.update(node.cmp.canonical())
        return out
    if isinstance(node, Abandonment):
        out = filter_canonical(node.filter)
        out["not_followed_by"] = filter_canonical(node.followed_by)
        out["for"] = node.wait.canonical()
        if node.window is not None:
            out["within"] = window_canonical(node.window)
        return out
    if isinstance(node, SequenceCondition):
        seq: dict[str, object] = {"sequence": [filter_canonical(s) for s in node.steps]}
        if node.window is not None:
            seq["within"] = window_canonical(node.window)
        if node.span is not None:
            seq["span"] = node.span.canonical()
        return seq
    if isinstance(node, InSegment):
        group, sep, member = node.segment_id.partition(GROUP_SEP)
        if sep:
            return {"in_segment": {"group": group, "segment": member}}
        return {"in_segment": node.segment_id}
    if isinstance(node, Bucket):
        return {
            "bucket": {
                "salt": node.salt,
                "from": _canon_scalar(node.from_),
                "to": _canon_scalar(node.to),
            }
        }
    raise TypeError(f"not a condition: {node!r}")


def fingerprint(node: Condition | EventFilter) -> str:
    """Stable short hash of a node's canonical form (the feature-sharing key)."""
    data = filter_canonical(node) if isinstance(node, EventFilter) else canonical(node)
    raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()[:16]


def walk(node: Condition) -> list[Condition]:
    """Every node of the tree, pre-order."""
    out: list[Condition] = [node]
    if isinstance(node, All | AnyOf):
        for c in node.items:
            out.extend(walk(c))
    elif isinstance(node, Not):
        out.extend(walk(node.item))
    return out


def referenced_segments(node: Condition) -> set[str]:
    return {n.segment_id for n in walk(node) if isinstance(n, InSegment)}


# ---------------------------------------------------------------------------
# segments


@dataclass(frozen=True, slots=True)
class Holdout:
    """A stable random share of a segment's members kept out of activation (exports
    leave them out, deliveries and streams mark them) so that an experiment can compare
    them with the rest.  Membership itself is unchanged: every engine evaluates the
    condition alone."""

    percent: float
    salt: str

    def holds_out(self, profile_id: str) -> bool:
        """The same draw as the ``bucket`` condition: ``bucket_of(id, salt) < percent``."""
        return bucket_of(profile_id, self.salt) < self.percent

    def canonical(self) -> dict[str, object]:
        return {"percent": _canon_scalar(self.percent), "salt": self.salt}

    def held_out(self, profile_ids: Iterable[str]) -> set[str]:
        """The held-out ones of ``profile_ids``."""
        return {p for p in profile_ids if self.holds_out(p)}


def held_out(holdouts: Mapping[str, Holdout], segment_id: str, profile_id: str) -> bool:
    """Whether ``profile_id`` is in the holdout of ``segment_id`` (False for a segment
    without one): how every change the feed, the stream and the deliveries show is
    marked."""
    ho = holdouts.get(segment_id)
    return ho is not None and ho.holds_out(profile_id)


Mode: TypeAlias = Literal["realtime", "scheduled", "static"]
_ID_RE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
RESERVED_IDS: Final = frozenset({"summary"})
"""Ids a segment cannot take: the segments API reads them as its own routes."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A named audience and its options; ``version`` is assigned by the registry."""

    id: str
    name: str
    condition: Condition | None
    description: str = ""
    purpose: str = ""
    tags: tuple[str, ...] = ()
    """Labels for finding and grouping segments (metadata only: not part of the plan);
    canonical form: trimmed, without repeats, sorted."""
    folder: str | None = None
    """Where the segment sits in the UI's tree, ``/``-separated (metadata only);
    canonical form: each part trimmed, no empty parts."""
    mode: Mode = "realtime"
    schedule: str | None = None
    snapshot_at: datetime | None = None
    members: tuple[str, ...] | None = None
    emit_events: bool = True
    protected: bool = False
    public: bool = False
    """Whether the on-site read (``GET /v1/onsite/segments``, a publishable key from a
    browser) may return this segment; only public segments are ever shown there."""
    version: int = 0
    holdout: Holdout | None = None
    """A stable share of the members kept out of activation (None: everyone is activated)."""
    extra: Mapping[str, object] = field(default_factory=dict)
    group: str | None = None
    """Set on a priority group's resolved member (``model.groups``), never parsed."""

    def to_dict(self) -> dict[str, object]:
        """Canonical serialisation (what is stored and returned by the API)."""
        out: dict[str, object] = {"id": self.id, "name": self.name}
        if self.description:
            out["description"] = self.description
        if self.purpose:
            out["purpose"] = self.purpose
        if self.tags:
            out["tags"] = list(self.tags)
        if self.folder is not None:
            out["folder"] = self.folder
        out["mode"] = self.mode
        if self.schedule is not None:
            out["schedule"] = self.schedule
        if self.snapshot_at is not None:
            out["snapshot_at"] = format_instant(self.snapshot_at)
        if self.members is not None:
            out["members"] = list(self.members)
        out["emit_events"] = self.emit_events
        out["protected"] = self.protected
        if self.public:  # absent when false: definitions saved before it keep their form
            out["public"] = True
        if self.holdout is not None:
            out["holdout"] = self.holdout.canonical()
        if self.version:
            out["version"] = self.version
        if self.group is not None:
            out["group"] = self.group
        if self.condition is not None:
            out["condition"] = canonical(self.condition)
        return out

    def definition_fingerprint(self) -> str:
        body = self.to_dict()
        body.pop("version", None)
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


# ---------------------------------------------------------------------------
# parsing


# The keys each part of a definition may hold: a key outside its set is reported
# (with the closest allowed one), never ignored.  A new condition kind adds its set
# here and its dispatch in ``_Parser.condition``.
CONDITION_KINDS: Final = (
    "all", "any", "not", "trait", "computed", "event", "page", "screen", "sequence",
    "in_segment", "bucket",
)  # fmt: skip
SEGMENT_KEYS: Final = frozenset({
    "id", "name", "description", "purpose", "tags", "folder", "mode", "schedule", "snapshot_at",
    "members", "emit_events", "protected", "public", "version", "condition", "holdout",
})  # fmt: skip
HOLDOUT_KEYS: Final = frozenset({"percent", "salt"})
MAX_TAGS: Final = 50
MAX_TAG: Final = 64
MAX_FOLDER: Final = 256
WINDOW_KEYS: Final = frozenset({"from_ago", "to_ago", "since", "from", "to"})
FILTER_KEYS: Final = frozenset({*FILTER_KINDS, "where"})
PREDICATE_KEYS: Final = frozenset({"property", *VALUE_OPS})
TRAIT_KEYS: Final = frozenset({"trait", *VALUE_OPS})
COMPUTED_KEYS: Final = frozenset({"computed", *VALUE_OPS})
EVENT_KEYS: Final = frozenset({*FILTER_KEYS, "within", "measure", "of", *VALUE_OPS})
ABANDONMENT_KEYS: Final = frozenset({*FILTER_KEYS, "not_followed_by", "for", "within"})
SEQUENCE_KEYS: Final = frozenset({"sequence", "within", "span"})
BUCKET_KEYS: Final = frozenset({"salt", "from", "to"})
IN_GROUP_KEYS: Final = frozenset({"group", "segment"})
GROUP_SEP: Final = ":"
"""``{in_segment: {group: G, segment: S}}`` names the segment id ``G:S`` (``model.groups``)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """How large a condition tree may be.  Every engine evaluates a definition in one
    pass (one SQL query, one state machine per profile), so an unbounded tree would
    make a save or an evaluation arbitrarily slow."""

    max_leaves: int = 256
    """Conditions that are not all/any/not (event, trait, sequence, ... conditions)."""
    max_nodes: int = 512
    """Every condition node, all/any/not included."""
    max_depth: int = 16
    """Nesting of conditions (a lone leaf is depth 1)."""


DEFAULT_LIMITS: Final = Limits()
STORED: Final = Limits(max_leaves=2**62, max_nodes=2**62, max_depth=2**62)
"""Definitions already saved load whatever their size (they were accepted once)."""


@dataclass(frozen=True, slots=True)
class Mention:
    """A name a definition refers to, and where: ``kind`` is event, trait, property or
    segment.  Callers check them against what the store has seen."""

    kind: str
    name: str
    path: str


def closest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to ``name`` (case-insensitive), best first."""
    pool = {k.lower(): k for k in known}
    return [pool[m] for m in difflib.get_close_matches(name.lower(), list(pool), n=n, cutoff=0.6)]


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = closest(name, known, 1)
    return f"did you mean {close[0]!r}? " if close else ""


class _Parser:
    """Collects every problem instead of stopping at the first, so one save reports all."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.problems: list[Problem] = []
        self.mentions: list[Mention] = []
        self.limits = limits
        self.leaves = 0
        self.nodes = 0

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def mention(self, kind: str, name: str | None, path: str) -> None:
        if name:
            self.mentions.append(Mention(kind, name, path))

    # -- helpers -----------------------------------------------------------
    def expect_map(self, value: object, path: str) -> Mapping[str, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.fail(path, f"expected an object, got {_show(value)}")
        return None

    def check_keys(self, m: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
        allowed = set(allowed)
        for key in m:
            if key not in allowed:
                hint = _did_you_mean(str(key), allowed)
                self.fail(
                    _join(path, str(key)),
                    f"unknown key {str(key)!r} ({hint}allowed here: {', '.join(sorted(allowed))})",
                )

    def text(self, value: object, path: str) -> str | None:
        if isinstance(value, str) and value:
            return value
        self.fail(path, f"expected a non-empty string, got {_show(value)}")
        return None

    def duration(self, value: object, path: str) -> Duration | None:
        try:
            return parse_duration(value)
        except ValueError as e:
            self.fail(path, str(e))
            return None

    def instant(self, value: object, path: str) -> datetime | None:
        try:
            return parse_instant(value)
        except ValueError as e:
            self.fail(path, str(e))
            return None

    # -- windows -----------------------------------------------------------
    def window(self, value: object, path: str) -> Window | None:
        if isinstance(value, str):
            d = self.duration(value, path)
            return Within(d) if d else None
        m = self.expect_map(value, path)
        if m is None:
            return None
        if any(k not in WINDOW_KEYS for k in m):
            self.check_keys(m, WINDOW_KEYS, path)
            return None
        keys = set(m)
        if keys == {"from_ago", "to_ago"}:
            a = self.duration(m["from_ago"], _join(path, "from_ago"))
            b = (
                self.duration(m["to_ago"], _join(path, "to_ago"))
                if m["to_ago"] not in (0, "0")
                else Duration(0)
            )
            if a and b is not None:
                if b.us >= a.us:
                    self.fail(path, "from_ago must be longer ago than to_ago")
                    return None
                return Ago(a, b)
            return None
        if keys == {"since"}:
            s = self.instant(m["since"], _join(path, "since"))
            return Absolute(s) if s else None
        if keys == {"from", "to"}:
            s = self.instant(m["from"], _join(path, "from"))
            u = self.instant(m["to"], _join(path, "to"))
            if s and u:
                if u <= s:
                    self.fail(path, "'to' must be after 'from'")
                    return None
                return Absolute(s, u)
            return None
        self.fail(path, "a window is a duration (7d), {from_ago, to_ago}, {since} or {from, to}")
        return None

    # -- comparisons -------------------------------------------------------
    def comparison(
        self, m: Mapping[str, Any], path: str, *, kind: str, default: Comparison | None = None
    ) -> Comparison | None:
        """Find the single operator key in ``m``; ``kind`` is value|number|time."""
        ops = [k for k in m if k in VALUE_OPS]
        if not ops:
            if default is not None:
                return default
            self.fail(path, f"needs a comparison (one of: {', '.join(VALUE_OPS)})")
            return None
        if len(ops) > 1:
            self.fail(
                path, f"has several comparisons ({', '.join(ops)}); use all: [...] to combine"
            )
            return None
        op = ops[0]
        raw = m[op]
        at = _join(path, op)
        if kind == "number" and op not in NUMERIC_OPS | {"eq", "ne", "in", "not_in"}:
            self.fail(at, "is not a comparison for a numeric measure")
            return None
        if kind == "time" and op not in TIME_OPS | {"exists", "not_exists"}:
            self.fail(
                at,
                "time-valued measures compare with within_last, older_than, before, after, exists",
            )
            return None
        if op in ("exists", "not_exists"):
            if not isinstance(raw, bool):
                self.fail(at, f"expected true or false, got {_show(raw)}")
                return None
            return Comparison("exists" if (raw == (op == "exists")) else "not_exists")
        if op in ("gt", "gte", "lt", "lte"):
            if not _finite(raw):
                self.fail(at, f"expected a finite number, got {_show(raw)}")
                return None
            return Comparison(op, float(raw))
        if op == "between":
            if (
                isinstance(raw, list | tuple)
                and len(raw) == 2
                and all(_finite(x) for x in raw)
                and raw[0] <= raw[1]
            ):
                return Comparison(op, (float(raw[0]), float(raw[1])))
            self.fail(at, f"expected [low, high] finite numbers with low <= high, got {_show(raw)}")
            return None
        if op in ("in", "not_in"):
            if isinstance(raw, list | tuple) and raw and all(_is_scalar(x) for x in raw):
                return Comparison(op, tuple(_norm_scalar(x) for x in raw))
            self.fail(
                at, f"expected a non-empty list of strings/numbers/booleans, got {_show(raw)}"
            )
            return None
        if op in STRING_OPS:
            if isinstance(raw, str):
                return Comparison(op, raw)
            self.fail(at, f"expected a string, got {_show(raw)}")
            return None
        if op in ("within_last", "older_than"):
            d = self.duration(raw, at)
            return Comparison(op, d) if d else None
        if op in ("before", "after"):
            t = self.instant(raw, at)
            return Comparison(op, t) if t else None
        # eq / ne
        if _is_scalar(raw):
            return Comparison(op, _norm_scalar(raw))
        self.fail(at, f"expected a string, number or boolean, got {_show(raw)}")
        return None

    # -- events ------------------------------------------------------------
    def names(
        self, value: object, path: str, what: str = "an event", kind: str | None = "event"
    ) -> tuple[str, ...] | None:
        """Event names (or page/screen names when ``what`` says so); ``kind`` is the
        catalogue the names are checked against, None for names no catalogue holds."""
        one = isinstance(value, str)
        if one:
            value = [value]
        if (
            isinstance(value, list)
            and value
            and all(isinstance(x, str) and x and "\x00" not in x for x in value)
        ):
            if kind is not None:
                for i, x in enumerate(value):
                    self.mention(kind, x, path if one else f"{path}[{i}]")
            return tuple(sorted(set(value)))
        self.fail(path, f"expected {what} name or a list of names, got {_show(value)}")
        return None

    def call_filter(
        self, key: str, value: object, where: tuple[PropertyPredicate, ...], path: str
    ) -> EventFilter | None:
        """``page: true`` (any page), ``page: Pricing`` or ``page: [A, B]`` (by page
        name); the same for ``screen``."""
        if value is True:
            return EventFilter((_CALL_KEYS[key],), where)
        names = self.names(value, path, f"true (any {key}) or a {key}", kind=None)
        if names is None:
            return None
        named = PropertyPredicate(PAGE_NAME, Comparison("in", names))
        return EventFilter((_CALL_KEYS[key],), (named, *where))

    def where(self, value: object, path: str) -> tuple[PropertyPredicate, ...]:
        if isinstance(value, Mapping):
            value = [value]
        if not isinstance(value, list):
            self.fail(path, f"expected a list of property predicates, got {_show(value)}")
            return ()
        out: list[PropertyPredicate] = []
        for i, item in enumerate(value):
            p = f"{path}[{i}]"
            m = self.expect_map(item, p)
            if m is None:
                continue
            self.check_keys(m, PREDICATE_KEYS, p)
            prop = self.text(m.get("property"), _join(p, "property"))
            self.mention("property", prop and normalize_path(prop), _join(p, "property"))
            cmp = self.comparison(m, p, kind="value")
            if prop and cmp:
                out.append(PropertyPredicate(normalize_path(prop), cmp))
        return tuple(out)

    def event_filter(self, m: Mapping[str, Any], path: str) -> EventFilter | None:
        """``event:`` (track calls), ``page:`` or ``screen:`` (page/screen calls), exactly
        one of them, and ``where``."""
        kinds = [k for k in FILTER_KINDS if k in m]
        if len(kinds) != 1:
            self.fail(path, "needs exactly one of event, page, screen")
            return None
        key = kinds[0]
        # names first: problems and mentions come in the document's order
        names = self.names(m["event"], _join(path, "event")) if key == "event" else None
        where = self.where(m["where"], _join(path, "where")) if "where" in m else ()
        if key != "event":
            return self.call_filter(key, m[key], where, _join(path, key))
        return EventFilter(names, where) if names else None

    def follow_filter(self, value: object, path: str) -> EventFilter | None:
        if isinstance(value, str | list):
            names = self.names(value, path)
            return EventFilter(names) if names else None
        m = self.expect_map(value, path)
        if m is None:
            return None
        self.check_keys(m, FILTER_KEYS, path)
        return self.event_filter(m, path)

    # -- conditions --------------------------------------------------------
    def condition(self, value: object, path: str, depth: int = 1) -> Condition | None:
        m = self.expect_map(value, path)
        if m is None:
            return None
        if depth > self.limits.max_depth:
            self.fail(
                path,
                f"conditions nest deeper than {self.limits.max_depth} levels (limit max_depth)",
            )
            return None
        self.nodes += 1
        if "all" in m or "any" in m:
            key = "all" if "all" in m else "any"
            self.check_keys(m, {key}, path)
            items = m[key]
            if not isinstance(items, list):
                self.fail(_join(path, key), f"expected a list of conditions, got {_show(items)}")
                return None
            parsed = [
                self.condition(c, f"{_join(path, key)}[{i}]", depth + 1)
                for i, c in enumerate(items)
            ]
            good = tuple(c for c in parsed if c is not None)
            if len(good) != len(parsed):
                return None
            return All(good) if key == "all" else AnyOf(good)
        if "not" in m:
            self.check_keys(m, {"not"}, path)
            inner = self.condition(m["not"], _join(path, "not"), depth + 1)
            return Not(inner) if inner else None
        self.leaves += 1
        if "in_segment" in m:
            self.check_keys(m, {"in_segment"}, path)
            sid = self.segment_ref(m["in_segment"], _join(path, "in_segment"))
            self.mention("segment", sid, _join(path, "in_segment"))
            return InSegment(sid) if sid else None
        if "bucket" in m:
            self.check_keys(m, {"bucket"}, path)
            return self.bucket(m["bucket"], _join(path, "bucket"))
        if "trait" in m:
            self.check_keys(m, TRAIT_KEYS, path)
            name = self.text(m["trait"], _join(path, "trait"))
            self.mention("trait", name, _join(path, "trait"))
            cmp = self.comparison(m, path, kind="value")
            return TraitCondition(name, cmp) if name and cmp else None
        if "computed" in m:
            return self.computed(m, path)
        if "sequence" in m:
            return self.sequence(m, path)
        if any(k in m for k in FILTER_KINDS):
            if "not_followed_by" in m:
                return self.abandonment(m, path)
            return self.event_condition(m, path)
        hints = [c for k in m for c in closest(str(k), CONDITION_KINDS, 1)]
        hint = f" (did you mean {hints[0]!r}?)" if hints else ""
        self.fail(
            path,
            f"is not a condition{hint}: expected one of {', '.join(CONDITION_KINDS)}",
        )
        return None

    def segment_ref(self, value: object, path: str) -> str | None:
        """A segment id, or ``{group: G, segment: S}``: S's resolved membership in the
        priority group G (the id ``G:S``, which the string form may also spell)."""
        if not isinstance(value, Mapping):
            sid = self.text(value, path)
            if sid is not None and GROUP_SEP in sid:
                head, _, tail = sid.partition(GROUP_SEP)
                if not head or not tail or GROUP_SEP in tail:
                    self.fail(path, f"{sid!r} is neither a segment id nor group:segment")
                    return None
            return sid
        self.check_keys(value, IN_GROUP_KEYS, path)
        group = self.text(value.get("group"), _join(path, "group"))
        member = self.text(value.get("segment"), _join(path, "segment"))
        if group is None or member is None:
            return None
        if GROUP_SEP in group or GROUP_SEP in member:
            self.fail(path, f"group and segment ids hold no {GROUP_SEP!r}")
            return None
        return f"{group}{GROUP_SEP}{member}"

    def computed(self, m: Mapping[str, Any], path: str) -> ComputedCondition | None:
        self.check_keys(m, COMPUTED_KEYS, path)
        name = m["computed"]
        at = _join(path, "computed")
        if not isinstance(name, str) or name not in COMPUTED_TRAITS:
            hint = _did_you_mean(str(name), COMPUTED_TRAITS)
            known = ", ".join(COMPUTED_TRAITS)
            self.fail(at, f"unknown computed trait {_show(name)} ({hint}one of: {known})")
            return None
        kind = COMPUTED_TRAITS[name]
        if kind in ("days", "list"):
            allowed = DAYS_OPS if kind == "days" else LIST_OPS
            ops = [k for k in m if k in VALUE_OPS and k not in allowed]
            if ops:
                self.fail(_join(path, ops[0]), f"{name} compares with {', '.join(sorted(allowed))}")
                return None
            kind = "value"
        cmp = self.comparison(m, path, kind=kind)
        return ComputedCondition(name, cmp) if cmp else None

    def bucket(self, value: object, path: str) -> Bucket | None:
        m = self.expect_map(value, path)
        if m is None:
            return None
        self.check_keys(m, BUCKET_KEYS, path)
        salt = self.text(m.get("salt"), _join(path, "salt"))
        lo, hi = m.get("from", 0), m.get("to")
        ok = True
        for key, v in (("from", lo), ("to", hi)):
            if not (is_number(v) and 0 <= float(v) <= 100):  # type: ignore[arg-type]
                self.fail(_join(path, key), f"expected a number in [0, 100], got {_show(v)}")
                ok = False
        if not ok or lo is None or hi is None:
            return None
        if lo >= hi:
            self.fail(path, "'from' must be below 'to'")
            ok = False
        return Bucket(salt, float(lo), float(hi)) if salt and ok else None

    def event_condition(self, m: Mapping[str, Any], path: str) -> EventCondition | None:
        self.check_keys(m, EVENT_KEYS, path)
        flt = self.event_filter(m, path)
        window = self.window(m["within"], _join(path, "within")) if "within" in m else None
        measure = m.get("measure", "count")
        if measure not in MEASURES:
            self.fail(
                _join(path, "measure"),
                f"unknown measure {_show(measure)} (one of: {', '.join(MEASURES)})",
            )
            return None
        of: str | None = None
        if measure in MEASURES_WITH_OF:
            of_raw = self.text(m.get("of"), _join(path, "of"))
            if of_raw is None:
                return None
            of = normalize_path(of_raw)
            self.mention("property", of, _join(path, "of"))
        elif "of" in m:
            self.fail(_join(path, "of"), f"measure {measure} takes no 'of'")
        if measure in TIME_MEASURES:
            cmp = self.comparison(m, path, kind="time")
        elif measure == "count":
            cmp = self.comparison(m, path, kind="number", default=Comparison("gte", 1.0))
        elif measure == "top":
            cmp = self.comparison(m, path, kind="value")
        else:
            cmp = self.comparison(m, path, kind="number")
        if flt is None or cmp is None or ("within" in m and window is None):
            return None
        return EventCondition(flt, window, measure, of, cmp)

    def abandonment(self, m: Mapping[str, Any], path: str) -> Abandonment | None:
        self.check_keys(m, ABANDONMENT_KEYS, path)
        flt = self.event_filter(m, path)
        follow = self.follow_filter(m["not_followed_by"], _join(path, "not_followed_by"))
        if "for" not in m:
            self.fail(
                _join(path, "for"), "missing: how long the event must stay unfollowed (e.g. 24h)"
            )
            return None
        wait = self.duration(m["for"], _join(path, "for"))
        window = self.window(m["within"], _join(path, "within")) if "within" in m else None
        if flt is None or follow is None or wait is None or ("within" in m and window is None):
            return None
        return Abandonment(flt, follow, wait, window)

    def sequence(self, m: Mapping[str, Any], path: str) -> SequenceCondition | None:
        self.check_keys(m, SEQUENCE_KEYS, path)
        raw = m["sequence"]
        at = _join(path, "sequence")
        if not isinstance(raw, list) or len(raw) < 2:
            self.fail(at, f"expected a list of at least two steps, got {_show(raw)}")
            return None
        steps: list[EventFilter] = []
        for i, item in enumerate(raw):
            p = f"{at}[{i}]"
            sm = self.expect_map(item, p)
            if sm is None:
                continue
            self.check_keys(sm, FILTER_KEYS, p)
            f = self.event_filter(sm, p)
            if f:
                steps.append(f)
        window = self.window(m["within"], _join(path, "within")) if "within" in m else None
        span = self.duration(m["span"], _join(path, "span")) if "span" in m else None
        if (
            len(steps) != len(raw)
            or ("within" in m and window is None)
            or ("span" in m and span is None)
        ):
            return None
        return SequenceCondition(tuple(steps), window, span)

    # -- segment -----------------------------------------------------------
    def segment(self, doc: object) -> Segment | None:
        m = self.expect_map(doc, "")
        if m is None:
            return None
        if "group" in m and "id" not in m:
            self.fail(
                "group",
                "this is a priority group, not a segment: save it with `segflow groups"
                " apply` or POST /v1/groups",
            )
            return None
        if "priority" in m:
            self.fail(
                "priority",
                "unknown key 'priority' (a segment takes its priority from its place in a"
                " priority group: group: G, segments: [highest first, ...])",
            )
        self.check_keys({k: v for k, v in m.items() if k != "priority"}, SEGMENT_KEYS, "")
        sid = self.text(m.get("id"), "id")
        if sid is not None and not _ID_RE.match(sid):
            self.fail("id", f"{sid!r} is not a valid id (letters, digits, _ . -; at most 128)")
        elif sid in RESERVED_IDS:
            self.fail("id", f"{sid!r} is reserved (GET /v1/segments/{sid} answers another call)")
        name = m.get("name", sid)
        if not isinstance(name, str) or not name:
            self.fail("name", f"expected a non-empty string, got {_show(name)}")
        for key in ("description", "purpose"):
            if key in m and not isinstance(m[key], str):
                self.fail(key, f"expected a string, got {_show(m[key])}")
        tags = self.tags(m["tags"]) if "tags" in m else ()
        folder = self.folder(m["folder"]) if "folder" in m else None
        mode = m.get("mode", "realtime")
        if mode not in ("realtime", "scheduled", "static"):
            self.fail("mode", f"unknown mode {_show(mode)} (realtime, scheduled or static)")
        for key in ("emit_events", "protected", "public"):
            if key in m and not isinstance(m[key], bool):
                self.fail(key, f"expected true or false, got {_show(m[key])}")
        schedule = m.get("schedule")
        if mode == "scheduled":
            schedule = self.schedule(schedule)
        elif schedule is not None:
            self.fail("schedule", "only scheduled segments take a schedule")
        snapshot_at = None
        members: tuple[str, ...] | None = None
        if "snapshot_at" in m:
            if mode != "static":
                self.fail("snapshot_at", "only static segments take snapshot_at")
            snapshot_at = self.instant(m["snapshot_at"], "snapshot_at")
        if "members" in m:
            raw = m["members"]
            if mode != "static":
                self.fail("members", "only static segments take a member list")
            elif not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
                self.fail("members", "expected a list of profile ids")
            else:
                members = tuple(dict.fromkeys(raw))
        condition: Condition | None = None
        if "condition" in m:
            condition = self.condition(m["condition"], "condition")
            self.check_size()
            if members is not None:
                self.fail("members", "a static segment has either a condition or a member list")
        elif members is None:
            self.fail("condition", "missing")
        if mode == "static" and members is None and snapshot_at is None and "condition" in m:
            self.fail(
                "snapshot_at", "a static segment from a condition needs the instant of its snapshot"
            )
        holdout = self.holdout(m["holdout"], sid) if "holdout" in m else None
        version = m.get("version", 0)
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            self.fail("version", f"expected a non-negative integer, got {_show(version)}")
            version = 0
        if self.problems or sid is None:
            return None
        return Segment(
            id=sid,
            name=str(name),
            condition=condition,
            description=str(m.get("description", "")),
            purpose=str(m.get("purpose", "")),
            tags=tags,
            folder=folder,
            mode=mode,
            schedule=schedule,
            snapshot_at=snapshot_at,
            members=members,
            emit_events=bool(m.get("emit_events", True)),
            protected=bool(m.get("protected", False)),
            public=bool(m.get("public", False)),
            version=version,
            holdout=holdout,
        )

    def tags(self, value: object) -> tuple[str, ...]:
        """A list of labels: each a non-empty string of at most MAX_TAG characters, at
        most MAX_TAGS of them; returned trimmed, without repeats, sorted."""
        if not isinstance(value, list):
            self.fail("tags", f"expected a list of strings, got {_show(value)}")
            return ()
        if len(value) > MAX_TAGS:
            self.fail("tags", f"{len(value)} tags; at most {MAX_TAGS} are allowed")
        out: set[str] = set()
        for i, tag in enumerate(value):
            text = tag.strip() if isinstance(tag, str) else None
            if not text:
                self.fail(f"tags[{i}]", f"expected a non-empty string, got {_show(tag)}")
            elif len(text) > MAX_TAG:
                self.fail(f"tags[{i}]", f"longer than {MAX_TAG} characters")
            else:
                out.add(text)
        return tuple(sorted(out))

    def folder(self, value: object) -> str | None:
        """A ``/``-separated path such as ``Lifecycle/Retention``: parts trimmed, no
        empty part, at most MAX_FOLDER characters."""
        if not isinstance(value, str):
            self.fail(
                "folder", f"expected a string such as 'Lifecycle/Retention', got {_show(value)}"
            )
            return None
        parts = [p.strip() for p in value.strip().strip("/").split("/")]
        if not value.strip() or any(not p for p in parts):
            self.fail("folder", f"{_show(value)} has an empty part (write 'Parent/Child')")
            return None
        folder = "/".join(parts)
        if len(folder) > MAX_FOLDER:
            self.fail("folder", f"longer than {MAX_FOLDER} characters")
            return None
        return folder

    def holdout(self, value: object, sid: str | None) -> Holdout | None:
        """``{percent, salt}``: percent in (0, 100); the salt defaults to the segment id."""
        m = self.expect_map(value, "holdout")
        if m is None:
            return None
        self.check_keys(m, HOLDOUT_KEYS, "holdout")
        pct = m.get("percent")
        ok = True
        if not (_finite(pct) and 0 < float(pct) < 100):  # type: ignore[arg-type]
            self.fail("holdout.percent", f"expected a number in (0, 100), got {_show(pct)}")
            ok = False
        salt = m.get("salt", sid)
        if "salt" in m:
            salt = self.text(m["salt"], "holdout.salt")
        if not ok or not salt:
            return None
        return Holdout(float(pct), salt)  # type: ignore[arg-type]

    def check_size(self) -> None:
        lim = self.limits
        if self.leaves > lim.max_leaves:
            self.fail(
                "condition",
                f"has {self.leaves} conditions other than all/any/not; at most"
                f" {lim.max_leaves} are allowed (limit max_leaves)",
            )
        if self.nodes > lim.max_nodes:
            self.fail(
                "condition",
                f"has {self.nodes} condition nodes; at most {lim.max_nodes} are allowed"
                " (limit max_nodes)",
            )

    def schedule(self, value: object) -> str | None:
        if isinstance(value, str) and is_valid_cron(value):
            return value
        self.fail("schedule", f"expected a cron expression such as '0 * * * *', got {_show(value)}")
        return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(v: object) -> str:
    if isinstance(v, str):
        return repr(v) if len(v) < 60 else repr(v[:57] + "...")
    if v is None:
        return "nothing"
    if isinstance(v, Mapping):
        return "an object"
    if isinstance(v, list):
        return "a list"
    return repr(v)


def _is_scalar(v: object) -> bool:
    return isinstance(v, str | bool) or _finite(v)


def _norm_scalar(v: Any) -> Scalar:
    """Numbers compare as floats in every engine; bools and strings stay as they are."""
    if is_number(v):
        return float(v)
    return v  # type: ignore[no-any-return]


def normalize_path(path: str) -> str:
    """``category`` means ``properties.category``; ``context.*`` and ``traits.*`` stay."""
    if path.startswith(("properties.", "context.", "traits.")):
        return path
    return f"properties.{path}"


def parse_condition(
    doc: object, path: str = "condition", limits: Limits = DEFAULT_LIMITS
) -> Condition:
    """Parse one condition tree; raise DefinitionError listing every problem."""
    p = _Parser(limits)
    node = p.condition(doc, path)
    p.check_size()
    if p.problems or node is None:
        raise DefinitionError(p.problems)
    return node


@dataclass(frozen=True, slots=True)
class Report:
    """What parsing one segment document found: the segment (None when there are
    problems), every problem, and every name it mentions (found even where a part
    has problems, so reference checks can run alongside)."""

    segment: Segment | None
    problems: list[Problem]
    mentions: list[Mention]
    id: str | None
    """The document's id when it is a string (even an invalid one)."""
    static: bool

    def raise_problems(self) -> Segment:
        if self.problems or self.segment is None:
            raise DefinitionError(self.problems)
        return self.segment


def parse_segment_report(doc: object, limits: Limits = DEFAULT_LIMITS) -> Report:
    p = _Parser(limits)
    seg = p.segment(doc)
    sid = doc.get("id") if isinstance(doc, Mapping) else None
    static = isinstance(doc, Mapping) and doc.get("mode") == "static"
    return Report(
        seg if not p.problems else None,
        p.problems,
        p.mentions,
        sid if isinstance(sid, str) else None,
        static,
    )


def parse_segment(doc: object, limits: Limits = DEFAULT_LIMITS) -> Segment:
    """Parse a whole segment document (YAML or JSON already loaded)."""
    return parse_segment_report(doc, limits).raise_problems()


def reference_problems(drafts: Sequence[Report], saved: Mapping[str, Segment]) -> list[Problem]:
    """Unknown ``in_segment`` targets and cycles of the ``drafts`` (saved together,
    over the ``saved`` segments), each at the path of the reference concerned."""
    edges: dict[str, set[str]] = {
        sid: referenced_segments(seg.condition)
        for sid, seg in saved.items()
        if seg.condition is not None and seg.mode != "static"
    }
    known = set(saved)
    for d in drafts:
        if d.id is not None:
            known.add(d.id)
            edges[d.id] = set() if d.static else {m.name for m in d.mentions if m.kind == "segment"}
    problems: list[Problem] = []
    for d in drafts:
        for m in d.mentions:
            if m.kind != "segment":
                continue
            if m.name not in known:
                hint = _did_you_mean(m.name, known)
                problems.append(
                    Problem(
                        m.path,
                        f"unknown segment {m.name!r}{' (' + hint.strip() + ')' if hint else ''}",
                    )
                )
            elif d.id is not None and not d.static:
                cycle = _path_to(m.name, d.id, edges)
                if cycle is not None:
                    problems.append(
                        Problem(m.path, "in_segment cycle: " + " -> ".join([d.id, *cycle]))
                    )
    return problems


def _path_to(start: str, goal: str, edges: Mapping[str, set[str]]) -> list[str] | None:
    """A path of references from ``start`` to ``goal`` (both included), if any."""
    seen: set[str] = set()
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    while stack:
        sid, path = stack.pop()
        if sid == goal:
            return path
        if sid in seen:
            continue
        seen.add(sid)
        stack.extend((nxt, [*path, nxt]) for nxt in sorted(edges.get(sid, ()), reverse=True))
    return None


def load_segment_text(text: str, source: str = "<text>") -> list[Segment]:
    """Load one or more YAML/JSON documents (``---`` separated, or a list) of segments."""
    reports = load_segment_reports(text, source)
    problems = [p for r in reports for p in r.problems]
    if problems:
        raise DefinitionError(problems, source=source)
    return [r.segment for r in reports if r.segment is not None]


def load_segment_reports(
    text: str, source: str = "<text>", limits: Limits = DEFAULT_LIMITS
) -> list[Report]:
    """Parse reports of one or more YAML/JSON documents (``---`` separated, or a
    list), paths prefixed ``[i].`` when there are several; raise DefinitionError only
    when the text is not YAML/JSON at all."""
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "?"
        raise DefinitionError(
            [Problem(where, f"not valid YAML/JSON: {e}")], source=source
        ) from None
    if len(docs) == 1 and isinstance(docs[0], list):
        docs = docs[0]
    out: list[Report] = []
    for i, d in enumerate(docs):
        r = parse_segment_report(d, limits)
        if len(docs) > 1:
            r = Report(
                r.segment,
                [Problem(_prefixed(i, p.path), p.message) for p in r.problems],
                [Mention(m.kind, m.name, _prefixed(i, m.path)) for m in r.mentions],
                r.id,
                r.static,
            )
        out.append(r)
    return out


def _prefixed(i: int, path: str) -> str:
    return f"[{i}].{path}" if path else f"[{i}]"


def segments_from(items: Sequence[Segment]) -> dict[str, Segment]:
    return {s.id: s for s in items}
