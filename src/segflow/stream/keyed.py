"""One profile's step on a keyed stream processor, free of any processor's API.

A keyed host (Spark's ``transformWithStateInPandas``, a Flink ``KeyedProcessFunction``,
a Kafka consumer group) hands each profile's inputs to ``KeyedStep``, keeps the state
bytes it returns in its keyed state, and sets one event-time timer at the returned
deadline.  Everything about segments stays in the engine; this module only moves bytes
and instants.

Inputs arrive resolved to a profile id (identity resolution runs upstream, before the
stream is keyed).  An input is a track/page call (``name`` set, ``payload`` its fields)
or an identify call (``name`` None, ``payload`` its traits, each one trait write); it is
applied with ``now`` = its own timestamp, so a profile's clock is event time.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from segflow.model.changes import LoggedChange
from segflow.model.definition import call_name
from segflow.model.time import from_us
from segflow.plan.planner import Plan
from segflow.realtime import Change, ProfileEngine, ProfileState, RealtimeRunner, VirtualClock
from segflow.realtime.values import NEVER

CLOCK_KEY: Final = ""
"""The key of clock ticks: rows that only move the watermark (no profile has this id)."""

FIELD_PREFIXES: Final = ("properties.", "context.")
TRAIT_PREFIX: Final = "traits."


class Message(NamedTuple):
    """One resolved input: ``seq`` its offset in the log (arrival order), ``ts`` its
    event time in µs, ``name`` the event name (None: an identify call), ``payload`` the
    flattened fields (or the traits written), ``message_id`` the message's id."""

    seq: int
    profile_id: str
    ts: int
    name: str | None
    payload: Mapping[str, Any]
    message_id: str


@dataclass(frozen=True, slots=True)
class Step:
    """What one call of ``KeyedStep`` leaves behind: the state to keep (serialised), the
    profile's next deadline in µs (None: no timer) and the changes to emit."""

    state: bytes
    deadline: int | None
    changes: list[Change]


class KeyedStep:
    """The engine as a keyed operator: ``inputs`` folds a profile's new messages (in
    arrival order), ``timer`` lets its event time pass; both take and give the state as
    bytes (pickle), the form a processor's keyed state stores."""

    def __init__(self, engine: ProfileEngine) -> None:
        self.engine = engine

    def load(self, profile_id: str, blob: bytes | None) -> ProfileState:
        if blob is None:
            return self.engine.new_state(profile_id)
        st = pickle.loads(blob)
        if not isinstance(st, ProfileState) or st.profile_id != profile_id:
            raise ValueError(f"the keyed state of {profile_id!r} holds no state of that profile")
        return st

    def _done(self, st: ProfileState, changes: list[Change]) -> Step:
        nxt = st.nxt
        blob = pickle.dumps(st, protocol=pickle.HIGHEST_PROTOCOL)
        return Step(blob, nxt if nxt < NEVER else None, changes)

    def inputs(self, profile_id: str, blob: bytes | None, messages: Iterable[Message]) -> Step:
        """Apply ``messages`` (one profile's, in arrival order), each at its timestamp."""
        engine = self.engine
        st = self.load(profile_id, blob)
        out: list[Change] = []
        for m in messages:
            if m.name is None:
                for key, value in m.payload.items():
                    out += engine.set_trait_us(st, m.ts, m.message_id, key, value, m.ts)
            else:
                out += engine.apply_us(st, m.ts, m.name, m.payload, m.ts)
        return self._done(st, out)

    def timer(self, profile_id: str, blob: bytes, upto: int) -> Step:
        """Fire every deadline at or before ``upto`` µs, each at its own instant."""
        st = self.load(profile_id, blob)
        return self._done(st, self.engine.advance_us(st, upto))


def timer_ms(deadline: int) -> int:
    """The event-time timer (processors count ms) for a deadline in µs: the first
    watermark at which the deadline lies strictly before the watermark's instant."""
    return deadline // 1000 + 1


def fired_upto(watermark_ms: int) -> int:
    """The instant (µs) a timer fired at ``watermark_ms`` advances the engine to: every
    deadline strictly before the watermark fires; one on it waits for the inputs
    stamped there (a later input is never stamped before the watermark)."""
    return watermark_ms * 1000 - 1


def logged(changes: Iterable[Change], plan: Plan) -> list[LoggedChange]:
    """The changes in the change log's shape, with each segment's definition version."""
    version = {sid: s.version for sid, s in plan.segments.items()}
    return [LoggedChange(*c, version[c.segment_id]) for c in changes]


def run_in_process(engine: ProfileEngine, messages: Sequence[Message], until: int) -> list[Change]:
    """The single-process engine over the same messages: a ``RealtimeRunner`` fed in
    arrival order on event time (``now`` = each message's timestamp), then advanced to
    ``until`` µs.  The reference a keyed host's change log must equal."""
    start = messages[0].ts if messages else until
    runner = RealtimeRunner(engine, clock=VirtualClock(from_us(start)))
    for m in messages:
        if m.name is None:
            for key, value in m.payload.items():
                runner.set_trait_us(m.profile_id, m.ts, m.message_id, key, value, m.ts)
        else:
            runner.ingest_us(m.profile_id, m.ts, m.name, m.payload, m.ts)
    runner.advance_to(from_us(until))
    return runner.log


def messages_from_table(table: pa.Table, paths: Iterable[str] | None = None) -> list[Message]:
    """Track, page and identify calls of a flat event table (the demo shop's and
    ``segflow ingest``'s format) as messages in timestamp order (ties: table order).

    The profile id is the user id, else the anonymous id: a stand-in for the upstream
    identity resolution that keeps no merges.  ``paths``: the event field paths to keep
    (what the plan reads); None keeps every ``properties.``/``context.`` column."""
    keep = None if paths is None else set(paths)
    kinds = table.column("type")
    table = table.filter(pc.is_in(kinds, pa.array(["track", "page", "identify"])))
    table = table.take(pc.sort_indices(table, sort_keys=[("timestamp", "ascending")]))
    cols = table.column_names
    fields = [c for c in cols if c.startswith(FIELD_PREFIXES) and (keep is None or c in keep)]
    traits = [(c, c.removeprefix(TRAIT_PREFIX)) for c in cols if c.startswith(TRAIT_PREFIX)]
    data: dict[str, list[Any]] = {
        c: table.column(c).to_pylist()
        for c in ("type", "event", "user_id", "anonymous_id", "message_id")
    }
    values = {c: table.column(c).to_pylist() for c in fields + [c for c, _ in traits]}
    ts: list[Any] = table.column("timestamp").cast(pa.int64()).to_pylist()
    out: list[Message] = []
    for i in range(table.num_rows):
        pid = data["user_id"][i] or data["anonymous_id"][i]
        kind = data["type"][i]
        if kind == "identify":
            payload = {k: v for c, k in traits if (v := values[c][i]) is not None}
            out.append(Message(i, pid, ts[i], None, payload, data["message_id"][i]))
            continue
        name = call_name(kind, data["event"][i])
        row = {c: v for c in fields if (v := values[c][i]) is not None}
        out.append(Message(i, pid, ts[i], name, row, data["message_id"][i]))
    return out


def encode_payload(payload: Mapping[str, Any]) -> str:
    """A payload as the JSON text an input row carries (types round-trip exactly)."""
    return orjson.dumps(payload).decode()


def decode_payload(text: str) -> dict[str, Any]:
    value = orjson.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"an input's payload must be a JSON object, got {text[:80]!r}")
    return value


__all__ = [
    "CLOCK_KEY",
    "KeyedStep",
    "Message",
    "Step",
    "decode_payload",
    "encode_payload",
    "fired_upto",
    "logged",
    "messages_from_table",
    "run_in_process",
    "timer_ms",
]
