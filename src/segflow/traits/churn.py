"""Purchase-propensity (churn) classifier trained and checked on a time split.

With horizon ``h`` and as-of instant ``at``: features as of ``at - 2h`` labelled by
"ordered in (at - 2h, at - h]" train a first model; features as of ``at - h`` labelled
by "ordered in (at - h, at]" are its holdout (AUC against the P(alive)-only baseline
fitted at the same cutoff).  The model that scores profiles is then refitted on that
most recent labelled window and applied to the features as of ``at``.  Labels come
from differences of order counts between the feature snapshots, so no extra query.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from segflow.traits.clv import BGNBDParams, expected_purchases, fit_bgnbd, p_alive
from segflow.traits.features import Features

FloatA: TypeAlias = npt.NDArray[np.float64]
BoolA: TypeAlias = npt.NDArray[np.bool_]

FEATURES: Final = (
    "days_since_last",
    "days_since_first",
    "x",
    "orders",
    "orders_30d",
    "orders_90d",
    "orders_182d",
    "orders_365d",
    "monetary",
    "spend_365d",
    "aov",
    "opens",
    "clicks",
    "visit_days",
    "p_alive",
    "expected_orders_horizon",
)
MIN_CLASS: Final = 5
"""Fewest examples of each class the split needs before a model is worth fitting."""


@dataclass(frozen=True)
class ClassifierReport:
    """Holdout quality of the time-split classifier and of the P(alive) baseline."""

    horizon_days: int
    n_train: int
    n_test: int
    positive_rate_test: float
    auc: float
    baseline_auc_p_alive: float
    baseline_auc_expected_orders: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def collapse_fit(f: Features, mask: BoolA) -> BGNBDParams:
    """BG/NBD fitted on the distinct (x, t_x, T) summaries of ``mask``, weighted by count."""
    summary = np.stack([f.x[mask], f.t_x[mask], f.T[mask]], axis=1)
    uniq, counts = np.unique(summary, axis=0, return_counts=True)
    params, _ = fit_bgnbd(uniq[:, 0], uniq[:, 1], uniq[:, 2], weights=counts)
    return params


def design(f: Features, mask: BoolA, bg: BGNBDParams, horizon_days: int) -> FloatA:
    """The feature matrix of the ``mask`` rows (order of ``FEATURES``)."""
    cols: list[FloatA] = []
    for name in FEATURES:
        if name == "aov":
            cols.append(f.monetary[mask] / np.maximum(f.orders[mask], 1))
        elif name == "p_alive":
            cols.append(p_alive(bg, f.x[mask], f.t_x[mask], f.T[mask]))
        elif name == "expected_orders_horizon":
            cols.append(expected_purchases(bg, horizon_days, f.x[mask], f.t_x[mask], f.T[mask]))
        else:
            cols.append(np.asarray(getattr(f, name), dtype=np.float64)[mask])
    return np.stack(cols, axis=1)


def labelled(earlier: Features, later: Features) -> tuple[BoolA, npt.NDArray[np.int64]]:
    """(mask of earlier customers still present later, 1 where they ordered again by then).

    A customer has orders at every later cutoff, so is present unless profiles merged.
    """
    mask = earlier.customers.copy()
    rows = np.flatnonzero(mask)
    if len(later) == 0:
        mask[:] = False
        return mask, np.zeros(0, dtype=np.int64)
    idx = np.minimum(np.searchsorted(later.profile_id, earlier.profile_id[rows]), len(later) - 1)
    found = later.profile_id[idx] == earlier.profile_id[rows]
    mask[rows[~found]] = False
    idx = idx[found]
    y = (later.orders[idx] > earlier.orders[mask]).astype(np.int64)
    return mask, y


def _model() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.08, max_leaf_nodes=31, random_state=0
    )


def train_and_score(
    train_f: Features, test_f: Features, now_f: Features, horizon_days: int
) -> tuple[ClassifierReport | None, FloatA | None, str]:
    """Holdout report, P(order within the horizon) for ``now_f`` customers, and a reason
    when either could not be produced (too little history or a single class).

    scikit-learn's OpenMP threads are capped at one: on a shared machine the spinning
    worker threads make fits many times slower than a single thread.
    """
    import sklearn.ensemble  # load its OpenMP runtime first: threadpoolctl limits loaded ones
    from threadpoolctl import threadpool_limits

    del sklearn
    with threadpool_limits(1):
        return _train_and_score(train_f, test_f, now_f, horizon_days)


def _train_and_score(
    train_f: Features, test_f: Features, now_f: Features, horizon_days: int
) -> tuple[ClassifierReport | None, FloatA | None, str]:
    from sklearn.metrics import roc_auc_score

    m_train, y_train = labelled(train_f, test_f)
    m_test, y_test = labelled(test_f, now_f)
    for name, y in (("training", y_train), ("holdout", y_test)):
        if min(int(y.sum()), int(y.size - y.sum())) < MIN_CLASS:
            return None, None, f"{name} window has fewer than {MIN_CLASS} buyers or non-buyers"
    bg_train = collapse_fit(train_f, m_train)
    bg_test = collapse_fit(test_f, m_test)
    x_train = design(train_f, m_train, bg_train, horizon_days)
    x_test = design(test_f, m_test, bg_test, horizon_days)
    model = _model().fit(x_train, y_train)
    proba = model.predict_proba(x_test)[:, 1]
    report = ClassifierReport(
        horizon_days=horizon_days,
        n_train=int(y_train.size),
        n_test=int(y_test.size),
        positive_rate_test=float(y_test.mean()),
        auc=float(roc_auc_score(y_test, proba)),
        baseline_auc_p_alive=float(roc_auc_score(y_test, x_test[:, FEATURES.index("p_alive")])),
        baseline_auc_expected_orders=float(
            roc_auc_score(y_test, x_test[:, FEATURES.index("expected_orders_horizon")])
        ),
    )
    final = _model().fit(x_test, y_test)
    m_now = now_f.customers
    bg_now = collapse_fit(now_f, m_now)
    scores = final.predict_proba(design(now_f, m_now, bg_now, horizon_days))[:, 1]
    return report, np.asarray(scores, dtype=np.float64), ""
