"""The in-graph PSIS k-hat against arviz-stats' (the maintained implementation) on fixed weights."""

import numpy as np
import pytest
from arviz_stats.base import array_stats

from vizvi._tf import tf
from vizvi.psis import pareto_khat, tail_size


def _weights(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return {
        "normal": lambda: rng.normal(size=n),  # light tail: k-hat well below 0.5
        "wide-normal": lambda: 3.0 * rng.normal(size=n),  # log-normal weights with a heavy tail
        "student-t3": lambda: rng.standard_t(3, size=n),
        "gamma-log": lambda: np.log(rng.gamma(0.3, size=n)),
    }[kind]()


@pytest.mark.parametrize("n", [100, 1000, 4000])
@pytest.mark.parametrize("kind", ["normal", "wide-normal", "student-t3", "gamma-log"])
def test_khat_matches_arviz_stats(kind, n):
    log_weights = _weights(kind, n, seed=n)
    # arviz-stats' psislw takes the negative log weights (its LOO convention) and returns k-hat.
    expected = float(array_stats.psislw(-log_weights)[1])
    got = float(pareto_khat(tf.constant(log_weights, tf.float64)).numpy())
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_khat_compiles_with_xla_and_gives_the_same_number():
    log_weights = _weights("student-t3", 1000, seed=3)
    compiled = tf.function(pareto_khat, jit_compile=True)
    eager = float(pareto_khat(tf.constant(log_weights, tf.float64)).numpy())
    assert float(compiled(tf.constant(log_weights, tf.float64)).numpy()) == pytest.approx(eager, rel=1e-12)


def test_the_tail_is_arviz_stats_rule():
    assert tail_size(1000) == 94 and tail_size(100) == 20


def test_weights_that_all_sit_on_a_few_draws_give_an_infinite_khat():
    # exp(lw - max) underflows for most tail draws: arviz-stats divides by zero there and
    # returns an arbitrary number; the tail is as heavy as it gets, so k-hat is infinite.
    log_weights = np.random.default_rng(0).standard_t(1.5, size=4000) * 5
    assert np.isinf(pareto_khat(tf.constant(log_weights, tf.float64)).numpy())
