"""Constrained <-> unconstrained maps: round trips, exact initial values, projection."""

import numpy as np
import pytest
import tensorflow as tf

from vizvi.errors import ConfigError
from vizvi.families import FAMILIES
from vizvi.parameterizations import POSITIVE_FLOOR, Constraint, ParameterMap, Parameterization, parse_parameterization


@pytest.mark.parametrize("parameterization", list(Parameterization))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_round_trip_and_exact_init(family, parameterization):
    f = FAMILIES[family]
    pm = ParameterMap(f.constraints, parameterization)
    rng = np.random.default_rng(0)
    for _ in range(5):
        theta = np.array([rng.uniform(0.01, 50.0) if c is Constraint.POSITIVE else rng.normal(0, 5) for c in f.constraints])
        u = pm.unconstrain(theta)
        back = pm.constrain(u).numpy()
        # The requested initial value is realised exactly (to float64 rounding), unlike the seed
        # article's softplus(log(c)), which turns "1.0" into 0.69.
        np.testing.assert_allclose(back, theta, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(pm.unconstrain(back).numpy(), u.numpy(), rtol=1e-10, atol=1e-12)


def test_softplus_init_one_is_one_not_log():
    pm = ParameterMap([Constraint.POSITIVE], Parameterization.SOFTPLUS)
    assert pm.constrain(pm.unconstrain([1.0])).numpy()[0] == pytest.approx(1.0, abs=1e-15)
    assert float(tf.nn.softplus(tf.math.log(1.0))) == pytest.approx(0.693, abs=1e-3)  # the seed's mistake


@pytest.mark.parametrize("parameterization", list(Parameterization))
def test_dtheta_du_matches_autodiff(parameterization):
    pm = ParameterMap([Constraint.REAL, Constraint.POSITIVE, Constraint.POSITIVE], parameterization)
    u = tf.constant([0.3, 1.7, 0.2], tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(u)
        theta = pm.constrain(u)
    jac = tape.jacobian(theta, u).numpy()
    np.testing.assert_allclose(np.diag(jac), pm.dtheta_du(u).numpy(), rtol=1e-12)
    np.testing.assert_allclose(jac - np.diag(np.diag(jac)), 0.0)


def test_identity_projects_and_reports():
    pm = ParameterMap([Constraint.REAL, Constraint.POSITIVE], Parameterization.IDENTITY)
    assert pm.projects
    u, projected = pm.project(tf.constant([-5.0, -0.5], tf.float64))
    np.testing.assert_array_equal(projected.numpy(), [False, True])
    np.testing.assert_allclose(u.numpy(), [-5.0, POSITIVE_FLOOR])
    # The other parameterizations never project: their image is the support already.
    assert not ParameterMap([Constraint.POSITIVE], Parameterization.EXP).projects


def test_unknown_parameterization_is_named():
    with pytest.raises(ConfigError, match="unknown parameterization 'log'.*softplus, exp, identity"):
        parse_parameterization("log")
