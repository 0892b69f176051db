"""CDNOW (the 2,357-customer sample shipped with ``lifetimes``): segflow's BG/NBD and
Gamma-Gamma against the published estimates and against ``lifetimes`` itself.

    .venv/bin/python bench/cdnow.py

Prints the parameters side by side, the fit-time ratio (median of ``--repeat`` fits each,
same data, same machine, same process), and the holdout check: calibration weeks 1-39,
expected vs actual repeat purchases in weeks 40-78 from the transaction log.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from segflow.traits.clv import (  # noqa: E402
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import lifetimes
    import lifetimes.datasets as lds

PUBLISHED_BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "v": 15.44}
CAL_END_DAY = 272


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    runs, out = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), out


def holdout() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rows = np.loadtxt(Path(lifetimes.__file__).parent / "datasets" / "CDNOW_sample.txt")
    cust = rows[:, 1].astype(np.int64)
    stamps = rows[:, 2].astype(np.int64).astype(str)
    day = (
        np.array([np.datetime64(f"{s[:4]}-{s[4:6]}-{s[6:]}") for s in stamps])
        - np.datetime64("1997-01-01")
    ).astype(np.int64)
    pairs = np.unique(np.stack([cust, day], axis=1), axis=0)
    ids = np.unique(cust)
    pos = np.searchsorted(ids, pairs[:, 0])
    x, t, T, held = (np.zeros(ids.size) for _ in range(4))
    for i in range(ids.size):
        days = pairs[pos == i, 1]
        cal = days[days <= CAL_END_DAY]
        x[i], t[i], T[i] = cal.size - 1, (cal.max() - cal.min()) / 7, (CAL_END_DAY - cal.min()) / 7
        held[i] = np.count_nonzero((days > CAL_END_DAY) & (days <= CAL_END_DAY + 273))
    return x, t, T, held


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    s = lds.load_cdnow_summary()
    x, t, T = s["frequency"].to_numpy(), s["recency"].to_numpy(), s["T"].to_numpy()
    g = lds.load_cdnow_summary_data_with_monetary_value()
    g = g[g["frequency"] > 0]
    gx, gm = g["frequency"].to_numpy(), g["monetary_value"].to_numpy()

    # both fitters run with one BLAS thread (segflow's fitters always do; see clv.py)
    limit = threadpool_limits(1, user_api="blas")
    ours_bg_s, (bg, bg_info) = best_of(lambda: fit_bgnbd(x, t, T), args.repeat)
    ours_gg_s, (gg, gg_info) = best_of(lambda: fit_gamma_gamma(gx, gm), args.repeat)
    lt_bg_s, lt_bg = best_of(
        lambda: lifetimes.BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"]), args.repeat
    )
    lt_gg_s, lt_gg = best_of(
        lambda: lifetimes.GammaGammaFitter().fit(g["frequency"], g["monetary_value"]),
        args.repeat,
    )
    limit.unregister()

    print(f"CDNOW sample: {x.size:,} customers (BG/NBD), {gx.size:,} repeat buyers (Gamma-Gamma)")
    print(f"{'param':>6} {'published':>10} {'segflow':>10} {'lifetimes':>10}")
    for k, v in PUBLISHED_BG.items():
        print(f"{k:>6} {v:>10.3f} {getattr(bg, k):>10.4f} {lt_bg.params_[k]:>10.4f}")
    for k, v in PUBLISHED_GG.items():
        print(f"{k:>6} {v:>10.2f} {getattr(gg, k):>10.4f} {lt_gg.params_[k]:>10.4f}")
    print(
        f"log-likelihood: BG/NBD {bg_info.log_likelihood:.3f}, "
        f"Gamma-Gamma {gg_info.log_likelihood:.3f}"
    )
    print(
        f"fit time (median of {args.repeat}, one BLAS thread each): "
        f"BG/NBD segflow {ours_bg_s * 1e3:.1f} ms, "
        f"lifetimes {lt_bg_s * 1e3:.1f} ms (lifetimes/segflow = {lt_bg_s / ours_bg_s:.2f}x); "
        f"Gamma-Gamma segflow {ours_gg_s * 1e3:.1f} ms, lifetimes {lt_gg_s * 1e3:.1f} ms "
        f"({lt_gg_s / ours_gg_s:.2f}x)"
    )

    hx, ht, hT, held = holdout()
    params, _ = fit_bgnbd(hx, ht, hT)
    expected = expected_purchases(params, 39.0, hx, ht, hT)
    total = (expected.sum() - held.sum()) / held.sum()
    print(
        "holdout weeks 40-78 (calibration weeks 1-39 from the transaction log, same-day "
        f"purchases once): expected {expected.sum():,.1f} vs actual {held.sum():,.0f} repeat "
        f"purchases, total error {total:+.1%}, MAE per customer "
        f"{np.abs(expected - held).mean():.3f}, RMSE {np.sqrt(((expected - held) ** 2).mean()):.3f}"
    )
    print(f"{'x (weeks 1-39)':>15} {'customers':>9} {'expected':>9} {'actual':>9}")
    for k in range(8):
        sel = hx == k if k < 7 else hx >= 7
        label = f"{k}" if k < 7 else "7+"
        print(
            f"{label:>15} {int(sel.sum()):>9} {expected[sel].mean():>9.3f} {held[sel].mean():>9.3f}"
        )


if __name__ == "__main__":
    main()
