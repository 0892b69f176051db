"""Identity resolution before the keyed stage: raw calls in, records keyed by profile out.

A keyed stream needs each input's profile id before it is keyed, and a profile id can
change: an identify call links an anonymous visitor to a user, an alias links two user
ids.  ``IdentityGraph`` resolves identities as the store does (``DuckDBStore``'s
identity resolution): nodes are ``user`` and ``anonymous`` ids and the ``previous`` ids
of alias calls; a call links its user id with its anonymous id (an alias: its user id
with its previous id), and a previous id links to the user or anonymous id with the
same value whenever either arrives.  A linked set's profile id is its user id seen first
(earliest event timestamp, then the smallest id), else its earliest anonymous id; when a
call changes that, the old profiles merge into the new one.

``Resolver`` is the upstream stage of the keyed topology: it keeps the identity graph and
each profile's history of engine inputs (the prototype's history store), numbers its
output, and turns each call into records for the keyed stage:

* a plain call becomes a ``Message`` for its profile;
* a call that merges profiles becomes a ``MergedAway`` for each merged-away key and a
  ``Merge`` for the surviving key carrying the union history (the call included);
* a ``PlanChange`` (a saved, changed or deleted segment) becomes a ``Replan`` for every
  known profile carrying its history, and every later record carries the new plan number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from segflow.model.definition import call_name
from segflow.stream.keyed import (
    Merge,
    MergedAway,
    Message,
    Record,
    Replan,
)

FIELD_PREFIXES: Final = ("properties.", "context.")
TRAIT_PREFIX: Final = "traits."
INPUT_TYPES: Final = frozenset({"track", "page", "screen", "identify"})
"""The call types the engine reads (an alias or a group call only links or names)."""
KINDS: Final = ("user", "anonymous", "previous")
"""Identity kinds, in the order a linked set picks its profile id by."""


class Call(NamedTuple):
    """One raw call before identity resolution: ``seq`` its offset in the log, ``ts`` its
    event time in µs, ``type`` the Segment type (track, page, identify, alias), ``name``
    the event name the evaluators match (None for identify and alias), ``payload`` the
    flattened fields (identify: the traits written)."""

    seq: int
    ts: int
    type: str
    user_id: str | None
    anonymous_id: str | None
    previous_id: str | None
    name: str | None
    payload: Mapping[str, Any]
    message_id: str

    @property
    def is_input(self) -> bool:
        """Whether the engine reads the call (track, page, screen and identify calls)."""
        return self.type in INPUT_TYPES


class PlanChange(NamedTuple):
    """From the ``seq``-th item of the log on, at ``ts`` µs, the plan numbered ``plan``
    is in force (a segment saved, changed or deleted)."""

    seq: int
    ts: int
    plan: int


Item = Call | PlanChange
"""What the log upstream of the resolution stage holds."""


class Resolution(NamedTuple):
    """A call's profile after resolution, and the profiles it merged into it."""

    profile_id: str
    merged: tuple[str, ...]


Node = tuple[str, str]


class IdentityGraph:
    """The identity graph, resolved one call at a time (see the module)."""

    def __init__(self) -> None:
        self._parent: dict[Node, Node] = {}
        self._members: dict[Node, list[Node]] = {}
        """A root's linked set."""
        self._first: dict[Node, int] = {}
        """Each identity's first seen instant (µs)."""
        self._profile: dict[Node, str] = {}
        """A root's profile id."""
        self._by_value: dict[str, list[Node]] = {}

    def _root(self, node: Node) -> Node:
        parent = self._parent
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:
            parent[node], node = root, parent[node]
        return root

    def _union(self, a: Node, b: Node) -> None:
        ra, rb = self._root(a), self._root(b)
        if ra == rb:
            return
        if len(self._members[ra]) < len(self._members[rb]):
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._members[ra] += self._members.pop(rb)

    def _add(self, node: Node, ts: int) -> None:
        if node in self._parent:
            self._first[node] = min(self._first[node], ts)
            return
        self._parent[node] = node
        self._members[node] = [node]
        self._first[node] = ts
        self._by_value.setdefault(node[1], []).append(node)

    def profile_of(self, kind: str, value: str) -> str | None:
        """The profile an identity belongs to now (None: never seen)."""
        node = (kind, value)
        return self._profile[self._root(node)] if node in self._parent else None

    def resolve(self, call: Call) -> Resolution:
        """Add the call's identities and links; its profile and the profiles merged."""
        nodes: list[Node] = []
        for kind, value in zip(
            KINDS, (call.user_id, call.anonymous_id, call.previous_id), strict=True
        ):
            if value is not None:
                nodes.append((kind, value))
        if not nodes or nodes[0][0] == "previous":
            raise ValueError(
                f"call {call.message_id!r} names no user id or anonymous id to resolve"
            )
        if call.previous_id is not None and call.user_id is None:
            raise ValueError(f"alias call {call.message_id!r} needs a user id")
        links: list[tuple[Node, Node]] = []
        if call.user_id is not None:
            for kind, value in (("anonymous", call.anonymous_id), ("previous", call.previous_id)):
                if value is not None:
                    links.append((("user", call.user_id), (kind, value)))
        touched: set[Node] = set()
        for node in nodes:
            for other in self._by_value.get(node[1], ()):
                if (other[0] == "previous") != (node[0] == "previous"):
                    links.append((node, other))
                    touched.add(other)
            if node in self._parent:
                touched.add(node)
        old = {self._profile[self._root(n)] for n in touched}
        for node in nodes:
            self._add(node, call.ts)
        for a, b in links:
            self._union(a, b)
        root = self._root(nodes[0])
        first = self._first
        pick = min(
            self._members[root],
            key=lambda n: (n[0] != "user", n[0] != "anonymous", first[n], n[1]),
        )
        profile = self._profile[root] = pick[1]
        return Resolution(profile, tuple(sorted(old - {profile})))


class Resolver:
    """The resolution stage (see the module): ``feed`` an item of the log, get the
    records for the keyed stage, numbered in the order they are emitted."""

    def __init__(self, plan: int = 0) -> None:
        self.graph = IdentityGraph()
        self.plan = plan
        self.histories: dict[str, list[Message]] = {}
        """Each profile's engine inputs (its own and those of the profiles merged into
        it), in arrival order: the history store a merge or a plan change reads."""
        self._seq = 0

    def _next(self) -> int:
        self._seq += 1
        return self._seq - 1

    def feed(self, item: Item) -> list[Record]:
        if isinstance(item, PlanChange):
            return self.replan(item.plan, item.ts)
        pid, merged = self.graph.resolve(item)
        histories = self.histories
        out: list[Record] = []
        for a in merged:  # the merged-away inputs now belong to pid, as in the store
            out.append(MergedAway(self._next(), a, item.ts, pid, self.plan))
            moved = [m._replace(profile_id=pid) for m in histories.pop(a, ())]
            histories.setdefault(pid, []).extend(moved)
        message = None
        if item.is_input:
            message = Message(0, pid, item.ts, item.name, item.payload, item.message_id, self.plan)
            histories.setdefault(pid, []).append(message._replace(seq=item.seq))
        if merged:
            history = histories.setdefault(pid, [])
            history.sort(key=lambda m: m.seq)
            out.append(Merge(self._next(), pid, item.ts, merged, tuple(history), self.plan))
        elif message is not None:
            out.append(message._replace(seq=self._next()))
        return out

    def replan(self, plan: int, ts: int) -> list[Record]:
        """Every known profile switches to ``plan`` at ``ts`` µs, rebuilt from history."""
        self.plan = plan
        return [
            Replan(self._next(), pid, ts, plan, tuple(history))
            for pid, history in sorted(self.histories.items())
        ]

    def run(self, items: Iterable[Item]) -> Iterator[Record]:
        for item in items:
            yield from self.feed(item)


def calls_from_table(table: pa.Table, paths: Iterable[str] | None = None) -> list[Call]:
    """Track, page, identify and alias calls of a flat event table (the demo shop's and
    ``segflow ingest``'s format) in timestamp order (ties: table order).  ``paths``:
    the event field paths to keep (what the plan reads); None keeps every
    ``properties.``/``context.`` column."""
    keep = None if paths is None else set(paths)
    table = table.filter(
        pc.is_in(table.column("type"), pa.array(["track", "page", "identify", "alias"]))
    )
    table = table.take(pc.sort_indices(table, sort_keys=[("timestamp", "ascending")]))
    cols = table.column_names
    fields = [c for c in cols if c.startswith(FIELD_PREFIXES) and (keep is None or c in keep)]
    traits = [(c, c.removeprefix(TRAIT_PREFIX)) for c in cols if c.startswith(TRAIT_PREFIX)]
    ids = [c for c in ("user_id", "anonymous_id", "previous_id") if c in cols]
    data: dict[str, list[Any]] = {
        c: table.column(c).to_pylist() for c in ("type", "event", "message_id", *ids)
    }
    none: list[Any] = [None] * table.num_rows
    values = {c: table.column(c).to_pylist() for c in fields + [c for c, _ in traits]}
    ts: list[Any] = table.column("timestamp").cast(pa.int64()).to_pylist()
    out: list[Call] = []
    users, anons, previous = (data.get(c, none) for c in ("user_id", "anonymous_id", "previous_id"))
    for i in range(table.num_rows):
        kind = data["type"][i]
        if kind == "identify":
            payload = {k: v for c, k in traits if (v := values[c][i]) is not None}
            name = None
        elif kind == "alias":
            payload, name = {}, None
        else:
            payload = {c: v for c in fields if (v := values[c][i]) is not None}
            name = call_name(kind, data["event"][i])
        mid = data["message_id"][i]
        out.append(Call(i, ts[i], kind, users[i], anons[i], previous[i], name, payload, mid))
    return out


def as_calls(messages: Iterable[Message]) -> list[Call]:
    """Messages already keyed by profile as calls of that user id (no merges)."""
    return [
        Call(
            m.seq,
            m.ts,
            "track" if m.name is not None else "identify",
            m.profile_id,
            None,
            None,
            m.name,
            m.payload,
            m.message_id,
        )
        for m in messages
    ]


__all__ = [
    "Call",
    "IdentityGraph",
    "Item",
    "PlanChange",
    "Resolution",
    "Resolver",
    "as_calls",
    "calls_from_table",
]
