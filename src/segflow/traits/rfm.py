"""RFM scores 1-5 by quintiles, the combined code and the named RFM groups.

Scores are computed over customers with at least one order.  Ties are handled so
that equal values always get equal scores: a value's score comes from the position
of its *first* occurrence in ascending order (``rank(method="min")``), i.e.
``score = 1 + floor(5 * (number of customers with a strictly worse value) / n)``.
The result depends only on the multiset of values, never on input order.
"""

from __future__ import annotations

from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt

IntA: TypeAlias = npt.NDArray[np.int64]

GROUPS: Final = (
    "Champions",
    "Loyal Customers",
    "Potential Loyalists",
    "New Customers",
    "Promising",
    "Need Attention",
    "About To Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
    "Lost",
)

_C, _L, _PL, _N, _P, _NA, _AS, _AR, _CL, _H, _LO = GROUPS
GRID: Final[dict[int, tuple[str, str, str, str, str]]] = {
    # R score -> group for FM = 1, 2, 3, 4, 5
    5: (_N, _PL, _PL, _C, _C),
    4: (_P, _PL, _PL, _L, _L),
    3: (_AS, _AS, _NA, _L, _L),
    2: (_H, _H, _AR, _AR, _CL),
    1: (_LO, _H, _AR, _AR, _CL),
}
"""The R x FM grid: rows are the recency score, columns ``FM = round_half_up((F + M) / 2)``."""

_GROUP_TABLE: Final = np.array([[GROUPS.index(g) for g in GRID[r]] for r in range(1, 6)])


def quintile_scores(values: npt.ArrayLike) -> IntA:
    """1-5 scores, higher value -> higher score; ties share the score of their first rank."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values: expected one dimension, got shape {v.shape}")
    if np.isnan(v).any():
        raise ValueError("values: NaN cannot be ranked")
    n = v.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    below = np.searchsorted(np.sort(v, kind="stable"), v, side="left")
    out: IntA = 1 + (5 * below.astype(np.int64)) // n
    return out


def rfm_scores(
    recency_days: npt.ArrayLike, frequency: npt.ArrayLike, monetary: npt.ArrayLike
) -> tuple[IntA, IntA, IntA]:
    """(R, F, M): fewer days since the last order is better; more orders / spend is better.

    Recency is compared in whole days and monetary in cents, so float noise never splits
    a tie.
    """
    rd = np.floor(np.asarray(recency_days, dtype=np.float64))
    m = np.round(np.asarray(monetary, dtype=np.float64) * 100.0)
    return quintile_scores(-rd), quintile_scores(frequency), quintile_scores(m)


def fm_score(f: IntA, m: IntA) -> IntA:
    """The grid column: the mean of F and M rounded half up."""
    out: IntA = (f + m + 1) // 2
    return out


def rfm_codes(r: IntA, f: IntA, m: IntA) -> npt.NDArray[np.str_]:
    """Combined codes like ``"545"`` (R, F, M digits)."""
    codes: npt.NDArray[np.str_] = np.char.add(
        np.char.add(r.astype(str), f.astype(str)), m.astype(str)
    )
    return codes


def rfm_group_index(r: IntA, f: IntA, m: IntA) -> IntA:
    """Index into ``GROUPS`` of each customer's named group."""
    out: IntA = _GROUP_TABLE[r - 1, fm_score(f, m) - 1]
    return out


def rfm_group(r: int, f: int, m: int) -> str:
    """The named group of one (R, F, M) triple."""
    for name, score in (("R", r), ("F", f), ("M", m)):
        if not 1 <= score <= 5:
            raise ValueError(f"{name} score must be 1-5, got {score}")
    return GRID[r][(f + m + 1) // 2 - 1]
