"""PSIS k-hat of q against the target, in-graph (Yao, Vehtari, Simpson and Gelman, "Yes, but
did it work?: Evaluating variational inference", ICML 2018).

Importance weights w = p(x, z) / q(z) for draws z ~ q have a right tail that a generalized
Pareto distribution fits; its shape k-hat says how far q is from the posterior where it
matters for importance sampling: k < 0.5 good, 0.5-0.7 usable, above 0.7 the importance
weights' variance is effectively infinite and q is not to be trusted (the paper's threshold).

This is arviz-stats' PSIS k-hat (``arviz_stats.base.array_stats.psislw``: the tail size
``floor(3 sqrt(S))``, Zhang and Stephens' empirical-Bayes fit with its weakly informative
prior on k) written in TensorFlow. It must run inside the engine's XLA-compiled training loop
every K steps, where a NumPy/SciPy library cannot go; ``tests/test_psis.py`` checks it against
arviz-stats on fixed weights.
"""

from __future__ import annotations

import math

import numpy as np
from vizvi._tf import tf

KHAT_DRAWS = 1000  # draws of q per k-hat (the paper uses thousands; 1000 keeps the cost small)
KHAT_THRESHOLD = 0.7  # above it, q is not a trustworthy approximation (Yao et al. 2018)

_PRIOR_BS = 3.0  # arviz-stats' constants of the fit (Zhang and Stephens 2009; Vehtari et al. 2024)
_PRIOR_K = 10.0


def tail_size(num_draws: int) -> int:
    """How many of the largest weights the Pareto fit uses (arviz-stats' rule, r_eff = 1)."""
    return int(math.floor(3 * math.sqrt(num_draws))) if num_draws > 225 else num_draws // 5


def pareto_khat(log_weights: tf.Tensor) -> tf.Tensor:
    """k-hat of a vector of log importance weights (static length S >= 25), in-graph."""
    num = int(log_weights.shape[-1])
    m_tail = tail_size(num)
    lw = log_weights - tf.reduce_max(log_weights)
    ordered = tf.sort(lw)
    cutoff = tf.exp(ordered[num - m_tail - 1])  # the largest weight below the tail
    x = tf.exp(ordered[num - m_tail:]) - cutoff  # the tail's exceedances, ascending
    # When a few draws carry all the weight, the smaller exceedances underflow to 0 and the fit
    # divides by zero (arviz-stats then returns an arbitrary number): the tail is as heavy as
    # it gets, so k-hat is infinite.
    degenerate = tf.logical_not(x[int(m_tail / 4 + 0.5) - 1] > 0)
    safe = tf.where(degenerate, tf.ones_like(x), x)
    return tf.where(degenerate, tf.constant(np.inf, x.dtype), _gpd_shape(safe))


def _gpd_shape(x: tf.Tensor) -> tf.Tensor:
    """Zhang and Stephens' posterior-mean estimate of the generalized Pareto shape for sorted
    exceedances ``x`` (arviz-stats' ``_gpdfit``, the shape only)."""
    n = int(x.shape[-1])
    m_est = 30 + int(n ** 0.5)
    grid = 1.0 - np.sqrt(m_est / (np.arange(1, m_est + 1, dtype=np.float64) - 0.5))
    quartile = x[int(n / 4 + 0.5) - 1]
    b = tf.constant(grid, x.dtype) / (_PRIOR_BS * quartile) + 1.0 / x[-1]
    k = tf.reduce_mean(tf.math.log1p(-b[:, None] * x[None, :]), axis=1)
    profile = n * (tf.math.log(-b / k) - k - 1.0)
    weights = tf.nn.softmax(profile)
    # arviz-stats drops grid points of negligible weight before renormalising.
    weights = tf.where(weights >= 10 * np.finfo(np.float64).eps, weights, tf.zeros_like(weights))
    weights = weights / tf.reduce_sum(weights)
    b_post = tf.reduce_sum(b * weights)
    kappa = tf.reduce_mean(tf.math.log1p(-b_post * x))
    return (n * kappa + _PRIOR_K * 0.5) / (n + _PRIOR_K)
