"""The variance explorer's math: closed forms, unbiasedness, variance reductions, the batch loop.

Every Monte Carlo assertion has a fixed seed (no flakiness) and a tolerance of 5 standard errors
of the quantity tested, estimated from the sample or derived below, so a correct implementation
passes with margin and a wrong constant (a factor 2, a missing 1/M) fails by far more.
"""

import functools
import math
import threading

import numpy as np
import pytest

from vizvi import variance_lab as vl
from vizvi.errors import ConfigError

K7 = "-3:3:7"  # one k grid for most tests: one compiled shape per cost
Z = 5.0  # standard errors allowed


@functools.lru_cache(maxsize=None)
def _result(**settings) -> vl.VarianceResult:
    """A computation shared by the tests that read it (they never modify it)."""
    return vl.compute(vl.LabConfig(**settings))


def _figure(cost="square") -> vl.VarianceResult:
    return _result(cost=cost, mu=1.0, sigma=1.0, k=K7, samples=1, replicates=200_000, seed=0)


# -- closed forms ------------------------------------------------------------------------------
# Square cost, d = mu - k, x - k = d + sigma e with e ~ N(0, 1), one sample:
#   pathwise mu    2 (d + s e)                    Var 4 s^2
#   pathwise sigma 2 (d + s e) e                  E[.^2] = 4 (d^2 + 3 s^2), mean 2 s: Var 4 d^2 + 8 s^2
#   score mu       (d + s e)^2 e / s              Var d^4 / s^2 + 14 d^2 + 15 s^2
#   score sigma    (d + s e)^2 (e^2 - 1) / s      E[(d + s e)^4 (e^2 - 1)^2] / s^2 - (2 s)^2: only even
#     powers of e survive: E[(e^2 - 1)^2] = 2, E[e^2 (e^2 - 1)^2] = 15 - 6 + 1 = 10,
#     E[e^4 (e^2 - 1)^2] = 105 - 30 + 3 = 78, so (2 d^4 + 6 d^2 s^2 10 + 78 s^4) / s^2 - 4 s^2
#     = 2 d^4 / s^2 + 60 d^2 + 74 s^2.
# An estimate of M samples is their mean: variance / M.
CLOSED = {
    ("pathwise", "mu"): lambda d, s: 4 * s**2 + 0 * d,
    ("pathwise", "sigma"): lambda d, s: 4 * d**2 + 8 * s**2,
    ("score", "mu"): lambda d, s: d**4 / s**2 + 14 * d**2 + 15 * s**2,
    ("score", "sigma"): lambda d, s: 2 * d**4 / s**2 + 60 * d**2 + 74 * s**2,
}
TERM = {  # one sample's term as a function of e (x - k = d + s e)
    ("pathwise", "mu"): lambda d, s, e: 2 * (d + s * e),
    ("pathwise", "sigma"): lambda d, s, e: 2 * (d + s * e) * e,
    ("score", "mu"): lambda d, s, e: (d + s * e) ** 2 * e / s,
    ("score", "sigma"): lambda d, s, e: (d + s * e) ** 2 * (e * e - 1) / s,
}


def _quadrature(term, d, s):
    """(variance, fourth central moment) of one sample's term, by Gauss-Hermite quadrature:
    the terms are polynomials in e of degree <= 4, their 4th powers of degree <= 16, and 40
    nodes integrate degree 79 exactly."""
    e, w = np.polynomial.hermite_e.hermegauss(40)
    w = w / math.sqrt(2 * math.pi)
    g = term(d, s, e)
    c = g - np.sum(w * g)
    return float(np.sum(w * c**2)), float(np.sum(w * c**4))


def _sample_variance_stderr(var1, m4_1, samples, replicates):
    """Standard error of the unbiased sample variance of R estimates, each a mean of M samples.
    The mean of M iid terms has variance var1 / M and fourth central moment
    (m4 + 3 (M - 1) var1^2) / M^3; the sample variance of R iid values with variance v and
    fourth central moment m4 has variance (m4 - v^2 (R - 3) / (R - 1)) / R."""
    v = var1 / samples
    m4 = (m4_1 + 3 * (samples - 1) * var1**2) / samples**3
    return math.sqrt((m4 - v * v * (replicates - 3) / (replicates - 1)) / replicates)


@pytest.mark.parametrize("mu, sigma, samples, replicates", [(1.0, 1.0, 1, 200_000), (0.5, 2.0, 4, 100_000)])
def test_square_cost_variances_match_closed_forms(mu, sigma, samples, replicates):
    r = _result(cost="square", mu=mu, sigma=sigma, k=K7, samples=samples, replicates=replicates, seed=0)
    for (est, param), closed in CLOSED.items():
        for i, k in enumerate(r.k):
            d = mu - k
            var1, m4 = _quadrature(TERM[est, param], d, sigma)
            assert closed(d, sigma) == pytest.approx(var1, rel=1e-9), (est, param, k)  # the algebra, checked
            expected = closed(d, sigma) / samples
            se = _sample_variance_stderr(var1, m4, samples, replicates)
            got = r.variance[est][param][i]
            assert abs(got - expected) <= Z * se, (est, param, k, got, expected, se)


def test_square_cost_measure_valued_mu_variances_and_where_coupling_wins():
    # f(plus) - f(minus) for the square cost: uncoupled 2 d s (W + W') + s^2 (W^2 - W'^2), coupled
    # 4 d s W, times 1 / (s sqrt(2 pi)); W Rayleigh: Var W = (4 - pi) / 2, Var W^2 = 4.
    r = _figure()
    var_w, var_w2 = (4 - math.pi) / 2, 4.0
    d = 1.0 - r.k
    uncoupled = (8 * d**2 * var_w + 2 * var_w2) / (2 * math.pi)
    coupled = 16 * d**2 * var_w / (2 * math.pi)
    # 200k replicates: the relative standard error of these variance estimates is under 0.5%.
    np.testing.assert_allclose(r.variance["measure-valued"]["mu"], uncoupled, rtol=0.03)
    np.testing.assert_allclose(r.variance["measure-valued-coupled"]["mu"], coupled, rtol=0.03, atol=1e-12)
    wins = np.abs(d) < 1.0 / math.sqrt(var_w)  # |d| < ~1.53
    assert wins.tolist() == [False, False, False, True, True, True, False]
    v = r.variance
    assert np.all((v["measure-valued-coupled"]["mu"] < v["measure-valued"]["mu"]) == wins)


def test_exact_gradients_match_finite_differences_of_the_closed_form_expectation():
    k = np.linspace(-3, 3, 13)
    h = 1e-5
    for cost in vl.Cost:
        for mu, sigma in ((1.0, 1.0), (-0.7, 0.4), (2.0, 2.5)):
            d_mu, d_sigma = vl.exact_gradient(cost, mu, sigma, k)
            fd_mu = (vl.exact_expectation(cost, mu + h, sigma, k) - vl.exact_expectation(cost, mu - h, sigma, k)) / (2 * h)
            fd_sigma = (vl.exact_expectation(cost, mu, sigma + h, k) - vl.exact_expectation(cost, mu, sigma - h, k)) / (2 * h)
            np.testing.assert_allclose(d_mu, fd_mu, rtol=1e-6, atol=1e-9, err_msg=f"{cost} mu")
            np.testing.assert_allclose(d_sigma, fd_sigma, rtol=1e-6, atol=1e-9, err_msg=f"{cost} sigma")


def test_exact_expectation_matches_quadrature():
    e, w = np.polynomial.hermite_e.hermegauss(200)
    w = w / math.sqrt(2 * math.pi)
    for cost in (vl.Cost.SQUARE, vl.Cost.GAUSS):  # smooth: quadrature converges fast
        for k in (-2.0, 0.3, 1.0):
            f, _ = vl.cost_curve(cost, 0.5 + 1.5 * e, k)
            assert np.sum(w * f) == pytest.approx(float(vl.exact_expectation(cost, 0.5, 1.5, k)), rel=1e-9)


def test_cost_curve_derivative_is_the_derivative_of_the_cost():
    x = np.linspace(-4, 4, 81) + 0.01  # off the kink of |x - k|
    h = 1e-6
    for cost in vl.Cost:
        f, df = vl.cost_curve(cost, x, 0.5)
        np.testing.assert_allclose(df, (vl.cost_curve(cost, x + h, 0.5)[0] - vl.cost_curve(cost, x - h, 0.5)[0]) / (2 * h),
                                   rtol=1e-6, atol=1e-8)


# -- unbiasedness --------------------------------------------------------------------------------
def _assert_unbiased(r, estimators=None):
    for est in estimators or r.mean:
        for p in vl.PARAMS:
            err = np.abs(r.mean[est][p] - r.exact[p])
            # atol: the coupled measure-valued mu estimate is exactly 0 (+- rounding) at k = mu.
            assert np.all(err <= Z * r.mean_stderr[est][p] + 1e-9), (est, p, err / r.mean_stderr[est][p])


@pytest.mark.parametrize("cost", list(vl.Cost))
def test_every_estimator_is_unbiased_for_every_cost(cost):
    _assert_unbiased(_figure(cost))


@pytest.mark.parametrize("cost", list(vl.Cost))
def test_measure_valued_estimators_are_unbiased_for_mu_and_sigma(cost):
    r = _result(cost=cost, mu=-0.5, sigma=2.0, k=K7, samples=3, replicates=50_000, seed=11)
    _assert_unbiased(r, ["measure-valued", "measure-valued-coupled"])


# -- variance reductions -------------------------------------------------------------------------
@pytest.mark.parametrize("cost", list(vl.Cost))
def test_coupling_lowers_the_variance_for_sigma_everywhere_and_for_mu_at_k_equal_mu(cost):
    r = _figure(cost)
    v = r.variance
    assert np.all(v["measure-valued-coupled"]["sigma"] < 0.8 * v["measure-valued"]["sigma"])
    at_mu = int(np.argmin(np.abs(r.k - 1.0)))
    # The mirror image cancels any cost symmetric about k = mu: zero variance there.
    assert v["measure-valued-coupled"]["mu"][at_mu] < 1e-6 * v["measure-valued"]["mu"][at_mu]


def test_baseline_lowers_the_score_functions_variance_away_from_k():
    r = _figure()
    far = np.abs(1.0 - r.k) >= 2
    for p in vl.PARAMS:
        assert np.all(r.variance["score-baseline"][p][far] < 0.7 * r.variance["score"][p][far]), p


# -- the computation -----------------------------------------------------------------------------
SMALL = dict(cost="square", mu=0.2, sigma=1.3, k=K7, samples=2, replicates=5_000, seed=4)


def test_same_seed_same_numbers_and_another_seed_other_numbers():
    a, b = vl.compute(vl.LabConfig(**SMALL)), vl.compute(vl.LabConfig(**SMALL))
    c = vl.compute(vl.LabConfig(**{**SMALL, "seed": 5}))
    for est in a.variance:
        for p in vl.PARAMS:
            assert np.array_equal(a.variance[est][p], b.variance[est][p]) and np.array_equal(a.mean[est][p], b.mean[est][p])
            assert not np.array_equal(a.variance[est][p], c.variance[est][p])


def test_an_estimator_alone_gives_the_same_numbers_as_with_the_others():
    every = vl.compute(vl.LabConfig(**SMALL))
    alone = vl.compute(vl.LabConfig(**SMALL), estimators=["measure-valued-coupled"])
    assert list(alone.variance) == ["measure-valued-coupled"]
    for p in vl.PARAMS:
        np.testing.assert_allclose(alone.variance["measure-valued-coupled"][p], every.variance["measure-valued-coupled"][p],
                                   rtol=1e-12)


def test_result_shapes_and_fields():
    r = vl.compute(vl.LabConfig(**SMALL))
    assert r.k.tolist() == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0] and r.replicates == 5_000 and r.seconds > 0
    assert list(r.variance) == list(r.mean) == list(r.mean_stderr) == [e.value for e in vl.LabEstimator]
    for d in (r.variance, r.mean, r.mean_stderr):
        assert all(per[p].shape == (7,) for per in d.values() for p in vl.PARAMS)
    np.testing.assert_allclose(r.mean_stderr["score"]["mu"], np.sqrt(r.variance["score"]["mu"] / 5_000))
    assert r.config == {"mu": 0.2, "sigma": 1.3, "k": r.k.tolist(), "cost": "square", "samples": 2, "replicates": 5_000,
                        "seed": 4}


def test_progress_reaches_one_and_cancel_stops_between_batches():
    rows = vl._batch_rows(7, 10**9)
    config = vl.LabConfig(**{**SMALL, "replicates": 2 * rows + 10})  # three batches, the last 10 rows
    seen = []
    vl.compute(config, progress=seen.append)
    assert seen == [rows / config.replicates, 2 * rows / config.replicates, 1.0]

    cancel, seen = threading.Event(), []

    def stop_after_first(fraction):
        seen.append(fraction)
        cancel.set()

    with pytest.raises(vl.Cancelled):
        vl.compute(config, progress=stop_after_first, cancel=cancel)
    assert len(seen) == 1
    with pytest.raises(vl.Cancelled):
        vl.compute(config, cancel=cancel)  # already set: no batch at all


def test_new_numbers_do_not_retrace():
    key = (vl.Cost.SQUARE, vl.ESTIMATOR_ORDER)
    vl.compute(vl.LabConfig(**SMALL))
    traces = vl._TRACES[key]
    vl.compute(vl.LabConfig(cost="square", mu=-2.0, sigma=0.3, k="-1:4:7", samples=5, replicates=6_000, seed=9))
    vl.compute(vl.LabConfig(cost="square", mu=3.0, sigma=2.0, k="0,1,2,3,4,5,6", samples=1, replicates=7_000, seed=1))
    assert vl._TRACES[key] == traces == 1


# -- settings and their errors -------------------------------------------------------------------
def test_parse_k():
    assert vl.parse_k("0,1.5,3") == (0.0, 1.5, 3.0)
    assert vl.parse_k(" -3:3:13 ") == tuple(np.linspace(-3, 3, 13))
    assert vl.parse_k("2:5:1") == (2.0,)
    assert vl.parse_k("4") == (4.0,)
    assert vl.parse_k([1, 2.5]) == (1.0, 2.5)
    assert len(vl.parse_k(f"0:1:{vl.MAX_K}")) == vl.MAX_K


@pytest.mark.parametrize("text, words", [
    ("1,x", "'x' is not a number"), ("", "is not a number"), ("1,,2", "is not a number"), ("1,nan", "finite"),
    ("1:2", "lo:hi:count"), ("1:2:3:4", "lo:hi:count"), ("1:2:0", "from 1 to 101"), ("1:2:102", "from 1 to 101"),
    ("1:2:x", "not a whole number"), ("a:2:3", "'a' is not a number"), (",".join(["1"] * 102), "at most 101"),
])
def test_parse_k_errors_name_k_and_say_what_is_wrong(text, words):
    with pytest.raises(ConfigError) as e:
        vl.parse_k(text)
    assert e.value.argument == "k" and words in e.value.message


@pytest.mark.parametrize("changes, argument", [
    ({"sigma": 0}, "sigma"), ({"sigma": -1.0}, "sigma"), ({"sigma": "abc"}, "sigma"), ({"mu": 2000.0}, "mu"),
    ({"replicates": 1}, "replicates"), ({"replicates": 0}, "replicates"), ({"replicates": 10**8}, "replicates"),
    ({"replicates": 10**7, "samples": 1000}, "replicates"), ({"samples": 0}, "samples"), ({"cost": "cubic"}, "cost"),
    ({"k": "1,x"}, "k"), ({"seed": -1}, "seed"), ({"samples": 1.5}, "samples"),
])
def test_validate_lab_errors_name_the_setting(changes, argument):
    with pytest.raises(ConfigError) as e:
        vl.validate_lab(vl.LabConfig(**changes))
    assert e.value.argument == argument


def test_validate_lab_parses_text_numbers_and_keeps_the_defaults():
    c = vl.validate_lab(vl.LabConfig(mu="0.5", sigma="2", replicates="300"))
    assert (c.mu, c.sigma, c.replicates, c.k, c.cost) == (0.5, 2.0, 300, "-3:3:13", "square")
    assert vl.LabConfig().replicates == 200_000
