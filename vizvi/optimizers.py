"""Update rules as (init, update) pairs with explicit state.

Why hand-written: the engine runs many steps inside one XLA-compiled ``tf.while_loop`` and a
compiled function must hold no per-user variables (it is shared by every browser session).
Keras optimizers keep their state in ``tf.Variable``s and Keras 3's ``stateless_apply`` refuses
the TensorFlow backend, so each rule is written here as a pure function over an explicit
NamedTuple state. ``tests/test_optimizers.py`` checks each against ``tf.keras.optimizers`` to
1e-6 over several steps, with Keras's default hyper-parameters.

Convention (as in optax and Keras): ``update(grads, state, params, lr, info)`` takes the
gradient of the *loss* (the negative ELBO) and returns ``(updates, new_state)``; the engine
adds ``updates`` to the unconstrained parameters. ``info`` carries the constrained parameters
and the ELBO gradient with respect to them, which only ``natural`` needs.
"""

from __future__ import annotations

import enum
from typing import Callable, NamedTuple

from vizvi._tf import tf

from vizvi.errors import parse_choice
from vizvi.parameterizations import ParameterMap


class UpdateInfo(NamedTuple):
    """What the engine knows at the update, beyond the loss gradient."""

    theta: tf.Tensor  # constrained parameters, [D]
    elbo_grad_theta: tf.Tensor  # d ELBO / d theta, [D]


class Optimizer(NamedTuple):
    """A named pair of pure functions."""

    name: str
    init: Callable  # params -> state
    update: Callable  # (grads, state, params, lr, info) -> (updates, state)


class OptimizerName(str, enum.Enum):
    """The update rules a user can choose."""

    SGD = "sgd"
    MOMENTUM = "momentum"
    ADAGRAD = "adagrad"
    RMSPROP = "rmsprop"
    ADAM = "adam"
    NATURAL = "natural"


EPSILON = 1e-7  # Keras's default epsilon for Adagrad, RMSprop and Adam


class Empty(NamedTuple):
    """State of a stateless rule."""


class MomentumState(NamedTuple):
    """Velocity of SGD with momentum."""

    momentum: tf.Tensor


class AccumulatorState(NamedTuple):
    """Sum (Adagrad) or moving average (RMSprop) of squared gradients."""

    accumulator: tf.Tensor


class AdamState(NamedTuple):
    """First and second moments and the step count of Adam."""

    count: tf.Tensor
    mu: tf.Tensor
    nu: tf.Tensor


def sgd() -> Optimizer:
    """updates = -lr * g."""

    def init(params):
        return Empty()

    def update(grads, state, params, lr, info=None):
        return -lr * grads, state

    return Optimizer("sgd", init, update)


def momentum(beta: float = 0.9) -> Optimizer:
    """Keras SGD(momentum=beta): m = beta m - lr g; updates = m."""

    def init(params):
        return MomentumState(tf.zeros_like(params))

    def update(grads, state, params, lr, info=None):
        m = beta * state.momentum - lr * grads
        return m, MomentumState(m)

    return Optimizer("momentum", init, update)


def adagrad(initial_accumulator: float = 0.1) -> Optimizer:
    """Keras Adagrad: a += g^2; updates = -lr g / sqrt(a + eps)."""

    def init(params):
        return AccumulatorState(tf.fill(tf.shape(params), tf.constant(initial_accumulator, params.dtype)))

    def update(grads, state, params, lr, info=None):
        acc = state.accumulator + tf.square(grads)
        return -lr * grads / tf.sqrt(acc + EPSILON), AccumulatorState(acc)

    return Optimizer("adagrad", init, update)


def rmsprop(rho: float = 0.9) -> Optimizer:
    """Keras RMSprop: v = rho v + (1 - rho) g^2; updates = -lr g / sqrt(v + eps)."""

    def init(params):
        return AccumulatorState(tf.zeros_like(params))

    def update(grads, state, params, lr, info=None):
        v = rho * state.accumulator + (1.0 - rho) * tf.square(grads)
        return -lr * grads / tf.sqrt(v + EPSILON), AccumulatorState(v)

    return Optimizer("rmsprop", init, update)


def adam(beta1: float = 0.9, beta2: float = 0.999) -> Optimizer:
    """Keras Adam, bias correction folded into the step size as Keras does."""

    def init(params):
        return AdamState(tf.zeros([], params.dtype), tf.zeros_like(params), tf.zeros_like(params))

    def update(grads, state, params, lr, info=None):
        t = state.count + 1.0
        b1, b2 = tf.constant(beta1, t.dtype), tf.constant(beta2, t.dtype)
        alpha = lr * tf.sqrt(1.0 - tf.pow(b2, t)) / (1.0 - tf.pow(b1, t))
        mu = state.mu + (grads - state.mu) * (1.0 - beta1)
        nu = state.nu + (tf.square(grads) - state.nu) * (1.0 - beta2)
        return -alpha * mu / (tf.sqrt(nu) + EPSILON), AdamState(t, mu, nu)

    return Optimizer("adam", init, update)


# Step fractions tried, largest first, when a natural step would leave the natural-parameter
# space (e.g. a negative Gamma concentration from a noisy gradient): lr, lr/2, ..., lr/2^23.
NATURAL_BACKTRACKS = 24


def natural(family, param_map: ParameterMap) -> Optimizer:
    """Natural-gradient ascent for an exponential-family q.

    By seed 003, the natural gradient with respect to the natural parameters eta equals the
    gradient with respect to the mean parameters m. With theta the family's parameters,
    dL/dm = (dm/dtheta)^-T dL/dtheta: one D x D solve, no Fisher matrix. The step is taken in eta
    (eta <- eta + lr dL/dm) and mapped back to theta; a step that leaves the natural-parameter
    space is halved until valid (or not taken), so the rule never diverges and never feeds an
    invalid q to a sampler. With exact gradients and lr = 1 on a conjugate model this is the
    coordinate-ascent (CAVI) update: one step lands on the exact posterior.
    """

    def init(params):
        return Empty()

    def update(grads, state, params, lr, info):
        theta = info.theta
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(theta)
            m = family.mean_params(theta)
            m_parts = tf.unstack(m)
        # D is at most 5: an unrolled Jacobian is cheaper than pfor inside the XLA loop.
        jac = tf.stack([tape.gradient(mi, theta) for mi in m_parts])  # [D(m), D(theta)]
        del tape
        nat_grad = tf.linalg.solve(tf.transpose(jac), info.elbo_grad_theta[:, None])[:, 0]
        eta = family.natural_params(theta)
        fractions = tf.pow(tf.constant(0.5, theta.dtype), tf.range(NATURAL_BACKTRACKS, dtype=theta.dtype))
        candidates = family.from_natural(eta[None, :] + (lr * fractions)[:, None] * nat_grad[None, :])
        valid = tf.reduce_all(family.in_support(candidates), axis=-1)
        first = tf.argmax(tf.cast(valid, tf.int32), output_type=tf.int32)
        theta_new = tf.where(tf.reduce_any(valid), candidates[first], theta)
        return param_map.unconstrain(theta_new) - params, state

    return Optimizer("natural", init, update)


class OptimizerSpec(NamedTuple):
    """What an update rule is, declared once: everything outside this module asks the spec."""

    description: str
    default_lr: float
    adaptive: bool  # divides each step by a running size of the gradient (its steps shrink with noise)
    natural: bool  # steps in the natural parameters: needs an exponential family
    factory: Callable  # (family, param_map) -> Optimizer


OPTIMIZERS = {
    OptimizerName.SGD: OptimizerSpec("plain stochastic gradient ascent", 0.001, False, False, lambda f, pm: sgd()),
    OptimizerName.MOMENTUM: OptimizerSpec("SGD with heavy-ball momentum 0.9", 0.001, False, False, lambda f, pm: momentum()),
    OptimizerName.ADAGRAD: OptimizerSpec("per-parameter step shrinking with the sum of squared gradients", 0.5, True, False,
                                         lambda f, pm: adagrad()),
    OptimizerName.RMSPROP: OptimizerSpec("per-parameter step scaled by a moving RMS of gradients (rho 0.9)", 0.01, True, False,
                                         lambda f, pm: rmsprop()),
    OptimizerName.ADAM: OptimizerSpec("Adam (beta1 0.9, beta2 0.999, eps 1e-7)", 0.05, True, False, lambda f, pm: adam()),
    OptimizerName.NATURAL: OptimizerSpec(
        "natural-gradient ascent in the family's natural parameters (exponential families)", 0.1, False, True, natural),
}


def spec(name) -> OptimizerSpec:
    """The spec of the optimizer called ``name`` (a ConfigError listing the choices if none)."""
    return OPTIMIZERS[parse_optimizer(name)]


def default_lr(name) -> float:
    """The learning rate the optimizer called ``name`` starts with unless told otherwise."""
    return spec(name).default_lr


def parse_optimizer(name: str) -> OptimizerName:
    """The OptimizerName called ``name`` or a ConfigError listing the choices."""
    return parse_choice(OptimizerName, name, "optimizer", "optimizer")


def make_optimizer(name: OptimizerName, family, param_map: ParameterMap) -> Optimizer:
    """Build the optimizer ``name`` for a family and parameter map."""
    return spec(name).factory(family, param_map)
