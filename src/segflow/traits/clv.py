"""BG/NBD (Fader, Hardie & Lee 2005) and Gamma-Gamma spend models, in vectorised NumPy.

Both fits maximise the exact log-likelihood with ``scipy.optimize.minimize`` over the
log of the parameters (so they stay positive).  Customers with the same summary
``(x, t_x, T)`` contribute identical terms, so the fitters take optional integer
weights: callers collapse duplicate rows first and a million customers cost what
their distinct summaries cost.

Notation: ``x`` repeat purchases (purchases after the first), ``t_x`` time of the
last purchase and ``T`` the age of the customer, both measured from the first
purchase; ``m`` the mean value of the repeat purchases.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1

FloatA: TypeAlias = npt.NDArray[np.float64]

_BOUND: Final = (-12.0, 12.0)
"""Box on the log-parameters (about 6e-6 to 1.6e5): keeps tiny or degenerate samples
from running off to infinity while leaving real fits untouched."""
_HUGE: Final = 1e100


def _one_blas_thread() -> Any:
    """L-BFGS-B's tiny BLAS calls run many times slower with OpenBLAS threads spinning on a
    shared machine; the problem has four parameters, so one thread is all it can use anyway."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


@dataclass(frozen=True, slots=True)
class FitInfo:
    """How a fit went: final log-likelihood, customers used, iterations, seconds."""

    log_likelihood: float
    n: int
    iterations: int
    seconds: float
    converged: bool


@dataclass(frozen=True, slots=True)
class BGNBDParams:
    """Purchase rate ~ Gamma(r, alpha); drop-out probability after each purchase ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class GammaGammaParams:
    """Spend per transaction ~ Gamma(p, nu), nu ~ Gamma(q, v) across customers."""

    p: float
    q: float
    v: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _arrays(*xs: npt.ArrayLike) -> tuple[FloatA, ...]:
    return tuple(np.asarray(x, dtype=np.float64) for x in xs)


def _weights(w: npt.ArrayLike | None, n: int) -> FloatA:
    if w is None:
        return np.ones(n)
    out = np.asarray(w, dtype=np.float64)
    if out.shape != (n,):
        raise ValueError(f"weights: expected {n} values, got shape {out.shape}")
    return out


def _check_summary(x: FloatA, t_x: FloatA, T: FloatA) -> None:
    if not (x.shape == t_x.shape == T.shape):
        raise ValueError(f"x, t_x, T: shapes differ ({x.shape}, {t_x.shape}, {T.shape})")
    if x.size == 0:
        raise ValueError("x: no customers to fit")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T + 1e-9):
        raise ValueError("x, t_x, T: need x >= 0 and 0 <= t_x <= T for every customer")


# -- BG/NBD ------------------------------------------------------------------------------


def bgnbd_log_likelihood(
    params: BGNBDParams, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> FloatA:
    """Per-customer log-likelihood (FHL 2005, eq. 6), vectorised.

    ``L = B(a, b+x)/B(a, b) * G(r+x) a^r / (G(r) (alpha+T)^(r+x))
        + [x > 0] B(a+1, b+x-1)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x))``
    """
    xa, ta, Ta = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    a1 = gammaln(r + xa) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + xa) - betaln(a, b) - (r + xa) * np.log(alpha + Ta)
    repeat = xa > 0
    a3 = np.full_like(xa, -np.inf)
    xr = xa[repeat]
    a3[repeat] = betaln(a + 1, b + xr - 1) - betaln(a, b) - (r + xr) * np.log(alpha + ta[repeat])
    out: FloatA = a1 + np.logaddexp(a2, a3)
    return out


def fit_bgnbd(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    initial: BGNBDParams | None = None,
) -> tuple[BGNBDParams, FitInfo]:
    """Maximum-likelihood BG/NBD parameters of customer summaries (optionally weighted)."""
    xa, ta, Ta = _arrays(x, t_x, T)
    _check_summary(xa, ta, Ta)
    w = _weights(weights, xa.size)
    # scale time so that alpha is O(1) whatever the unit the caller used
    scale = float(np.average(Ta, weights=w)) or 1.0
    ts, Ts = ta / scale, Ta / scale
    total = float(w.sum())

    repeat = xa > 0
    tr = ts[repeat]
    # every special function depends on x alone: evaluate it once per distinct x
    ux, xi = np.unique(xa, return_inverse=True)
    xir = xi[repeat]
    uxr = np.maximum(ux, 1.0)

    def negll(theta: FloatA) -> tuple[float, FloatA]:
        """Mean negative log-likelihood and its gradient in the log-parameters."""
        r, alpha, a, b = (float(v) for v in np.exp(theta))
        log_aT = np.log(alpha + Ts)
        log_at = np.log(alpha + ts)
        a1 = (gammaln(r + ux) - gammaln(r))[xi] + r * np.log(alpha)
        a2 = (betaln(a, b + ux) - betaln(a, b))[xi] - (r + xa) * log_aT
        a3 = np.full_like(xa, -np.inf)
        a3[repeat] = (betaln(a + 1, b + uxr - 1) - betaln(a, b))[xir] - (r + xa[repeat]) * np.log(
            alpha + tr
        )
        mix = np.logaddexp(a2, a3)
        value = -float(w @ (a1 + mix)) / total
        if not np.isfinite(value):
            return _HUGE, np.zeros(4)
        w2 = np.exp(a2 - mix)
        w3 = np.exp(a3 - mix)
        dab = digamma(a + b)
        dabx = digamma(a + b + ux)
        d_r = (digamma(r + ux) - digamma(r))[xi] + np.log(alpha)
        d_r -= w2 * log_aT + w3 * log_at
        d_alpha = r / alpha - (r + xa) * (w2 / (alpha + Ts) + w3 / (alpha + ts))
        d_a = w2 * (dab - dabx)[xi] + w3 * (digamma(a + 1) - digamma(a) + dab - dabx)[xi]
        d_b = w2 * (digamma(b + ux) - dabx - digamma(b) + dab)[xi]
        d_b += w3 * (digamma(b + uxr - 1) - dabx - digamma(b) + dab)[xi]
        grad = np.array([w @ d_r, w @ d_alpha, w @ d_a, w @ d_b]) * np.array([r, alpha, a, b])
        return value, -grad / total

    start = initial or BGNBDParams(1.0, 1.0, 1.0, 1.0)
    theta0 = np.log([start.r, start.alpha / scale if initial else 1.0, start.a, start.b])
    began = time.perf_counter()
    with _one_blas_thread(), np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        res = minimize(
            negll,
            theta0,
            jac=True,
            method="L-BFGS-B",
            bounds=[_BOUND] * 4,
            options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 2_000},
        )
    r, alpha, a, b = (float(v) for v in np.exp(res.x))
    params = BGNBDParams(r, alpha * scale, a, b)
    ll = float(w @ bgnbd_log_likelihood(params, xa, ta, Ta))
    info = FitInfo(ll, round(total), int(res.nit), time.perf_counter() - began, bool(res.success))
    return params, info


def p_alive(params: BGNBDParams, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatA:
    """P(still active at T | x, t_x, T): 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))."""
    xa, ta, Ta = _arrays(x, t_x, T)
    out: FloatA = 1.0 / (1.0 + _dropout_odds(params, xa, ta, Ta))
    return out


def _dropout_odds(params: BGNBDParams, xa: FloatA, ta: FloatA, Ta: FloatA) -> FloatA:
    """Odds that a customer with these summaries has already dropped out (0 when x = 0)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore"):
        log_odds = (
            np.log(a)
            - np.log(np.maximum(b + xa - 1, 1e-300))
            + (r + xa) * (np.log(alpha + Ta) - np.log(alpha + ta))
        )
    odds = np.where(xa > 0, np.exp(np.minimum(log_odds, 700.0)), 0.0)
    return odds


def expected_purchases(
    params: BGNBDParams,
    horizon: float | FloatA,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
) -> FloatA:
    """E[purchases in (T, T + horizon] | x, t_x, T] (FHL 2005, eq. 10)."""
    xa, ta, Ta = _arrays(x, t_x, T)
    h = np.asarray(horizon, dtype=np.float64)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = h / (alpha + Ta + h)
    ratio = np.exp((r + xa) * (np.log(alpha + Ta) - np.log(alpha + Ta + h)))
    f = hyp2f1(r + xa, b + xa, a + b + xa - 1, z)
    numer = (a + b + xa - 1) / (a - 1) * (1.0 - ratio * f)
    odds = _dropout_odds(params, xa, ta, Ta)
    out: FloatA = np.maximum(numer / (1.0 + odds), 0.0)
    return out


# -- Gamma-Gamma ---------------------------------------------------------------------------


def gamma_gamma_log_likelihood(
    params: GammaGammaParams, x: npt.ArrayLike, m: npt.ArrayLike
) -> FloatA:
    """Per-customer log-likelihood of the mean spend ``m`` of ``x`` repeat transactions.

    ``G(px+q)/(G(px) G(q)) v^q m^(px-1) x^(px) / (v + x m)^(px+q)`` (Fader, Hardie & Lee,
    "RFM and CLV", 2005), for ``x >= 1``.
    """
    xa, ma = _arrays(x, m)
    p, q, v = params.p, params.q, params.v
    px = p * xa
    out: FloatA = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(ma)
        + px * np.log(xa)
        - (px + q) * np.log(v + xa * ma)
    )
    return out


def fit_gamma_gamma(
    x: npt.ArrayLike,
    m: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
) -> tuple[GammaGammaParams, FitInfo]:
    """Maximum-likelihood Gamma-Gamma parameters from customers with ``x >= 1`` and ``m > 0``."""
    xa, ma = _arrays(x, m)
    if xa.shape != ma.shape:
        raise ValueError(f"x, m: shapes differ ({xa.shape}, {ma.shape})")
    keep = (xa >= 1) & (ma > 0)
    if not np.any(keep):
        raise ValueError("x, m: no customer with a repeat purchase of positive value")
    w = _weights(weights, xa.size)[keep]
    xa, ma = xa[keep], ma[keep]
    scale = float(np.average(ma, weights=w))
    ms = ma / scale
    total = float(w.sum())

    log_m, log_x = np.log(ms), np.log(xa)
    ux, xi = np.unique(xa, return_inverse=True)
    # the data-only terms are linear in p: sum them once
    sum_xlm = float(w @ (xa * (log_m + log_x)))
    sum_lm = float(w @ log_m)
    wx = np.bincount(xi, weights=w, minlength=ux.size)

    def negll(theta: FloatA) -> tuple[float, FloatA]:
        """Mean negative log-likelihood and its gradient in the log-parameters."""
        p, q, v = (float(t) for t in np.exp(theta))
        pu = p * ux
        log_vxm = np.log(v + xa * ms)
        ll = (
            float(wx @ (gammaln(pu + q) - gammaln(pu)))
            - total * (gammaln(q) - q * np.log(v))
            + p * sum_xlm
            - sum_lm
            - float(w @ ((p * xa + q) * log_vxm))
        )
        value = -ll / total
        if not np.isfinite(value):
            return _HUGE, np.zeros(3)
        dpq = digamma(pu + q)
        w_log = float(w @ log_vxm)
        d_p = float(wx @ (ux * (dpq - digamma(pu)))) + sum_xlm - float(w @ (xa * log_vxm))
        d_q = float(wx @ dpq) - total * (digamma(q) - np.log(v)) - w_log
        d_v = total * q / v - float(w @ ((p * xa + q) / (v + xa * ms)))
        grad = np.array([d_p, d_q, d_v]) * np.array([p, q, v])
        return value, -grad / total

    began = time.perf_counter()
    with _one_blas_thread(), np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        res = minimize(
            negll,
            np.zeros(3),
            jac=True,
            method="L-BFGS-B",
            bounds=[_BOUND] * 3,
            options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 2_000},
        )
    p, q, v = (float(t) for t in np.exp(res.x))
    params = GammaGammaParams(p, q, v * scale)
    ll = float(w @ gamma_gamma_log_likelihood(params, xa, ma))
    info = FitInfo(ll, round(total), int(res.nit), time.perf_counter() - began, bool(res.success))
    return params, info


def expected_spend(params: GammaGammaParams, x: npt.ArrayLike, m: npt.ArrayLike) -> FloatA:
    """E[spend per transaction | x, m] = p (v + x m) / (p x + q - 1); the prior mean when x=0."""
    xa, ma = _arrays(x, m)
    p, q, v = params.p, params.q, params.v
    mm = np.where(xa > 0, np.nan_to_num(ma), 0.0)
    out: FloatA = p * (v + xa * mm) / (p * xa + q - 1)
    return out


# -- CLV --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CLVAssumptions:
    """12-month CLV: monthly steps of ``days_per_month`` days, discounted monthly at the
    equivalent of ``annual_discount``, times ``margin`` (1.0 = revenue, not profit)."""

    months: int = 12
    annual_discount: float = 0.10
    margin: float = 1.0
    days_per_month: float = 365.25 / 12

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def clv(
    bg: BGNBDParams,
    gg: GammaGammaParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    m: npt.ArrayLike,
    assumptions: CLVAssumptions | None = None,
    time_unit_days: float = 1.0,
) -> FloatA:
    """Discounted expected value of the next ``months``: E[spend] x margin x
    ``discounted_purchases``."""
    a = assumptions or CLVAssumptions()
    xa, ta, Ta, ma = _arrays(x, t_x, T, m)
    spend = expected_spend(gg, xa, ma)
    out: FloatA = discounted_purchases(bg, xa, ta, Ta, a, time_unit_days) * spend * a.margin
    return out


def discounted_purchases(
    bg: BGNBDParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    assumptions: CLVAssumptions | None = None,
    time_unit_days: float = 1.0,
) -> FloatA:
    """Sum over months i of (E[purchases by month i] - E[purchases by month i-1]) / (1+d)^i,
    ``d`` the monthly rate equivalent to the annual discount."""
    a = assumptions or CLVAssumptions()
    xa, ta, Ta = _arrays(x, t_x, T)
    monthly = (1.0 + a.annual_discount) ** (1.0 / 12.0) - 1.0
    total = np.zeros_like(xa)
    previous = np.zeros_like(xa)
    for i in range(1, a.months + 1):
        cumulative = expected_purchases(bg, i * a.days_per_month / time_unit_days, xa, ta, Ta)
        total += (cumulative - previous) / (1.0 + monthly) ** i
        previous = cumulative
    return total
