"""Learning-rate schedules: named pure functions ``schedule(lr, t) -> lr_t``.

The schedule is a tensor argument of the compiled chunk (its index in ``SCHEDULES``), so
switching it mid-run never retraces: the step evaluates every schedule (a handful of scalar
ops) and picks one with ``tf.gather`` (see ``learning_rate``), no branch on a name or an id.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from vizvi._tf import tf

# Robbins-Monro schedule lr_t = lr * (1 + t / TAU)^-KAPPA: with 0.5 < KAPPA <= 1 the steps sum to
# infinity while their squares do not, the condition for SGD to converge.
RM_TAU, RM_KAPPA = 100.0, 0.6


def constant(lr, t):
    """lr_t = lr."""
    return lr


def robbins_monro(lr, t):
    """lr_t = lr (1 + t / 100)^-0.6: decays slowly enough to reach the optimum, fast enough to average the noise out."""
    return lr * tf.pow(1.0 + t / RM_TAU, -RM_KAPPA)


class Schedule(NamedTuple):
    """A schedule the user can choose: its rule and what it does."""

    rule: Callable  # (lr, t) -> lr_t, in-graph
    description: str


SCHEDULES = {
    "constant": Schedule(constant, "the same learning rate at every step"),
    "robbins-monro": Schedule(robbins_monro, f"lr (1 + t/{RM_TAU:g})^-{RM_KAPPA:g}: steps that sum to infinity, squares that do not"),
}


def schedule_index(name: str) -> int:
    """The index the compiled step takes for the schedule called ``name``."""
    return list(SCHEDULES).index(name)


def learning_rate(index, lr, t):
    """lr_t of the schedule at ``index`` (a tensor): every rule evaluated, one gathered."""
    return tf.gather(tf.stack([s.rule(lr, t) for s in SCHEDULES.values()]), index)
