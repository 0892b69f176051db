"""How profiles move between the segments of an ordered group (lifecycle stages, loyalty
tiers, RFM groups) from one instant to another, and how long moving takes.

A profile's place at an instant is the index of its segment in the group, or ``-1``
when it is in none of them ("outside" the group).  The transition matrix has one row
per place at instant A and one column per place at instant B, outside last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from segflow.analytics.plain import plain

IntA: TypeAlias = npt.NDArray[np.int64]
FloatA: TypeAlias = npt.NDArray[np.float64]

OUTSIDE: Final = -1
"""A profile's place when it is in none of the group's segments."""
NEVER: Final = np.iinfo(np.int64).min
"""An enter instant for a profile that never entered the segment."""
PERCENTILES: Final = (10.0, 25.0, 50.0, 75.0, 90.0)


@dataclass(frozen=True, slots=True)
class Flow:
    """Profiles that were in ``source`` at A and in ``target`` at B (``None``: outside)."""

    source: str | None
    target: str | None
    value: int


@dataclass(frozen=True, eq=False)
class TransitionReport:
    """Rows and columns are ``stages`` then outside the group."""

    stages: tuple[str, ...]
    counts: IntA
    row_share: FloatA
    """``counts`` over each row's total; NaN (``None`` in ``as_dict``) for an empty row."""
    at_a: IntA
    """Profiles in each place at A (the row totals)."""
    at_b: IntA
    """Profiles in each place at B (the column totals)."""
    stayed: int
    forward: int
    """Moved to a later stage of the group's order."""
    backward: int
    """Moved to an earlier stage."""
    entered: int
    """Outside the group at A, in one of its stages at B."""
    exited: int
    """In one of its stages at A, outside at B."""
    flows: tuple[Flow, ...]
    """Every non-zero cell but outside -> outside, for a Sankey diagram."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = plain(self)
        return out


@dataclass(frozen=True, slots=True)
class Durations:
    """Time from entering A to entering B, in microseconds, over the profiles that entered
    both with B not before A."""

    pairs: int
    b_before_a: int
    """Profiles that entered both, B first: left out of the durations."""
    median: float | None
    mean: float | None
    percentiles: dict[str, float | None]
    """``p10`` ... ``p90`` (linear interpolation between the nearest ranks)."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = plain(self)
        return out


def transitions(
    stages: Sequence[str], at_a: npt.ArrayLike, at_b: npt.ArrayLike
) -> TransitionReport:
    """Transition matrix of ``stages`` between instant A and instant B, given each
    profile's place at both (stage index, or ``OUTSIDE``)."""
    ids = tuple(stages)
    if not ids or len(set(ids)) != len(ids):
        raise ValueError("a group needs one or more distinct segments")
    a, b = _places(at_a, len(ids)), _places(at_b, len(ids))
    if a.shape != b.shape:
        raise ValueError(f"one place per profile at each instant: {a.shape} vs {b.shape}")
    k = len(ids) + 1
    # outside (-1) goes last: index k - 1
    cell = np.where(a < 0, k - 1, a) * k + np.where(b < 0, k - 1, b)
    counts = np.bincount(cell, minlength=k * k).astype(np.int64).reshape(k, k)
    rows = counts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = counts / rows[:, None]
    inner = counts[:-1, :-1]
    src, dst = np.nonzero(counts)
    keep = ~((src == k - 1) & (dst == k - 1))
    names: list[str | None] = [*ids, None]
    flows = tuple(
        Flow(names[i], names[j], int(counts[i, j]))
        for i, j in zip(src[keep], dst[keep], strict=True)
    )
    return TransitionReport(
        stages=ids,
        counts=counts,
        row_share=share,
        at_a=rows,
        at_b=counts.sum(axis=0),
        stayed=int(np.trace(inner)),
        forward=int(np.triu(inner, 1).sum()),
        backward=int(np.tril(inner, -1).sum()),
        entered=int(counts[-1, :-1].sum()),
        exited=int(counts[:-1, -1].sum()),
        flows=flows,
    )


def time_to_enter(
    entered_a: npt.ArrayLike,
    entered_b: npt.ArrayLike,
    percentiles: Sequence[float] = PERCENTILES,
) -> Durations:
    """Durations from entering A to entering B per profile, given both enter instants in
    microseconds (``NEVER`` where a profile did not enter)."""
    a = np.asarray(entered_a, dtype=np.int64).ravel()
    b = np.asarray(entered_b, dtype=np.int64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"one enter instant per profile for each segment: {a.shape} vs {b.shape}")
    if any(not 0 <= q <= 100 for q in percentiles):
        raise ValueError("percentiles are within 0..100")
    both = (a != NEVER) & (b != NEVER)
    ahead = both & (b >= a)
    d = (b[ahead] - a[ahead]).astype(np.float64)
    keys = [f"p{q:g}" for q in percentiles]
    if not len(d):
        return Durations(0, int((both & ~ahead).sum()), None, None, dict.fromkeys(keys))
    values = np.percentile(d, [*percentiles, 50.0])
    return Durations(
        pairs=len(d),
        b_before_a=int((both & ~ahead).sum()),
        median=float(values[-1]),
        mean=float(d.mean()),
        percentiles={k: float(v) for k, v in zip(keys, values[:-1], strict=True)},
    )


def _places(values: npt.ArrayLike, n_stages: int) -> IntA:
    x = np.asarray(values).ravel()
    if x.size and not np.issubdtype(x.dtype, np.integer):
        raise ValueError("places are stage indices or -1")
    x = x.astype(np.int64)
    if x.size and (x.min() < OUTSIDE or x.max() >= n_stages):
        raise ValueError(f"places are within -1..{n_stages - 1}")
    return x
