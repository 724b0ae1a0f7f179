"""Constrained <-> unconstrained maps for variational parameters.

Every variational parameter is a scalar component with a *constraint* (``real`` or
``positive``). Real components are always optimised as they are. Positive components are
optimised through the user's chosen parameterization:

- ``softplus``: theta = softplus(u)        (``tfb.Softplus``)
- ``exp``:      theta = exp(u), u = log(theta)  (``tfb.Exp``)
- ``identity``: theta = u, optimised raw; after every update a component that left the support
  is projected back to a small positive floor and the projection is counted and reported.

The initial value a user asks for is realised exactly: ``u0 = bijector.inverse(theta0)``, never
``softplus(log(theta0))`` as in the seed article (whose "init 1.0" really starts at 0.69).
"""

from __future__ import annotations

import enum
from typing import Sequence

import numpy as np
from vizvi._tf import tf
import tensorflow_probability as tfp

from vizvi.errors import parse_choice

tfb = tfp.bijectors

DTYPE = tf.float64


class Constraint(str, enum.Enum):
    """The support of one scalar variational parameter."""

    REAL = "real"
    POSITIVE = "positive"


class Parameterization(str, enum.Enum):
    """How a positive parameter is mapped to the unconstrained space the optimizer sees."""

    SOFTPLUS = "softplus"
    EXP = "exp"
    IDENTITY = "identity"


PARAMETERIZATIONS = {
    Parameterization.SOFTPLUS: "theta = softplus(u): additive steps far from 0, multiplicative near 0",
    Parameterization.EXP: "theta = exp(u): every step is a relative (multiplicative) change",
    Parameterization.IDENTITY: "theta = u: raw steps on the constrained value, projected back into the support",
}

# Smallest value a positive parameter is projected to under the identity parameterization. Far
# enough from 0 that a Gamma/Beta sampler still returns finite draws, small enough to be visible
# as a projection in the telemetry.
POSITIVE_FLOOR = 1e-6


def parse_parameterization(name: str) -> Parameterization:
    """Return the Parameterization called ``name`` or raise a ConfigError listing the choices."""
    return parse_choice(Parameterization, name, "parameterization", "parameterization")


def positive_bijector(parameterization: Parameterization) -> tfb.Bijector:
    """The elementwise bijector from unconstrained u to a positive theta."""
    return {
        Parameterization.SOFTPLUS: tfb.Softplus(),
        Parameterization.EXP: tfb.Exp(),
        Parameterization.IDENTITY: tfb.Identity(),
    }[parameterization]


class ParameterMap:
    """Maps a flat vector of unconstrained values to the constrained parameter vector and back.

    Components are scalar; ``constraints[i]`` says whether component i is real or positive. The
    map is elementwise, so the Jacobian is diagonal and gradients convert by one multiply.
    """

    def __init__(self, constraints: Sequence[Constraint], parameterization: Parameterization):
        self.constraints = tuple(Constraint(c) for c in constraints)
        self.parameterization = Parameterization(parameterization)
        self.positive_mask = np.array([c is Constraint.POSITIVE for c in self.constraints])
        self._positive = positive_bijector(self.parameterization)
        # tfb.Blockwise applies one bijector per contiguous block; runs of equal constraints
        # become one block each, so the whole map is a single library bijector.
        blocks, sizes = [], []
        for c in self.constraints:
            bij = self._positive if c is Constraint.POSITIVE else tfb.Identity()
            if blocks and self.constraints[sum(sizes) - 1] is c:
                sizes[-1] += 1
            else:
                blocks.append(bij)
                sizes.append(1)
        self.bijector = tfb.Blockwise(blocks, block_sizes=sizes) if len(blocks) > 1 else blocks[0]

    @property
    def projects(self) -> bool:
        """True when updates can leave the support and must be projected back (identity)."""
        return self.parameterization is Parameterization.IDENTITY and bool(self.positive_mask.any())

    def constrain(self, u: tf.Tensor) -> tf.Tensor:
        """theta = forward(u) for a vector (or batch of vectors) of unconstrained values."""
        return self.bijector.forward(u)

    def unconstrain(self, theta) -> tf.Tensor:
        """u = inverse(theta): the exact unconstrained value realising ``theta``."""
        return self.bijector.inverse(tf.convert_to_tensor(theta, DTYPE))

    def dtheta_du(self, u: tf.Tensor) -> tf.Tensor:
        """Elementwise derivative d theta / d u (the diagonal of the Jacobian)."""
        # Blockwise's log-det-Jacobian sums over the event; the per-component derivative comes
        # from the positive bijector itself (real components have derivative 1).
        pos = tf.exp(self._positive.forward_log_det_jacobian(u, event_ndims=0))
        return tf.where(self.positive_mask, pos, tf.ones_like(u))

    def project(self, u: tf.Tensor):
        """Project positive components back into the support (identity parameterization only).

        Returns ``(u_projected, projected_mask)``; for other parameterizations nothing changes.
        """
        if not self.projects:
            return u, tf.zeros_like(u, dtype=tf.bool)
        outside = tf.logical_and(self.positive_mask, u < POSITIVE_FLOOR)
        return tf.where(outside, tf.constant(POSITIVE_FLOOR, u.dtype), u), outside
