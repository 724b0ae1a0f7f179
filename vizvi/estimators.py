"""Monte Carlo estimators of the ELBO and its gradient with respect to q's parameters.

Every estimator works on a *batch* of parameter vectors ``theta`` of shape [B, D] and returns
``(elbo [B], grad [B, D])``; batch members use independent samples, so B = 1 is a training
step and B = R gives R independent gradient estimates in one vectorised call (the variance
and signal-to-noise telemetry).

- ``pathwise``: reparameterization; z = r(theta, eps), differentiate through the sample.
  TFP's Gamma and Beta samplers are implicitly reparameterized, so every family here allows it.
- ``score``: the score-function (REINFORCE) estimator, mean of grad log q(z) * f(z).
- ``score-baseline``: score function with a leave-one-out baseline as control variate: each
  sample's f is centred by the mean f of the *other* M-1 samples (Kool et al., 2019, "Buy 4
  REINFORCE samples, get a baseline for free"). The baseline is independent of the sample it
  centres, so the estimator stays unbiased; needs M >= 2.
- ``measure-valued``: the weak derivative of q (Pflug 1996; Mohamed et al. 2020, section 6):
  each parameter's gradient is a weight times E[f(plus) - f(minus)], f evaluated at a point of
  a positive and of a negative part per sample, drawn coupled (common random numbers, see
  ``vizvi.weak_derivatives``). It needs neither a differentiable f nor the score of q, but costs
  2 target evaluations per parameter and sample; implemented for the Gaussian families.
- ``stl``: sticking the landing (Roeder et al., 2017): the pathwise estimator with the score
  term of log q dropped (parameters of log q stopped); unbiased, and zero variance when q equals
  the posterior.

f(z) = log p(x, z) - log q(z) throughout; the returned ELBO is the plain mean of f.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Optional

from vizvi._tf import tf
import tensorflow_probability as tfp

from vizvi.errors import ConfigError, parse_choice

tfd = tfp.distributions


class EstimatorName(str, enum.Enum):
    """The gradient estimators a user can choose."""

    PATHWISE = "pathwise"
    SCORE = "score"
    SCORE_BASELINE = "score-baseline"
    MEASURE_VALUED = "measure-valued"
    STL = "stl"


class EstimatorSpec(NamedTuple):
    """What an estimator is and needs, declared once: everything outside this module asks the spec."""

    description: str
    needs_reparameterization: bool
    min_samples: int
    min_samples_why: str  # why it needs ``min_samples``, for the controls
    score_function: bool  # weights f by the score of q: high variance, whatever the family
    quieter: Optional[str]  # the estimator to suggest when this one's noise stalls a parameter
    quieter_why: str
    needs_weak_derivative: bool = False  # only for families that implement ``Family.weak_derivative``
    evaluations_per_parameter: int = 0  # target evaluations per sample: 1 + this x the parameter count

    def evaluations_per_sample(self, num_params: int) -> int:
        """Evaluations of the target (log p and log q) one Monte Carlo sample costs, for a family
        with ``num_params`` parameters: the unit in which estimators' variances compare fairly."""
        if self.evaluations_per_parameter:
            return self.evaluations_per_parameter * num_params
        return 1


_PATHWISE_WHY = "switch the estimator to pathwise (reparameterization): far lower variance for this family"
ESTIMATORS = {
    EstimatorName.PATHWISE: EstimatorSpec(
        "reparameterization (pathwise) gradient", True, 1, "", False, "stl",
        "switch the estimator to stl (sticking the landing): its variance vanishes as q approaches the posterior"),
    EstimatorName.SCORE: EstimatorSpec("score function / REINFORCE", False, 1, "", True, "pathwise", _PATHWISE_WHY),
    EstimatorName.SCORE_BASELINE: EstimatorSpec(
        "score function with a leave-one-out baseline control variate", False, 2,
        "its baseline leaves one sample out", True, "pathwise", _PATHWISE_WHY),
    EstimatorName.MEASURE_VALUED: EstimatorSpec(
        "measure-valued (weak derivative of q, coupled parts): 2 target evaluations per parameter and sample", False, 1, "",
        False, "pathwise",
        "switch the estimator to pathwise (reparameterization): one target evaluation per sample instead of two per parameter",
        needs_weak_derivative=True, evaluations_per_parameter=2),
    EstimatorName.STL: EstimatorSpec("sticking the landing: pathwise without the score term", True, 1, "", False, None, ""),
}


def spec(name) -> EstimatorSpec:
    """The spec of the estimator called ``name`` (a ConfigError listing the choices if none)."""
    return ESTIMATORS[parse_estimator(name)]


def parse_estimator(name: str) -> EstimatorName:
    """The EstimatorName called ``name`` or a ConfigError listing the choices."""
    return parse_choice(EstimatorName, name, "estimator", "estimator")


def check_estimator(name: EstimatorName, family, samples: int) -> None:
    """Refuse an estimator the family or the sample count cannot support."""
    spec = ESTIMATORS[EstimatorName(name)]
    if spec.needs_reparameterization:
        q = family.build(tf.constant([list(family.defaults)], tf.float64))
        if q.reparameterization_type != tfd.FULLY_REPARAMETERIZED:
            raise ConfigError(
                "estimator",
                f"estimator {name.value!r} needs a reparameterizable family, and {family.name!r} samples cannot be "
                f"differentiated; use score or score-baseline",
            )
    if spec.needs_weak_derivative and not family.has_weak_derivative:
        raise ConfigError(
            "estimator",
            f"estimator {name.value!r} needs the weak derivative of q, implemented for the Gaussian families "
            f"({', '.join(weak_derivative_families())}); {family.name!r} has none",
        )
    if samples < spec.min_samples:
        raise ConfigError("samples", f"estimator {name.value!r} needs at least {spec.min_samples} samples per step, got {samples}: "
                                     f"{spec.min_samples_why}")


def weak_derivative_families() -> list:
    """Names of the families whose weak derivative is implemented."""
    from vizvi.families import FAMILIES

    return [name for name, family in FAMILIES.items() if family.has_weak_derivative]


def unavailable(family, samples: int) -> dict:
    """{estimator: why it cannot be used} for ``family`` at ``samples`` per step; the others can."""
    out = {}
    for name in EstimatorName:
        try:
            check_estimator(name, family, samples)
        except ConfigError as e:
            out[name] = e.message
    return out


def _measure_valued(family, log_joint, theta, seed, num_samples):
    """(elbo [B], grad [B, D]) of the measure-valued estimator: no autodiff through f or q."""
    theta = tf.stop_gradient(theta)
    q = family.build(theta)
    draws = family.weak_derivative(theta, seed, num_samples)

    def f(z):
        return log_joint(z) - q.log_prob(z)

    f_minus = f(draws.minus)  # [P, M, B]
    diff = tf.reduce_mean(f(draws.plus) - f_minus, axis=1)  # [P, B]
    grad = tf.transpose(diff) * draws.weight
    # The entropy term's own derivative, E_q[d/dtheta -log q], is zero (the score has mean zero),
    # so differentiating the expectation of f with theta held fixed inside f is the whole gradient.
    return tf.reduce_mean(f_minus[draws.q_part], axis=0), grad


def _surrogate(name: EstimatorName, q, q_stopped, log_joint, seed, num_samples):
    """(surrogate [B], elbo [B]): grad of the surrogate is the estimator; shared by the autodiff ones."""
    if name in (EstimatorName.PATHWISE, EstimatorName.STL):
        z = q.sample(num_samples, seed=seed)
        log_q = (q_stopped if name is EstimatorName.STL else q).log_prob(z)
        f = log_joint(z) - log_q
        elbo = tf.reduce_mean(f, axis=0)
        return elbo, elbo
    z = tf.stop_gradient(q.sample(num_samples, seed=seed))
    log_q = q.log_prob(z)
    f = tf.stop_gradient(log_joint(z) - log_q)
    elbo = tf.reduce_mean(f, axis=0)
    if name is EstimatorName.SCORE_BASELINE:
        baseline = (tf.reduce_sum(f, axis=0, keepdims=True) - f) / (num_samples - 1.0)
        f = f - baseline
    return tf.reduce_mean(log_q * f, axis=0), elbo


def elbo_and_grad(name: EstimatorName, family, model, theta, data, seed, num_samples: int):
    """ELBO estimates [B] and gradient estimates d ELBO / d theta [B, D] for theta [B, D]."""
    name = EstimatorName(name)

    def log_joint(z):
        return model.log_joint(z, data)

    if ESTIMATORS[name].needs_weak_derivative:
        return _measure_valued(family, log_joint, theta, seed, num_samples)

    with tf.GradientTape() as tape:
        tape.watch(theta)
        q = family.build(theta)
        q_stopped = family.build(tf.stop_gradient(theta))
        surrogate, elbo = _surrogate(name, q, q_stopped, log_joint, seed, num_samples)
        # Batch members are independent, so the gradient of the sum is each member's gradient.
        total = tf.reduce_sum(surrogate)
    grad = tape.gradient(total, theta)
    return elbo, grad
