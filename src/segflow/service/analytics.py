"""Segment analytics as the service offers them: metrics over a period, overlap at an
instant, transitions between two instants.

Members come from the batch evaluator as of the instant asked (the same semantics as
``Segflow.members``), every segment of one request in one plan; the store hands back
per-profile aggregates and matrices set-wise, and ``segflow.analytics`` does the
arithmetic.  Bad input raises ``BadRequest`` naming the parameter, an unknown segment
``KeyError``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from segflow.analytics.metrics import net_growth, segment_metrics
from segflow.analytics.overlap import Thresholds, overlap
from segflow.analytics.plain import finite, plain
from segflow.analytics.transitions import time_to_enter, transitions
from segflow.model.time import format_instant, utcnow

if TYPE_CHECKING:
    from segflow.model.definition import Segment
    from segflow.service.handle import Segflow

PERIOD: Final = timedelta(days=30)
"""The default period: the 30 days ending at its end."""
BUCKETS: Final = {"day": timedelta(days=1), "week": timedelta(days=7)}
MAX_BUCKETS: Final = 1000
"""Buckets one time series may have (a longer period takes weeks)."""
_US: Final = timedelta(microseconds=1)


class BadRequest(ValueError):
    """A parameter that cannot be used: ``param`` names it, the message says why."""

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"{param}: {reason}")
        self.param = param
        self.reason = reason


@dataclass(frozen=True)
class Period:
    """``start < t <= end``."""

    start: datetime
    end: datetime


def period(start: datetime | None, end: datetime | None, now: datetime | None = None) -> Period:
    """The period asked: ``end`` defaults to now and may not be later, ``start`` to 30
    days before ``end`` and must be earlier."""
    now = now or utcnow()
    end = end or now
    if end > now:
        when, current = format_instant(end), format_instant(now)
        raise BadRequest("to", f"{when} is in the future (now: {current})")
    start = start if start is not None else end - PERIOD
    if start >= end:
        raise BadRequest("from", f"{format_instant(start)} is not before {format_instant(end)}")
    return Period(start, end)


def _chosen(app: Segflow, ids: Sequence[str] | None) -> tuple[list[str], dict[str, Segment]]:
    """The segments asked (every saved one when none is named), checked."""
    segs = app.registry.current()
    chosen = list(ids) if ids else sorted(segs)
    for sid in chosen:
        if sid not in segs:
            raise KeyError(f"unknown segment {sid!r}")
    repeated = sorted({s for s in chosen if chosen.count(s) > 1})
    if repeated:
        raise BadRequest("segment", f"named more than once: {', '.join(repeated)}")
    return chosen, segs


# -- metrics ---------------------------------------------------------------------------


def metrics(
    app: Segflow,
    segment_ids: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    bucket: str = "day",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Each segment's metrics over the period (members as of its end) with everyone's
    and the index, its entries and exits from the change log, and a time series of
    size, entries and exits per day or week (buckets counted from the period start)."""
    p = period(start, end, now)
    if bucket not in BUCKETS:
        raise BadRequest("bucket", f"{bucket!r} is not one of {', '.join(BUCKETS)}")
    step = BUCKETS[bucket]
    n_buckets = math.ceil((p.end - p.start) / step)
    if n_buckets > MAX_BUCKETS:
        raise BadRequest(
            "bucket", f"{n_buckets} {bucket}s in the period, over {MAX_BUCKETS}: use a wider bucket"
        )
    ids, segs = _chosen(app, segment_ids)
    result = app.batch(segs.values(), p.end, only=ids)
    members, aggregates = app.analytics.period_aggregates(result, ids, p.start, p.end)
    report = segment_metrics(members, ids, aggregates)
    ends = [min(p.start + (b + 1) * step, p.end) for b in range(n_buckets)]
    starts = [p.start, *ends[:-1]]
    series = _series(app, ids, p.start, step, starts, ends)
    out_segments = []
    for sid, m in zip(ids, report.segments, strict=True):
        points, source = series[sid]
        logged = source == "changes"
        entered = sum(pt["entered"] for pt in points) if logged else None
        exited = sum(pt["exited"] for pt in points) if logged else None
        out_segments.append(
            {
                **m.as_dict(),
                "entered": entered,
                "exited": exited,
                "net_growth": None if entered is None or exited is None else entered - exited,
                "series_source": source,
                "series": points,
            }
        )
    return {
        "from": format_instant(p.start),
        "to": format_instant(p.end),
        "bucket": bucket,
        "n_profiles": report.n_profiles,
        "everyone": report.everyone.as_dict(),
        "segments": out_segments,
    }


def _series(
    app: Segflow,
    ids: list[str],
    start: datetime,
    step: timedelta,
    starts: list[datetime],
    ends: list[datetime],
) -> dict[str, tuple[list[dict[str, Any]], str]]:
    """Per segment, its points and where they come from: the change log (sizes from its
    running size, entries and exits counted), else the latest batch evaluation as of each
    bucket's end (sizes only; ``None`` before the first evaluation)."""
    counts = app.analytics.bucket_counts(ids, start, step // _US, len(ends))
    out: dict[str, tuple[list[dict[str, Any]], str]] = {}
    unlogged: list[str] = []
    for i, sid in enumerate(ids):
        if not counts.logged[i]:
            unlogged.append(sid)
            continue
        try:
            g = net_growth(int(counts.size_start[i]), counts.entered[i], counts.exited[i])
        except ValueError:  # a log that does not add up: trust the evaluations instead
            unlogged.append(sid)
            continue
        out[sid] = (
            [
                {
                    "start": format_instant(s),
                    "end": format_instant(e),
                    "size": int(g.size_end[b]),
                    "entered": int(g.entered[b]),
                    "exited": int(g.exited[b]),
                    "net": int(g.net[b]),
                    "growth_rate": finite(g.growth_rate[b]),
                }
                for b, (s, e) in enumerate(zip(starts, ends, strict=True))
            ],
            "changes",
        )
    if unlogged:
        sizes = app.analytics.evaluated_sizes(unlogged, ends)
        for row, sid in zip(sizes, unlogged, strict=True):
            out[sid] = (
                [
                    {
                        "start": format_instant(s),
                        "end": format_instant(e),
                        "size": int(n) if n >= 0 else None,
                        "entered": None,
                        "exited": None,
                        "net": None,
                        "growth_rate": None,
                    }
                    for s, e, n in zip(starts, ends, row, strict=True)
                ],
                "evaluation",
            )
    return out


# -- overlap -----------------------------------------------------------------------------


def overlap_report(
    app: Segflow,
    segment_ids: Sequence[str] | None = None,
    at: datetime | None = None,
    *,
    top: int = 10,
    thresholds: Thresholds | None = None,
) -> dict[str, Any]:
    """How the segments (every saved one when none is named) overlap as of ``at``
    (default now): matrices, exclusive counts, top combinations and warnings."""
    at = at or utcnow()
    if top < 0:
        raise BadRequest("top", "must be 0 or more")
    t = thresholds or Thresholds()
    for name, value in (("contained", t.contained), ("near_duplicate", t.near_duplicate)):
        if not 0 <= value <= 1:
            raise BadRequest(name, f"{value} is not a share within 0..1")
    if t.min_size < 0:
        raise BadRequest("min_size", "must be 0 or more")
    ids, segs = _chosen(app, segment_ids)
    if not ids:
        raise BadRequest("segment", "no segments to compare: save some first")
    result = app.batch(segs.values(), at, only=ids)
    report = overlap(app.analytics.membership_matrix(result, ids), ids, top=top, thresholds=t)
    return {"at": format_instant(at), **report.as_dict()}


# -- transitions ---------------------------------------------------------------------------


SOURCES: Final = ("auto", "changes", "evaluation")
"""Where a past instant's members come from: the change log where it covers the
instant, else the batch evaluator (``auto``); or only one of them."""


def _coverage(app: Segflow, ids: Sequence[str]) -> dict[str, tuple[datetime, datetime]]:
    """Per segment the log holds, the instants it covers (both ends included): from
    when the live evaluator first took the segment on to the log's live mark."""
    mark = app.changes.mark()
    if mark is None:
        return {}
    until = mark[1]
    return {s: (t, until) for s, t in app.changes.covered_since(ids).items() if t <= until}


def transitions_report(
    app: Segflow,
    stages: Sequence[str],
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    every: str | None = None,
    source: str = "auto",
    now: datetime | None = None,
) -> dict[str, Any]:
    """How profiles moved between the ordered ``stages`` from ``start`` (default 30 days
    before ``end``) to ``end`` (default now): the transition matrix and Sankey flows,
    with ``every`` (``day`` or ``week``) also one matrix per consecutive bucket counted
    from ``start``; from the change log the time from entering each stage to entering
    the next (first entries up to ``end``).

    Each instant's members of a stage are the change log's state there where the log
    covers the instant (``source`` ``auto``, the default, or ``changes``, which refuses
    an instant it does not cover), else the batch evaluator's as of the instant."""
    if not stages:
        raise BadRequest("segment", "name the group's segments in order")
    if source not in SOURCES:
        raise BadRequest("source", f"{source!r} is not one of {', '.join(SOURCES)}")
    p = period(start, end, now)
    instants = [p.start, p.end]
    if every is not None:
        if every not in BUCKETS:
            raise BadRequest("every", f"{every!r} is not one of {', '.join(BUCKETS)}")
        step = BUCKETS[every]
        n = math.ceil((p.end - p.start) / step)
        if n > MAX_BUCKETS:
            raise BadRequest(
                "every", f"{n} {every}s in the period, over {MAX_BUCKETS}: use a wider bucket"
            )
        instants = [p.start, *(min(p.start + (b + 1) * step, p.end) for b in range(n))]
    ids, segs = _chosen(app, stages)
    covers = _coverage(app, ids) if source != "evaluation" else {}
    places = []
    used = []
    for t in instants:
        logged = [s for s in ids if s in covers and covers[s][0] <= t <= covers[s][1]]
        rest = [s for s in ids if s not in logged]
        if rest and source == "changes":
            raise BadRequest(
                "source",
                f"the change log does not cover {', '.join(rest)} at {format_instant(t)}",
            )
        evaluated = app.batch(segs.values(), t, only=rest) if rest else None
        places.append(app.analytics.places(ids, t, evaluated=evaluated, logged=logged))
        used.append({"at": format_instant(t), "changes": logged, "evaluation": rest})
    report = transitions(ids, places[0], places[-1])
    entries = app.analytics.first_entries(ids, p.end)
    durations = [
        {"source": a, "target": b, **time_to_enter(entries[:, i], entries[:, i + 1]).as_dict()}
        for i, (a, b) in enumerate(itertools.pairwise(ids))
    ]
    out: dict[str, Any] = {
        "from": format_instant(p.start),
        "to": format_instant(p.end),
        **report.as_dict(),
        "time_to_enter": plain(durations),
        "every": every,
        "periods": None,
        "sources": used,
    }
    if every is not None:
        out["periods"] = [
            {
                "from": format_instant(a),
                "to": format_instant(b),
                **transitions(ids, places[j], places[j + 1]).as_dict(),
            }
            for j, (a, b) in enumerate(itertools.pairwise(instants))
        ]
    return out
