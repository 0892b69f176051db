"""The experiment statistics against SciPy, statsmodels and published textbook figures,
plus the edge cases a holdout report meets (empty arms, 0/0, everyone converted, n=1)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.power import (
    NormalIndPower,
    normal_sample_size_one_tail,
    zt_ind_solve_power,
)
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    power_proportions_2indep,
    proportions_ztest,
    samplesize_proportions_2indep_onetail,
)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from segflow.analytics.experiments import (
    MeanStats,
    Proportion,
    Verdict,
    bootstrap_ci,
    compare_mean_stats,
    compare_means,
    compare_rates,
    sample_size_means,
    sample_size_rates,
)


@st.composite
def proportions(draw: st.DrawFn, max_n: int = 10_000) -> Proportion:
    n = draw(st.integers(0, max_n))
    return Proportion(draw(st.integers(0, n)), n)


def _json(report: object) -> str:
    return json.dumps(report, allow_nan=False)


# --------------------------------------------------------------------------- rates


def test_mammography_trial_as_published() -> None:
    """OpenIntro Statistics' mammogram screening trial (breast cancer deaths among
    screened women and controls): the book's z (from rounded inputs) and p-value."""
    r = compare_rates(Proportion(500, 44_925), Proportion(505, 44_910))
    assert r.statistic == pytest.approx(-0.17, abs=0.01)
    assert r.p_value == pytest.approx(0.87, abs=0.005)
    assert r.verdict is Verdict.NOT_SIGNIFICANT_YET
    assert r.still_needed is not None and r.still_needed > 0


@settings(max_examples=200, deadline=None)
@given(proportions(), proportions(), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_rates_agree_with_statsmodels(t: Proportion, h: Proportion, level: float) -> None:
    r = compare_rates(t, h, level=level)
    _json(r.as_dict())
    pooled_varies = t.n and h.n and 0 < t.successes + h.successes < t.n + h.n
    if not pooled_varies:
        assert r.verdict is Verdict.INSUFFICIENT_DATA and r.reason
        assert r.p_value is None and r.ci is None
        return
    z, p = proportions_ztest([t.successes, h.successes], [t.n, h.n])
    low, high = confint_proportions_2indep(
        t.successes, t.n, h.successes, h.n, method="wald", compare="diff", alpha=1 - level
    )
    assert r.statistic == pytest.approx(z, rel=1e-9, abs=1e-12)
    assert r.p_value == pytest.approx(p, rel=1e-9, abs=1e-300)
    assert r.ci is not None
    assert (r.ci.low, r.ci.high) == pytest.approx((low, high), rel=1e-9, abs=1e-12)
    assert r.absolute_lift == pytest.approx(t.successes / t.n - h.successes / h.n)
    assert (r.verdict is Verdict.SIGNIFICANT) == (p < 1 - level)


@settings(max_examples=150, deadline=None)
@given(proportions(), proportions())
def test_swapping_the_arms_mirrors_the_report(t: Proportion, h: Proportion) -> None:
    a, b = compare_rates(t, h), compare_rates(h, t)
    assert a.verdict == b.verdict and a.p_value == b.p_value
    if a.absolute_lift is not None and b.absolute_lift is not None:
        assert a.absolute_lift == pytest.approx(-b.absolute_lift, abs=1e-15)
    if a.ci is not None and b.ci is not None:
        assert (a.ci.low, a.ci.high) == pytest.approx((-b.ci.high, -b.ci.low), abs=1e-15)


@pytest.mark.parametrize(
    ("t", "h", "reason"),
    [
        (Proportion(0, 0), Proportion(0, 0), "neither arm has members"),
        (Proportion(0, 0), Proportion(3, 10), "the treatment has no members"),
        (Proportion(3, 10), Proportion(0, 0), "the holdout has no members"),
        (Proportion(0, 10), Proportion(0, 5), "no member converted in either arm"),
        (Proportion(10, 10), Proportion(5, 5), "every member converted"),
        (Proportion(1, 1), Proportion(1, 1), "every member converted"),
    ],
)
def test_rates_without_a_test_say_why(t: Proportion, h: Proportion, reason: str) -> None:
    r = compare_rates(t, h)
    assert r.verdict is Verdict.INSUFFICIENT_DATA and r.reason == reason
    assert "NaN" not in _json(r.as_dict())


def test_rates_edge_cases_stay_finite() -> None:
    everyone_vs_no_one = compare_rates(Proportion(1000, 1000), Proportion(0, 1000))
    assert everyone_vs_no_one.verdict is Verdict.SIGNIFICANT
    assert everyone_vs_no_one.relative_lift is None  # the holdout rate is 0
    assert everyone_vs_no_one.ci is not None and everyone_vs_no_one.ci.low == 1.0
    one_each = compare_rates(Proportion(1, 1), Proportion(0, 1))
    assert one_each.verdict is Verdict.NOT_SIGNIFICANT_YET
    assert one_each.required is not None and one_each.still_needed is not None
    same = compare_rates(Proportion(5, 100), Proportion(5, 100))
    assert same.verdict is Verdict.NOT_SIGNIFICANT_YET and same.p_value == pytest.approx(1.0)
    assert same.required is None and same.still_needed is None  # no difference to detect
    _json(everyone_vs_no_one.as_dict())
    _json(one_each.as_dict())


def test_not_significant_yet_names_the_sample_at_the_observed_rates() -> None:
    t, h = Proportion(110, 2000), Proportion(50, 1000)
    r = compare_rates(t, h)
    assert r.verdict is Verdict.NOT_SIGNIFICANT_YET and r.required is not None
    n1 = samplesize_proportions_2indep_onetail(0.005, 0.05, 0.8, ratio=0.5)
    assert r.required.treatment == math.ceil(n1)
    assert r.required.holdout == math.ceil(n1 * 0.5)
    assert r.still_needed == r.required.treatment - 2000 + r.required.holdout - 1000
    bigger = compare_rates(
        Proportion(round(0.055 * r.required.treatment), r.required.treatment),
        Proportion(round(0.05 * r.required.holdout), r.required.holdout),
    )
    assert bigger.verdict is Verdict.SIGNIFICANT


# --------------------------------------------------------------------------- sample sizes


def test_sample_size_for_a_one_point_lift_on_five_percent() -> None:
    """Fleiss' normal approximation without continuity correction, the usual
    calculators' answer for a one-point lift on a five percent rate."""
    n = sample_size_rates(0.05, 0.01)
    assert n.treatment == n.holdout == 8158
    assert sample_size_rates(0.05, 0.2, relative=True) == n


def test_sample_size_for_half_a_standard_deviation() -> None:
    """Cohen's medium effect under the normal approximation."""
    n = sample_size_means(2.0, 1.0)
    assert (n.treatment, n.holdout) == (63, 63)
    assert sample_size_means(2.0, 0.1, mean=10.0, relative=True) == n


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.001, 0.95),
    st.floats(-0.5, 0.5),
    st.sampled_from([0.01, 0.05, 0.1]),
    st.sampled_from([0.5, 0.8, 0.9]),
    st.sampled_from([0.25, 1.0, 3.0, 9.0]),
)
def test_rate_sample_size_agrees_with_statsmodels(
    baseline: float, diff: float, alpha: float, power: float, ratio: float
) -> None:
    assume(abs(diff) > 1e-3 and 0 <= baseline + diff <= 1)
    n = sample_size_rates(baseline, diff, alpha=alpha, power=power, ratio=ratio)
    # statsmodels: arm 1 has baseline + diff (the treatment), nobs2 = ratio_sm * nobs1
    n1 = samplesize_proportions_2indep_onetail(diff, baseline, power, ratio=1 / ratio, alpha=alpha)
    assert n.treatment == math.ceil(n1 - 1e-9 * n1) or abs(n.treatment - n1) < 1
    # the treatment arm's size reached: the test has the power asked (up to the far tail)
    got = power_proportions_2indep(
        diff, baseline, n.treatment, ratio=n.holdout / n.treatment, alpha=alpha
    ).power
    assert got >= power - 1e-6


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.05, 0.8),
    st.sampled_from([0.01, 0.05, 0.1]),
    st.sampled_from([0.5, 0.8, 0.95]),
    st.sampled_from([0.25, 1.0, 4.0]),
)
def test_mean_sample_size_agrees_with_statsmodels(
    effect: float, alpha: float, power: float, ratio: float
) -> None:
    n = sample_size_means(1.0, effect, alpha=alpha, power=power, ratio=ratio)
    # statsmodels counts nobs1 as the holdout here: nobs2 = ratio * nobs1 is the treatment
    one_tail = normal_sample_size_one_tail(
        effect, power, alpha / 2, std_null=math.sqrt(1 + 1 / ratio)
    )
    assert n.holdout == math.ceil(one_tail - 1e-9 * one_tail)
    # the exact two-sided power also counts the far tail, which only lowers the size a bit
    exact = NormalIndPower().solve_power(effect, alpha=alpha, power=power, ratio=ratio)
    assert exact - 1e-6 <= n.holdout <= exact * 1.005 + 1
    assert zt_ind_solve_power(effect, alpha=alpha, power=power, ratio=ratio) == pytest.approx(exact)


@pytest.mark.parametrize(
    "call",
    [
        lambda: sample_size_rates(1.2, 0.1),
        lambda: sample_size_rates(0.95, 0.1),
        lambda: sample_size_rates(0.5, 0.0),
        lambda: sample_size_rates(0.0, 0.5, relative=True),
        lambda: sample_size_rates(0.5, 0.1, power=1.0),
        lambda: sample_size_rates(0.5, 0.1, ratio=0.0),
        lambda: sample_size_means(0.0, 1.0),
        lambda: sample_size_means(1.0, 0.1, relative=True),
        lambda: compare_rates(Proportion(1, 2), Proportion(1, 2), level=1.0),
        lambda: Proportion(3, 2),
        lambda: compare_means([1.0, float("nan")], [1.0, 2.0]),
    ],
)
def test_bad_input_is_a_value_error(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


# --------------------------------------------------------------------------- means


def test_welch_example_as_published() -> None:
    """The first worked example of the Welch's t-test encyclopedia article."""
    a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    r = compare_means(a1, a2)
    assert r.statistic == pytest.approx(-2.46, abs=0.005)
    assert r.df == pytest.approx(24.99, abs=0.005)
    assert r.p_value == pytest.approx(0.021, abs=0.0005)
    assert r.verdict is Verdict.SIGNIFICANT


values = st.lists(st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False), max_size=40)


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # SciPy, near-equal values
@settings(max_examples=200, deadline=None)
@given(values, values, st.sampled_from([0.9, 0.95, 0.99]))
def test_means_agree_with_scipy_and_statsmodels(t: list[float], h: list[float], lv: float) -> None:
    r = compare_means(t, h, level=lv)
    _json(r.as_dict())
    if len(t) < 2 or len(h) < 2 or (np.ptp(t) == 0 and np.ptp(h) == 0):
        assert r.verdict is Verdict.INSUFFICIENT_DATA and r.reason and r.p_value is None
        return
    assume(np.std(t) > 1e-6 * (1 + np.abs(t).max()) or np.std(h) > 1e-6 * (1 + np.abs(h).max()))
    ref = stats.ttest_ind(t, h, equal_var=False)
    ci = ref.confidence_interval(lv)
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-7)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-7, abs=1e-300)
    assert r.df == pytest.approx(ref.df, rel=1e-7)
    assert r.ci is not None
    assert (r.ci.low, r.ci.high) == pytest.approx((ci.low, ci.high), rel=1e-7, abs=1e-9)
    sm = CompareMeans(DescrStatsW(np.asarray(t)), DescrStatsW(np.asarray(h)))
    low, high = sm.tconfint_diff(alpha=1 - lv, usevar="unequal")
    assert (r.ci.low, r.ci.high) == pytest.approx((low, high), rel=1e-7, abs=1e-9)


def test_tiny_and_huge_spreads_stay_finite() -> None:
    for scale in (1e-150, 1e150):
        r = compare_means(np.array([1.0, 2.0, 4.0]) * scale, np.array([1.0, 1.5]) * scale)
        assert r.df is not None and r.ci is not None and r.p_value is not None
        plain = compare_means([1.0, 2.0, 4.0], [1.0, 1.5])
        assert (r.df, r.statistic, r.p_value) == pytest.approx(
            (plain.df, plain.statistic, plain.p_value)
        )


def test_summaries_give_the_same_report_as_the_values() -> None:
    rng = np.random.default_rng(3)
    t, h = rng.gamma(0.5, 40, 900), rng.gamma(0.5, 36, 300)
    assert compare_mean_stats(MeanStats.of(t), MeanStats.of(h)) == compare_means(t, h)


@pytest.mark.parametrize(
    ("t", "h", "reason"),
    [
        ([], [], "neither arm has members"),
        ([1.0, 2.0], [], "the holdout has no members"),
        ([3.0], [1.0, 2.0], "each arm needs at least two members"),
        ([5.0, 5.0, 5.0], [2.0, 2.0], "the values do not vary in either arm"),
    ],
)
def test_means_without_a_test_say_why(t: list[float], h: list[float], reason: str) -> None:
    r = compare_means(t, h, bootstrap=50)
    assert r.verdict is Verdict.INSUFFICIENT_DATA and r.reason == reason
    assert r.p_value is None and r.ci is None
    _json(r.as_dict())


def test_means_not_significant_yet_names_the_sample() -> None:
    rng = np.random.default_rng(5)
    t, h = rng.normal(10.3, 4.0, 400), rng.normal(10.0, 4.0, 100)
    r = compare_means(t, h)
    assert r.verdict is Verdict.NOT_SIGNIFICANT_YET and r.required is not None
    assert r.required.treatment == pytest.approx(4 * r.required.holdout, abs=4)
    assert r.still_needed == r.required.total - 500


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_seeded_and_close_to_scipy() -> None:
    rng = np.random.default_rng(7)
    t, h = rng.lognormal(3.0, 1.0, 2000), rng.lognormal(2.9, 1.0, 500)
    ours = bootstrap_ci(t, h, resamples=4000, seed=1)
    assert ours == bootstrap_ci(t, h, resamples=4000, seed=1)
    assert ours != bootstrap_ci(t, h, resamples=4000, seed=2)
    ref = stats.bootstrap(
        (t, h),
        lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis),
        n_resamples=4000,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(1),
    ).confidence_interval
    welch = compare_means(t, h).ci
    assert welch is not None
    width = welch.high - welch.low
    assert abs(ours.low - ref.low) < 0.05 * width and abs(ours.high - ref.high) < 0.05 * width
    assert abs(ours.low - welch.low) < 0.1 * width and abs(ours.high - welch.high) < 0.1 * width


def test_bootstrap_joins_the_report_only_when_asked() -> None:
    t, h = [0.0, 0.0, 12.0, 40.0, 3.0], [0.0, 5.0, 1.0]
    assert compare_means(t, h).bootstrap_ci is None
    ci = compare_means(t, h, bootstrap=500, seed=4).bootstrap_ci
    assert ci is not None and ci.low <= ci.high
    assert ci == bootstrap_ci(t, h, resamples=500, seed=4)
