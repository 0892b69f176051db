"""Refresh every value score and prediction as of an instant, written as traits.

One feature query (``features``), vectorised model math (``rfm``, ``engagement``,
``clv``, ``churn``), then one bulk write (``ScoreStore.write_scores``) into the
``traits`` history: a row per (profile, score key) stamped with the as-of instant, so
segment conditions such as ``{trait: rfm_recency, op: gte, value: 4}`` read them like
any other trait and
evaluating as of an earlier instant sees the scores that were true then.  A key a
profile had before but no longer has (say a tier it dropped out of) is cleared with a
``null`` row.  ``score_runs`` keeps each run's parameters and fit quality.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from segflow.model.time import utcnow
from segflow.traits import engagement as eng
from segflow.traits import rfm
from segflow.traits.churn import ClassifierReport, train_and_score
from segflow.traits.clv import (
    BGNBDParams,
    CLVAssumptions,
    FitInfo,
    GammaGammaParams,
    discounted_purchases,
    expected_purchases,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    p_alive,
)
from segflow.traits.features import Features, extract_features

if TYPE_CHECKING:
    from segflow.store.protocols import ScoreStore

FloatA: TypeAlias = npt.NDArray[np.float64]
IntA: TypeAlias = npt.NDArray[np.int64]
Arr: TypeAlias = "pa.Array[Any]"

NUMBER_KEYS: Final = (
    "rfm_recency",
    "rfm_frequency",
    "rfm_monetary",
    "engagement_score",
    "email_open_rate",
    "email_click_rate",
    "p_alive",
    "churn_risk",
    "expected_orders_30d",
    "expected_orders_90d",
    "clv_12m",
    "purchase_propensity_90d",
)
STRING_KEYS: Final = (
    "rfm_code",
    "rfm_group",
    "purchase_frequency_band",
    "loyalty_tier",
    "lifecycle_stage",
    "scores_computed_at",
)
SCORE_KEYS: Final = NUMBER_KEYS + STRING_KEYS
PROPENSITY: Final = "purchase_propensity_90d"
"""The classifier's score: written only by a run with the classifier."""


@dataclass(frozen=True)
class ScoresConfig:
    """Everything tunable about a refresh (defaults are the documented ones)."""

    engagement: eng.EngagementConfig = field(default_factory=eng.EngagementConfig)
    tiers: eng.TierConfig = field(default_factory=eng.TierConfig)
    clv: CLVAssumptions = field(default_factory=CLVAssumptions)
    classifier: bool = True
    horizon_days: int = 90
    min_customers: int = 20
    bgnbd: BGNBDParams | None = None
    gamma_gamma: GammaGammaParams | None = None
    """Fixed model parameters (e.g. from an earlier fit) instead of fitting this run."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelFit:
    params: dict[str, float]
    fit: FitInfo

    def as_dict(self) -> dict[str, Any]:
        return {"params": self.params, "fit": asdict(self.fit)}


@dataclass(frozen=True)
class ScoresReport:
    """What a refresh did: population, models, classifier quality, timings."""

    as_of: datetime
    computed_at: datetime
    profiles: int
    customers: int
    traits_written: int
    traits_cleared: int
    bgnbd: ModelFit | None
    gamma_gamma: ModelFit | None
    models_note: str
    classifier: ClassifierReport | None
    classifier_note: str
    seconds: dict[str, float]
    config: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "computed_at": self.computed_at.isoformat(),
            "profiles": self.profiles,
            "customers": self.customers,
            "traits_written": self.traits_written,
            "traits_cleared": self.traits_cleared,
            "bgnbd": self.bgnbd.as_dict() if self.bgnbd else None,
            "gamma_gamma": self.gamma_gamma.as_dict() if self.gamma_gamma else None,
            "models_note": self.models_note,
            "classifier": self.classifier.as_dict() if self.classifier else None,
            "classifier_note": self.classifier_note,
            "seconds": self.seconds,
            "config": self.config,
        }


@dataclass
class Scores:
    """Wide per-profile score columns (NaN / -1 mean "no value") plus fitted models."""

    features: Features
    columns: dict[str, Arr]
    bgnbd: ModelFit | None
    gamma_gamma: ModelFit | None
    customers: int
    models_note: str = ""


def _summary_keys(f: Features, mask: npt.NDArray[np.bool_]) -> tuple[IntA, IntA, IntA]:
    """(unique summary index per customer, and the unique rows' positions) for collapsing."""
    key = (
        f.x[mask].astype(np.int64) * (1 << 42)
        + f.t_x[mask].astype(np.int64) * (1 << 21)
        + f.T[mask].astype(np.int64)
    )
    _, first, inverse, counts = np.unique(
        key, return_index=True, return_inverse=True, return_counts=True
    )
    return first.astype(np.int64), inverse.astype(np.int64), counts.astype(np.int64)


def _numbers(values: FloatA, valid: npt.NDArray[np.bool_]) -> Arr:
    return pa.array(values, pa.float64(), mask=~valid)


def _labels(names: tuple[str, ...], index: IntA, valid: npt.NDArray[np.bool_]) -> Arr:
    idx = pa.array(index.astype(np.int32), pa.int32(), mask=~valid)
    return pa.DictionaryArray.from_arrays(idx, pa.array(names, pa.string())).cast(pa.string())


def compute_scores(
    f: Features,
    config: ScoresConfig | None = None,
    propensity: FloatA | None = None,
) -> Scores:
    """Every score of every profile in ``f``; ``propensity`` is the classifier's output for
    the customers (in row order) when it ran."""
    config = config or ScoresConfig()
    n = len(f)
    cust = f.customers
    n_cust = int(cust.sum())
    cols: dict[str, Arr] = {}
    everyone = np.ones(n, dtype=bool)

    score, open_rate, click_rate = eng.engagement_score(
        f.opens, f.clicks, f.visit_days, f.campaigns_sent, config.engagement
    )
    cols["engagement_score"] = _numbers(np.round(score, 2), everyone)
    cols["email_open_rate"] = _numbers(np.round(open_rate, 4), everyone)
    cols["email_click_rate"] = _numbers(np.round(click_rate, 4), everyone)
    band = eng.frequency_band(f.orders_182d)
    cols["purchase_frequency_band"] = _labels(eng.BANDS, band, everyone)

    full_r = np.zeros(n, dtype=np.int64)
    full_f = np.zeros(n, dtype=np.int64)
    full_m = np.zeros(n, dtype=np.int64)
    if n_cust:
        r_s, f_s, m_s = rfm.rfm_scores(f.days_since_last[cust], f.orders[cust], f.monetary[cust])
        full_r[cust], full_f[cust], full_m[cust] = r_s, f_s, m_s
    group = np.zeros(n, dtype=np.int64)
    group[cust] = rfm.rfm_group_index(full_r[cust], full_f[cust], full_m[cust])
    for key, arr in (("rfm_recency", full_r), ("rfm_frequency", full_f), ("rfm_monetary", full_m)):
        cols[key] = _numbers(arr.astype(np.float64), cust)
    code = pa.array(full_r * 100 + full_f * 10 + full_m, pa.int64(), mask=~cust)
    cols["rfm_code"] = code.cast(pa.string())
    cols["rfm_group"] = _labels(rfm.GROUPS, group, cust)

    tiered = cust & (f.orders_365d > 0)
    cols["loyalty_tier"] = _labels(eng.TIERS, eng.loyalty_tier(f.spend_365d, config.tiers), tiered)
    stage = eng.lifecycle_stage(f.days_since_first, f.days_since_last, f.orders, f.orders_365d)
    cols["lifecycle_stage"] = _labels(eng.STAGES, stage, cust)

    bg_fit: ModelFit | None = None
    gg_fit: ModelFit | None = None
    note = ""
    nan = np.full(n, np.nan)
    alive, e30, e90, value = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    if n_cust and config.bgnbd is None and n_cust < config.min_customers:
        note = f"{n_cust} customers, fewer than min_customers={config.min_customers}: no fit"
    elif n_cust:
        first, inverse, counts = _summary_keys(f, cust)
        ux = f.x[cust][first]
        ut = f.t_x[cust][first]
        uT = f.T[cust][first]
        if config.bgnbd is not None:
            bg = config.bgnbd
            note = "BG/NBD parameters fixed by the config"
        else:
            bg, bg_info = fit_bgnbd(ux, ut, uT, weights=counts)
            bg_fit = ModelFit(bg.as_dict(), bg_info)
        gg: GammaGammaParams | None = config.gamma_gamma
        if gg is None:
            spend_fit = _fit_spend(f, cust)
            if spend_fit is not None:
                gg = spend_fit[0]
                gg_fit = ModelFit(gg.as_dict(), spend_fit[1])
        alive[cust] = p_alive(bg, ux, ut, uT)[inverse]
        e30[cust] = expected_purchases(bg, 30.0, ux, ut, uT)[inverse]
        e90[cust] = expected_purchases(bg, 90.0, ux, ut, uT)[inverse]
        discounted = discounted_purchases(bg, ux, ut, uT, config.clv)[inverse]
        if gg is not None:
            # without a repeat purchase the first order day counts as one observation:
            # the prior mean p v / (q - 1) is infinite for q <= 1, which heavy-tailed
            # spend (the demo's luxury watches) produces
            repeat = f.x[cust] > 0
            first_day = f.monetary[cust]
            spend = expected_spend(
                gg,
                np.where(repeat, f.x[cust], 1.0),
                np.where(repeat, f.m[cust], np.maximum(first_day, 0.01)),
            )
        else:
            spend = f.monetary[cust] / f.orders[cust]
        value[cust] = discounted * spend * config.clv.margin
    # a degenerate fit can overflow the hypergeometric series: such values are not written
    ok_alive = cust & np.isfinite(alive)
    ok_pred = ok_alive & np.isfinite(e30) & np.isfinite(e90)
    ok_value = ok_pred & np.isfinite(value)
    if n_cust and not ok_value[cust].all():
        note = (note + "; " if note else "") + (
            f"{int(cust.sum() - ok_value.sum())} customers without a finite prediction"
        )
    cols["p_alive"] = _numbers(np.round(alive, 4), ok_alive)
    cols["churn_risk"] = _numbers(np.round(1.0 - alive, 4), ok_alive)
    cols["expected_orders_30d"] = _numbers(np.round(e30, 4), ok_pred)
    cols["expected_orders_90d"] = _numbers(np.round(e90, 4), ok_pred)
    cols["clv_12m"] = _numbers(np.round(value, 2), ok_value)
    if config.classifier:  # else the propensity of the last run that had it stays
        prop = np.full(n, np.nan)
        has_prop = np.zeros(n, dtype=bool)
        if propensity is not None:
            prop[cust] = propensity
            has_prop = cust
        cols[PROPENSITY] = _numbers(np.round(prop, 4), has_prop)
    return Scores(f, cols, bg_fit, gg_fit, n_cust, note)


def _fit_spend(f: Features, cust: npt.NDArray[np.bool_]) -> tuple[GammaGammaParams, FitInfo] | None:
    repeat = cust & (f.x >= 1) & (f.m > 0)
    if int(repeat.sum()) < 3:
        return None
    return fit_gamma_gamma(f.x[repeat], f.m[repeat])


def _constant(value: str, n: int) -> Arr:
    """``n`` copies of one string as a dictionary column (no per-row string objects)."""
    return pa.DictionaryArray.from_arrays(
        np.zeros(n, dtype=np.int32), pa.array([value], pa.string())
    )


_LONG_SCHEMA: Final = pa.schema(
    [
        ("profile_id", pa.string()),
        ("key", pa.dictionary(pa.int32(), pa.string())),
        ("timestamp", pa.timestamp("us")),
        ("message_id", pa.dictionary(pa.int32(), pa.string())),
        ("kind", pa.dictionary(pa.int32(), pa.string())),
        ("num", pa.float64()),
        ("str", pa.string()),
    ]
)


def long_table(ids: Arr, columns: dict[str, Arr], at: datetime, message_id: str) -> pa.Table:
    """The rows to insert: one per (profile, key) with a value, built column-wise in Arrow."""
    stamp = np.datetime64(at.replace(tzinfo=None), "us")
    parts = []
    for key in SCORE_KEYS:
        if key not in columns:
            continue
        values = columns[key]
        idx = np.flatnonzero(np.asarray(values.is_valid(), dtype=bool))
        n = int(idx.size)
        if n == 0:
            continue
        taken = values.take(idx)
        number = key in NUMBER_KEYS
        parts.append(
            pa.table(
                [
                    ids.take(idx),
                    _constant(key, n),
                    pa.array(np.full(n, stamp), pa.timestamp("us")),
                    _constant(message_id, n),
                    _constant("number" if number else "string", n),
                    taken if number else pa.nulls(n, pa.float64()),
                    pa.nulls(n, pa.string()) if number else taken,
                ],
                schema=_LONG_SCHEMA,
            )
        )
    if not parts:
        return _LONG_SCHEMA.empty_table()
    return pa.concat_tables(parts)


def write_scores(
    store: ScoreStore,
    scores: Scores,
    at: datetime,
    computed_at: datetime,
    seconds: dict[str, float] | None = None,
) -> tuple[int, int]:
    """Append every score row stamped ``at`` and clear the keys a profile lost since
    the previous run, in one transaction (``ScoreStore.write_scores``).  Returns (rows
    written, keys cleared); ``seconds`` receives the time of each step."""
    timings = seconds if seconds is not None else {}
    started = time.perf_counter()
    f = scores.features
    stamp = computed_at.isoformat(timespec="microseconds")
    columns = dict(scores.columns)
    columns["scores_computed_at"] = _constant(stamp, len(f)).cast(pa.string())
    message_id = f"scores/{stamp}"
    rows = long_table(pa.array(f.profile_id, pa.string()), columns, at, message_id)
    timings["write_build"] = time.perf_counter() - started
    # the propensity is cleared against the last run that computed it (a run without
    # the classifier neither writes nor clears it)
    return store.write_scores(
        rows,
        at,
        message_id,
        keys=[k for k in SCORE_KEYS if k != PROPENSITY],
        classifier_key=PROPENSITY,
        classifier=PROPENSITY in columns,
        seconds=timings,
    )


def refresh_scores(
    store: ScoreStore,
    at: datetime,
    config: ScoresConfig | None = None,
    *,
    computed_at: datetime | None = None,
) -> ScoresReport:
    """Compute every score as of ``at`` and append it to the traits history."""
    config = config or ScoresConfig()
    began = time.perf_counter()
    computed_at = computed_at or utcnow()
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    f = extract_features(store, at, config.engagement.window_days)
    seconds["features"] = time.perf_counter() - t
    report: ClassifierReport | None = None
    propensity: FloatA | None = None
    note = "disabled"
    if config.classifier:
        t = time.perf_counter()
        h = timedelta(days=config.horizon_days)
        window = config.engagement.window_days
        older = extract_features(store, at - 2 * h, window)
        recent = extract_features(store, at - h, window)
        report, propensity, note = train_and_score(older, recent, f, config.horizon_days)
        seconds["classifier"] = time.perf_counter() - t
    t = time.perf_counter()
    scores = compute_scores(f, config, propensity)
    seconds["models"] = time.perf_counter() - t
    t = time.perf_counter()
    written, cleared = write_scores(store, scores, at, computed_at, seconds)
    seconds["write"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - began
    out = ScoresReport(
        as_of=at,
        computed_at=computed_at,
        profiles=len(f),
        customers=scores.customers,
        traits_written=written,
        traits_cleared=cleared,
        bgnbd=scores.bgnbd,
        gamma_gamma=scores.gamma_gamma,
        models_note=scores.models_note,
        classifier=report,
        classifier_note=note,
        seconds={k: round(v, 4) for k, v in seconds.items()},
        config=config.as_dict(),
    )
    store.record_run(computed_at, at, out.as_dict())
    return out


def latest_run(store: ScoreStore) -> dict[str, Any] | None:
    """The report of the most recent refresh (by computed_at), or None before the first."""
    return store.latest_run()


def profile_scores(
    store: ScoreStore, profile_id: str, at: datetime | None = None
) -> dict[str, Any]:
    """The score traits of one profile as of ``at`` (default: latest)."""
    return store.profile_scores(profile_id, at or datetime(9999, 12, 31), SCORE_KEYS)
