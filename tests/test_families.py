"""Families: support matching, exponential-family maps, initialisation."""

import numpy as np
import pytest
import tensorflow as tf

from vizvi.errors import ConfigError
from vizvi.families import FAMILIES, families_for, get_family, parse_init_spec, resolve_init
from vizvi.models import MODELS, get_model


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_support_matching(model, family):
    m, f = MODELS[model], FAMILIES[family]
    if f.support is m.support:
        assert get_family(family, m) is f
    else:
        with pytest.raises(ConfigError) as err:
            get_family(family, m)
        assert err.value.argument == "family"
        assert "families that fit: " + ", ".join(families_for(m)) in str(err.value)


def test_normal_for_a_rate_is_refused_with_the_families_that_fit():
    with pytest.raises(ConfigError, match=r"family 'normal' has support \(-inf, inf\).*families that fit: lognormal, gamma"):
        get_family("normal", get_model("poisson-gamma"))


def _sample_theta(f, rng):
    theta = np.array(f.defaults, dtype=float) + rng.uniform(0.2, 1.5, size=f.size)
    if f.name == "full-rank-normal":
        theta[3] = rng.normal(0, 0.5)
    return theta


@pytest.mark.parametrize("family", list(FAMILIES))
def test_natural_parameter_round_trip(family):
    f = FAMILIES[family]
    theta = tf.constant(_sample_theta(f, np.random.default_rng(1)), tf.float64)
    np.testing.assert_allclose(f.from_natural(f.natural_params(theta)).numpy(), theta.numpy(), rtol=1e-10)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_mean_parameters_are_expected_sufficient_statistics(family):
    # m(theta) = E_q[T(z)], and eta . T(z) - log q(z) does not depend on z apart from the base
    # measure: check the first by Monte Carlo through the pairing eta . m.
    f = FAMILIES[family]
    theta = tf.constant(_sample_theta(f, np.random.default_rng(2)), tf.float64)
    q = f.build(theta)
    z = q.sample(200_000, seed=(3, 4))
    stats = {
        "normal": lambda z: tf.stack([z, z * z], -1),
        "lognormal": lambda z: tf.stack([tf.math.log(z), tf.math.log(z) ** 2], -1),
        "gamma": lambda z: tf.stack([tf.math.log(z), z], -1),
        "beta": lambda z: tf.stack([tf.math.log(z), tf.math.log1p(-z)], -1),
        "mean-field-normal": lambda z: tf.concat([z, z * z], -1),
        "full-rank-normal": lambda z: tf.stack([z[:, 0], z[:, 1], z[:, 0] ** 2, z[:, 0] * z[:, 1], z[:, 1] ** 2], -1),
    }[family](z)
    mc = tf.reduce_mean(stats, 0).numpy()
    se = tf.math.reduce_std(stats, 0).numpy() / np.sqrt(200_000)
    np.testing.assert_array_less(np.abs(mc - f.mean_params(theta).numpy()), 6 * se + 1e-9)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_moment_match_reproduces_moments(family):
    f = FAMILIES[family]
    rng = np.random.default_rng(5)
    if f.dim == 2:
        mean, cov = np.array([0.5, -1.0]), np.array([[2.0, 0.3], [0.3, 0.5]])
    elif family == "beta":
        mean, cov = np.array([0.3]), np.array([[0.01]])
    elif f.support.value == "positive":
        mean, cov = np.array([rng.uniform(1, 5)]), np.array([[rng.uniform(0.5, 2)]])
    else:
        mean, cov = np.array([1.5]), np.array([[4.0]])
    q = f.build(tf.constant(f.moment_match(mean, cov), tf.float64))
    np.testing.assert_allclose(np.atleast_1d(q.mean().numpy()), mean, rtol=1e-10)
    got = q.covariance().numpy() if f.dim == 2 else np.atleast_2d(q.variance().numpy())
    if family == "mean-field-normal":
        np.testing.assert_allclose(np.diag(got), np.diag(cov), rtol=1e-10)
    else:
        np.testing.assert_allclose(got, cov, rtol=1e-10)


def test_init_spec_parsing():
    assert parse_init_spec("concentration=0.1, rate=2") == {"concentration": 0.1, "rate": 2.0}
    assert parse_init_spec("scale_tril[1,0]=0.5,loc[0]=-1") == {"scale_tril[1,0]": 0.5, "loc[0]": -1.0}
    with pytest.raises(ConfigError, match="cannot read"):
        parse_init_spec("concentration:1")


def test_resolve_init_modes():
    m = get_model("poisson-gamma")
    f = get_family("gamma", m)
    data = m.data_tensors(m.simulate(None, 0))
    np.testing.assert_array_equal(resolve_init(f, m, data, None, 0), [1.0, 1.0])
    np.testing.assert_array_equal(resolve_init(f, m, data, "concentration=0.1", 0), [0.1, 1.0])
    np.testing.assert_allclose(resolve_init(f, m, data, "prior", 0), [2.0, 1.0])  # Gamma(2, 1) prior
    r1, r2 = resolve_init(f, m, data, "random", 7), resolve_init(f, m, data, "random", 7)
    np.testing.assert_array_equal(r1, r2)
    assert not np.array_equal(r1, resolve_init(f, m, data, "random", 8))
    assert np.all(r1 > 0)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("concentration=-1", r"concentration = -1 is outside its support \(0, inf\)"),
        ("concentration=0", "outside its support"),
        ("shape=2", "has no parameter 'shape'; its parameters are concentration, rate"),
        ("rate=nan", "rate = nan is not a finite number"),
        ("rate=1e300", "absurdly large"),
    ],
)
def test_bad_init_is_named(spec, message):
    m = get_model("poisson-gamma")
    with pytest.raises(ConfigError, match=message) as err:
        resolve_init(get_family("gamma", m), m, m.data_tensors(m.simulate(5, 0)), spec, 0)
    assert err.value.argument == "init"


class _VectorModel:
    """Just what sizing a vector family reads from a model."""

    def __init__(self, coordinates):
        self.coordinates = tuple(coordinates)


def _random_full_rank(d, rng):
    chol = np.tril(rng.normal(0, 0.4, size=(d, d)))
    chol[np.diag_indices(d)] = rng.uniform(0.5, 1.5, size=d)
    return np.concatenate([rng.normal(size=d), chol[np.tril_indices(d)]]), chol


@pytest.mark.parametrize("d", [1, 3, 4])
def test_full_rank_family_in_d_dimensions(d):
    f = FAMILIES["full-rank-normal"].for_model(_VectorModel([f"x{i}" for i in range(d)]))
    assert f.dim == d and f.size == d + d * (d + 1) // 2
    assert f.param_names[d] == "scale_tril[x0,x0]" and f.param_names[-1] == f"scale_tril[x{d - 1},x{d - 1}]"
    assert f is FAMILIES["full-rank-normal"].for_model(_VectorModel([f"x{i}" for i in range(d)]))  # one per naming
    rng = np.random.default_rng(d)
    theta, chol = _random_full_rank(d, rng)
    t = tf.constant(theta, tf.float64)
    np.testing.assert_allclose(f.from_natural(f.natural_params(t)).numpy(), theta, rtol=1e-9, atol=1e-12)
    cov = chol @ chol.T
    mean, sd = f.moments(theta)
    np.testing.assert_allclose(sd, np.sqrt(np.diag(cov)), rtol=1e-12)
    np.testing.assert_allclose(f.build(t).covariance().numpy(), cov, rtol=1e-10)
    rows, cols = np.tril_indices(d)
    second = cov + np.outer(theta[:d], theta[:d])
    np.testing.assert_allclose(f.mean_params(t).numpy(), np.concatenate([theta[:d], second[rows, cols]]), rtol=1e-10)
    np.testing.assert_allclose(f.moment_match(theta[:d], cov), theta, rtol=1e-9, atol=1e-12)
    # The natural parameters pair with T(z) = (z, z_i z_j for i >= j) to give log q up to a constant.
    z = f.build(t).sample(3, seed=(1, 2)).numpy()
    stats = np.concatenate([z, z[:, rows] * z[:, cols]], axis=1)
    log_q = f.build(t).log_prob(z).numpy()
    eta = f.natural_params(t).numpy()
    diff = log_q - stats @ eta
    np.testing.assert_allclose(diff, diff[0], rtol=1e-9)


@pytest.mark.parametrize("d", [1, 5])
def test_mean_field_family_in_d_dimensions(d):
    f = FAMILIES["mean-field-normal"].for_model(_VectorModel([f"b[{i}]" for i in range(d)]))
    assert f.param_names == tuple(f"loc[b[{i}]]" for i in range(d)) + tuple(f"scale[b[{i}]]" for i in range(d))
    theta = np.concatenate([np.arange(d, dtype=float), np.linspace(0.5, 2.0, d)])
    t = tf.constant(theta, tf.float64)
    np.testing.assert_allclose(f.from_natural(f.natural_params(t)).numpy(), theta, rtol=1e-12)
    assert f.build(t).event_shape == [d]


def test_the_two_dimensional_families_keep_their_names():
    assert FAMILIES["full-rank-normal"].param_names == (
        "loc[0]", "loc[1]", "scale_tril[0,0]", "scale_tril[1,0]", "scale_tril[1,1]")
    assert FAMILIES["mean-field-normal"].param_names == ("loc[0]", "loc[1]", "scale[0]", "scale[1]")
