"""Models: data, CSV parsing, exact posteriors and grid references."""

import math

import numpy as np
import pytest
import tensorflow as tf

from vizvi.errors import ConfigError
from vizvi.models import MODELS, get_model, grid_reference, load_dataset


def test_poisson_gamma_log_evidence_matches_closed_form():
    m = get_model("poisson-gamma")
    ds = m.simulate(None, 3)
    assert ds.n == 1000
    x = ds.arrays["count"]
    a, b, s, n = 2.0, 1.0, x.sum(), len(x)
    closed = a * math.log(b) - math.lgamma(a) + math.lgamma(a + s) - (a + s) * math.log(b + n) - sum(math.lgamma(v + 1) for v in x)
    ref = m.reference(m.data_tensors(ds))
    assert ref.kind == "exact" and ref.distribution == "Gamma"
    assert ref.log_evidence == pytest.approx(closed, rel=1e-10)
    assert ref.params["concentration"] == pytest.approx(a + s)
    assert ref.params["rate"] == pytest.approx(b + n)
    assert abs(ref.mean[0] - 4.0) < 0.2  # data drawn with true rate 4


def test_sufficient_statistic_likelihood_equals_tfp_sum():
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    z = tf.constant([0.5, 3.0, 4.2], tf.float64)
    m = get_model("poisson-gamma")
    ds = m.simulate(50, 1)
    x = tf.constant(ds.arrays["count"], tf.float64)
    direct = tf.reduce_sum(tfd.Poisson(z[:, None]).log_prob(x), -1) + tfd.Gamma(tf.constant(2.0, tf.float64), 1.0).log_prob(z)
    np.testing.assert_allclose(m.log_joint(z, m.data_tensors(ds)).numpy(), direct.numpy(), rtol=1e-12)
    m = get_model("normal-mean")
    ds = m.simulate(40, 1)
    x = tf.constant(ds.arrays["x"], tf.float64)
    direct = tf.reduce_sum(tfd.Normal(z[:, None], tf.constant(1.0, tf.float64)).log_prob(x), -1) + tfd.Normal(tf.constant(0.0, tf.float64), 10.0).log_prob(z)
    np.testing.assert_allclose(m.log_joint(z, m.data_tensors(ds)).numpy(), direct.numpy(), rtol=1e-12)
    m = get_model("beta-bernoulli")
    ds = m.simulate(30, 1)
    x = tf.constant(ds.arrays["flip"], tf.float64)
    p = tf.constant([0.2, 0.5, 0.9], tf.float64)
    direct = tf.reduce_sum(tfd.Bernoulli(probs=p[:, None], dtype=tf.float64).log_prob(x), -1)
    np.testing.assert_allclose(m.log_joint(p, m.data_tensors(ds)).numpy(), direct.numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["normal-mean", "beta-bernoulli", "correlated-gaussian"])
def test_exact_log_evidence_is_consistent(name):
    # log Z = log p(x, z) - log p(z | x) must not depend on z.
    m = get_model(name)
    data = m.data_tensors(m.simulate(None, 0))
    post = m.exact_posterior(data)
    z = post.sample(5, seed=(1, 2))
    log_z = (m.log_joint(z, data) - post.log_prob(z)).numpy()
    np.testing.assert_allclose(log_z, m.reference(data).log_evidence, rtol=1e-9)


def test_banana_grid_reference_matches_analytic_moments():
    m = get_model("banana")
    ref = m.reference(m.data_tensors(m.simulate(None, 0)))
    assert ref.kind == "grid"
    # z1 ~ N(0, 1), z2 | z1 ~ N(z1^2 - 1, 0.25): E = (0, 0), Var z2 = 0.25 + 2, Cov = E[z1^3] = 0, Z = 1.
    np.testing.assert_allclose(ref.mean, [0.0, 0.0], atol=2e-3)
    np.testing.assert_allclose(ref.cov, [[1.0, 0.0], [0.0, 2.25]], atol=1e-2)
    assert ref.log_evidence == pytest.approx(0.0, abs=1e-3)
    assert len(ref.grid["x"]) > 50 and len(ref.grid["density"]) == len(ref.grid["y"])


def test_grid_reference_on_a_gaussian_with_known_evidence():
    import tensorflow_probability as tfp

    target = tfp.distributions.MultivariateNormalTriL(
        tf.constant([0.3, -2.0], tf.float64), tf.linalg.cholesky(tf.constant([[0.5, 0.2], [0.2, 0.3]], tf.float64))
    )
    ref = grid_reference(lambda z: target.log_prob(z) + 7.0, (-10.0, -10.0), (10.0, 10.0))
    np.testing.assert_allclose(ref.mean, [0.3, -2.0], atol=1e-6)
    np.testing.assert_allclose(ref.cov, [[0.5, 0.2], [0.2, 0.3]], atol=1e-6)
    assert ref.log_evidence == pytest.approx(7.0, abs=1e-6)


def test_logistic_regression_reference_is_near_truth():
    m = get_model("logistic-regression")
    ds = m.simulate(400, 0)
    ref = m.reference(m.data_tensors(ds))
    assert ref.kind == "grid"
    np.testing.assert_allclose(ref.mean, m.true_w, atol=0.4)
    assert np.all(np.linalg.eigvalsh(ref.cov) > 0)


def test_simulation_is_seeded():
    m = get_model("normal-mean")
    np.testing.assert_array_equal(m.simulate(10, 5).arrays["x"], m.simulate(10, 5).arrays["x"])
    assert not np.array_equal(m.simulate(10, 5).arrays["x"], m.simulate(10, 6).arrays["x"])


@pytest.mark.parametrize(
    "model, text, message",
    [
        ("poisson-gamma", "3\n4\n-1\n", "line 3: count value '-1' is not a non-negative whole number"),
        ("poisson-gamma", "3\n2.5\n", "line 2: count value '2.5' is not a non-negative whole number"),
        ("poisson-gamma", "3\nabc\n", "line 2: count value 'abc' is not a number"),
        ("poisson-gamma", "", "has no data rows"),
        ("poisson-gamma", "count\n", "has no data rows"),
        ("beta-bernoulli", "1\n0\n2\n", "line 3: flip value '2' is not 0 or 1"),
        ("normal-mean", "1.0\nnan\n", "line 2: x value 'nan' is not finite"),
        ("logistic-regression", "x,y\n0.1,1\n0.2\n", "line 3: expected 2 column"),
        ("logistic-regression", "x,y\n0.1,1\n0.2,0.5\n", "line 3: y value '0.5' is not 0 or 1"),
        ("correlated-gaussian", "1\n", "takes no data file"),
    ],
)
def test_bad_csv_names_line_and_reason(model, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        get_model(model).parse_csv(text, source="data.csv")
    assert err.value.argument == "data"


def test_csv_with_header_and_blank_lines(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("count\n3\n\n5\n4\n")
    ds = load_dataset(get_model("poisson-gamma"), None, 0, csv_path=str(path))
    np.testing.assert_array_equal(ds.arrays["count"], [3, 5, 4])
    assert ds.n == 3 and str(path) in ds.source


def test_missing_csv_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read .*nope.csv"):
        load_dataset(get_model("normal-mean"), None, 0, csv_path=str(tmp_path / "nope.csv"))


def test_every_model_has_a_fitting_default_family():
    from vizvi.families import families_for

    for m in MODELS.values():
        assert m.default_family in families_for(m)


def test_unknown_model_lists_choices():
    with pytest.raises(ConfigError, match="unknown model 'poisson'; choose one of: poisson-gamma"):
        get_model("poisson")
