"""One profile's step on a keyed stream processor, free of any processor's API.

A keyed host (Spark's ``transformWithStateInPandas``, a Flink ``KeyedProcessFunction``,
a Kafka consumer group) hands each profile's records to ``KeyedStep``, keeps the state
bytes it returns in its keyed state, and sets one event-time timer at the returned
deadline.  Everything about segments stays in the engine; this module only moves bytes
and instants.

Records arrive resolved to a profile id by the resolution stage upstream
(``segflow.stream.identity``), each applied at its own timestamp (a profile's clock is
event time):

* ``Message``: a track/page call (``name`` set, ``payload`` its fields) or an identify
  call (``name`` None, ``payload`` its traits, each one trait write);
* ``Merge``: profiles were merged into this one; the state is rebuilt from the union
  history and the differences are logged with reason ``merged``;
* ``MergedAway``: this profile was merged into another; its memberships exit with
  reason ``merged`` and the key is cleared, timer included;
* ``Replan``: another plan is in force (a segment saved, changed or deleted); the state
  is rebuilt under it from history and the differences are logged with reason
  ``definition_changed`` (``deleted`` for a segment gone).

These are the steps the single-process host takes (``segflow.service.live``: a merge's
``catch_up``, a save's hand-over); ``segflow.stream.reference`` runs them in one process.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import orjson

from segflow.model.changes import LoggedChange, Reason
from segflow.model.time import from_us
from segflow.realtime import Change, ProfileEngine, ProfileState
from segflow.realtime.values import NEVER

CLOCK_KEY: Final = ""
"""The key of clock ticks: rows that only move the watermark (no profile has this id)."""


class Message(NamedTuple):
    """One resolved input: ``seq`` its offset in the log (arrival order), ``ts`` its
    event time in µs, ``name`` the event name (None: an identify call), ``payload`` the
    flattened fields (or the traits written), ``message_id`` the message's id, ``plan``
    the number of the plan in force when it arrived."""

    seq: int
    profile_id: str
    ts: int
    name: str | None
    payload: Mapping[str, Any]
    message_id: str
    plan: int = 0


class Merge(NamedTuple):
    """Profiles ``merged`` were merged into ``profile_id`` by a call at ``ts`` µs:
    ``history`` is the surviving profile's whole history of inputs after the merge (its
    own, the merged-away profiles' and the merging call's), which the state is rebuilt
    from.  The merging call reaches the keyed stage only inside it."""

    seq: int
    profile_id: str
    ts: int
    merged: tuple[str, ...]
    history: tuple[Message, ...]
    plan: int = 0


class MergedAway(NamedTuple):
    """Profile ``profile_id`` was merged into ``into`` at ``ts`` µs: its memberships
    exit, its state and timer are cleared (its identities now resolve to ``into``)."""

    seq: int
    profile_id: str
    ts: int
    into: str
    plan: int = 0


class Replan(NamedTuple):
    """From ``ts`` µs on, ``profile_id`` is evaluated under the plan numbered ``plan``
    (a segment saved, changed or deleted): its state is rebuilt from ``history``."""

    seq: int
    profile_id: str
    ts: int
    plan: int
    history: tuple[Message, ...]


Record = Message | Merge | MergedAway | Replan
"""What the keyed stage receives, keyed by ``profile_id`` and ordered by ``seq``."""


@dataclass(frozen=True, slots=True)
class Step:
    """What one call of ``KeyedStep`` leaves behind: the state to keep (serialised; None:
    clear the key and its timer, the profile was merged away), the profile's next
    deadline in µs (None: no timer) and the changes to emit, in the change log's shape."""

    state: bytes | None
    deadline: int | None
    changes: list[LoggedChange]


def versions(engine: ProfileEngine) -> dict[str, int]:
    """Each segment's definition version in the engine's plan."""
    return {sid: s.version for sid, s in engine.plan.segments.items()}


def logged_by(engine: ProfileEngine, changes: Iterable[Change]) -> list[LoggedChange]:
    """The engine's changes in the change log's shape, with its plan's versions."""
    version = versions(engine)
    return [LoggedChange(*c, version[c.segment_id]) for c in changes]


def rebuilt(
    engine: ProfileEngine, profile_id: str, history: Iterable[Message], t: int
) -> ProfileState:
    """A state from a profile's whole history as of ``t`` µs (inputs in the store's
    order: by timestamp, then message id)."""
    rows = sorted(history, key=lambda m: (m.ts, m.message_id))
    return engine.rebuild_us(
        profile_id,
        [(m.ts, m.name, m.payload) for m in rows if m.name is not None],
        [(m.ts, m.message_id, k, v) for m in rows if m.name is None for k, v in m.payload.items()],
        (),
        t,
    )


def merge_away(engine: ProfileEngine, st: ProfileState, ts: int) -> list[Change]:
    """The merged-away profile at ``ts``: deadlines up to then fire, then every
    membership exits with reason ``merged`` (at ``ts``, or the state's later watermark)."""
    out = engine.advance_us(st, ts)
    at = from_us(max(ts, st.now))
    pid = st.profile_id
    out += [Change(sid, pid, False, at, Reason.MERGED) for sid in sorted(engine.memberships(st))]
    return out


def merge_into(
    engine: ProfileEngine,
    old: ProfileState | None,
    profile_id: str,
    history: Iterable[Message],
    ts: int,
) -> tuple[ProfileState, list[Change]]:
    """The surviving profile at ``ts``: its own deadlines up to then fire, its state is
    rebuilt from the union history as of ``ts`` (or its later watermark) and the
    membership differences are logged then with reason ``merged``."""
    out: list[Change] = []
    before: set[str] = set()
    t = ts
    if old is not None:
        out += engine.advance_us(old, ts)
        before = engine.memberships(old)
        t = max(ts, old.now)
    st = rebuilt(engine, profile_id, history, t)
    after = engine.memberships(st)
    at = from_us(t)
    out += [
        Change(sid, profile_id, sid in after, at, Reason.MERGED)
        for sid in engine.segment_ids
        if (sid in before) != (sid in after)
    ]
    return st, out


def switch_plan(
    old_engine: ProfileEngine,
    new_engine: ProfileEngine,
    old: ProfileState | None,
    profile_id: str,
    history: Iterable[Message],
    ts: int,
) -> tuple[ProfileState, list[LoggedChange]]:
    """The profile moves to ``new_engine``'s plan at ``ts``: deadlines up to then fire
    under the old plan, the state is rebuilt under the new one from history, and the
    differences are logged then, with reason ``definition_changed`` (an exit from a
    segment the new plan no longer has: ``deleted``, with its last version)."""
    out: list[LoggedChange] = []
    was: set[str] = set()
    t = ts
    if old is not None:
        out += logged_by(old_engine, old_engine.advance_us(old, ts))
        was = old_engine.memberships(old)
        t = max(ts, old.now)
    st = rebuilt(new_engine, profile_id, history, t)
    now = new_engine.memberships(st)
    at = from_us(t)
    new_v, old_v = versions(new_engine), versions(old_engine)
    for sid in sorted(now - was):
        out.append(LoggedChange(sid, profile_id, True, at, Reason.DEFINITION_CHANGED, new_v[sid]))
    for sid in sorted(was - now):
        kept = sid in new_v
        reason = Reason.DEFINITION_CHANGED if kept else Reason.DELETED
        version = new_v[sid] if kept else old_v[sid]
        out.append(LoggedChange(sid, profile_id, False, at, reason, version))
    out += logged_by(new_engine, new_engine.advance_us(st, t))
    return st, out


Kept = tuple[int, ProfileState]
"""A key's state: the number of the plan it is evaluated under, and the engine's state."""


class KeyedStep:
    """The engine as a keyed operator: ``inputs`` folds a profile's new records (in
    arrival order), ``timer`` lets its event time pass; both take and give the state as
    bytes (pickle), the form a processor's keyed state stores.  ``engines``: the plans'
    engines by plan number (one engine: plan 0 only)."""

    def __init__(self, engines: ProfileEngine | Sequence[ProfileEngine]) -> None:
        self.engines = (engines,) if isinstance(engines, ProfileEngine) else tuple(engines)

    def engine(self, plan: int) -> ProfileEngine:
        if not 0 <= plan < len(self.engines):
            raise ValueError(f"no plan numbered {plan} (the step knows {len(self.engines)})")
        return self.engines[plan]

    def load(self, profile_id: str, blob: bytes | None) -> Kept | None:
        if blob is None:
            return None
        kept = pickle.loads(blob)
        if (
            not isinstance(kept, tuple)
            or len(kept) != 2
            or not isinstance(kept[1], ProfileState)
            or kept[1].profile_id != profile_id
        ):
            raise ValueError(f"the keyed state of {profile_id!r} holds no state of that profile")
        return kept

    def _done(self, kept: Kept | None, changes: list[LoggedChange]) -> Step:
        if kept is None:
            return Step(None, None, changes)
        nxt = kept[1].nxt
        blob = pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL)
        return Step(blob, nxt if nxt < NEVER else None, changes)

    def inputs(self, profile_id: str, blob: bytes | None, records: Iterable[Record]) -> Step:
        """Fold ``records`` (one profile's, in arrival order), each at its timestamp."""
        kept = self.load(profile_id, blob)
        out: list[LoggedChange] = []
        for r in records:
            if isinstance(r, Message):
                if kept is None:
                    kept = (r.plan, self.engine(r.plan).new_state(profile_id))
                plan, st = kept
                engine = self.engine(plan)
                if r.name is None:
                    for key, value in r.payload.items():
                        out += logged_by(
                            engine, engine.set_trait_us(st, r.ts, r.message_id, key, value, r.ts)
                        )
                else:
                    out += logged_by(engine, engine.apply_us(st, r.ts, r.name, r.payload, r.ts))
            elif isinstance(r, MergedAway):
                if kept is not None:
                    engine = self.engine(kept[0])
                    out += logged_by(engine, merge_away(engine, kept[1], r.ts))
                kept = None
            elif isinstance(r, Merge):
                if kept is not None and kept[0] != r.plan:
                    raise ValueError(
                        f"{profile_id!r} is under plan {kept[0]}, its merge record under {r.plan}"
                    )
                engine = self.engine(r.plan)
                old = None if kept is None else kept[1]
                st, changes = merge_into(engine, old, profile_id, r.history, r.ts)
                out += logged_by(engine, changes)
                kept = (r.plan, st)
            else:
                old_engine = self.engine(r.plan if kept is None else kept[0])
                old = None if kept is None else kept[1]
                st, switched = switch_plan(
                    old_engine, self.engine(r.plan), old, profile_id, r.history, r.ts
                )
                out += switched
                kept = (r.plan, st)
        return self._done(kept, out)

    def timer(self, profile_id: str, blob: bytes, upto: int) -> Step:
        """Fire every deadline at or before ``upto`` µs, each at its own instant."""
        kept = self.load(profile_id, blob)
        if kept is None:
            return Step(None, None, [])
        engine = self.engine(kept[0])
        return self._done(kept, logged_by(engine, engine.advance_us(kept[1], upto)))


def timer_ms(deadline: int) -> int:
    """The event-time timer (processors count ms) for a deadline in µs: the first
    watermark at which the deadline lies strictly before the watermark's instant."""
    return deadline // 1000 + 1


def fired_upto(watermark_ms: int) -> int:
    """The instant (µs) a timer fired at ``watermark_ms`` advances the engine to: every
    deadline strictly before the watermark fires; one on it waits for the inputs
    stamped there (a later input is never stamped before the watermark)."""
    return watermark_ms * 1000 - 1


def encode_payload(payload: Mapping[str, Any]) -> str:
    """A payload as the JSON text an input row carries (types round-trip exactly)."""
    return orjson.dumps(payload).decode()


def decode_payload(text: str) -> dict[str, Any]:
    value = orjson.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"an input's payload must be a JSON object, got {text[:80]!r}")
    return value


KIND_MESSAGE: Final = "message"
KIND_MERGE: Final = "merge"
KIND_MERGED_AWAY: Final = "merged_away"
KIND_REPLAN: Final = "replan"


def _history_json(history: Iterable[Message]) -> list[list[Any]]:
    return [[m.seq, m.ts, m.name, m.payload, m.message_id] for m in history]


def _history(profile_id: str, rows: Any) -> tuple[Message, ...]:
    if not isinstance(rows, list):
        raise ValueError(f"a record's history must be a JSON array, got {str(rows)[:80]!r}")
    return tuple(Message(int(s), profile_id, int(t), n, p, str(i)) for s, t, n, p, i in rows)


def record_payload(r: Record) -> tuple[str, str]:
    """A record's kind and JSON payload as an input row carries them (a message: its
    fields; a merge: the keys merged and the union history; a merged-away key: where it
    went; a replan: the history)."""
    if isinstance(r, Message):
        return KIND_MESSAGE, encode_payload(r.payload)
    if isinstance(r, Merge):
        body = {"merged": list(r.merged), "history": _history_json(r.history)}
        return KIND_MERGE, encode_payload(body)
    if isinstance(r, MergedAway):
        return KIND_MERGED_AWAY, encode_payload({"into": r.into})
    return KIND_REPLAN, encode_payload({"history": _history_json(r.history)})


def record_of(
    kind: str,
    seq: int,
    profile_id: str,
    ts: int,
    name: str | None,
    payload: str,
    message_id: str,
    plan: int,
) -> Record:
    """The record an input row carries (``record_payload``'s inverse)."""
    body = decode_payload(payload)
    if kind == KIND_MESSAGE:
        return Message(seq, profile_id, ts, name, body, message_id, plan)
    if kind == KIND_MERGE:
        merged = tuple(str(p) for p in body["merged"])
        return Merge(seq, profile_id, ts, merged, _history(profile_id, body["history"]), plan)
    if kind == KIND_MERGED_AWAY:
        return MergedAway(seq, profile_id, ts, str(body["into"]), plan)
    if kind == KIND_REPLAN:
        return Replan(seq, profile_id, ts, plan, _history(profile_id, body["history"]))
    raise ValueError(f"unknown record kind {kind!r}")


__all__ = [
    "CLOCK_KEY",
    "KeyedStep",
    "Merge",
    "MergedAway",
    "Message",
    "Record",
    "Replan",
    "Step",
    "decode_payload",
    "encode_payload",
    "fired_upto",
    "logged_by",
    "merge_away",
    "merge_into",
    "rebuilt",
    "record_of",
    "record_payload",
    "switch_plan",
    "timer_ms",
    "versions",
]
