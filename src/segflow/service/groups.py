"""Priority group operations: reading group files, saving and deleting groups (the
live evaluator, when one runs, logs who moves), a group's resolved members and its
export (callers hold the lock).

A group's resolved members are segments of the registry (``SegmentStore.current``),
so members, sizes and exports reuse the segments' one path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from segflow.model.errors import DefinitionError, Problem
from segflow.model.groups import Group, GroupReport, load_group_reports, resolved_id
from segflow.model.time import utcnow
from segflow.service.segments import EditDiff, LiveMembers, activated

if TYPE_CHECKING:
    from segflow.service.handle import Segflow

GROUP_SUFFIXES = (".yaml", ".yml", ".json")


class LiveGroups(LiveMembers, Protocol):
    """What this module needs of the live evaluator: members, and saving and deleting
    a group with the moves logged."""

    def save_group(self, group: Group) -> tuple[Group, str]: ...

    def delete_group(self, group_id: str) -> Group: ...


def read_group_reports(path: Path) -> list[GroupReport]:
    """Parse reports of every group document in a file or a directory of YAML/JSON
    files, paths prefixed with the file name."""
    import yaml

    files = (
        sorted(p for p in path.iterdir() if p.suffix in GROUP_SUFFIXES) if path.is_dir() else [path]
    )
    if not files:
        raise DefinitionError([Problem(str(path), "no .yaml/.yml/.json group files found")])
    out: list[GroupReport] = []
    for f in files:
        try:
            docs = [d for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if d is not None]
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
            raise DefinitionError([Problem(f.name, f"cannot read: {e}")]) from None
        if len(docs) == 1 and isinstance(docs[0], list):
            docs = docs[0]
        for r in load_group_reports(docs):
            problems = [Problem(f"{f.name}: {p.path}" if p.path else f.name, p.message)
                        for p in r.problems]  # fmt: skip
            out.append(GroupReport(r.group, problems))
    return out


def parse_groups(reports: Sequence[GroupReport]) -> list[Group]:
    """The groups of ``reports``; every problem at once (a repeated group id too)."""
    problems = [p for r in reports for p in r.problems]
    seen: set[str] = set()
    for r in reports:
        if r.group is not None:
            if r.group.id in seen:
                problems.append(Problem("group", f"group {r.group.id!r} is given twice"))
            seen.add(r.group.id)
    if problems:
        raise DefinitionError(problems)
    return [r.group for r in reports if r.group is not None]


def save_groups(
    app: Segflow,
    live: LiveGroups | None,
    groups: Sequence[Group],
    paths: Mapping[str, str] | None = None,
) -> list[tuple[Group, str]]:
    """Save groups (each checked against the segments and the other groups: unknown
    members, a segment in two groups and cycles through a resolution raise
    DefinitionError); with a live evaluator, who moves is logged at once
    (``definition_changed``)."""
    app.registry.check((), groups, paths)
    if live is None:
        return app.registry.save_groups(groups, paths)
    return [live.save_group(g) for g in groups]


def group_diffs(
    app: Segflow,
    group: Group,
    at: datetime | None = None,
    paths: Mapping[str, str] | None = None,
) -> list[EditDiff]:
    """Who saving ``group`` would move, as of ``at`` (default now), by the batch
    evaluator: one diff per resolved member of the saved or the new version, in
    priority order (raises DefinitionError as saving would)."""
    when = at or utcnow()
    after_segs = app.registry.check((), [group], paths)
    old = app.registry.groups().get(group.id)
    before_ids = old.resolved_ids() if old is not None else []
    after_ids = group.resolved_ids()
    before: dict[str, set[str]] = {}
    if before_ids:
        result = app.batch(app.registry.current().values(), when, only=before_ids)
        before = {rid: set(result.members(rid)) for rid in before_ids}
    result = app.batch(after_segs.values(), when, only=after_ids)
    after = {rid: set(result.members(rid)) for rid in after_ids}
    return [
        EditDiff.between(rid, before.get(rid, set()), after.get(rid, set()))
        for rid in dict.fromkeys([*after_ids, *before_ids])
    ]


def delete_group(app: Segflow, live: LiveGroups | None, group_id: str) -> Group:
    """Delete a group: its resolved members' members exit (``deleted``); a group whose
    resolution a segment reads refuses (DefinitionError), an unknown one raises KeyError."""
    if live is not None:
        return live.delete_group(group_id)
    return app.registry.delete_group(group_id)


def get_group(app: Segflow, group_id: str) -> Group:
    g = app.registry.groups().get(group_id)
    if g is None:
        raise KeyError(f"unknown group {group_id!r}")
    return g


def group_members(
    app: Segflow, live: LiveMembers | None, group_id: str, at: datetime | None = None
) -> dict[str, list[str]]:
    """Each listed segment (in priority order) -> its resolved members: live now (``at``
    None with a live evaluator), else the batch evaluator's as of ``at``."""
    g = get_group(app, group_id)
    ids = g.resolved_ids()
    if at is None and live is not None:
        return {sid: live.members(rid) for sid, rid in zip(g.segments, ids, strict=True)}
    segs = app.registry.current()
    result = app.batch(segs.values(), at or utcnow(), only=ids)
    return {sid: result.members(rid) for sid, rid in zip(g.segments, ids, strict=True)}


def group_json(app: Segflow, live: LiveMembers | None, group: Group) -> dict[str, Any]:
    """A group as the API and the CLI show it: its definition, and each listed segment
    with the id and the live size of its resolution (None without a live evaluator)."""
    members = []
    for sid, rid in zip(group.segments, group.resolved_ids(), strict=True):
        size = None
        if live is not None:
            try:
                size = len(live.members(rid))
            except KeyError:
                size = None
        members.append({"segment": sid, "resolved_id": rid, "size": size})
    return {
        "group": group.id,
        "version": group.version,
        "definition": group.to_dict(),
        "members": members,
    }


def export_group_to(
    app: Segflow,
    live: LiveMembers | None,
    group_id: str,
    out: Path,
    at: datetime | None = None,
    *,
    include_held_out: bool = False,
) -> int:
    """Write every profile in the group's resolution (live, or as of ``at``) with the
    segment it resolves to (a ``segment`` column) and its current traits, to ``out``
    (CSV or Parquet, by its suffix); the profiles held out of their segment are left
    out unless ``include_held_out`` (then a ``held_out`` column marks them), by the
    segments' one rule.  Returns how many rows were written."""
    fmt = out.suffix.lower()[1:]
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"{out}: export to .csv or .parquet")
    by_segment = group_members(app, live, group_id, at)
    segs = app.registry.current()
    labels: dict[str, str] = {}
    held: set[str] | None = set() if include_held_out else None
    for sid, pids in by_segment.items():
        listed, marked = activated(segs.get(resolved_id(group_id, sid)), pids, include_held_out)
        labels.update(dict.fromkeys(listed, sid))
        if held is not None and marked:
            held |= marked
    members = sorted(labels)
    app.registry.export_members(members, out, fmt, held, labels=labels)
    return len(members)
