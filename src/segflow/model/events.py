"""Segment-spec messages: parse, validate and normalise one message.

Both snake_case (``user_id``) and Segment's camelCase (``userId``) are accepted.
Timestamps become naive UTC datetimes (an offset is converted, a naive value is
taken as UTC).  Every problem names the field it concerns, so a loader can say
``events.jsonl:17: timestamp: missing``.

The parser is plain typed code rather than a pydantic model: it runs once per
ingested line, so it has to be cheap.  It flattens ``properties``, ``context`` and
``traits`` into dotted leaves (``properties.a.b``) in the same walk that checks they
hold JSON values only; the store's JSON Lines path skips that walk (``flatten=False``:
orjson output is JSON by construction) and lets DuckDB flatten in bulk.  Keys containing
dots flatten to the same path as the equivalent nesting (``{"a.b": 1}`` and
``{"a": {"b": 1}}`` are both ``properties.a.b``; when one message holds both, which one
wins is unspecified).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Final, Literal, cast, get_args

import orjson

from segflow.model.time import format_instant, naive_utc

MessageType = Literal["track", "identify", "page", "screen", "alias", "group"]
MESSAGE_TYPES: Final[frozenset[str]] = frozenset(get_args(MessageType))

ALIASES: Final[dict[str, tuple[str, str]]] = {
    "message_id": ("message_id", "messageId"),
    "user_id": ("user_id", "userId"),
    "anonymous_id": ("anonymous_id", "anonymousId"),
    "previous_id": ("previous_id", "previousId"),
    "group_id": ("group_id", "groupId"),
    "received_at": ("received_at", "receivedAt"),
    "sent_at": ("sent_at", "sentAt"),
}
"""Canonical field -> (snake_case, camelCase) spellings accepted on input."""

OBJECT_FIELDS: Final = ("properties", "context", "traits")
DERIVED_ID_PREFIX: Final = "h:"
"""Prefix of message ids derived from content when a message carries none."""

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1
_EXACT: Final = 2**53

Leaf = tuple[str, Any]
"""A dotted path and its value: a str, bool, int, float, None or a JSON list."""


# -- problems ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IngestProblem:
    """One invalid input: where it is (source, line or row) and which field is wrong.

    ``line`` is the 1-based line of a text file (JSON Lines, CSV); ``row`` the 1-based
    data row of a table; both are set for CSV.
    """

    field: str
    message: str
    source: str | None = None
    line: int | None = None
    row: int | None = None

    def at(self, source: str, line: int | None = None, row: int | None = None) -> IngestProblem:
        return replace(self, source=source, line=line, row=row)

    def __str__(self) -> str:
        where = self.source or ""
        if self.line is not None:
            where += f":{self.line}"
        if self.row is not None:
            where += f": row {self.row}"
        what = f"{self.field}: {self.message}" if self.field else self.message
        return f"{where}: {what}" if where else what


MAX_SHOWN: Final = 20


class IngestError(ValueError):
    """Input that cannot be ingested; carries every problem found (or the first
    ``MAX_PROBLEMS`` of them) and, for multi-file loads, the report of what was stored."""

    def __init__(
        self,
        problems: Sequence[IngestProblem],
        *,
        total: int | None = None,
        report: IngestReport | None = None,
    ) -> None:
        self.problems = list(problems)
        self.total = max(total or 0, len(self.problems))
        self.report = report
        lines = [str(p) for p in self.problems[:MAX_SHOWN]]
        if self.total > len(lines):
            lines.append(f"... and {self.total - len(lines)} more problems")
        super().__init__("\n".join(lines) if lines else "invalid input")


@dataclass(frozen=True, slots=True)
class Merge:
    """Profile ``from_profile`` was merged into ``into_profile`` (its events, traits
    and identities now belong to ``into_profile``)."""

    from_profile: str
    into_profile: str


@dataclass
class IngestReport:
    """What one ingestion call did.  ``rejected`` sources stored nothing."""

    sources: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Sources the store's load ledger has already (not read again)."""
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    invalid: int = 0
    problems: list[IngestProblem] = field(default_factory=list)
    problem_count: int = 0
    merges: list[Merge] = field(default_factory=list)
    seconds: float = 0.0

    def __str__(self) -> str:
        where = ", ".join(self.sources) or "(nothing)"
        if self.skipped and self.skipped == self.sources:
            return f"{where}: already loaded, skipped"
        parts = [f"{self.inserted:,} new events", f"{self.duplicates:,} duplicates"]
        if self.invalid:
            parts.append(f"{self.invalid:,} invalid")
        if self.merges:
            parts.append(f"{len(self.merges):,} profile merges")
        head = f"{where}: read {self.read:,}; " + ", ".join(parts)
        if self.rejected:
            head += f"; rejected (nothing stored): {', '.join(self.rejected)}"
        return head + f" in {self.seconds:.2f}s"

    def add(self, other: IngestReport) -> None:
        self.sources += other.sources
        self.rejected += other.rejected
        self.skipped += other.skipped
        self.read += other.read
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.invalid += other.invalid
        self.problems += other.problems[: max(0, MAX_PROBLEMS - len(self.problems))]
        self.problem_count += other.problem_count
        self.merges += other.merges
        self.seconds += other.seconds


MAX_PROBLEMS: Final = 1000
"""Problems kept per report; ``problem_count`` has the full number."""
MAX_DEPTH: Final = 64
"""Deepest nesting accepted inside properties/context/traits (deeper JSON cannot
be re-serialised by orjson, and no real event needs it)."""


# -- the message ---------------------------------------------------------------


@dataclass(slots=True)
class Message:
    """One validated Segment message.

    ``message_id`` is always set: when the input has none it is derived from the
    content (``h:`` + hash), so re-ingesting the same message is still a no-op.
    Page and screen ``name``/``category`` live in ``properties``.  ``leaves`` are the
    flattened scalar/array leaves of properties, context and traits (nulls included,
    empty objects dropped).  Treat it as immutable; it is not frozen only because
    frozen dataclasses are several times slower to build, and one is built per line.
    """

    type: MessageType
    message_id: str
    timestamp: datetime
    event: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = None
    group_id: str | None = None
    received_at: datetime | None = None
    sent_at: datetime | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    traits: Mapping[str, Any] = field(default_factory=dict)
    leaves: tuple[Leaf, ...] = field(default=(), compare=False, repr=False)

    @property
    def profile_key(self) -> str:
        """The id this message's profile is keyed by before identity merges."""
        key = self.user_id or self.anonymous_id
        assert key is not None
        return key

    def profile_traits(self) -> dict[str, Any]:
        """Trait writes for the sender's profile, flattened (``address.city``).

        From ``context.traits`` of any message and, for identify, ``traits``, which
        wins on a clash.  A ``None`` value clears the trait.  Group traits describe
        the group, not the sender, and are not included.
        """
        out: dict[str, Any] = {}
        own = self.type == "identify"
        for path, v in self.leaves:
            if path.startswith("context.traits."):
                out[path[15:]] = v
        if own:
            for path, v in self.leaves:
                if path.startswith("traits."):
                    out[path[7:]] = v
        return out

    def to_dict(self) -> dict[str, Any]:
        """Snake_case JSON-ready form; ``parse_message(m.to_dict()) == m``."""
        out: dict[str, Any] = {
            "type": self.type,
            "message_id": self.message_id,
            "timestamp": format_instant(self.timestamp),
        }
        for name in ("event", "user_id", "anonymous_id", "previous_id", "group_id"):
            v = getattr(self, name)
            if v is not None:
                out[name] = v
        for name in ("received_at", "sent_at"):
            t = getattr(self, name)
            if t is not None:
                out[name] = format_instant(t)
        for name in OBJECT_FIELDS:
            obj = getattr(self, name)
            if obj:
                out[name] = dict(obj)
        return out


def parse_time(value: object, name: str, problems: list[IngestProblem]) -> datetime | None:
    """ISO 8601 text (or a datetime) as a naive UTC datetime; records a problem if not."""
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            problems.append(IngestProblem(name, f"not an ISO 8601 timestamp: {value!r}"))
            return None
    elif isinstance(value, datetime):
        t = value
    else:
        problems.append(
            IngestProblem(name, f"expected an ISO 8601 string, got {_json_type(value)}")
        )
        return None
    return naive_utc(t)


def _json_type(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list | tuple):
        return "an array"
    if isinstance(v, Mapping):
        return "an object"
    return type(v).__name__


def _pick(raw: Mapping[str, Any], name: str, problems: list[IngestProblem]) -> tuple[str, Any]:
    """The value of a field under either spelling, and the spelling used."""
    snake, camel = ALIASES[name]
    v = raw.get(camel)
    if v is None:
        return snake, raw.get(snake)
    if snake in raw:
        a = raw[snake]
        if a is not None and a != v:
            problems.append(IngestProblem(camel, f"conflicts with {snake} ({a!r} != {v!r})"))
    return camel, v


def _id(
    raw: Mapping[str, Any], snake: str, camel: str, problems: list[IngestProblem]
) -> str | None:
    """An id under either spelling (numbers accepted as text; empty means absent)."""
    v = raw.get(camel)
    if v is None:
        v = raw.get(snake)
        if type(v) is str:
            return v or None
        return None if v is None else _other_id(snake, v, problems)
    if snake in raw:
        a = raw[snake]
        if a is not None and a != v:
            problems.append(IngestProblem(camel, f"conflicts with {snake} ({a!r} != {v!r})"))
    if type(v) is str:
        return v or None
    return _other_id(camel, v, problems)


def _other_id(key: str, v: object, problems: list[IngestProblem]) -> str | None:
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, str):
        return str(v) or None
    problems.append(IngestProblem(key, f"expected a string, got {_json_type(v)}"))
    return None


def _walk(
    obj: Mapping[Any, Any],
    prefix: str,
    out: list[Leaf],
    problems: list[IngestProblem],
    depth: int = 1,
) -> None:
    """Flatten a JSON object into dotted leaves, checking every value is JSON.

    Integers beyond 2**53 become floats here: their column type is DOUBLE anyway.
    """
    if depth > MAX_DEPTH:
        problems.append(IngestProblem(prefix[:-1], f"nested more than {MAX_DEPTH} levels deep"))
        return
    for k, v in obj.items():
        if type(k) is not str:
            problems.append(IngestProblem(prefix.rstrip("."), f"keys must be strings, got {k!r}"))
            continue
        path = prefix + k
        t = type(v)
        if t is str or t is bool or v is None:
            out.append((path, v))
        elif t is dict:
            if v:
                _walk(v, path + ".", out, problems, depth + 1)
        elif t is int:
            if -_EXACT <= v <= _EXACT:
                out.append((path, v))
            elif _check_json(v, path, problems):
                out.append((path, float(v)))
        elif t is float or t is list:
            if _check_json(v, path, problems, depth + 1):
                out.append((path, v))
        else:
            _walk_other(path, v, out, problems, depth + 1)


def _walk_other(
    path: str, v: object, out: list[Leaf], problems: list[IngestProblem], depth: int
) -> None:
    """Values of in-memory messages that are not exactly JSON types (subclasses,
    tuples, datetimes)."""
    if isinstance(v, datetime | date):
        out.append((path, v.isoformat()))
    elif isinstance(v, Mapping):
        _walk({k: x for k, x in v.items()}, path + ".", out, problems, depth)
    elif isinstance(v, bool):
        out.append((path, bool(v)))
    elif isinstance(v, str):
        out.append((path, str(v)))
    elif isinstance(v, int):
        if _check_json(int(v), path, problems):
            out.append((path, int(v) if -_EXACT <= v <= _EXACT else float(v)))
    elif isinstance(v, float):
        if _check_json(float(v), path, problems):
            out.append((path, float(v)))
    elif isinstance(v, tuple):
        if _check_json(list(v), path, problems, depth):
            out.append((path, _plain(v)))
    else:
        problems.append(IngestProblem(path, f"not a JSON value ({type(v).__name__})"))


def _plain(v: object) -> Any:
    """A JSON-compatible copy of an array (tuples become lists)."""
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _check_json(v: object, path: str, problems: list[IngestProblem], depth: int = 1) -> bool:
    """Whether a value is JSON: string keys, finite numbers within 64 bits, at most
    ``MAX_DEPTH`` levels."""
    if depth > MAX_DEPTH:
        problems.append(IngestProblem(path, f"nested more than {MAX_DEPTH} levels deep"))
        return False
    if v is None or isinstance(v, str | bool):
        return True
    if isinstance(v, int):
        if _INT_MIN <= v <= _INT_MAX:
            return True
        problems.append(IngestProblem(path, "number out of range (beyond 64 bits)"))
        return False
    if isinstance(v, float):
        if math.isfinite(v):
            return True
        problems.append(IngestProblem(path, f"number must be finite, got {v}"))
        return False
    if isinstance(v, list | tuple):
        if all(type(x) is str for x in v):
            return True
        return all([_check_json(x, f"{path}[{i}]", problems, depth + 1) for i, x in enumerate(v)])
    if isinstance(v, Mapping):
        ok = True
        for k, x in v.items():
            if type(k) is not str:
                problems.append(IngestProblem(path, f"keys must be strings, got {k!r}"))
                ok = False
            elif not _check_json(x, f"{path}.{k}", problems, depth + 1):
                ok = False
        return ok
    if isinstance(v, datetime | date):
        return True
    problems.append(IngestProblem(path, f"not a JSON value ({type(v).__name__})"))
    return False


def _object(raw: Mapping[str, Any], name: str, problems: list[IngestProblem]) -> Mapping[str, Any]:
    v = raw.get(name)
    if v is None:
        return {}
    if type(v) is dict or isinstance(v, Mapping):
        return v
    problems.append(IngestProblem(name, f"expected an object, got {_json_type(v)}"))
    return {}


def parse_message(raw: object, *, flatten: bool = True) -> Message:
    """Validate and normalise one Segment message; raises ``IngestError`` naming
    every bad field.

    ``flatten=False`` skips walking properties/context/traits (``leaves`` stays
    empty): for messages straight from ``orjson.loads``, whose values are JSON by
    construction, and whose objects the store flattens in bulk.
    """
    if not flatten and type(raw) is dict:
        msg = _plain_message(raw)
        if msg is not None:
            return msg
    if not isinstance(raw, Mapping):
        raise IngestError([IngestProblem("", f"expected a JSON object, got {_json_type(raw)}")])
    problems: list[IngestProblem] = []

    type_ = raw.get("type")
    if type_ is None:
        problems.append(IngestProblem("type", "missing"))
    elif not isinstance(type_, str):
        problems.append(IngestProblem("type", f"expected a string, got {_json_type(type_)}"))
        type_ = None
    elif type_ not in MESSAGE_TYPES:
        low = type_.lower()
        if low in MESSAGE_TYPES:
            type_ = low
        else:
            known = ", ".join(sorted(MESSAGE_TYPES))
            problems.append(IngestProblem("type", f'unknown message type "{type_}" ({known})'))
            type_ = None

    ts_raw = raw.get("timestamp")
    timestamp = None
    if ts_raw is None:
        problems.append(IngestProblem("timestamp", "missing"))
    else:
        timestamp = parse_time(ts_raw, "timestamp", problems)
    received_at = sent_at = None
    if "receivedAt" in raw or "received_at" in raw:
        key, v = _pick(raw, "received_at", problems)
        if v is not None:
            received_at = parse_time(v, key, problems)
    if "sentAt" in raw or "sent_at" in raw:
        key, v = _pick(raw, "sent_at", problems)
        if v is not None:
            sent_at = parse_time(v, key, problems)

    user_id = _id(raw, "user_id", "userId", problems)
    anonymous_id = _id(raw, "anonymous_id", "anonymousId", problems)
    previous_id = _id(raw, "previous_id", "previousId", problems)
    group_id = _id(raw, "group_id", "groupId", problems)
    message_id = _id(raw, "message_id", "messageId", problems)

    event = raw.get("event")
    if event is not None and not isinstance(event, str):
        problems.append(IngestProblem("event", f"expected a string, got {_json_type(event)}"))
    elif type_ == "track" and not event:
        problems.append(IngestProblem("event", "missing (required for track)"))
    if type_ == "alias":
        if previous_id is None:
            problems.append(IngestProblem("previous_id", "missing (alias needs previous_id)"))
        if user_id is None:
            problems.append(IngestProblem("user_id", "missing (alias needs user_id)"))
    elif user_id is None and anonymous_id is None:
        problems.append(
            IngestProblem("user_id", "missing (a message needs user_id or anonymous_id)")
        )
    if type_ == "group" and group_id is None:
        problems.append(IngestProblem("group_id", "missing (required for group)"))

    properties = _object(raw, "properties", problems)
    context = _object(raw, "context", problems)
    traits = _object(raw, "traits", problems)
    if type_ in ("page", "screen"):
        extra = {}
        for name in ("name", "category"):
            v = raw.get(name)
            if v is None:
                continue
            if isinstance(v, str):
                extra[name] = v
            else:
                problems.append(IngestProblem(name, f"expected a string, got {_json_type(v)}"))
        if extra:
            properties = {**properties, **extra}

    leaves: list[Leaf] = []
    if flatten:
        _walk(properties, "properties.", leaves, problems)
        _walk(context, "context.", leaves, problems)
        _walk(traits, "traits.", leaves, problems)
    if problems:
        raise IngestError(problems)
    assert timestamp is not None
    msg = Message(
        type=cast(MessageType, type_),
        message_id=message_id or "",
        timestamp=timestamp,
        event=event,
        user_id=user_id,
        anonymous_id=anonymous_id,
        previous_id=previous_id,
        group_id=group_id,
        received_at=received_at,
        sent_at=sent_at,
        properties=properties,
        context=context,
        traits=traits,
        leaves=tuple(leaves),
    )
    if message_id is None:
        msg = replace(msg, message_id=derive_message_id(msg))
    return msg


_SNAKE_KEYS: Final = frozenset(snake for snake, _ in ALIASES.values())
_PLAIN_TYPES: Final = frozenset({"track", "identify", "alias", "group"})
"""Types whose message ``_plain_message`` builds (page and screen move their
``name``/``category`` into properties: the general path does that)."""


def _plain_time(v: object) -> datetime | None:
    """``parse_time`` for a value that parses (None: let ``parse_message`` say why).
    A date and time ending in ``Z`` is read without it: an aware datetime and its
    conversion back cost several times the naive one."""
    if type(v) is str:
        try:
            if v[-1:] == "Z" and ("T" in v or " " in v):
                t = datetime.fromisoformat(v[:-1])
                return t if t.tzinfo is None else None
            t = datetime.fromisoformat(v)
        except ValueError:
            return None
    elif isinstance(v, datetime):
        t = v
    else:
        return None
    return naive_utc(t)


def _plain_message(raw: dict[str, Any]) -> Message | None:
    """``parse_message(raw, flatten=False)`` for the shape a tracking library sends
    (camelCase keys, string ids, a message id, ISO timestamps), in about a third of
    its time; None for anything else (snake_case spellings, other types of values,
    a problem, a page or screen call), which the general path then handles.  The
    server's writer parses every ingested message once: this is most of its Python
    per event.  ``tests/unit/model/test_events.py`` checks both paths agree."""
    type_ = raw.get("type")
    if type_ not in _PLAIN_TYPES or not _SNAKE_KEYS.isdisjoint(raw):
        return None
    get = raw.get
    message_id = get("messageId")
    user_id = get("userId")
    anonymous_id = get("anonymousId")
    if type(message_id) is not str or not message_id:
        return None
    if user_id is not None and (type(user_id) is not str or not user_id):
        return None
    if anonymous_id is not None and (type(anonymous_id) is not str or not anonymous_id):
        return None
    previous_id = get("previousId")
    group_id = get("groupId")
    if previous_id is not None and (type(previous_id) is not str or not previous_id):
        return None
    if group_id is not None and (type(group_id) is not str or not group_id):
        return None
    event = get("event")
    if event is not None and type(event) is not str:
        return None
    if type_ == "track":
        if not event:
            return None
    elif type_ == "alias":
        if previous_id is None or user_id is None:
            return None
    elif type_ == "group" and group_id is None:
        return None
    if user_id is None and anonymous_id is None:
        return None
    timestamp = _plain_time(get("timestamp"))
    if timestamp is None:
        return None
    received_at = sent_at = None
    v = get("receivedAt")
    if v is not None:
        received_at = _plain_time(v)
        if received_at is None:
            return None
    v = get("sentAt")
    if v is not None:
        sent_at = _plain_time(v)
        if sent_at is None:
            return None
    properties = get("properties")
    if properties is None:
        properties = {}
    elif type(properties) is not dict:
        return None
    context = get("context")
    if context is None:
        context = {}
    elif type(context) is not dict:
        return None
    traits = get("traits")
    if traits is None:
        traits = {}
    elif type(traits) is not dict:
        return None
    return Message(
        type_,
        message_id,
        timestamp,
        event,
        user_id,
        anonymous_id,
        previous_id,
        group_id,
        received_at,
        sent_at,
        properties,
        context,
        traits,
    )


def derive_message_id(msg: Message) -> str:
    """A stable id from the message's content (delivery times excluded), so the
    same message without an id is still stored once."""
    body = msg.to_dict()
    for name in ("message_id", "received_at", "sent_at"):
        body.pop(name, None)
    try:
        data = orjson.dumps(body, default=_plain_default, option=orjson.OPT_SORT_KEYS)
    except TypeError as e:  # nested too deeply for orjson
        problem = IngestProblem("message_id", f"missing, and none can be derived: {e}")
        raise IngestError([problem]) from e
    digest = hashlib.blake2b(data, digest_size=16)
    return DERIVED_ID_PREFIX + digest.hexdigest()


def _plain_default(v: object) -> Any:
    if isinstance(v, Mapping):
        return dict(v)
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, date):
        return v.isoformat()
    raise TypeError(f"not a JSON value ({type(v).__name__})")
