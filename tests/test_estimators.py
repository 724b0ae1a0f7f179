"""Gradient estimators: unbiased against analytic ELBO gradients on conjugate models."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from vizvi.errors import ConfigError
from vizvi.estimators import ESTIMATORS, EstimatorName, check_estimator, elbo_and_grad, unavailable
from vizvi.families import GammaFamily, get_family
from vizvi.models import get_model

tfd = tfp.distributions

# (model, family, theta away from the optimum, n)
CASES = [
    ("poisson-gamma", "gamma", [30.0, 8.0], 40),
    # Concentrations of exactly 1: TF's xlogy has a zero gradient there (see families._Gamma).
    ("poisson-gamma", "gamma", [1.0, 1.0], 40),
    ("beta-bernoulli", "beta", [1.0, 1.0], 20),
    ("normal-mean", "normal", [1.0, 0.5], 20),
    ("beta-bernoulli", "beta", [3.0, 5.0], 20),
    ("correlated-gaussian", "mean-field-normal", [0.5, -0.5, 0.8, 1.3], None),
    ("correlated-gaussian", "full-rank-normal", [0.5, -0.5, 0.8, 0.3, 1.3], None),
]


def _exact_gradient(model, family, theta, data):
    # ELBO(q) = log Z - KL(q || p(z | x)) exactly, and TFP has the KL in closed form for these.
    theta = tf.constant(theta, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(theta)
        kl = tfd.kl_divergence(family.build(theta), model.exact_posterior(data))
    return -tape.gradient(kl, theta).numpy(), (model.reference(data).log_evidence - kl).numpy()


# Every estimator on every case whose family supports it (``unavailable`` is tested below).
APPLICABLE = [(e, *case) for case in CASES for e in EstimatorName if e not in unavailable(get_family(case[1]), 4)]


def test_every_estimator_is_covered_by_the_unbiasedness_cases():
    assert {e for e, *_ in APPLICABLE} == set(EstimatorName)


@pytest.mark.parametrize("estimator, model_name, family_name, theta, n", APPLICABLE)
def test_estimator_is_unbiased(estimator, model_name, family_name, theta, n):
    model = get_model(model_name)
    family = get_family(family_name, model)
    data = model.data_tensors(model.simulate(n, 0))
    exact_grad, exact_elbo = _exact_gradient(model, family, theta, data)
    replicates = 4000
    batch = tf.constant(np.tile(theta, (replicates, 1)), tf.float64)
    elbo, grad = elbo_and_grad(estimator, family, model, batch, data, tf.constant([11, 12], tf.int32), 4)
    grad, elbo = grad.numpy(), elbo.numpy()
    mean, se = grad.mean(0), grad.std(0, ddof=1) / np.sqrt(replicates)
    assert np.all(np.abs(mean - exact_grad) < 5 * se + 1e-9 * np.abs(exact_grad)), (mean, exact_grad, se)
    assert abs(elbo.mean() - exact_elbo) < 5 * elbo.std(ddof=1) / np.sqrt(replicates) + 1e-9
    # Replicates in a batch use independent draws: their gradients differ.
    assert np.unique(grad[:, 0]).size > replicates // 2


@pytest.mark.parametrize("family_name, theta", [("gamma", [1.0, 1.0]), ("beta", [1.0, 1.0]), ("gamma", [2.5, 0.7]), ("beta", [0.4, 3.0])])
def test_score_of_q_is_exact_at_and_off_concentration_one(family_name, theta):
    family = get_family(family_name)
    theta = tf.constant(theta, tf.float64)
    z = tf.constant(0.3, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(theta)
        lp = family.build(theta).log_prob(z)
    got = tape.gradient(lp, theta).numpy()
    a, b = float(theta[0]), float(theta[1])
    dg = lambda x: float(tf.math.digamma(tf.constant(x, tf.float64)))  # noqa: E731
    if family_name == "gamma":
        expected = [np.log(0.3) + np.log(b) - dg(a), a / b - 0.3]
    else:
        expected = [np.log(0.3) - dg(a) + dg(a + b), np.log(0.7) - dg(b) + dg(a + b)]
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # Same density as TFP's own class, only the gradient differs.
    tfp_cls = tfd.Gamma if family_name == "gamma" else tfd.Beta
    assert float(lp) == pytest.approx(float(tfp_cls(theta[0], theta[1]).log_prob(z)), rel=1e-12)


def test_variance_ordering_on_gamma():
    # The lecture notes' figure in miniature: score >> score+baseline > pathwise, here on q = Gamma.
    model = get_model("poisson-gamma")
    family = get_family("gamma", model)
    data = model.data_tensors(model.simulate(100, 0))
    batch = tf.constant(np.tile([60.0, 15.0], (2000, 1)), tf.float64)
    var = {}
    for e in (EstimatorName.SCORE, EstimatorName.SCORE_BASELINE, EstimatorName.PATHWISE):
        _, g = elbo_and_grad(e, family, model, batch, data, tf.constant([1, 2], tf.int32), 8)
        var[e] = g.numpy().var(0)
    assert np.all(var[EstimatorName.SCORE] > var[EstimatorName.SCORE_BASELINE])
    assert np.all(var[EstimatorName.SCORE_BASELINE] > var[EstimatorName.PATHWISE])


def test_stl_has_zero_variance_at_the_exact_posterior():
    model = get_model("normal-mean")
    family = get_family("normal", model)
    data = model.data_tensors(model.simulate(30, 0))
    post = model.exact_posterior(data)
    theta = [float(post.loc), float(post.scale)]
    batch = tf.constant(np.tile(theta, (200, 1)), tf.float64)
    _, g_stl = elbo_and_grad("stl", family, model, batch, data, tf.constant([1, 2], tf.int32), 4)
    _, g_path = elbo_and_grad("pathwise", family, model, batch, data, tf.constant([1, 2], tf.int32), 4)
    assert g_stl.numpy().std(0).max() < 1e-8
    assert g_path.numpy().std(0).max() > 1e-2


def test_score_baseline_needs_two_samples():
    family = get_family("gamma")
    with pytest.raises(ConfigError, match="needs at least 2 samples per step, got 1") as err:
        check_estimator(EstimatorName.SCORE_BASELINE, family, 1)
    assert err.value.argument == "samples"


def test_pathwise_refused_for_a_family_that_cannot_be_reparameterized():
    class PoissonRateFamily(GammaFamily):
        """A stand-in family whose samples carry no pathwise gradient (discrete)."""

        name = "poisson-stand-in"

        def build(self, theta):
            return tfd.Poisson(rate=theta[..., 0])

    family = PoissonRateFamily()
    for estimator in (EstimatorName.PATHWISE, EstimatorName.STL):
        with pytest.raises(ConfigError, match="needs a reparameterizable family.*use score or score-baseline"):
            check_estimator(estimator, family, 4)
    check_estimator(EstimatorName.SCORE, family, 4)  # allowed


def test_measure_valued_only_where_the_weak_derivative_is_implemented():
    for name in ("gamma", "beta", "full-rank-normal"):
        with pytest.raises(ConfigError, match="needs the weak derivative of q.*normal, lognormal, mean-field-normal") as err:
            check_estimator(EstimatorName.MEASURE_VALUED, get_family(name), 4)
        assert err.value.argument == "estimator"
        assert EstimatorName.MEASURE_VALUED in unavailable(get_family(name), 4)
    for name in ("normal", "lognormal", "mean-field-normal"):
        check_estimator(EstimatorName.MEASURE_VALUED, get_family(name), 1)


def test_measure_valued_on_lognormal_agrees_with_pathwise():
    # No closed-form KL(LogNormal || Gamma) in TFP: the pathwise mean (unbiased, tested above on
    # the other families) is the reference, each within its Monte Carlo error.
    model = get_model("poisson-gamma")
    family = get_family("lognormal", model)
    data = model.data_tensors(model.simulate(40, 0))
    batch = tf.constant(np.tile([1.2, 0.4], (20000, 1)), tf.float64)
    means, ses = [], []
    for e in (EstimatorName.MEASURE_VALUED, EstimatorName.PATHWISE):
        _, g = elbo_and_grad(e, family, model, batch, data, tf.constant([5, 6], tf.int32), 2)
        g = g.numpy()
        means.append(g.mean(0))
        ses.append(g.std(0, ddof=1) / np.sqrt(len(g)))
    assert np.all(np.abs(means[0] - means[1]) < 5 * np.hypot(ses[0], ses[1])), (means, ses)


def test_target_evaluations_per_sample():
    assert ESTIMATORS[EstimatorName.PATHWISE].evaluations_per_sample(4) == 1
    assert ESTIMATORS[EstimatorName.SCORE_BASELINE].evaluations_per_sample(2) == 1
    assert ESTIMATORS[EstimatorName.MEASURE_VALUED].evaluations_per_sample(2) == 4
    assert ESTIMATORS[EstimatorName.MEASURE_VALUED].evaluations_per_sample(4) == 8
