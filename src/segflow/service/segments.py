"""Segment operations: draft previews, edit diffs (one path for the CLI, the API and a
save), cursor-paginated members, size history and exports (callers hold the lock).

Members and previews come from the batch evaluator as of an instant, so a page
cursor carries that instant and every page of one listing agrees.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson

from segflow.model.changes import LoggedChange
from segflow.model.definition import (
    COMPUTED_TRAITS,
    Holdout,
    Mention,
    Report,
    Segment,
    closest,
    held_out,
    reference_problems,
)
from segflow.model.errors import DefinitionError, NameWarning, Problem
from segflow.model.time import format_instant, parse_instant, utcnow

if TYPE_CHECKING:
    from segflow.service.handle import Segflow

SAMPLE: Final = 20
MAX_POINTS: Final = 200
ROWS_BY_ID: Final = 10_000
FLAT_COLUMNS: Final = ("name", "email", "ltv", "orders", "since", "last_order_at")
"""The columns a flat export puts after the profile id, before the traits."""


def diff_dict(d: Any) -> dict[str, Any]:
    return {
        "segment_id": d.segment_id,
        "size_before": d.size_before,
        "size_after": d.size_after,
        "entering": list(d.entering),
        "leaving": list(d.leaving),
    }


@dataclass(frozen=True)
class EditDiff:
    """Who a definition edit moves: profile ids entering and leaving (full lists)."""

    segment_id: str
    size_before: int
    size_after: int
    entering: list[str]
    leaving: list[str]

    @classmethod
    def between(cls, segment_id: str, before: set[str], after: set[str]) -> EditDiff:
        """The diff from members ``before`` to members ``after``."""
        return cls(
            segment_id, len(before), len(after), sorted(after - before), sorted(before - after)
        )


class LiveMembers(Protocol):
    """What this module needs of the live evaluator: its current members."""

    def members(self, segment_id: str) -> list[str]: ...


def preview(app: Segflow, draft: Segment, at: datetime | None = None) -> dict[str, Any]:
    """Size and a sample of members of an unsaved draft as of ``at`` (default now)."""
    at = at or utcnow()
    members = app.draft_members(draft, at=at)
    return {"size": len(members), "sample": members[:SAMPLE], "at": format_instant(at)}


def edit_diffs(
    app: Segflow,
    drafts: Iterable[Segment],
    at: datetime | None = None,
    live: LiveMembers | None = None,
    *,
    changed_only: bool = True,
) -> list[EditDiff]:
    """Who each draft would move if saved as of ``at`` (default now), together with the
    other drafts: before is the saved version's members (the live evaluator's when
    ``live`` is given, else the batch evaluator's), after the draft's by the batch
    evaluator.  Definitions identical to the saved one are left out unless
    ``changed_only`` is False.  The one diff path of the CLI dry run, the API preview
    and a save."""
    at = at or utcnow()
    items = list(drafts)
    app.registry.check(items)
    current = app.registry.current()
    out: list[EditDiff] = []
    for draft in items:
        old = current.get(draft.id)
        if (
            changed_only
            and old is not None
            and old.definition_fingerprint() == draft.definition_fingerprint()
        ):
            continue
        before: set[str] = set()
        if old is not None:
            before = set(live.members(draft.id) if live is not None else app.members(draft.id, at))
        others = [s for s in items if s.id != draft.id]
        after = set(app.draft_members(draft, others, at))
        out.append(EditDiff.between(draft.id, before, after))
    return out


def edit_diff(app: Segflow, draft: Segment, at: datetime | None = None) -> EditDiff:
    """Who enters and leaves ``draft.id`` if ``draft`` replaced the current definition."""
    (diff,) = edit_diffs(app, [draft], at, changed_only=False)
    return diff


# -- members pages --------------------------------------------------------------


def encode_cursor(at: datetime | None, after: str) -> str:
    raw = orjson.dumps({"at": format_instant(at) if at else None, "after": after})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime | None, str]:
    """Raise ValueError with a clear message for a cursor this server did not give."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
        at = parse_instant(data["at"]) if data["at"] is not None else None
        return at, str(data["after"])
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise ValueError(f"cursor {cursor[:40]!r} is not a cursor from a previous page") from None


def current_members(
    app: Segflow, live: LiveMembers | None, segment_id: str, at: datetime | None
) -> list[str]:
    """Members now from the live evaluator (``at`` None), else the batch evaluator."""
    if at is None and live is not None:
        return live.members(segment_id)
    return app.members(segment_id, at)


def members_page(
    app: Segflow,
    live: LiveMembers | None,
    segment_id: str,
    *,
    limit: int,
    cursor: str | None = None,
    at: datetime | None = None,
    q: str | None = None,
    columns: bool = False,
) -> dict[str, Any]:
    """One page of members in profile id order.  Without ``at`` they are the live
    members; with it, the batch evaluator's as of ``at``, and ``next_cursor`` keeps it.
    ``q`` keeps the members whose id, identity, name or email contains it (``matches``
    counts them; pass ``q`` again with the cursor); ``columns`` adds a row per member
    with what a member table shows (``member_rows``)."""
    after = ""
    if cursor is not None:
        at, after = decode_cursor(cursor)
    if at is None and live is None:
        at = utcnow()
    members = current_members(app, live, segment_id, at)
    size = len(members)
    if q:
        found = app.profiles.search(q, limit=size + 1, within=members)
        members = [pid for pid, *_ in found]
    start = bisect.bisect_right(members, after) if after else 0
    page = members[start : start + limit]
    more = start + limit < len(members)
    out: dict[str, Any] = {
        "members": page,
        "next_cursor": encode_cursor(at, page[-1]) if more and page else None,
        "at": format_instant(at) if at else None,
        "size": size,
    }
    if q:
        out["matches"] = len(members)
    if columns:
        out["rows"] = member_rows(app, segment_id, page, at or utcnow())
    return out


def member_rows(
    app: Segflow, segment_id: str, profile_ids: Sequence[str], at: datetime
) -> list[dict[str, Any]]:
    """What a member table shows of each profile: name and email (traits), LTV, order
    count and last order (computed traits as of ``at``), since when it is a member (the
    change log; None when the log has no entry) and whether it is held out."""
    if not profile_ids:
        return []
    cards = app.profiles.cards(profile_ids)
    # the computed traits of a few profiles are read for them; of many (an export), for
    # everyone at once, which costs the same one query and no list of ids to pass
    wanted = profile_ids if len(profile_ids) <= ROWS_BY_ID else None
    computed = {str(r["profile_id"]): r for r in app.computed_store.computed_traits(at, wanted)}
    since = app.overview.entered_at(segment_id, profile_ids, at)
    seg = app.registry.get(segment_id)
    held = seg.holdout.held_out(profile_ids) if seg is not None and seg.holdout else set()
    rows = []
    for pid in profile_ids:
        name, email = cards.get(pid, (None, None))
        comp = computed.get(pid, {})
        last_order = comp.get("last_order_at")
        entered = since.get(pid)
        rows.append(
            {
                "profile_id": pid,
                "name": name,
                "email": email,
                "ltv": _number(comp.get("ltv")),
                "orders": int(comp.get("order_count") or 0),
                "since": format_instant(entered) if entered else None,
                "last_order_at": format_instant(last_order) if last_order else None,
                "held_out": pid in held,
            }
        )
    return rows


def _number(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and v != v) else float(v)


def saved_holdouts(app: Segflow) -> dict[str, Holdout]:
    """Each saved segment's holdout (segments without one are not listed)."""
    return {s.id: s.holdout for s in app.registry.current().values() if s.holdout}


def change_json(c: LoggedChange, holdouts: Mapping[str, Holdout]) -> dict[str, Any]:
    """A change as the feed, the stream and the CLI show it, its holdout marked."""
    return c.to_json(held_out=held_out(holdouts, c.segment_id, c.profile_id))


def last_change_seq(app: Segflow) -> int:
    """The newest change's seq (0 for an empty log): where "from now on" starts."""
    return app.changes.top()


# -- size over time ---------------------------------------------------------------


def size_history(app: Segflow, segment_id: str) -> list[dict[str, Any]]:
    """Sizes at each batch evaluation before the change log starts, then the running size
    from the log (it starts with every member entering, so its running sum is exact);
    evenly thinned to about MAX_POINTS points."""
    rows, logged = app.registry.size_history(segment_id, MAX_POINTS)
    points = [{"at": format_instant(t), "size": int(n), "source": "evaluation"} for t, n in rows]
    running = [
        {"at": format_instant(t), "size": max(int(n), 0), "source": "changes"} for t, n in logged
    ]
    return points[-MAX_POINTS:] + running


def last_sizes(app: Segflow) -> dict[str, int]:
    """Each segment's size at its latest batch evaluation."""
    return app.registry.last_sizes()


# -- export -------------------------------------------------------------------------


def activated(
    segment: Segment | None, members: list[str], include_held_out: bool
) -> tuple[list[str], set[str] | None]:
    """What an export of ``members`` lists: without a holdout, every member; with one,
    the members not held out, or (``include_held_out``) every member and the held-out
    set so the export can mark them.  The one rule of the CLI's and the HTTP export."""
    if segment is None or segment.holdout is None:
        return members, None
    held = segment.holdout.held_out(members)
    if include_held_out:
        return members, held
    return [m for m in members if m not in held], None


def export_to(
    app: Segflow,
    live: LiveMembers | None,
    segment_id: str,
    out: Path,
    at: datetime | None = None,
    *,
    include_held_out: bool = False,
    flat: bool = False,
) -> int:
    """Write the members (live, or as of ``at``) with their current traits, one column
    per trait, to ``out`` (CSV or Parquet, by its suffix); a holdout's members are left
    out unless ``include_held_out`` (then a ``held_out`` column marks them).  ``flat``
    puts FLAT_COLUMNS (name, email, LTV, orders, member since, last order) before the
    traits.  The one export of the CLI and the API; returns how many rows were written."""
    fmt = out.suffix.lower()[1:]
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"{out}: export to .csv or .parquet")
    members, held = activated(
        app.registry.current().get(segment_id),
        current_members(app, live, segment_id, at),
        include_held_out,
    )
    head = None
    if flat:
        import pyarrow as pa

        rows = member_rows(app, segment_id, members, at or utcnow())
        types = {"ltv": pa.float64(), "orders": pa.int64()}
        head = pa.table(
            {c: pa.array([r[c] for r in rows], types.get(c, pa.string())) for c in FLAT_COLUMNS}
        )
    app.registry.export_members(members, out, fmt, held, head=head)
    return len(members)


def export_file(
    app: Segflow,
    live: LiveMembers | None,
    segment_id: str,
    fmt: str,
    at: datetime | None,
    *,
    include_held_out: bool = False,
    flat: bool = False,
) -> tuple[Path, int]:
    """``export_to`` a temporary file (the caller streams it and deletes it)."""
    fd, name = tempfile.mkstemp(prefix="segflow-export-", suffix=f".{fmt}")
    os.close(fd)
    path = Path(name)
    try:
        return path, export_to(
            app, live, segment_id, path, at, include_held_out=include_held_out, flat=flat
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise


# -- checking drafts ------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """Drafts checked against the store: their segments (when valid), every problem
    (syntax, values, limits, references) and warnings about names never seen."""

    segments: list[Segment]
    problems: list[Problem]
    warnings: list[NameWarning]

    def raise_problems(self) -> list[Segment]:
        if self.problems:
            raise DefinitionError(self.problems)
        return self.segments


def check_drafts(app: Segflow, reports: Sequence[Report]) -> Checked:
    """Every problem of ``reports`` (parsed documents saved together) at once,
    reference errors included, and a warning for each event, property or trait name the
    store has never seen."""
    ids = {r.id for r in reports if r.id is not None}
    saved = {k: v for k, v in app.registry.current().items() if k not in ids}
    problems = [p for r in reports for p in r.problems]
    problems += reference_problems(reports, saved)
    segments = [r.segment for r in reports if r.segment is not None]
    return Checked(segments, problems, name_warnings(app, [m for r in reports for m in r.mentions]))


def derived_traits() -> frozenset[str]:
    """Trait names segflow computes itself (computed traits and scores): known even
    before a refresh has stored any."""
    from segflow.traits.computed import DOCS
    from segflow.traits.refresh import SCORE_KEYS

    documented = {n.strip() for d in DOCS for n in d.name.split("/")}
    return frozenset({*COMPUTED_TRAITS, *documented, *SCORE_KEYS})


_SEEN: Final = {
    "event": "no event named",
    "property": "no event has had a field",
    "trait": "no profile has had a trait",
}


def name_warnings(app: Segflow, mentions: Iterable[Mention]) -> list[NameWarning]:
    """A warning for each mentioned name the store has not seen, with the closest
    names it has (none while the store has seen nothing of that kind)."""
    cat = app.store.catalogue()
    pools = {
        "event": cat.events,
        "property": cat.paths,
        "trait": cat.traits | derived_traits() if cat.traits else frozenset(),
    }
    out: list[NameWarning] = []
    for m in mentions:
        pool = pools.get(m.kind)
        if not pool or m.name in pool:
            continue
        out.append(
            NameWarning(
                m.path,
                f"{_SEEN[m.kind]} {m.name!r} has been seen: the condition may match nobody",
                closest(m.name, pool),
            )
        )
    return out


# -- versions -------------------------------------------------------------------------


def versions(app: Segflow, segment_id: str) -> list[dict[str, Any]]:
    """Every saved version of a segment, newest first, with its definition as saved
    (KeyError for an id never saved)."""
    found = app.registry.versions(segment_id)
    if not found:
        raise KeyError(f"unknown segment {segment_id!r}")
    return [{"version": v, "saved_at": format_instant(t), "definition": d} for v, t, d in found]


def version_document(app: Segflow, segment_id: str, version: int) -> dict[str, Any]:
    """The definition saved as ``version``, as a document to save again (its version
    number dropped: saving assigns the next); KeyError naming what is missing."""
    found = app.registry.versions(segment_id)
    if not found:
        raise KeyError(f"unknown segment {segment_id!r}")
    for v, _, definition in found:
        if v == version:
            doc = dict(definition)
            doc.pop("version", None)
            return doc
    known = ", ".join(str(v) for v, _, _ in found)
    raise KeyError(f"segment {segment_id!r} has no version {version} (it has {known})")
