"""Weak derivatives of the Gaussian: the measure-valued gradient's sampling math, written once.

For q = N(mu, sigma^2) and any integrable f (Pflug 1996; Mohamed, Rosca, Figurnov and Mnih
2020, section 6 and table 1):

    d/dmu    E_q[f] = 1 / (sigma sqrt(2 pi)) * (E[f(mu + sigma W)] - E[f(mu - sigma W')])
                      W, W' ~ Weibull(shape 2, scale sqrt 2)  (Rayleigh: the double-sided Weibull)
    d/dsigma E_q[f] = 1 / sigma * (E[f(mu + sigma D)] - E[f(mu + sigma E)])
                      D ~ double-sided Maxwell(0, 1), E ~ N(0, 1)

Each derivative is a weight times the difference of two expectations, the *positive* and the
*negative* part; an estimate evaluates f at one point of each per sample. The parts may be
drawn independently or *coupled* (common random numbers), which keeps the estimator unbiased
and lowers its variance when f is smooth:

- for mu, the negative part reuses the positive part's W (the mirror image mu - sigma W);
- for sigma, E = D U with U ~ Uniform(0, 1): if D is double-sided Maxwell, D U is exactly
  N(0, 1) (its density is the integral of |d| phi(d) over |d| > |x|, which is phi(x)), so the
  negative part is the positive part's point pulled towards mu by a uniform factor.

The variance explorer (``vizvi.variance_lab``) and the engine's ``measure-valued`` estimator
(``vizvi.families``) both draw through these two functions.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from vizvi._tf import tf
import tensorflow_probability as tfp

tfd = tfp.distributions


class WeakDerivativeParts(NamedTuple):
    """d/dtheta E_q[f] = weight * E[f(plus) - f(minus)] (expectation over the draws)."""

    weight: tf.Tensor  # shaped like loc
    plus: tf.Tensor  # [*sample_shape, *loc.shape]: points of the positive part
    minus: tf.Tensor  # [*sample_shape, *loc.shape]: points of the negative part


def _shape(sample_shape, loc):
    return tf.concat([tf.convert_to_tensor(sample_shape, tf.int32), tf.shape(loc)], axis=0)


def gaussian_loc_parts(loc, scale, sample_shape, seed, coupled: bool = True) -> WeakDerivativeParts:
    """The weak derivative of N(loc, scale^2) with respect to loc, drawn ``sample_shape`` times."""
    loc, scale = tf.convert_to_tensor(loc), tf.convert_to_tensor(scale)
    rayleigh = tfd.Weibull(tf.constant(2.0, loc.dtype), tf.constant(math.sqrt(2.0), loc.dtype))
    seed_plus, seed_minus = tfp.random.split_seed(seed, 2)
    w_plus = rayleigh.sample(_shape(sample_shape, loc), seed=seed_plus)
    w_minus = w_plus if coupled else rayleigh.sample(_shape(sample_shape, loc), seed=seed_minus)
    weight = 1.0 / (scale * math.sqrt(2.0 * math.pi))
    return WeakDerivativeParts(weight, loc + scale * w_plus, loc - scale * w_minus)


def gaussian_scale_parts(loc, scale, sample_shape, seed, coupled: bool = True) -> WeakDerivativeParts:
    """The weak derivative of N(loc, scale^2) with respect to scale, drawn ``sample_shape`` times.

    The negative part is N(loc, scale^2) itself, so ``minus`` is a plain draw from q (the
    engine's ELBO estimate reuses it).
    """
    loc, scale = tf.convert_to_tensor(loc), tf.convert_to_tensor(scale)
    seed_maxwell, seed_minus = tfp.random.split_seed(seed, 2)
    shape = _shape(sample_shape, loc)
    # TFP's DoublesidedMaxwell samples the same way (a random sign times the norm of three
    # normals) but draws its sign in float32 and fails in float64, the engine's dtype.
    seed_norm, seed_sign = tfp.random.split_seed(seed_maxwell, 2)
    radius = tf.norm(tf.random.stateless_normal(tf.concat([shape, [3]], 0), seed_norm, dtype=loc.dtype), axis=-1)
    d = tfp.random.rademacher(shape, dtype=loc.dtype, seed=seed_sign) * radius
    if coupled:
        e = d * tf.random.stateless_uniform(shape, seed_minus, dtype=loc.dtype)
    else:
        e = tf.random.stateless_normal(shape, seed_minus, dtype=loc.dtype)
    return WeakDerivativeParts(1.0 / scale, loc + scale * d, loc + scale * e)
