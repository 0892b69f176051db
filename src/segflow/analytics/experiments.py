"""Treatment vs holdout: is the difference in a goal metric real, and how many members
would it take to tell.

Rates (conversion) use the two-proportion z-test: the pooled standard error under the
null hypothesis for the test, the unpooled one for the interval of the difference.
Means (revenue or orders per member) use Welch's t-test and the Welch-Satterthwaite
interval, with an optional percentile bootstrap for skewed values.  Sample sizes use the
normal approximation with the test's own null and alternative variances, for any ratio
of treatment to holdout members.  A report never holds NaN or infinity: what cannot be
computed is ``None`` and the verdict says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy import stats

from segflow.analytics.plain import finite, plain

FloatA: TypeAlias = npt.NDArray[np.float64]

BOOTSTRAP_CHUNK: Final = 1 << 22
"""Resampled values drawn at once: bounds the bootstrap's memory whatever the arm sizes."""


class Verdict(StrEnum):
    SIGNIFICANT = "significant"
    NOT_SIGNIFICANT_YET = "not significant yet"
    INSUFFICIENT_DATA = "insufficient data"


@dataclass(frozen=True, slots=True)
class Proportion:
    """Members of one arm and how many of them reached the goal."""

    successes: int
    n: int

    def __post_init__(self) -> None:
        if not 0 <= self.successes <= self.n:
            raise ValueError(f"successes must be within 0..n, got {self.successes}/{self.n}")


@dataclass(frozen=True, slots=True)
class MeanStats:
    """Size, mean and sample standard deviation (n - 1 denominator) of one arm's values."""

    n: int
    mean: float
    sd: float

    def __post_init__(self) -> None:
        if self.n < 0 or not (math.isfinite(self.mean) and math.isfinite(self.sd)) or self.sd < 0:
            raise ValueError(f"invalid arm summary: n={self.n}, mean={self.mean}, sd={self.sd}")

    @classmethod
    def of(cls, values: npt.ArrayLike) -> MeanStats:
        x = _values(values)
        n = len(x)
        varies = n > 1 and x.min() < x.max()  # equal values: exactly 0, not rounding noise
        return cls(n, float(x.mean()) if n else 0.0, float(x.std(ddof=1)) if varies else 0.0)


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Members needed in each arm."""

    treatment: int
    holdout: int

    @property
    def total(self) -> int:
        return self.treatment + self.holdout


@dataclass(frozen=True, slots=True)
class Arm:
    """One arm as reported: ``value`` is the rate or the mean (``None`` without members),
    ``sd`` the members' standard deviation (Bernoulli for a rate)."""

    n: int
    value: float | None
    sd: float | None
    successes: int | None = None


@dataclass(frozen=True, slots=True)
class ExperimentReport:
    """Treatment vs holdout for one goal metric; lifts are treatment minus holdout."""

    test: str
    level: float
    power: float
    treatment: Arm
    holdout: Arm
    absolute_lift: float | None
    relative_lift: float | None
    ci: Interval | None
    bootstrap_ci: Interval | None
    statistic: float | None
    df: float | None
    p_value: float | None
    verdict: Verdict
    reason: str | None
    required: SampleSize | None
    """Per arm, at the observed values and arm ratio, for ``power``: given when not
    significant yet and a difference was observed."""
    still_needed: int | None
    """Members to add over both arms to reach ``required``."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = plain(self)
        return out


Z_TEST: Final = "two-proportion z-test"
WELCH: Final = "Welch's t-test"


def compare_rates(
    treatment: Proportion, holdout: Proportion, *, level: float = 0.95, power: float = 0.8
) -> ExperimentReport:
    """Two-proportion z-test of the treatment rate against the holdout rate."""
    _check_probability("level", level)
    _check_probability("power", power)
    arms = _rate_arm(treatment), _rate_arm(holdout)
    base = _insufficient(Z_TEST, level, power, *arms)
    if treatment.n == 0 or holdout.n == 0:
        return replace(base, reason=_no_members(treatment.n, holdout.n))
    pt, ph = treatment.successes / treatment.n, holdout.successes / holdout.n
    diff = pt - ph
    lifts = replace(base, absolute_lift=diff, relative_lift=diff / ph if ph > 0 else None)
    pooled = (treatment.successes + holdout.successes) / (treatment.n + holdout.n)
    if pooled in (0.0, 1.0):
        reason = "no member converted in either arm" if pooled == 0 else "every member converted"
        return replace(lifts, reason=reason)
    se_null = math.sqrt(pooled * (1 - pooled) * (1 / treatment.n + 1 / holdout.n))
    se = math.sqrt(pt * (1 - pt) / treatment.n + ph * (1 - ph) / holdout.n)
    z = diff / se_null
    p_value = float(2 * stats.norm.sf(abs(z)))
    half = _z(1 - (1 - level) / 2) * se
    report = replace(lifts, ci=Interval(diff - half, diff + half), statistic=z, p_value=p_value)
    if p_value < 1 - level:
        return replace(report, verdict=Verdict.SIGNIFICANT)
    ratio = treatment.n / holdout.n
    needed = (
        _rate_sample_size(ph, diff, alpha=1 - level, power=power, ratio=ratio) if diff else None
    )
    return _not_yet(report, needed, treatment.n, holdout.n)


def compare_mean_stats(
    treatment: MeanStats, holdout: MeanStats, *, level: float = 0.95, power: float = 0.8
) -> ExperimentReport:
    """Welch's t-test of the treatment mean against the holdout mean, from summaries."""
    _check_probability("level", level)
    _check_probability("power", power)
    arms = (
        Arm(a.n, a.mean if a.n else None, a.sd if a.n > 1 else None) for a in (treatment, holdout)
    )
    base = _insufficient(WELCH, level, power, *arms)
    if treatment.n == 0 or holdout.n == 0:
        return replace(base, reason=_no_members(treatment.n, holdout.n))
    diff = treatment.mean - holdout.mean
    rel = diff / holdout.mean if holdout.mean != 0 else None
    lifts = replace(base, absolute_lift=diff, relative_lift=rel)
    if treatment.n < 2 or holdout.n < 2:
        return replace(lifts, reason="each arm needs at least two members")
    vt, vh = treatment.sd**2 / treatment.n, holdout.sd**2 / holdout.n
    se = math.sqrt(vt + vh)
    if se == 0:
        return replace(lifts, reason="the values do not vary in either arm")
    wt, wh = vt / (vt + vh), vh / (vt + vh)  # as weights: no underflow for tiny variances
    df = 1 / (wt**2 / (treatment.n - 1) + wh**2 / (holdout.n - 1))
    t = diff / se
    half = float(stats.t.ppf(1 - (1 - level) / 2, df)) * se
    report = replace(
        lifts,
        ci=Interval(diff - half, diff + half),
        statistic=finite(t),
        df=df,
        p_value=finite(2 * stats.t.sf(abs(t), df)),
    )
    if report.p_value is not None and report.p_value < 1 - level:
        return replace(report, verdict=Verdict.SIGNIFICANT)
    needed = None
    if diff:
        ratio = treatment.n / holdout.n
        var = holdout.sd**2 + treatment.sd**2 / ratio
        needed = _sample_size(diff, var, var, alpha=1 - level, power=power, ratio=ratio)
    return _not_yet(report, needed, treatment.n, holdout.n)


def compare_means(
    treatment: npt.ArrayLike,
    holdout: npt.ArrayLike,
    *,
    level: float = 0.95,
    power: float = 0.8,
    bootstrap: int = 0,
    seed: int = 0,
) -> ExperimentReport:
    """Welch's t-test over the members' values; with ``bootstrap`` resamples, also the
    percentile bootstrap interval of the difference (reproducible for a ``seed``)."""
    t, h = _values(treatment), _values(holdout)
    report = compare_mean_stats(MeanStats.of(t), MeanStats.of(h), level=level, power=power)
    if bootstrap > 0 and len(t) and len(h):
        ci = bootstrap_ci(t, h, resamples=bootstrap, level=level, seed=seed)
        report = replace(report, bootstrap_ci=ci)
    return report


def bootstrap_ci(
    treatment: npt.ArrayLike,
    holdout: npt.ArrayLike,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of mean(treatment) - mean(holdout): each arm is
    resampled with replacement at its own size, ``resamples`` times."""
    _check_probability("level", level)
    t, h = _values(treatment), _values(holdout)
    if not len(t) or not len(h) or resamples < 1:
        raise ValueError("the bootstrap needs members in both arms and at least one resample")
    rng = np.random.default_rng(seed)
    diffs = _resampled_means(t, resamples, rng) - _resampled_means(h, resamples, rng)
    low, high = np.quantile(diffs, [(1 - level) / 2, 1 - (1 - level) / 2])
    return Interval(float(low), float(high))


def sample_size_rates(
    baseline: float,
    mde: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> SampleSize:
    """Members per arm for the two-sided z-test to detect a rate moving from ``baseline``
    (the holdout's) by ``mde`` (absolute, or a fraction of ``baseline`` when ``relative``);
    ``ratio`` is treatment members per holdout member."""
    _check_probability("alpha", alpha)
    _check_probability("power", power)
    _check_ratio(ratio)
    if not 0 <= baseline <= 1:
        raise ValueError(f"baseline must be a rate within 0..1, got {baseline}")
    diff = mde * baseline if relative else mde
    if diff == 0 or not 0 <= baseline + diff <= 1:
        raise ValueError(f"the rate after the effect must be another rate within 0..1, got {diff}")
    return _rate_sample_size(baseline, diff, alpha=alpha, power=power, ratio=ratio)


def sample_size_means(
    sd: float,
    mde: float,
    *,
    mean: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> SampleSize:
    """Members per arm to detect a mean moving by ``mde`` (absolute, or a fraction of
    ``mean`` when ``relative``) when members' values have standard deviation ``sd``."""
    _check_probability("alpha", alpha)
    _check_probability("power", power)
    _check_ratio(ratio)
    if relative and not mean:
        raise ValueError("a relative effect needs the baseline mean")
    diff = mde * mean if relative and mean else mde
    if diff == 0 or not sd > 0:
        raise ValueError("the effect and the standard deviation must be non-zero")
    var = sd**2 * (1 + 1 / ratio)
    return _sample_size(diff, var, var, alpha=alpha, power=power, ratio=ratio)


def _rate_sample_size(
    baseline: float, diff: float, *, alpha: float, power: float, ratio: float
) -> SampleSize:
    target = baseline + diff
    pooled = (ratio * target + baseline) / (1 + ratio)
    var_null = pooled * (1 - pooled) * (1 + 1 / ratio)
    var_alt = baseline * (1 - baseline) + target * (1 - target) / ratio
    return _sample_size(diff, var_null, var_alt, alpha=alpha, power=power, ratio=ratio)


def _sample_size(
    diff: float, var_null: float, var_alt: float, *, alpha: float, power: float, ratio: float
) -> SampleSize:
    """Holdout size ``n`` with ``z(1-alpha/2) * sqrt(var_null / n) + z(power) *
    sqrt(var_alt / n) = |diff|`` (variances of the difference times the holdout size),
    and ``ratio * n`` treatment members."""
    root = _z(1 - alpha / 2) * math.sqrt(var_null) + _z(power) * math.sqrt(var_alt)
    n = max(root, 0.0) ** 2 / diff**2
    return SampleSize(treatment=_ceil(ratio * n), holdout=_ceil(n))


def _insufficient(
    test: str, level: float, power: float, treatment: Arm, holdout: Arm
) -> ExperimentReport:
    return ExperimentReport(
        test=test,
        level=level,
        power=power,
        treatment=treatment,
        holdout=holdout,
        absolute_lift=None,
        relative_lift=None,
        ci=None,
        bootstrap_ci=None,
        statistic=None,
        df=None,
        p_value=None,
        verdict=Verdict.INSUFFICIENT_DATA,
        reason=None,
        required=None,
        still_needed=None,
    )


def _not_yet(
    report: ExperimentReport, needed: SampleSize | None, nt: int, nh: int
) -> ExperimentReport:
    more = None if needed is None else max(needed.treatment - nt, 0) + max(needed.holdout - nh, 0)
    return replace(report, verdict=Verdict.NOT_SIGNIFICANT_YET, required=needed, still_needed=more)


def _rate_arm(p: Proportion) -> Arm:
    if not p.n:
        return Arm(0, None, None, p.successes)
    rate = p.successes / p.n
    return Arm(p.n, rate, math.sqrt(rate * (1 - rate)), p.successes)


def _no_members(nt: int, nh: int) -> str:
    return (
        "neither arm has members"
        if nt == nh == 0
        else f"the {'holdout' if nt else 'treatment'} has no members"
    )


def _resampled_means(values: FloatA, resamples: int, rng: np.random.Generator) -> FloatA:
    n = len(values)
    out = np.empty(resamples)
    step = max(1, BOOTSTRAP_CHUNK // n)
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        out[start : start + rows] = values[rng.integers(0, n, size=(rows, n))].mean(axis=1)
    return out


def _values(values: npt.ArrayLike) -> FloatA:
    x = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(x).all():
        raise ValueError("values must be finite numbers")
    return x


def _check_ratio(ratio: float) -> None:
    if not (ratio > 0 and math.isfinite(ratio)):
        raise ValueError(f"ratio must be a positive number, got {ratio}")


def _check_probability(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value}")


def _z(q: float) -> float:
    return float(stats.norm.ppf(q))


def _ceil(x: float) -> int:
    """Round up, forgiving the last bits of float error (a whole number stays as it is)."""
    return math.ceil(x - 1e-9 * max(1.0, x))
