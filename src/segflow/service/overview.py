"""What the web UI's builder and dashboard show: the catalogue of names a definition
can use (events with their fields, traits, computed traits, segments, pages) and the
dashboard's counts, rates, movers and alerts (callers hold the lock).

Every figure is bounded in cost at any store size: field statistics come from a fixed
sample of each event's rows, examples are approximate top values, and the
whole-table reads scan one or two narrow columns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from segflow.model.definition import COMPUTED_TRAITS
from segflow.model.time import format_instant

if TYPE_CHECKING:
    from segflow.model.definition import Segment
    from segflow.service.handle import Segflow
    from segflow.store.protocols import NameStats

EXAMPLES: Final = 5
FIELD_SAMPLE: Final = 2000
"""Rows of each event name whose fields are described."""
MAX_EVENT_NAMES: Final = 200
"""Event names described with their fields (the most frequent); the rest are listed
with their counts only."""
PAGE_PATHS: Final = 20

_INSTANT: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_COMPUTED_TYPES: Final = {
    "number": "number",
    "days": "number",
    "time": "timestamp",
    "value": "string",
    "list": "list",
}


def _looks_like_instants(values: Iterable[Any]) -> bool:
    texts = [v for v in values if isinstance(v, str)]
    return bool(texts) and all(_INSTANT.match(v) for v in texts)


def ui_type(store_type: str, examples: list[Any]) -> str:
    """The picker's type of a stored field or trait kind: string, number, boolean,
    timestamp (ISO 8601 text), list or object."""
    t = store_type.lower()
    if t in ("double", "number", "bigint", "integer"):
        return "number"
    if t in ("boolean", "bool"):
        return "boolean"
    if t.startswith("json:"):
        inner = t.split(":", 1)[1]
        return {"array": "list", "object": "object", "boolean": "boolean"}.get(
            inner, "number" if inner in ("bigint", "double", "ubigint") else "string"
        )
    return "timestamp" if _looks_like_instants(examples) else "string"


def _field_path(path: str) -> str:
    """A stored field as a ``where`` names it (``category`` for ``properties.category``)."""
    return path.removeprefix("properties.")


CATALOGUE_TTL_S: Final = 30.0
"""How long the catalogue's event and trait statistics are reused: they move slowly,
and a builder asks for them every time it opens (the segment list is always fresh)."""


class CatalogueCache:
    """The last catalogue's statistics and when they were read (monotonic seconds)."""

    def __init__(self, ttl: float = CATALOGUE_TTL_S) -> None:
        self.ttl = ttl
        self.read_at: float | None = None
        self.body: dict[str, Any] | None = None

    def get(self, now: float) -> dict[str, Any] | None:
        fresh = self.read_at is not None and now - self.read_at < self.ttl
        return self.body if fresh else None

    def put(self, body: dict[str, Any], now: float) -> None:
        self.body, self.read_at = body, now


def catalogue(app: Segflow, cache: CatalogueCache | None = None) -> dict[str, Any]:
    """Everything a definition can name, with what the store has seen of it; the
    statistics come from ``cache`` when it has fresh ones."""
    import time

    now = time.monotonic()
    body = cache.get(now) if cache is not None else None
    if body is None:
        body = _catalogue_stats(app)
        if cache is not None:
            cache.put(body, now)
    saved = app.registry.current()
    return {**body, "segments": [{"id": sid, "name": saved[sid].name} for sid in sorted(saved)]}


def _catalogue_stats(app: Segflow) -> dict[str, Any]:
    from segflow.traits.computed import DOCS

    ov = app.overview
    events: list[dict[str, Any]] = []
    for i, stats in enumerate(ov.event_names()):
        props: list[dict[str, Any]] = []
        if i < MAX_EVENT_NAMES:
            for f in ov.event_fields(stats.name, FIELD_SAMPLE, EXAMPLES):
                typ = ui_type(f.store_type, f.examples)
                examples = f.examples[:EXAMPLES] if typ not in ("list", "object") else []
                props.append({"path": _field_path(f.path), "type": typ, "examples": examples})
        events.append(
            {
                "name": stats.name,
                "count": stats.count,
                "first_seen": format_instant(stats.first_seen),
                "last_seen": format_instant(stats.last_seen),
                "properties": props,
            }
        )
    traits = [
        {
            "key": t.key,
            "type": ui_type(t.kind, t.examples),
            "profiles": t.profiles,
            "examples": t.examples[:EXAMPLES],
        }
        for t in ov.traits(EXAMPLES)
    ]
    described = {n.strip(): d.description for d in DOCS for n in d.name.split("/")}
    computed = [
        {"name": name, "type": _COMPUTED_TYPES[kind], "description": described.get(name, "")}
        for name, kind in COMPUTED_TRAITS.items()
    ]
    pages = ov.pages(PAGE_PATHS)
    return {
        "events": events,
        "traits": traits,
        "computed": computed,
        "pages": {"count": pages.count, "paths": pages.paths, "names": pages.names},
    }


def day_start(t: datetime) -> datetime:
    """The start of ``t``'s UTC day."""
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


# -- segment summaries --------------------------------------------------------------

SERIES_DAYS: Final = 31
DAY: Final = timedelta(days=1)


class LiveSizes(Protocol):
    """What summaries need of the live evaluator: its current members."""

    def members(self, segment_id: str) -> list[str]: ...


def daily_sizes(
    app: Segflow, segment_ids: Sequence[str], now: datetime, days: int
) -> tuple[datetime, list[list[int | None]], list[list[int]], list[list[int]]]:
    """Each segment's size at the end of each of the ``days`` UTC days up to today's
    (today's: as of ``now``), with its entries and exits per day.  Sizes come from the
    change log's running sum from the segment's first logged change on, and before it
    from the latest batch evaluation as of the day's end; None where neither knows.
    Returns (first day's start, sizes, entered, exited), rows by segment."""
    start = day_start(now) - (days - 1) * DAY
    ends = [min(start + (d + 1) * DAY, now) for d in range(days)]
    counts = app.analytics.bucket_counts(segment_ids, start, DAY // timedelta(microseconds=1), days)
    evaluated = app.analytics.evaluated_sizes(segment_ids, ends)
    first = app.overview.first_changes()
    sizes: list[list[int | None]] = []
    for i, sid in enumerate(segment_ids):
        running = int(counts.size_start[i])
        row: list[int | None] = []
        logged_from = first.get(sid)
        for d, end in enumerate(ends):
            running += int(counts.entered[i, d]) - int(counts.exited[i, d])
            if logged_from is not None and logged_from <= end:
                row.append(max(running, 0))
            else:
                n = int(evaluated[i, d])
                row.append(n if n >= 0 else None)
        sizes.append(row)
    entered = [[int(x) for x in counts.entered[i]] for i in range(len(segment_ids))]
    exited = [[int(x) for x in counts.exited[i]] for i in range(len(segment_ids))]
    return start, sizes, entered, exited


def backfill_daily_sizes(
    app: Segflow,
    now: datetime,
    days: int = SERIES_DAYS - 1,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Evaluate the saved segments as of the end of each of the ``days`` UTC days
    before today and log their sizes (not their members), so a store loaded in one go
    has a size history from its first day.  Only segments already evaluated later
    are logged (their latest evaluation stays the latest); static ones never change.
    Costs one batch evaluation per day: for loads, not for a request.  Returns the
    days evaluated."""
    saved = app.registry.current()
    last = app.registry.last_evaluated()
    start = day_start(now)
    done = 0
    for k in range(days, 0, -1):
        end = start - (k - 1) * DAY
        ids = [
            sid for sid, seg in saved.items() if seg.mode != "static" and last.get(sid, end) > end
        ]
        if not ids:
            continue
        result = app.batch(saved.values(), end, only=ids)
        sizes = {sid: result.size(sid) for sid in ids}
        app.registry.record_sizes(sizes, {sid: saved[sid].version for sid in ids}, end)
        done += 1
        if progress is not None:
            progress(days - k + 1, days)
    return done


def _change(now: int | None, then: int | None) -> int | None:
    return None if now is None or then is None else now - then


def current_sizes(
    app: Segflow, live: LiveSizes | None, segment_ids: Iterable[str]
) -> dict[str, int | None]:
    """Each segment's size now: the live evaluator's members, else the latest batch
    evaluation (None: never evaluated)."""
    if live is not None:
        out: dict[str, int | None] = {}
        for sid in segment_ids:
            try:
                out[sid] = len(live.members(sid))
            except KeyError:
                out[sid] = None
        return out
    last = app.registry.last_sizes()
    return {sid: last.get(sid) for sid in segment_ids}


def segment_summaries(app: Segflow, live: LiveSizes | None, now: datetime) -> list[dict[str, Any]]:
    """Every segment as the segment list shows it: its metadata, size and share of
    the profiles now, change over 7 and 30 days, and 31 daily sizes (each day's end;
    today's: now)."""
    saved = app.registry.current()
    ids = sorted(saved)
    updated = app.overview.saved_at()
    profiles = app.store.count_profiles()
    sizes_now = current_sizes(app, live, ids)
    start, series, _, _ = daily_sizes(app, ids, now, SERIES_DAYS)
    out = []
    for i, sid in enumerate(ids):
        seg = saved[sid]
        points = series[i]
        size = sizes_now[sid]
        if size is not None:
            points[-1] = size  # the live count is exact now; the log may trail it
        out.append(
            {
                "id": sid,
                "name": seg.name,
                "description": seg.description,
                "tags": list(seg.tags),
                "folder": seg.folder,
                "mode": seg.mode,
                "version": seg.version,
                "updated_at": format_instant(updated[sid]) if sid in updated else None,
                "size": size,
                "share": (size / profiles if profiles else 0.0) if size is not None else None,
                "change_7d": _change(points[-1], points[-8]),
                "change_30d": _change(points[-1], points[0]),
                "series": [
                    {"at": format_instant(start + d * DAY), "size": n} for d, n in enumerate(points)
                ],
            }
        )
    return out


MAX_DAYS: Final = 366


def segment_daily(
    app: Segflow, live: LiveSizes | None, segment_id: str, now: datetime, days: int
) -> dict[str, Any]:
    """The segment's size at the end of each of the last ``days`` UTC days (today's:
    now) with the day's entries and exits from the change log, oldest first."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 1..{MAX_DAYS}, got {days}")
    start, sizes, entered, exited = daily_sizes(app, [segment_id], now, days)
    points = sizes[0]
    size = current_sizes(app, live, [segment_id])[segment_id]
    if size is not None:
        points[-1] = size
    return {
        "segment_id": segment_id,
        "points": [
            {
                "day": (start + d * DAY).date().isoformat(),
                "size": points[d],
                "entered": entered[0][d],
                "exited": exited[0][d],
            }
            for d in range(days)
        ],
    }


# -- dashboard -----------------------------------------------------------------------

MOVERS: Final = 5
STOPPED_DAYS: Final = 14
NEW_DAYS: Final = 7
MIN_STOPPED_GAP: Final = timedelta(hours=1)


def referenced_events(segments: Iterable[Segment]) -> set[str]:
    """Event names the segments' conditions read (``event`` and ``not_followed_by``,
    at any depth of their canonical form)."""
    found: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("event", "not_followed_by") and isinstance(value, str):
                    found.add(value)
                elif key in ("event", "not_followed_by") and isinstance(value, list):
                    found.update(v for v in value if isinstance(v, str))
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    for seg in segments:
        visit(seg.to_dict().get("condition"))
    return found


def event_alerts(
    names: Sequence[NameStats],
    windows: Sequence[tuple[str, int, int]],
    referenced: set[str],
    now: datetime,
) -> list[dict[str, Any]]:
    """``event_stopped``: a name that arrived in every one of the 14 days before the
    last 24 hours (24-hour windows back from now) but not in them, or one whose silence
    is over three times its typical gap over those days (and over an hour);
    ``unknown_event``: a name seen in the last 7 days that no segment reads and that
    the store first received (else first saw) in the last 7 days."""
    per_name: dict[str, dict[int, int]] = {}
    for name, w, c in windows:
        per_name.setdefault(name, {})[w] = c
    alerts: list[dict[str, Any]] = []
    for stats in names:
        counts = per_name.get(stats.name, {})
        silent = now - stats.last_seen
        daily = all(counts.get(w, 0) > 0 for w in range(1, STOPPED_DAYS + 1))
        recent = sum(counts.get(w, 0) for w in range(1, STOPPED_DAYS + 1))
        gap = STOPPED_DAYS * DAY / recent if recent else None
        if (daily and not counts.get(0)) or (
            gap is not None and recent >= STOPPED_DAYS and silent > max(3 * gap, MIN_STOPPED_GAP)
        ):
            alerts.append(
                {
                    "kind": "event_stopped",
                    "event": stats.name,
                    "last_seen": format_instant(stats.last_seen),
                    "message": f"{stats.name!r} arrived every day for {STOPPED_DAYS} days and "
                    f"has not arrived for {_ago(silent)}",
                }
            )
    for stats in names:
        first = stats.first_received or stats.first_seen
        if (
            stats.name not in referenced
            and now - stats.last_seen <= NEW_DAYS * DAY
            and now - first <= NEW_DAYS * DAY
        ):
            alerts.append(
                {
                    "kind": "unknown_event",
                    "event": stats.name,
                    "last_seen": format_instant(stats.last_seen),
                    "message": f"{stats.name!r} is new ({stats.count} events since "
                    f"{format_instant(first)[:10]}) and no segment uses it",
                }
            )
    return alerts


def _ago(d: timedelta) -> str:
    hours = d.total_seconds() / 3600
    return f"{hours:.0f} hours" if hours < 48 else f"{hours / 24:.0f} days"


def dashboard(
    app: Segflow, live: LiveSizes | None, now: datetime, ingest_rate: float
) -> dict[str, Any]:
    """The dashboard: profiles, events today and in the last hour, the ingest rate
    (the writer's events per second over the last minute), segment count, the five
    fastest growing and declining segments over 7 days, and event alerts."""
    ov = app.overview
    today, last_hour = ov.event_counts_since(
        [day_start(now) - timedelta(microseconds=1), now - timedelta(hours=1)]
    )
    rows = segment_summaries(app, live, now)
    moved = [r for r in rows if r["change_7d"] is not None]
    movers = [
        {
            "id": r["id"],
            "name": r["name"],
            "size": r["size"],
            "change_7d": r["change_7d"],
            "change_7d_pct": _pct(r["change_7d"], r["series"][-8]["size"]),
        }
        for r in moved
    ]
    growth = sorted(
        (m for m in movers if m["change_7d"] > 0), key=lambda m: (-m["change_7d"], m["id"])
    )
    decline = sorted(
        (m for m in movers if m["change_7d"] < 0), key=lambda m: (m["change_7d"], m["id"])
    )
    names = ov.event_names(received=True)
    referenced = referenced_events(app.registry.current().values())
    return {
        "at": format_instant(now),
        "profiles": app.store.count_profiles(),
        "events_today": today,
        "events_last_hour": last_hour,
        "ingest_rate": round(ingest_rate, 3),
        "segments": len(rows),
        "growth": growth[:MOVERS],
        "decline": decline[:MOVERS],
        "alerts": event_alerts(names, ov.name_windows(now, STOPPED_DAYS + 1), referenced, now),
    }


def _pct(change: int, before: int | None) -> float | None:
    return None if not before else round(100.0 * change / before, 2)
