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

import functools
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
        return 1

    def for_model(self, model: Model) -> "Family":
        """This family over ``model``'s latent (a scalar family is the same for every model)."""
        return self

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

    def covariance(self, theta: np.ndarray) -> np.ndarray:
        """q's covariance [dim, dim] at ``theta``, in NumPy (as ``moments``); the marginal variances
        on the diagonal, which is all of it for a scalar or a mean-field family."""
        _, sd = self.moments(np.asarray(theta, dtype=np.float64))
        return np.diag(np.square(np.asarray(sd, dtype=np.float64)))

    @property
    def parameter_coordinates(self) -> tuple:
        """For each parameter, the index of the latent coordinate it belongs to (its row, for a
        Cholesky factor's entry): charts measure a parameter in that coordinate's posterior sds."""
        return (0,) * self.size

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


class _VectorFamily(Family):
    """A family over a latent in R^d, sized for a model: ``for_model`` gives the instance for a
    model's dimension and coordinate names (the registry holds the 2-D one)."""

    support = Support.VECTOR

    def __init__(self, coordinates: tuple = ("0", "1")):
        self.coordinates = tuple(coordinates)
        d = len(self.coordinates)
        self._d = d
        self.param_names, self.constraints, self.defaults = self._parameters(self.coordinates)

    @property
    def dim(self) -> int:
        """Latent dimension the family covers."""
        return self._d

    def for_model(self, model: Model) -> "_VectorFamily":
        """This family over ``model``'s latent (one instance per coordinate naming)."""
        if tuple(model.coordinates) == self.coordinates:
            return self
        return _sized(type(self), tuple(model.coordinates))

    @staticmethod
    def _parameters(coordinates: tuple) -> tuple:
        """(names, constraints, defaults) of the parameters over these coordinates."""
        raise NotImplementedError


@functools.lru_cache(maxsize=None)
def _sized(cls, coordinates: tuple) -> "_VectorFamily":
    # One instance per (family, coordinates): a Problem, and so a compiled chunk, is keyed on it.
    return cls(coordinates)


class MeanFieldNormalFamily(_VectorFamily):
    """q = MultivariateNormalDiag(loc, scale) over a latent in R^d (ADVI's family)."""

    name, title = "mean-field-normal", "Mean-field Normal (R^d, diagonal)"

    exponential_family = True
    has_weak_derivative = True

    @staticmethod
    def _parameters(coordinates):
        d = len(coordinates)
        names = tuple(f"loc[{c}]" for c in coordinates) + tuple(f"scale[{c}]" for c in coordinates)
        return names, (Constraint.REAL,) * d + (Constraint.POSITIVE,) * d, (0.0,) * d + (1.0,) * d

    def _split(self, theta):
        return theta[..., :self._d], theta[..., self._d:]

    @property
    def parameter_coordinates(self) -> tuple:
        return tuple(range(self._d)) * 2

    def build(self, theta):
        return tfd.MultivariateNormalDiag(*self._split(theta))

    def weak_derivative(self, theta, seed, num_samples):
        return _diagonal_gaussian_weak_derivative(*self._split(theta), seed, num_samples)

    def moments(self, theta):
        return np.asarray(theta[:self._d]), np.asarray(theta[self._d:])

    def natural_params(self, theta):
        loc, scale = self._split(theta)
        var = tf.square(scale)
        return tf.concat([loc / var, -0.5 / var], axis=-1)

    def mean_params(self, theta):
        loc, scale = self._split(theta)
        return tf.concat([loc, loc * loc + scale * scale], axis=-1)

    def from_natural(self, eta):
        var = -0.5 / eta[..., self._d:]
        return tf.concat([eta[..., :self._d] * var, tf.sqrt(var)], axis=-1)

    def moment_match(self, mean, cov):
        return np.concatenate([np.asarray(mean, dtype=float), np.sqrt(np.diag(cov))])

    def optimum(self, reference):
        if reference.kind == "exact":
            # The KL(q || p)-optimal mean-field Gaussian for a Gaussian p matches the mean and
            # takes the conditional variances 1 / diag(precision): too narrow when correlated.
            prec = np.linalg.inv(reference.cov)
            return np.concatenate([np.asarray(reference.mean, dtype=float), 1 / np.sqrt(np.diag(prec))])
        return None


class FullRankNormalFamily(_VectorFamily):
    """q = MultivariateNormalTriL(loc, scale_tril) over a latent in R^d (Cholesky factor, its
    lower triangle row by row: scale_tril[0,0], scale_tril[1,0], scale_tril[1,1], ...)."""

    name, title = "full-rank-normal", "Full-rank Normal (R^d, Cholesky)"

    exponential_family = True

    @staticmethod
    def _parameters(coordinates):
        d = len(coordinates)
        rows, cols = np.tril_indices(d)
        names = tuple(f"loc[{c}]" for c in coordinates) + tuple(
            f"scale_tril[{coordinates[i]},{coordinates[j]}]" for i, j in zip(rows, cols))
        constraints = (Constraint.REAL,) * d + tuple(Constraint.POSITIVE if i == j else Constraint.REAL for i, j in zip(rows, cols))
        defaults = (0.0,) * d + tuple(1.0 if i == j else 0.0 for i, j in zip(rows, cols))
        return names, constraints, defaults

    def _tril(self, flat):
        """[..., d(d+1)/2] row-major lower triangle -> [..., d, d]."""
        d = self._d
        rows, cols = np.tril_indices(d)
        index = np.full((d, d), d * (d + 1) // 2, dtype=np.int32)  # points at an appended 0
        index[rows, cols] = np.arange(len(rows))
        padded = tf.concat([flat, tf.zeros_like(flat[..., :1])], axis=-1)
        return tf.gather(padded, index, axis=-1)

    def build(self, theta):
        return tfd.MultivariateNormalTriL(theta[..., :self._d], self._tril(theta[..., self._d:]))

    def moments(self, theta):
        # Marginal sds are the row norms of the Cholesky factor.
        d = self._d
        chol = np.zeros((d, d))
        chol[np.tril_indices(d)] = theta[d:]
        return np.asarray(theta[:d]), np.sqrt((chol * chol).sum(axis=1))

    def covariance(self, theta):
        d = self._d
        chol = np.zeros((d, d))
        chol[np.tril_indices(d)] = np.asarray(theta, dtype=np.float64)[d:]
        return chol @ chol.T

    @property
    def parameter_coordinates(self) -> tuple:
        return tuple(range(self._d)) + tuple(int(i) for i in np.tril_indices(self._d)[0])

    def _covariance(self, theta):
        chol = self._tril(theta[..., self._d:])
        return tf.linalg.matmul(chol, chol, transpose_b=True)

    def natural_params(self, theta):
        # T(z) = (z, z_i z_j for i >= j); eta = (Lambda mu, -Lambda_ii / 2, -Lambda_ij for i > j).
        precision = tf.linalg.inv(self._covariance(theta))
        loc = theta[..., :self._d]
        half = tf.linalg.set_diag(precision, 0.5 * tf.linalg.diag_part(precision))
        return tf.concat([tf.linalg.matvec(precision, loc), -self._tril_entries(half)], axis=-1)

    def mean_params(self, theta):
        loc = theta[..., :self._d]
        second = self._covariance(theta) + loc[..., :, None] * loc[..., None, :]
        return tf.concat([loc, self._tril_entries(second)], axis=-1)

    def from_natural(self, eta):
        d = self._d
        lower = -self._tril(eta[..., d:])  # Lambda_ii / 2 on the diagonal, Lambda_ij below it
        precision = lower + tf.linalg.matrix_transpose(lower)  # diagonal doubled: Lambda_ii
        covariance = tf.linalg.inv(precision)
        loc = tf.linalg.matvec(covariance, eta[..., :d])
        return tf.concat([loc, self._tril_entries(tf.linalg.cholesky(covariance))], axis=-1)

    def _tril_entries(self, matrix):
        """[..., d, d] -> its lower triangle row by row, [..., d(d+1)/2]."""
        rows, cols = np.tril_indices(self._d)
        flat = tf.reshape(matrix, tf.concat([tf.shape(matrix)[:-2], [self._d * self._d]], 0))
        return tf.gather(flat, rows * self._d + cols, axis=-1)

    def moment_match(self, mean, cov):
        return np.concatenate([np.asarray(mean, dtype=float), np.linalg.cholesky(cov)[np.tril_indices(self._d)]])

    def optimum(self, reference):
        if reference.kind == "exact":
            return self.moment_match(reference.mean, reference.cov)
        return None


FAMILIES = {f.name: f for f in (NormalFamily(), LogNormalFamily(), GammaFamily(), BetaFamily(), MeanFieldNormalFamily(), FullRankNormalFamily())}


def families_for(model: Model) -> list:
    """Names of the families whose support matches the model's latent."""
    return [name for name, f in FAMILIES.items() if f.support is model.support]


def get_family(name: str, model: Optional[Model] = None) -> Family:
    """The family called ``name``; with ``model``, sized for its latent (a vector family's
    parameters are named by the model's coordinates), and refused if its support does not fit."""
    try:
        family = FAMILIES[name]
    except KeyError:
        raise ConfigError("family", f"unknown family {name!r}; choose one of: {', '.join(FAMILIES)}") from None
    if model is None:
        return family
    if family.support is not model.support:
        raise ConfigError(
            "family",
            f"family {name!r} has support {family.support.describe} but model {model.name!r} has a latent in "
            f"{model.support_text}; families that fit: {', '.join(families_for(model))}",
        )
    return family.for_model(model)


# A name may carry an index, itself possibly indexed: scale_tril[1,0], loc[theta[3]],
# scale_tril[theta[3],mu] (a model file's parts name the coordinates).
_INIT_ITEM = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*(?:\[(?:[A-Za-z0-9_,\s]|\[[0-9,\s]*\])*\])?)\s*=\s*([^,\s]+)\s*(?:,|$)")


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
        cov = prior.covariance().numpy() if family.support is Support.VECTOR else np.atleast_2d(prior.variance().numpy())
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
