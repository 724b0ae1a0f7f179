"""Variational families: named scalar parameters, support, and how to build q.

A family's parameters form one flat vector ``theta`` of scalar components named the way TFP
names them (``concentration``, ``rate``, ``loc``, ``scale``, ``loc[0]``, ``scale_tril[1,0]``...),
so a batch of parameter vectors ``[..., D]`` builds a batch of distributions in one call; the
engine uses that to get R independent gradient estimates at once.

Every family here is an exponential family. For the ``natural`` optimizer each provides its
natural parameters eta(theta), its mean parameters m(theta) = E_q[T(z)] and the inverse map
theta(eta): by the result in seed 003, the natural gradient with respect to eta is the ordinary
gradient with respect to m, which the optimizer obtains by the chain rule through m(theta).
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple, Optional

import numpy as np
from vizvi._tf import tf
import tensorflow_probability as tfp

from vizvi.errors import ConfigError
from vizvi.models import Model, Reference, Support
from vizvi.parameterizations import DTYPE, Constraint
from vizvi.weak_derivatives import gaussian_loc_parts, gaussian_scale_parts

tfd = tfp.distributions

MAX_ABS_INIT = 1e8


class Family:
    """Base class of a variational family over a model's latent."""

    name: str = ""
    title: str = ""
    support: Support = Support.REAL
    param_names: tuple = ()
    constraints: tuple = ()
    defaults: tuple = ()
    exponential_family: bool = False  # provides natural_params / mean_params / from_natural
    has_weak_derivative: bool = False  # provides weak_derivative (the measure-valued estimator)
    # TFP samples it by rejection (a data-dependent loop), which tf.vectorized_map cannot turn
    # into anything XLA compiles: runs of it are not batched in a comparison (vizvi.compare).
    rejection_sampled: bool = False

    @property
    def dim(self) -> int:
        """Latent dimension the family covers."""
        return 2 if self.support is Support.REAL2 else 1

    @property
    def size(self) -> int:
        """Number of scalar variational parameters."""
        return len(self.param_names)

    def build(self, theta: tf.Tensor) -> tfd.Distribution:
        """q for a (batch of) constrained parameter vector(s) ``theta`` of shape [..., D]."""
        raise NotImplementedError

    def in_support(self, theta: tf.Tensor) -> tf.Tensor:
        """Per-component mask: finite and inside its constraint (a sampler may be fed theta)."""
        finite = tf.math.is_finite(theta)
        positive = np.array([c is Constraint.POSITIVE for c in self.constraints])
        return tf.logical_and(finite, tf.logical_or(~positive, theta > 0))

    def moments(self, theta: np.ndarray):
        """(mean, marginal standard deviations) of q at ``theta``, as NumPy arrays of the latent's size.

        In NumPy, not TFP: the dashboard sizes its density window from these several times a
        second, and an eager TFP call costs milliseconds of interpreter time beside the trainer.
        """
        raise NotImplementedError

    def weak_derivative(self, theta: tf.Tensor, seed, num_samples: int) -> "WeakDerivativeDraws":
        """Where the measure-valued estimator evaluates f for a batch ``theta`` [B, D]: per
        parameter, a weight and ``num_samples`` points of a positive and of a negative part."""
        raise NotImplementedError

    # -- exponential family ---------------------------------------------------------------
    def natural_params(self, theta: tf.Tensor) -> tf.Tensor:
        """Natural parameters eta(theta), shape [..., D]."""
        raise NotImplementedError

    def mean_params(self, theta: tf.Tensor) -> tf.Tensor:
        """Mean parameters m(theta) = E_q[T(z)], shape [..., D]."""
        raise NotImplementedError

    def from_natural(self, eta: tf.Tensor) -> tf.Tensor:
        """theta(eta); invalid eta gives non-finite or out-of-support components."""
        raise NotImplementedError

    # -- initialisation and reference ------------------------------------------------------
    def moment_match(self, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
        """theta whose q has the given mean and (co)variance (as near as the family allows)."""
        raise NotImplementedError

    def optimum(self, reference: Reference) -> Optional[np.ndarray]:
        """The KL(q || p)-optimal theta when it has a closed form, else None."""
        return None

    def describe_params(self) -> str:
        """'name (constraint)' list for messages."""
        return ", ".join(f"{n} ({c.value})" for n, c in zip(self.param_names, self.constraints))


def _unstack(theta):
    return tf.unstack(theta, axis=-1)


class WeakDerivativeDraws(NamedTuple):
    """d/dtheta_p E_q[f] = weight[:, p] * E[f(plus[p]) - f(minus[p])], for each parameter p."""

    weight: tf.Tensor  # [B, P]
    plus: tf.Tensor  # [P, M, B, *event]: points of each parameter's positive part
    minus: tf.Tensor  # [P, M, B, *event]: points of each parameter's negative part
    q_part: int  # a parameter whose negative part is a plain draw from q (the ELBO's sample)


def _diagonal_gaussian_weak_derivative(loc, scale, seed, num_samples: int) -> WeakDerivativeDraws:
    """Weak derivatives of a product of Normals N(loc_i, scale_i^2) (loc, scale [B, L]) with
    respect to loc_0..loc_{L-1}, scale_0..scale_{L-1}, in that order.

    A product measure's weak derivative in one coordinate's parameter keeps the other
    coordinates' draws: parameter i's points are a draw from q with coordinate i replaced by
    the positive or negative part's point. The coupled scale parts' negative points are plain
    Normal draws (``gaussian_scale_parts``), so they serve as that draw from q.
    """
    loc_seed, scale_seed = tfp.random.split_seed(seed, 2)
    loc_parts = gaussian_loc_parts(loc, scale, [num_samples], loc_seed)  # points [M, B, L]
    scale_parts = gaussian_scale_parts(loc, scale, [num_samples], scale_seed)
    base = scale_parts.minus
    mask = tf.eye(loc.shape[-1], dtype=loc.dtype)[:, None, None, :]  # [L, 1, 1, L]: coordinate i of row i

    def with_coordinate_from(points):  # [M, B, L] -> [L, M, B, L]
        return base[None] * (1.0 - mask) + points[None] * mask

    plus = tf.concat([with_coordinate_from(loc_parts.plus), with_coordinate_from(scale_parts.plus)], axis=0)
    minus = tf.concat([with_coordinate_from(loc_parts.minus), with_coordinate_from(scale_parts.minus)], axis=0)
    weight = tf.concat([loc_parts.weight, scale_parts.weight], axis=-1)
    return WeakDerivativeDraws(weight, plus, minus, q_part=int(loc.shape[-1]))


# TFP writes the (c - 1) log z terms of the Gamma and Beta densities with tf.math.xlogy /
# xlog1py, whose gradient with respect to the coefficient is *defined as 0* where the
# coefficient is 0. At a concentration of exactly 1 (a common initial value) the score
# d log q / d concentration is then wrong (0.577 instead of 1.270 for Gamma(1, 1) at z = 2) and
# every score-function gradient is biased; with a leave-one-out baseline it is exactly zero.
# These subclasses keep everything of TFP's (sampling, implicit reparameterization, KL
# registrations) but write that term as a plain product. Samples are strictly inside the
# support, so the product is finite wherever xlogy was.
class _Gamma(tfd.Gamma):
    def _log_prob(self, x, rate=None):
        c = tf.convert_to_tensor(self.concentration)
        r = tf.convert_to_tensor(self.rate)
        return (c - 1.0) * tf.math.log(x) - r * x + c * tf.math.log(r) - tf.math.lgamma(c)


class _Beta(tfd.Beta):
    def _log_unnormalized_prob(self, x, concentration1, concentration0):
        return (concentration1 - 1.0) * tf.math.log(x) + (concentration0 - 1.0) * tf.math.log1p(-x)


class NormalFamily(Family):
    """q = Normal(loc, scale) over a real latent."""

    name, title, support = "normal", "Normal", Support.REAL
    param_names = ("loc", "scale")
    constraints = (Constraint.REAL, Constraint.POSITIVE)
    defaults = (0.0, 1.0)

    exponential_family = True
    has_weak_derivative = True

    def build(self, theta):
        loc, scale = _unstack(theta)
        return tfd.Normal(loc, scale)

    def weak_derivative(self, theta, seed, num_samples):
        draws = _diagonal_gaussian_weak_derivative(theta[..., 0:1], theta[..., 1:2], seed, num_samples)
        return draws._replace(plus=self._from_normal(draws.plus[..., 0]), minus=self._from_normal(draws.minus[..., 0]))

    @staticmethod
    def _from_normal(x):
        """The latent whose q is Normal(loc, scale) in x: x itself."""
        return x

    def moments(self, theta):
        return np.array([theta[0]]), np.array([theta[1]])

    def natural_params(self, theta):
        loc, scale = _unstack(theta)
        var = scale * scale
        return tf.stack([loc / var, -0.5 / var], axis=-1)

    def mean_params(self, theta):
        loc, scale = _unstack(theta)
        return tf.stack([loc, loc * loc + scale * scale], axis=-1)

    def from_natural(self, eta):
        e1, e2 = _unstack(eta)
        var = -0.5 / e2
        return tf.stack([e1 * var, tf.sqrt(var)], axis=-1)

    def moment_match(self, mean, cov):
        return np.array([mean[0], math.sqrt(cov[0, 0])])

    def optimum(self, reference):
        if reference.distribution == "Normal":
            return np.array([reference.params["loc"], reference.params["scale"]], dtype=float)
        return None


class LogNormalFamily(NormalFamily):
    """q = LogNormal(loc, scale) over a positive latent (a Normal in log space)."""

    name, title, support = "lognormal", "LogNormal", Support.POSITIVE

    def build(self, theta):
        loc, scale = _unstack(theta)
        return tfd.LogNormal(loc, scale)

    @staticmethod
    def _from_normal(x):
        # q is the push-forward of Normal(loc, scale) through exp, and so are its weak
        # derivatives: the Normal's positive and negative parts, exponentiated.
        return tf.exp(x)

    def moments(self, theta):
        m = np.exp(theta[0] + theta[1] ** 2 / 2)
        return np.array([m]), np.array([m * np.sqrt(np.expm1(theta[1] ** 2))])

    def moment_match(self, mean, cov):
        m, v = float(mean[0]), float(cov[0, 0])
        s2 = math.log1p(v / (m * m))
        return np.array([math.log(m) - 0.5 * s2, math.sqrt(s2)])

    def optimum(self, reference):
        if reference.distribution == "Gamma":
            # For p = Gamma(a, b) the ELBO of LogNormal(m, s) is a*m - b*exp(m + s^2/2) + log s
            # + const; its stationary point is s^2 = 1/a, m = log(a/b) - 1/(2a).
            a, b = float(reference.params["concentration"]), float(reference.params["rate"])
            return np.array([math.log(a / b) - 0.5 / a, 1.0 / math.sqrt(a)])
        return None


class GammaFamily(Family):
    """q = Gamma(concentration, rate) over a positive latent."""

    name, title, support = "gamma", "Gamma", Support.POSITIVE
    rejection_sampled = True
    param_names = ("concentration", "rate")
    constraints = (Constraint.POSITIVE, Constraint.POSITIVE)
    defaults = (1.0, 1.0)

    exponential_family = True

    def build(self, theta):
        c, r = _unstack(theta)
        return _Gamma(c, r)

    def moments(self, theta):
        return np.array([theta[0] / theta[1]]), np.array([np.sqrt(theta[0]) / theta[1]])

    def natural_params(self, theta):
        c, r = _unstack(theta)
        return tf.stack([c - 1.0, -r], axis=-1)

    def mean_params(self, theta):
        c, r = _unstack(theta)
        return tf.stack([tf.math.digamma(c) - tf.math.log(r), c / r], axis=-1)

    def from_natural(self, eta):
        e1, e2 = _unstack(eta)
        return tf.stack([e1 + 1.0, -e2], axis=-1)

    def moment_match(self, mean, cov):
        m, v = float(mean[0]), float(cov[0, 0])
        return np.array([m * m / v, m / v])

    def optimum(self, reference):
        if reference.distribution == "Gamma":
            return np.array([reference.params["concentration"], reference.params["rate"]], dtype=float)
        return None


class BetaFamily(Family):
    """q = Beta(concentration1, concentration0) over a latent in (0, 1)."""

    name, title, support = "beta", "Beta", Support.UNIT
    rejection_sampled = True
    param_names = ("concentration1", "concentration0")
    constraints = (Constraint.POSITIVE, Constraint.POSITIVE)
    defaults = (1.0, 1.0)

    exponential_family = True

    def build(self, theta):
        a, b = _unstack(theta)
        return _Beta(a, b)

    def moments(self, theta):
        a, b = theta
        return np.array([a / (a + b)]), np.array([np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))])

    def natural_params(self, theta):
        return theta - 1.0

    def mean_params(self, theta):
        a, b = _unstack(theta)
        dab = tf.math.digamma(a + b)
        return tf.stack([tf.math.digamma(a) - dab, tf.math.digamma(b) - dab], axis=-1)

    def from_natural(self, eta):
        return eta + 1.0

    def moment_match(self, mean, cov):
        m, v = float(mean[0]), float(cov[0, 0])
        k = m * (1.0 - m) / v - 1.0
        return np.array([m * k, (1.0 - m) * k])

    def optimum(self, reference):
        if reference.distribution == "Beta":
            return np.array([reference.params["concentration1"], reference.params["concentration0"]], dtype=float)
        return None


class MeanFieldNormalFamily(Family):
    """q = MultivariateNormalDiag(loc, scale) over a 2-D real latent."""

    name, title, support = "mean-field-normal", "Mean-field Normal (2-D)", Support.REAL2
    param_names = ("loc[0]", "loc[1]", "scale[0]", "scale[1]")
    constraints = (Constraint.REAL, Constraint.REAL, Constraint.POSITIVE, Constraint.POSITIVE)
    defaults = (0.0, 0.0, 1.0, 1.0)

    exponential_family = True
    has_weak_derivative = True

    def build(self, theta):
        return tfd.MultivariateNormalDiag(theta[..., 0:2], theta[..., 2:4])

    def weak_derivative(self, theta, seed, num_samples):
        return _diagonal_gaussian_weak_derivative(theta[..., 0:2], theta[..., 2:4], seed, num_samples)

    def moments(self, theta):
        return np.asarray(theta[0:2]), np.asarray(theta[2:4])

    def natural_params(self, theta):
        loc, var = theta[..., 0:2], tf.square(theta[..., 2:4])
        return tf.concat([loc / var, -0.5 / var], axis=-1)

    def mean_params(self, theta):
        loc, scale = theta[..., 0:2], theta[..., 2:4]
        return tf.concat([loc, loc * loc + scale * scale], axis=-1)

    def from_natural(self, eta):
        var = -0.5 / eta[..., 2:4]
        return tf.concat([eta[..., 0:2] * var, tf.sqrt(var)], axis=-1)

    def moment_match(self, mean, cov):
        return np.array([mean[0], mean[1], math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])])

    def optimum(self, reference):
        if reference.kind == "exact":
            # The KL(q || p)-optimal mean-field Gaussian for a Gaussian p matches the mean and
            # takes the conditional variances 1 / diag(precision): too narrow when correlated.
            prec = np.linalg.inv(reference.cov)
            return np.array([reference.mean[0], reference.mean[1], 1 / math.sqrt(prec[0, 0]), 1 / math.sqrt(prec[1, 1])])
        return None


class FullRankNormalFamily(Family):
    """q = MultivariateNormalTriL(loc, scale_tril) over a 2-D real latent (Cholesky factor)."""

    name, title, support = "full-rank-normal", "Full-rank Normal (2-D, Cholesky)", Support.REAL2
    param_names = ("loc[0]", "loc[1]", "scale_tril[0,0]", "scale_tril[1,0]", "scale_tril[1,1]")
    constraints = (Constraint.REAL, Constraint.REAL, Constraint.POSITIVE, Constraint.REAL, Constraint.POSITIVE)
    defaults = (0.0, 0.0, 1.0, 0.0, 1.0)

    @staticmethod
    def _tril(theta):
        l00, l10, l11 = theta[..., 2], theta[..., 3], theta[..., 4]
        zero = tf.zeros_like(l00)
        return tf.stack([tf.stack([l00, zero], -1), tf.stack([l10, l11], -1)], -2)

    exponential_family = True

    def build(self, theta):
        return tfd.MultivariateNormalTriL(theta[..., 0:2], self._tril(theta))

    def moments(self, theta):
        # Marginal sds are the row norms of the Cholesky factor.
        return np.asarray(theta[0:2]), np.array([abs(theta[2]), np.hypot(theta[3], theta[4])])

    @staticmethod
    def _cov(theta):
        l00, l10, l11 = theta[..., 2], theta[..., 3], theta[..., 4]
        return l00 * l00, l10 * l00, l10 * l10 + l11 * l11  # s00, s10, s11

    def natural_params(self, theta):
        # T(z) = (z0, z1, z0^2, z0 z1, z1^2); eta = (Lambda mu, -Lambda00/2, -Lambda10, -Lambda11/2).
        s00, s10, s11 = self._cov(theta)
        det = s00 * s11 - s10 * s10
        p00, p10, p11 = s11 / det, -s10 / det, s00 / det
        m0, m1 = theta[..., 0], theta[..., 1]
        return tf.stack([p00 * m0 + p10 * m1, p10 * m0 + p11 * m1, -0.5 * p00, -p10, -0.5 * p11], axis=-1)

    def mean_params(self, theta):
        s00, s10, s11 = self._cov(theta)
        m0, m1 = theta[..., 0], theta[..., 1]
        return tf.stack([m0, m1, s00 + m0 * m0, s10 + m0 * m1, s11 + m1 * m1], axis=-1)

    def from_natural(self, eta):
        p00, p10, p11 = -2.0 * eta[..., 2], -eta[..., 3], -2.0 * eta[..., 4]
        det = p00 * p11 - p10 * p10
        s00, s10, s11 = p11 / det, -p10 / det, p00 / det
        m0 = s00 * eta[..., 0] + s10 * eta[..., 1]
        m1 = s10 * eta[..., 0] + s11 * eta[..., 1]
        l00 = tf.sqrt(s00)
        l10 = s10 / l00
        l11 = tf.sqrt(s11 - l10 * l10)
        return tf.stack([m0, m1, l00, l10, l11], axis=-1)

    def moment_match(self, mean, cov):
        chol = np.linalg.cholesky(cov)
        return np.array([mean[0], mean[1], chol[0, 0], chol[1, 0], chol[1, 1]])

    def optimum(self, reference):
        if reference.kind == "exact":
            return self.moment_match(reference.mean, reference.cov)
        return None


FAMILIES = {f.name: f for f in (NormalFamily(), LogNormalFamily(), GammaFamily(), BetaFamily(), MeanFieldNormalFamily(), FullRankNormalFamily())}


def families_for(model: Model) -> list:
    """Names of the families whose support matches the model's latent."""
    return [name for name, f in FAMILIES.items() if f.support is model.support]


def get_family(name: str, model: Optional[Model] = None) -> Family:
    """The family called ``name``; with ``model``, refuse a family whose support does not fit."""
    try:
        family = FAMILIES[name]
    except KeyError:
        raise ConfigError("family", f"unknown family {name!r}; choose one of: {', '.join(FAMILIES)}") from None
    if model is not None and family.support is not model.support:
        raise ConfigError(
            "family",
            f"family {name!r} has support {family.support.describe} but model {model.name!r} has a latent in "
            f"{model.support.describe}; families that fit: {', '.join(families_for(model))}",
        )
    return family


_INIT_ITEM = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*(?:\[[0-9,\s]*\])?)\s*=\s*([^,\s]+)\s*(?:,|$)")


def parse_init_spec(spec: str) -> dict:
    """Parse ``name=value,...`` (names may carry indices like ``scale_tril[1,0]``)."""
    spec = spec.strip()
    out, pos = {}, 0
    while pos < len(spec):
        m = _INIT_ITEM.match(spec, pos)
        if not m:
            raise ConfigError("init", f"cannot read {spec[pos:]!r}: expected name=value pairs separated by commas")
        name = re.sub(r"\s+", "", m.group(1))
        try:
            out[name] = float(m.group(2))
        except ValueError:
            raise ConfigError("init", f"value {m.group(2)!r} for {name} is not a number") from None
        pos = m.end()
    if not out:
        raise ConfigError("init", "empty initialisation; give name=value pairs, 'prior' or 'random'")
    return out


def init_from_prior(init) -> bool:
    """True for the ``init`` modes computed from the model's prior ("prior", "random")."""
    return isinstance(init, str) and init.strip() in ("prior", "random")


def resolve_init(family: Family, model: Model, data: dict, init, seed: int) -> np.ndarray:
    """The initial constrained parameter vector for ``init``.

    ``init`` is None (the family's defaults), ``"prior"`` (moment-matched to the model's prior),
    ``"random"`` (seeded perturbation of the prior match), a ``name=value,...`` string or a dict.
    Every value is checked against its parameter's support.
    """
    if init_from_prior(init):
        prior = model.prior(data)
        mean = np.atleast_1d(prior.mean().numpy())
        cov = prior.covariance().numpy() if family.dim == 2 else np.atleast_2d(prior.variance().numpy())
        theta = family.moment_match(mean, cov)
        if init.strip() == "random":
            rng = np.random.default_rng(seed)
            noise = rng.normal(size=family.size)
            scale = np.sqrt(np.max(np.diag(cov)))
            theta = np.array([
                t * math.exp(0.5 * e) if c is Constraint.POSITIVE else t + e * (scale if i < family.dim else 0.5)
                for i, (t, c, e) in enumerate(zip(theta, family.constraints, noise))
            ])
    else:
        return explicit_init(family, init)
    return _checked(family, theta)


def explicit_init(family: Family, init) -> np.ndarray:
    """The initial values an explicit ``init`` asks for (None or "" for the family's defaults, a
    ``name=value,...`` string or a dict), checked; needs no data, so a bad value can be named
    as soon as it is typed."""
    theta = np.array(family.defaults, dtype=np.float64)
    if init is None or init == "":
        return _checked(family, theta)
    values = parse_init_spec(init) if isinstance(init, str) else dict(init)
    for name, value in values.items():
        if name not in family.param_names:
            raise ConfigError("init", f"family {family.name!r} has no parameter {name!r}; its parameters are {', '.join(family.param_names)}")
        theta[family.param_names.index(name)] = float(value)
    return _checked(family, theta)


def _checked(family: Family, theta: np.ndarray) -> np.ndarray:
    for name, c, v in zip(family.param_names, family.constraints, theta):
        if not math.isfinite(v):
            raise ConfigError("init", f"{name} = {v} is not a finite number")
        if abs(v) > MAX_ABS_INIT:
            raise ConfigError("init", f"{name} = {v:g} is absurdly large (limit {MAX_ABS_INIT:g})")
        if c is Constraint.POSITIVE and v <= 0:
            raise ConfigError("init", f"{name} = {v:g} is outside its support (0, inf)")
    return theta
