"""Priority (exclusive) groups: an ordered list of segments, highest priority first,
that puts each profile in at most one of them.

A group adds no new kind of evaluation.  Its resolution desugars into ordinary
segments: the resolved member ``group:segment`` is the segment ``segment`` and none
of the segments listed before it, i.e. ``all: [in_segment: S, not: {any: [in_segment:
H1, ...]}]``.  Every engine (batch SQL, real-time, the reference interpreter) then
evaluates resolutions exactly as it evaluates any segment, so they agree by
construction, and a resolution's changes are logged, streamed and exported like a
segment's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson

from segflow.model.definition import GROUP_SEP, All, AnyOf, InSegment, Not, Segment, closest
from segflow.model.errors import DefinitionError, Problem

SEP: Final = GROUP_SEP
"""Joins a group's id and a member's id into the resolved member's id.  Segment and
group ids never hold it, so a resolved id can never be a saved segment's id."""

GROUP_KEYS: Final = frozenset(
    {"group", "name", "description", "segments", "emit_events", "version"}
)
_ID_RE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


def resolved_id(group_id: str, segment_id: str) -> str:
    """The id of ``segment_id``'s resolved membership in ``group_id``."""
    return f"{group_id}{SEP}{segment_id}"


def split_resolved(segment_id: str) -> tuple[str, str] | None:
    """(group, segment) of a resolved member's id; None for a segment's own id."""
    group, sep, seg = segment_id.partition(SEP)
    return (group, seg) if sep else None


def group_fields(segment_id: str) -> dict[str, str | None]:
    """``group`` and ``group_segment`` of a resolved member's id; both None for a
    segment's own id (the one shape every change and sync record carries)."""
    resolved = split_resolved(segment_id)
    if resolved is None:
        return {"group": None, "group_segment": None}
    return {"group": resolved[0], "group_segment": resolved[1]}


@dataclass(frozen=True, slots=True)
class Group:
    """An ordered list of segments, highest priority first; ``version`` is assigned
    by the registry."""

    id: str
    name: str
    segments: tuple[str, ...]
    description: str = ""
    emit_events: bool = True
    version: int = 0

    def to_dict(self) -> dict[str, object]:
        """Canonical serialisation (what is stored and returned by the API)."""
        out: dict[str, object] = {"group": self.id, "name": self.name}
        if self.description:
            out["description"] = self.description
        out["segments"] = list(self.segments)
        out["emit_events"] = self.emit_events
        if self.version:
            out["version"] = self.version
        return out

    def fingerprint(self) -> str:
        body = self.to_dict()
        body.pop("version", None)
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

    def resolved_ids(self) -> list[str]:
        """The resolved members' ids, in priority order."""
        return [resolved_id(self.id, s) for s in self.segments]

    def resolve(self, names: Mapping[str, Segment] | None = None) -> list[Segment]:
        """The resolved members as segments: ``S and not (any segment listed before S)``.
        ``names`` (the saved segments) lends each its member's name, holdout (the
        same draw, so a profile held out of S's campaign stays held out of its
        resolution's) and ``public`` flag."""
        out: list[Segment] = []
        for i, sid in enumerate(self.segments):
            higher = self.segments[:i]
            own = InSegment(sid)
            condition = (
                All((own, Not(AnyOf(tuple(InSegment(h) for h in higher))))) if higher else own
            )
            member = (names or {}).get(sid)
            label = member.name if member is not None else sid
            out.append(
                Segment(
                    id=resolved_id(self.id, sid),
                    name=f"{self.name}: {label}",
                    condition=condition,
                    description=f"In {sid!r} and in no segment before it in group {self.id!r}",
                    mode="realtime",
                    emit_events=self.emit_events,
                    version=self.version,
                    holdout=member.holdout if member is not None else None,
                    public=member.public if member is not None else False,
                    group=self.id,
                )
            )
        return out


def expand(segments: Mapping[str, Segment], groups: Iterable[Group]) -> dict[str, Segment]:
    """The segments together with every group's resolved members."""
    out = dict(segments)
    for g in groups:
        for seg in g.resolve(segments):
            out[seg.id] = seg
    return out


def with_version(group: Group, version: int) -> Group:
    return replace(group, version=version)


# ---------------------------------------------------------------------------
# parsing


@dataclass(frozen=True, slots=True)
class GroupReport:
    """What parsing one group document found: the group (None when there are
    problems) and every problem, each at its JSON path."""

    group: Group | None
    problems: list[Problem]

    def raise_problems(self) -> Group:
        if self.problems or self.group is None:
            raise DefinitionError(self.problems)
        return self.group


def is_group_document(doc: object) -> bool:
    """A document with a ``group`` key is a group (a segment has an ``id``)."""
    return isinstance(doc, Mapping) and "group" in doc


def parse_group_report(doc: object, prefix: str = "") -> GroupReport:
    problems: list[Problem] = []

    def fail(path: str, message: str) -> None:
        problems.append(Problem(f"{prefix}{path}" if path else prefix.rstrip("."), message))

    if not isinstance(doc, Mapping):
        fail("", f"expected an object, got {_show(doc)}")
        return GroupReport(None, problems)
    for key in doc:
        if key not in GROUP_KEYS:
            near = closest(str(key), GROUP_KEYS, 1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            fail(
                str(key),
                f"unknown key {str(key)!r} ({hint}allowed here: {', '.join(sorted(GROUP_KEYS))})",
            )
    gid = doc.get("group")
    if not isinstance(gid, str) or not _ID_RE.match(gid):
        fail("group", f"{_show(gid)} is not a valid group id (letters, digits, _ . -; at most 128)")
    name = doc.get("name", gid)
    if not isinstance(name, str) or not name:
        fail("name", f"expected a non-empty string, got {_show(name)}")
    description = doc.get("description", "")
    if not isinstance(description, str):
        fail("description", f"expected a string, got {_show(description)}")
    emit = doc.get("emit_events", True)
    if not isinstance(emit, bool):
        fail("emit_events", f"expected true or false, got {_show(emit)}")
    version = doc.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        fail("version", f"expected a non-negative integer, got {_show(version)}")
        version = 0
    raw = doc.get("segments")
    members: list[str] = []
    if not isinstance(raw, list) or not raw:
        fail("segments", f"expected a non-empty list of segment ids, got {_show(raw)}")
    else:
        seen: dict[str, int] = {}
        for i, sid in enumerate(raw):
            if not isinstance(sid, str) or not _ID_RE.match(sid):
                fail(f"segments[{i}]", f"{_show(sid)} is not a segment id")
            elif sid in seen:
                fail(f"segments[{i}]", f"{sid!r} is listed twice (first at segments[{seen[sid]}])")
            else:
                seen[sid] = i
                members.append(sid)
    if problems:
        return GroupReport(None, problems)
    assert isinstance(gid, str) and isinstance(name, str) and isinstance(description, str)
    return GroupReport(
        Group(gid, name, tuple(members), description, bool(emit), int(version)), problems
    )


def parse_group(doc: object) -> Group:
    """Parse one group document (YAML or JSON already loaded)."""
    return parse_group_report(doc).raise_problems()


def membership_problems(
    groups: Mapping[str, Group],
    segments: Mapping[str, Segment],
    paths: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Segments a group lists that do not exist, and segments listed by two groups
    (naming both).  ``paths``: group id -> the path prefix of its document (drafts
    being saved), so problems point into the request."""
    problems: list[Problem] = []
    owner: dict[str, str] = {}
    where = paths or {}
    ordered = sorted(groups, key=lambda g: (g in where, g))
    for gid in ordered:
        g = groups[gid]
        base = where.get(gid, gid)
        for i, sid in enumerate(g.segments):
            path = f"{base}.segments[{i}]" if base else f"segments[{i}]"
            if sid not in segments or segments[sid].group is not None:
                near = closest(sid, [s for s, v in segments.items() if v.group is None], 1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                problems.append(Problem(path, f"unknown segment {sid!r}{hint}"))
            elif sid in owner:
                problems.append(
                    Problem(
                        path,
                        f"segment {sid!r} is in two groups: {owner[sid]!r} and {gid!r}"
                        " (a segment belongs to at most one group)",
                    )
                )
            else:
                owner[sid] = gid
    return problems


def group_of(groups: Iterable[Group], segment_id: str) -> Group | None:
    """The group that lists ``segment_id``, if any."""
    return next((g for g in groups if segment_id in g.segments), None)


def load_group_reports(docs: Sequence[Any]) -> list[GroupReport]:
    """Reports of several group documents, paths prefixed ``[i].`` when there are several."""
    several = len(docs) > 1
    return [parse_group_report(d, f"[{i}]." if several else "") for i, d in enumerate(docs)]


def _show(v: object) -> str:
    if isinstance(v, str):
        return repr(v)
    if v is None:
        return "nothing"
    if isinstance(v, Mapping):
        return "an object"
    if isinstance(v, list):
        return "a list"
    return repr(v)
