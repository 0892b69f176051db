"""Segment discovery: cluster customers on their stored score traits, then describe
each cluster as a rule in the segflow language a marketer can read and edit.

K-means runs on standardised features (``clv_12m`` on a log scale).  Each cluster gets a
shallow one-vs-rest decision tree on the raw trait values; the leaves that predict the
cluster become ``any`` of ``all`` of trait comparisons (thresholds rounded to readable
values *before* the rule is scored, so the size, precision and recall reported are
those of the rule as written, exactly what the batch evaluator will return).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from segflow.store.protocols import ScoreStore

FloatA: TypeAlias = npt.NDArray[np.float64]
BoolA: TypeAlias = npt.NDArray[np.bool_]

TRAITS: Final = (
    "rfm_recency",
    "rfm_frequency",
    "rfm_monetary",
    "engagement_score",
    "p_alive",
    "expected_orders_90d",
    "clv_12m",
)
"""Numeric score traits clustered on and used in the rules (customers have all of them)."""
INTEGER_TRAITS: Final = frozenset({"rfm_recency", "rfm_frequency", "rfm_monetary"})
CUSTOMER_GUARD: Final = {"trait": "rfm_recency", "exists": True}


@dataclass(frozen=True)
class Proposal:
    """One discovered cluster and the rule proposed for it."""

    cluster: int
    size: int
    rule_size: int
    precision: float
    recall: float
    centroid: dict[str, float]
    segment: dict[str, Any]
    members: tuple[str, ...] = ()
    """Profiles the rule selects (what evaluating ``segment`` returns), sorted."""
    cluster_members: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "size": self.size,
            "rule_size": self.rule_size,
            "precision": self.precision,
            "recall": self.recall,
            "centroid": self.centroid,
            "segment": self.segment,
        }


def load_traits(
    store: ScoreStore, at: datetime | None = None
) -> tuple[npt.NDArray[np.object_], FloatA]:
    """(profile ids, matrix of ``TRAITS``) for profiles that have every one of them."""
    table = store.score_matrix(TRAITS, at or datetime(9999, 12, 31))
    ids = table.column("profile_id").to_numpy().astype(object)
    mat = (
        np.stack(
            [table.column(k).to_numpy(zero_copy_only=False).astype(np.float64) for k in TRAITS],
            axis=1,
        )
        if table.num_rows
        else np.zeros((0, len(TRAITS)))
    )
    keep = ~np.isnan(mat).any(axis=1)
    return ids[keep], mat[keep]


def _readable(value: float, integer: bool) -> float:
    """A threshold a person would write: integers for scores, 3 significant digits else."""
    if integer:
        return float(math.floor(value))
    if value == 0:
        return 0.0
    digits = 2 - math.floor(math.log10(abs(value)))
    return float(round(value, digits))


Path: TypeAlias = list[tuple[str, str, float]]


def _paths(tree: Any, names: tuple[str, ...], min_share: float) -> list[Path]:
    """Root-to-leaf paths whose leaf is mostly positive, as (trait, op, threshold) lists."""
    t = tree.tree_
    out: list[Path] = []

    def walk(node: int, path: Path) -> None:
        left, right = int(t.children_left[node]), int(t.children_right[node])
        if left == right:
            counts = t.value[node][0]
            if counts.sum() > 0 and counts[1] / counts.sum() >= min_share:
                out.append(path)
            return
        name = names[int(t.feature[node])]
        thr = _readable(float(t.threshold[node]), name in INTEGER_TRAITS)
        walk(left, [*path, (name, "lte", thr)])
        walk(right, [*path, (name, "gt", thr)])

    walk(0, [])
    return out


def _simplify(path: Path) -> Path:
    """Keep the tightest bound per (trait, direction)."""
    best: dict[tuple[str, str], float] = {}
    for name, op, thr in path:
        k = (name, op)
        if k not in best:
            best[k] = thr
        else:
            best[k] = min(best[k], thr) if op == "lte" else max(best[k], thr)
    return [(n, o, v) for (n, o), v in best.items()]


def _condition(name: str, op: str, thr: float) -> dict[str, Any]:
    if name in INTEGER_TRAITS:
        # integer scores: x <= 3 stays lte 3; x > 3 reads better as gte 4
        if op == "gt":
            return {"trait": name, "gte": int(thr) + 1}
        return {"trait": name, "lte": int(thr)}
    return {"trait": name, op: thr}


def _mask(path: Path, mat: FloatA) -> BoolA:
    m = np.ones(mat.shape[0], dtype=bool)
    for name, op, thr in path:
        col = mat[:, TRAITS.index(name)]
        m &= col <= thr if op == "lte" else col > thr
    return m


def rule_condition(paths: list[Path]) -> dict[str, Any]:
    """``any`` of ``all`` of trait comparisons, always restricted to scored customers."""
    branches = []
    for p in paths:
        items = [dict(CUSTOMER_GUARD), *(_condition(*c) for c in p)]
        branches.append({"all": items})
    if len(branches) == 1:
        return branches[0]
    return {"any": branches}


def discover(
    ids: npt.NDArray[np.object_],
    mat: FloatA,
    *,
    k: int = 5,
    depth: int = 3,
    seed: int = 0,
    prefix: str = "discovered",
) -> list[Proposal]:
    """Cluster the rows of ``mat`` into ``k`` groups and propose a rule for each."""
    from sklearn.cluster import KMeans
    from sklearn.tree import DecisionTreeClassifier

    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    if mat.shape[0] < k * 5:
        raise ValueError(f"need at least {k * 5} scored customers for k={k}, got {mat.shape[0]}")
    z = mat.copy()
    z[:, TRAITS.index("clv_12m")] = np.log1p(np.maximum(z[:, TRAITS.index("clv_12m")], 0))
    sd = z.std(axis=0)
    z = (z - z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # OpenMP spinning on a shared machine costs more than it gives
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(z)
    out: list[Proposal] = []
    for c in range(k):
        target = labels == c
        tree = DecisionTreeClassifier(
            max_depth=depth, min_samples_leaf=max(5, mat.shape[0] // 200), random_state=seed
        ).fit(mat, target)
        paths = [_simplify(p) for p in _paths(tree, TRAITS, 0.5)]
        if not paths:
            continue
        # score the rule as it will be written: readable thresholds, integer bounds
        rule = np.zeros(mat.shape[0], dtype=bool)
        for p in paths:
            rule |= _mask(p, mat)
        hit = int((rule & target).sum())
        centroid = {n: round(float(mat[target, i].mean()), 3) for i, n in enumerate(TRAITS)}
        sid = f"{prefix}_{c + 1}"
        out.append(
            Proposal(
                cluster=c + 1,
                size=int(target.sum()),
                rule_size=int(rule.sum()),
                precision=round(hit / max(int(rule.sum()), 1), 4),
                recall=round(hit / max(int(target.sum()), 1), 4),
                centroid=centroid,
                segment={
                    "id": sid,
                    "name": f"Discovered cluster {c + 1}",
                    "description": _describe(centroid, mat),
                    "mode": "scheduled",
                    "schedule": "30 4 * * *",
                    "condition": rule_condition(paths),
                },
                members=tuple(sorted(ids[rule].tolist())),
                cluster_members=tuple(sorted(ids[target].tolist())),
            )
        )
    return out


def _describe(centroid: dict[str, float], mat: FloatA) -> str:
    """A plain-words summary: the traits where the cluster sits far from the average."""
    means = mat.mean(axis=0)
    sds = np.where(mat.std(axis=0) > 0, mat.std(axis=0), 1.0)
    words = []
    for i, name in enumerate(TRAITS):
        zscore = (centroid[name] - means[i]) / sds[i]
        if abs(zscore) >= 0.5:
            words.append(f"{'high' if zscore > 0 else 'low'} {name} ({centroid[name]:g})")
    return "Customers with " + (", ".join(words) if words else "average scores") + "."
