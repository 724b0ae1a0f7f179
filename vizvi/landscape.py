"""The ELBO landscape: the ELBO over a grid of a 2-parameter family's parameters, and the paths
optimizers take across it.

For a model with a 1-D latent and a family with two parameters, the ELBO
E_q[log p(x, z)] + H[q] is a surface over the plane of the family's parameters. It is drawn in
the coordinates of one of ``Coordinates``: theta itself, softplus^-1 or log of the positive
parameters (what an optimizer moves under those parameterizations), the natural parameters eta
or the mean parameters m = E_q[T(z)] (the families' own ``natural_params`` / ``mean_params``).

Exact where it can be: the ELBO is in closed form whenever the log joint is affine in a few
features of z (z, z^2, log z, log(1 - z)) whose expectations under q are known in closed form.
Which features, and with what coefficients, is read off the model's own ``log_joint`` by fitting
it at probe points (``fit_log_joint``), never typed in beside it, so the closed form cannot
drift from the model; a model that is not affine in them simply gets no closed form. Otherwise
(and on request) the grid is a Monte Carlo estimate with common random numbers: the same
uniform draws at every grid point, pushed through each q's quantile function (a pathwise
transform), so neighbouring points differ by the change of the surface, not by fresh noise;
its standard error is reported per point.

The whole grid is one vectorised TensorFlow call (every grid point a batch member), float64.
Paths are the theta histories of ordinary ``vizvi.engine.Run``s, mapped into the chosen
coordinates; switching coordinates maps the same histories again, nothing retrains.

No Streamlit here (``vizvi.ui.landscape`` draws the page, ``vizvi.landscape_charts`` the figures).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import itertools
import math
import threading
import time
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from vizvi._tf import tf
import tensorflow_probability as tfp

from vizvi import optimizers as optimizer_specs
from vizvi.charts import MAX_POINTS, thin
from vizvi.engine import RunConfig, validate
from vizvi.errors import ConfigError, parse_choice
from vizvi.families import Family, explicit_init, families_for, get_family
from vizvi.models import MODELS, Dataset, Model, Reference, Support, get_model, load_dataset
from vizvi.parameterizations import DTYPE, Constraint
from vizvi.settings import LANDSCAPE_SETTINGS, SETTING, Kind, config_class

# -- coordinates --------------------------------------------------------------------------------


class Coordinates(str, enum.Enum):
    """The coordinates of the landscape's plane."""

    CONSTRAINED = "constrained"
    SOFTPLUS = "softplus"
    LOG = "log"
    NATURAL = "natural"
    MEAN = "mean"


class CoordinateSpec(NamedTuple):
    """What a coordinate system is and what it needs of a family."""

    description: str
    needs_positive: bool  # transforms the positive parameters: pointless for a family without any
    needs_exponential: bool  # natural or mean parameters: an exponential family with their maps


COORDINATES = {
    Coordinates.CONSTRAINED: CoordinateSpec("theta itself, the family's parameters", False, False),
    Coordinates.SOFTPLUS: CoordinateSpec("u = softplus^-1(theta) for positive parameters: what the optimizer moves "
                                         "under the softplus parameterization", True, False),
    Coordinates.LOG: CoordinateSpec("u = log(theta) for positive parameters: what the optimizer moves under the exp "
                                    "parameterization", True, False),
    Coordinates.NATURAL: CoordinateSpec("the natural parameters eta(theta): where the natural gradient steps", False, True),
    Coordinates.MEAN: CoordinateSpec("the mean parameters m = E_q[T(z)]", False, True),
}


class ElboMethod(str, enum.Enum):
    """How the grid's ELBO is computed."""

    EXACT = "exact"
    MC = "mc"


# -- what the landscape needs of each family, beyond vizvi.families ------------------------------
FEATURES = ("z", "z^2", "log z", "log(1-z)")  # the functions of z an affine log joint may use

# Each feature's function, and the supports on which it is finite.
_FEATURE_FNS = {
    "z": (lambda z: z, (Support.REAL, Support.POSITIVE, Support.UNIT)),
    "z^2": (lambda z: z * z, (Support.REAL, Support.POSITIVE, Support.UNIT)),
    "log z": (tf.math.log, (Support.POSITIVE, Support.UNIT)),
    "log(1-z)": (lambda z: tf.math.log1p(-z), (Support.UNIT,)),
}

# Points inside each support at which a log joint is probed (more than features + 1, spread out,
# so an affine fit that passes through all of them is the function, not a coincidence).
_PROBES = {
    Support.REAL: (-2.7, -1.3, -0.4, 0.2, 0.9, 1.6, 2.4, 3.1),
    Support.POSITIVE: (0.15, 0.4, 0.8, 1.3, 2.1, 3.4, 5.2, 8.0),
    Support.UNIT: (0.04, 0.13, 0.27, 0.41, 0.56, 0.69, 0.83, 0.95),
}


def _digamma_inverse(x):
    """psi^-1(x) (Minka, "Estimating a Dirichlet distribution", appendix C): his start, then Newton."""
    one = tf.constant(1.0, x.dtype)
    y = tf.where(x >= -2.22, tf.exp(x) + 0.5, -1.0 / (x + 0.5772156649015329))
    for _ in range(8):
        y = y - (tf.math.digamma(y) - x) / tf.math.polygamma(one, y)
    return y


def _gamma_from_mean(m):
    """theta = (c, r) of the Gamma whose (E log z, E z) is m; NaN where none has (E log z < log E z
    is Jensen's inequality, and it is also enough). Solves log c - psi(c) = log E z - E log z by
    Newton from Minka's approximate solution ("Estimating a Gamma distribution", 2002); then
    r = c / E z."""
    one = tf.constant(1.0, m.dtype)
    m1, m2 = m[..., 0], m[..., 1]
    s = tf.math.log(m2) - m1
    ok = tf.logical_and(m2 > 0, s > 0)
    s = tf.where(ok, s, one)  # a harmless value where there is no solution (masked below)
    c = (3.0 - s + tf.sqrt(tf.square(s - 3.0) + 24.0 * s)) / (12.0 * s)
    for _ in range(8):  # converged to rounding in 4-5 from this start, over c in [0.01, 1e5]
        c = c - (tf.math.log(c) - tf.math.digamma(c) - s) / (1.0 / c - tf.math.polygamma(one, c))
    theta = tf.stack([c, c / tf.where(ok, m2, one)], axis=-1)
    return tf.where(ok[..., None], theta, tf.constant(np.nan, m.dtype))


BETA_BISECTIONS = 64


def _beta_from_mean(m):
    """theta = (a, b) of the Beta whose (E log z, E log(1-z)) is m; NaN where none has (the domain
    is exp(m1) + exp(m2) < 1). Given s = a + b, a = psi^-1(m1 + psi(s)) and b likewise, so one
    equation in s remains: a(s) + b(s) = s. Its left minus right side is positive for small s
    and negative for large s, with one root (the Beta likelihood is strictly concave), found by
    bisection in log s. A 2-D Newton iteration from any simple start failed for a quarter of
    the points with a parameter below 0.3; bisection recovers theta to ~1e-9 over [0.01, 1e4]."""
    m1, m2 = m[..., 0], m[..., 1]
    ok = tf.exp(m1) + tf.exp(m2) < 1.0
    m1, m2 = tf.where(ok, m1, -1.0), tf.where(ok, m2, -1.0)
    lo = tf.fill(tf.shape(m1), tf.constant(math.log(1e-8), m.dtype))
    hi = tf.fill(tf.shape(m1), tf.constant(math.log(1e12), m.dtype))

    def parts(log_s):
        psi = tf.math.digamma(tf.exp(log_s))
        return _digamma_inverse(m1 + psi), _digamma_inverse(m2 + psi)

    for _ in range(BETA_BISECTIONS):
        mid = 0.5 * (lo + hi)
        a, b = parts(mid)
        above = a + b > tf.exp(mid)
        lo, hi = tf.where(above, mid, lo), tf.where(above, hi, mid)
    a, b = parts(0.5 * (lo + hi))
    return tf.where(ok[..., None], tf.stack([a, b], axis=-1), tf.constant(np.nan, m.dtype))


def _gaussian_from_mean(m):
    """(loc, scale) from (E t, E t^2) of a Normal in t (t = z, or log z for the LogNormal)."""
    var = m[..., 1] - tf.square(m[..., 0])
    return tf.stack([m[..., 0], tf.where(var > 0, tf.sqrt(tf.abs(var)), np.nan)], axis=-1)


def _gamma_expectations(theta):
    c, r = theta[..., 0], theta[..., 1]
    return {"z": c / r, "z^2": c * (c + 1.0) / (r * r), "log z": tf.math.digamma(c) - tf.math.log(r)}


def _lognormal_expectations(theta):
    m, s2 = theta[..., 0], tf.square(theta[..., 1])
    return {"z": tf.exp(m + 0.5 * s2), "z^2": tf.exp(2.0 * m + 2.0 * s2), "log z": m}


def _normal_expectations(theta):
    m, s = theta[..., 0], theta[..., 1]
    return {"z": m, "z^2": m * m + s * s}


def _beta_expectations(theta):
    a, b = theta[..., 0], theta[..., 1]
    dab = tf.math.digamma(a + b)
    return {"z": a / (a + b), "z^2": a * (a + 1.0) / ((a + b) * (a + b + 1.0)),
            "log z": tf.math.digamma(a) - dab, "log(1-z)": tf.math.digamma(b) - dab}


class FamilyExtras(NamedTuple):
    """A family's closed forms the landscape needs: E_q of each feature it knows, the names of its
    sufficient statistics T(z) (axis titles in natural and mean coordinates), and theta(m)."""

    expectations: Callable  # theta [..., 2] -> {feature: E_q[feature] [...]}
    statistics: Tuple[str, str]
    from_mean: Callable  # m [..., 2] -> theta [..., 2], NaN where m is outside the mean-parameter domain


FAMILY_EXTRAS = {
    "gamma": FamilyExtras(_gamma_expectations, ("log z", "z"), _gamma_from_mean),
    "lognormal": FamilyExtras(_lognormal_expectations, ("log z", "(log z)²"), _gaussian_from_mean),
    "normal": FamilyExtras(_normal_expectations, ("z", "z²"), _gaussian_from_mean),
    "beta": FamilyExtras(_beta_expectations, ("log z", "log(1−z)"), _beta_from_mean),
}

# Where paths start unless told otherwise: the family's defaults, except the Gamma, which starts
# at the seed-000 stall's small concentration (the story the page tells).
STARTS = {"gamma": {"concentration": 0.1, "rate": 1.0}}


def default_init(family: Family) -> str:
    """The start of every path unless the user sets one, as ``name=value,...``."""
    values = {**dict(zip(family.param_names, family.defaults)), **STARTS.get(family.name, {})}
    return ",".join(f"{name}={value:g}" for name, value in values.items())


def check_family(model: Model, family: Family) -> None:
    """Refuse a model or family the landscape cannot draw (a model file's, a 2-D latent, not two
    parameters)."""
    if model.name not in builtin_models():
        raise ConfigError("model", f"the landscape draws the built-in models, and {model.name!r} comes from a model file; "
                                   f"choose one of: {', '.join(landscape_models())}")
    if model.dim != 1:
        raise ConfigError("model", f"the landscape needs a 1-D latent and {model.name!r} has a {model.dim}-D one; "
                                   f"choose one of: {', '.join(landscape_models())}")
    if family.size != 2:
        raise ConfigError("family", f"the landscape draws 2-parameter families and {family.name!r} has {family.size} "
                                    f"({family.describe_params()})")


def check_coordinates(family: Family, coordinates) -> Coordinates:
    """The Coordinates called ``coordinates``, refused (ConfigError on ``coordinates``) where they do
    not apply to ``family``."""
    coords = parse_choice(Coordinates, coordinates, "coordinates", "coordinates")
    spec = COORDINATES[coords]
    if spec.needs_positive and Constraint.POSITIVE not in family.constraints:
        raise ConfigError("coordinates", f"{coords.value} coordinates transform positive parameters and {family.name!r} "
                                         f"has none ({family.describe_params()}); use constrained coordinates")
    if spec.needs_exponential and not (family.exponential_family and family.name in FAMILY_EXTRAS):
        raise ConfigError("coordinates", f"{coords.value} coordinates need an exponential family with known natural and "
                                         f"mean parameters; {family.name!r} is not one")
    return coords


def axis_titles(family: Family, coordinates) -> Tuple[str, str]:
    """The two axis titles of ``family``'s plane in ``coordinates``."""
    coords = Coordinates(coordinates)
    names = family.param_names
    if coords is Coordinates.NATURAL:
        return tuple(f"η{i + 1} (natural, of {t})" for i, t in enumerate(FAMILY_EXTRAS[family.name].statistics))
    if coords is Coordinates.MEAN:
        return tuple(f"E_q[{t}] (mean)" for t in FAMILY_EXTRAS[family.name].statistics)
    if coords is Coordinates.CONSTRAINED:
        return tuple(names)
    fn = "softplus⁻¹" if coords is Coordinates.SOFTPLUS else "log"
    return tuple(f"{fn}({n})" if c is Constraint.POSITIVE else n for n, c in zip(names, family.constraints))


def _positive_mask(family: Family) -> np.ndarray:
    return np.array([c is Constraint.POSITIVE for c in family.constraints])


def to_coordinates(family: Family, theta, coordinates) -> tf.Tensor:
    """theta [..., 2] in ``coordinates`` (the families' own natural and mean maps for those)."""
    theta = tf.convert_to_tensor(theta, DTYPE)
    coords = Coordinates(coordinates)
    if coords is Coordinates.NATURAL:
        return family.natural_params(theta)
    if coords is Coordinates.MEAN:
        return family.mean_params(theta)
    if coords is Coordinates.CONSTRAINED:
        return theta
    # tf.math.softplus_inverse, not a TFP bijector: bijectors cache results in a way that is not
    # safe beside the trainer threads (see Run.theta), and nothing here needs their machinery.
    fn = tfp.math.softplus_inverse if coords is Coordinates.SOFTPLUS else tf.math.log
    return tf.where(_positive_mask(family), fn(tf.where(_positive_mask(family), theta, 1.0)), theta)


def from_coordinates(family: Family, x, coordinates) -> tf.Tensor:
    """theta [..., 2] at points ``x`` [..., 2] of ``coordinates``; a row is NaN where its point is
    no valid parameter (outside the support, or outside the natural or mean parameters' domain)."""
    x = tf.convert_to_tensor(x, DTYPE)
    coords = Coordinates(coordinates)
    if coords is Coordinates.NATURAL:
        theta = family.from_natural(x)
    elif coords is Coordinates.MEAN:
        theta = FAMILY_EXTRAS[family.name].from_mean(x)
    elif coords is Coordinates.CONSTRAINED:
        theta = x
    else:
        fn = tf.math.softplus if coords is Coordinates.SOFTPLUS else tf.exp
        theta = tf.where(_positive_mask(family), fn(x), x)
    valid = tf.reduce_all(family.in_support(theta), axis=-1, keepdims=True)
    return tf.where(valid, theta, tf.constant(np.nan, DTYPE))


def coordinates_of(family: Family, theta, coordinates) -> np.ndarray:
    """``to_coordinates`` as a NumPy array (the paths and markers the page draws)."""
    return to_coordinates(family, np.asarray(theta, dtype=np.float64), coordinates).numpy()


# -- the closed form -----------------------------------------------------------------------------
class AffineLogJoint(NamedTuple):
    """log p(x, z) = constant + sum_k coefficients[k] * features[k](z), for the data it was fit to."""

    features: Tuple[str, ...]
    coefficients: Tuple[float, ...]
    constant: float


FIT_TOLERANCE = 1e-9  # relative residual at the probes below which the log joint *is* the fit


def fit_log_joint(model: Model, data: dict) -> Optional[AffineLogJoint]:
    """The smallest set of ``FEATURES`` in which ``model.log_joint`` (on ``data``) is affine, with
    its coefficients, or None when it is affine in none of them.

    Read off the model's own log joint by least squares at ``_PROBES``: a fit whose residual is
    rounding at every probe (more probes than unknowns) is the function itself. The smallest
    set keeps terms whose true coefficient is zero out of the closed form (E_q[z^2] of a
    LogNormal overflows where E_q[log z] is harmless).
    """
    z = np.array(_PROBES[model.support], dtype=np.float64)
    log_p = model.log_joint(tf.constant(z, DTYPE), data).numpy()
    scale = max(1.0, float(np.max(np.abs(log_p))))
    usable = [f for f in FEATURES if model.support in _FEATURE_FNS[f][1]]
    columns = {f: _FEATURE_FNS[f][0](tf.constant(z, DTYPE)).numpy() for f in usable}
    for size in range(len(usable) + 1):
        for subset in itertools.combinations(usable, size):
            design = np.column_stack([columns[f] for f in subset] + [np.ones_like(z)])
            coef, *_ = np.linalg.lstsq(design, log_p, rcond=None)
            if np.max(np.abs(design @ coef - log_p)) <= FIT_TOLERANCE * scale:
                return AffineLogJoint(subset, tuple(float(c) for c in coef[:-1]), float(coef[-1]))
    return None


def exact_available(fit: Optional[AffineLogJoint], family: Family) -> bool:
    """True when the ELBO of ``family`` on a log joint ``fit`` has a closed form: the log joint is
    affine in features whose expectations the family knows, and TFP knows q's entropy."""
    extras = FAMILY_EXTRAS.get(family.name)
    if fit is None or extras is None:
        return False
    known = extras.expectations(tf.constant([family.defaults], DTYPE))
    return all(f in known for f in fit.features)


def builtin_models() -> list:
    """Names of the built-in models: the landscape draws them only (a model file's has no
    closed-form posterior to mark the optimum by, nor to compute the exact ELBO from)."""
    return [name for name, m in MODELS.items() if not m.from_file]


def landscape_models() -> list:
    """Names of the models whose landscape can be drawn (a built-in 1-D latent with a
    2-parameter family)."""
    return [name for name in builtin_models()
            if MODELS[name].dim == 1 and any(get_family(f).size == 2 for f in families_for(MODELS[name]))]


@functools.lru_cache(maxsize=None)
def exact_pairs() -> Dict[str, Tuple[str, ...]]:
    """{model: families whose landscape is exact} for every landscape model (fit on its default
    simulated data: which features a model uses does not depend on the data)."""
    out = {}
    for name in landscape_models():
        model = MODELS[name]
        fit = fit_log_joint(model, model.data_tensors(model.simulate(None, 0)))
        out[name] = tuple(f for f in families_for(model) if get_family(f).size == 2 and exact_available(fit, get_family(f)))
    return out


def exact_elbo(fit: AffineLogJoint, family: Family, theta) -> tf.Tensor:
    """The closed-form ELBO E_q[log p(x, z)] + H[q] at theta [..., 2] (``exact_available`` must hold)."""
    theta = tf.convert_to_tensor(theta, DTYPE)
    expected = FAMILY_EXTRAS[family.name].expectations(theta)
    log_p = tf.convert_to_tensor(fit.constant, DTYPE) + tf.add_n(
        [tf.zeros_like(theta[..., 0])] + [c * expected[f] for f, c in zip(fit.features, fit.coefficients)])
    return log_p + family.build(theta).entropy()


# -- common random numbers -------------------------------------------------------------------------
# Uniforms are kept this far inside (0, 1): a quantile at 0 or 1 is an infinite or zero draw.
U_MARGIN = 1e-12
GRID_STREAM = 0x1A5D  # the grid's draws' stream, apart from the runs' per-step streams of the same seed


def common_uniforms(seed: int, samples: int) -> tf.Tensor:
    """The ``samples`` uniform draws every grid point shares (from ``seed``)."""
    u = tf.random.stateless_uniform([samples], seed=[int(seed), GRID_STREAM], dtype=DTYPE)
    return tf.clip_by_value(u, U_MARGIN, 1.0 - U_MARGIN)


class Estimate(NamedTuple):
    """A Monte Carlo ELBO per point and its standard error."""

    elbo: tf.Tensor
    se: tf.Tensor


def crn_elbo(model: Model, family: Family, theta, data: dict, u) -> Estimate:
    """The ELBO at theta [G, 2] estimated from the uniforms ``u`` [M], the same for every point:
    z = F_q^-1(u) (the quantile: a pathwise transform) and the mean of log p(x, z) - log q(z),
    with its standard error sd / sqrt(M). Non-finite estimates are NaN."""
    theta = tf.convert_to_tensor(theta, DTYPE)
    u = tf.convert_to_tensor(u, DTYPE)
    q = family.build(theta)
    z = q.quantile(u[:, None])  # [M, G]
    f = model.log_joint(z, data) - q.log_prob(z)
    m = tf.cast(tf.shape(u)[0], DTYPE)
    mean = tf.reduce_mean(f, axis=0)
    se = tf.math.reduce_std(f, axis=0) * tf.sqrt(m / (m - 1.0)) / tf.sqrt(m)
    ok = tf.logical_and(tf.math.is_finite(mean), tf.math.is_finite(se))
    nan = tf.constant(np.nan, DTYPE)
    return Estimate(tf.where(ok, mean, nan), tf.where(ok, se, nan))


# -- the target ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Target:
    """A model's data, its posterior reference and a family: what every grid and path shares."""

    model: Model
    family: Family
    dataset: Dataset
    data: dict
    reference: Reference
    optimum: Optional[np.ndarray]  # the KL-optimal theta (closed form), None where unknown
    start: np.ndarray  # theta every path starts from
    fit: Optional[AffineLogJoint]  # the log joint as affine features (None: no closed form)
    exact: bool  # the ELBO has a closed form (``exact_available``)


def make_target(model_name: str, family_name: str, init, seed: int, n: Optional[int] = None) -> Target:
    """The target for a model, family, start and seed (simulated data, ``n`` observations: the
    model's default unless given); ConfigError naming the setting at fault."""
    model = get_model(model_name)
    family = get_family(family_name, model)
    check_family(model, family)
    start = explicit_init(family, init)
    dataset = load_dataset(model, n, seed)
    data = model.data_tensors(dataset)
    reference = model.reference(data)
    fit = fit_log_joint(model, data)
    return Target(model, family, dataset, data, reference, family.optimum(reference), start, fit,
                  exact_available(fit, family))


# -- the grid --------------------------------------------------------------------------------------
class Box(NamedTuple):
    """A rectangle of the plane: (lo, hi) along each axis."""

    x: Tuple[float, float]
    y: Tuple[float, float]

    def contains(self, points) -> bool:
        """True when every finite point [N, 2] lies inside."""
        p = np.asarray(points, dtype=float).reshape(-1, 2)
        p = p[np.all(np.isfinite(p), axis=1)]
        return bool(np.all((p[:, 0] >= self.x[0]) & (p[:, 0] <= self.x[1]) & (p[:, 1] >= self.y[0]) & (p[:, 1] <= self.y[1])))


PAD = 0.08  # each side of the box is this fraction of its span beyond the outermost point
REACH = 1.0  # paths stretch the box at most this many spans of the start-optimum box beyond it


def grid_box(family: Family, coordinates, anchors, paths: Sequence = (), pad: float = PAD, reach: float = REACH) -> Box:
    """The box the grid covers: the ``anchors`` [K, 2] (optimum and start) and every path point,
    in ``coordinates``, padded by ``pad`` of the span on each side.

    A path that runs far away (a diverging SGD) stretches the box at most ``reach`` spans of the
    anchors' box beyond it; further out it leaves the plot rather than shrinking the valley to a
    speck. In constrained, softplus and log coordinates a positive parameter's axis stops at
    half its smallest value (in theta) rather than reaching towards 0.
    """
    anchors = np.asarray(anchors, dtype=float).reshape(-1, 2)
    anchors = anchors[np.all(np.isfinite(anchors), axis=1)]
    lo, hi = anchors.min(axis=0), anchors.max(axis=0)
    # A start at the optimum has no span: take a fifth of the size of the values instead.
    span = np.maximum(hi - lo, 0.2 * np.maximum(np.maximum(np.abs(lo), np.abs(hi)), 1.0))
    points = [anchors]
    for path in paths:
        p = np.asarray(path, dtype=float).reshape(-1, 2)
        p = p[np.all(np.isfinite(p), axis=1)]
        points.append(np.clip(p, lo - reach * span, hi + reach * span))
    allp = np.concatenate(points)
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    span = np.maximum(hi - lo, span)
    lo, hi = lo - pad * span, hi + pad * span
    if not COORDINATES[Coordinates(coordinates)].needs_exponential:
        # Elementwise coordinates: a positive parameter's axis stops at half its smallest value.
        # Padded by a fraction of a span of thousands, softplus coordinates reached parameters
        # of e^-300 (a KL of 1e180 there), and constrained ones crossed 0, where no q exists.
        smallest = from_coordinates(family, allp.min(axis=0)[None], coordinates).numpy()[0]
        floor = coordinates_of(family, 0.5 * smallest[None], coordinates)[0]
        lo = np.where(_positive_mask(family) & np.isfinite(floor), np.maximum(lo, floor), lo)
    return Box((float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1])))


@dataclasses.dataclass(frozen=True)
class Grid:
    """The ELBO over a regular grid of a box, in some coordinates.

    ``elbo[i, j]`` is at (``x[j]``, ``y[i]``) (rows follow y, as a Plotly contour's z); NaN where
    the point is no valid parameter or the estimate is not finite. ``se`` is the Monte Carlo
    standard error (None for the exact ELBO).
    """

    coordinates: Coordinates
    method: ElboMethod  # what was computed: MC where the exact ELBO was asked for but has no closed form
    box: Box
    x: np.ndarray
    y: np.ndarray
    elbo: np.ndarray
    se: Optional[np.ndarray]
    samples: int  # Monte Carlo draws per point (0: exact)
    seconds: float  # wall time of the one TensorFlow call (a first call of a kind includes its tracing)
    note: str = ""  # why the method differs from the one asked for

    def se_summary(self) -> Optional[Tuple[float, float]]:
        """(largest, median) standard error over the valid points (None for the exact ELBO)."""
        if self.se is None:
            return None
        se = self.se[np.isfinite(self.se)]
        return (float(se.max()), float(np.median(se))) if se.size else (math.nan, math.nan)


_PROGRAMS: dict = {}
_PROGRAMS_LOCK = threading.Lock()


def _grid_program(model: Model, family: Family, coords: Coordinates, method: ElboMethod, features: tuple):
    """One traced function per (model, family, coordinates, method, features): points [G, 2] (and
    the data, the fit's coefficients, the uniforms) -> (ELBO [G], SE [G]). Shared by every session."""
    key = (model.name, family.name, coords, method, features)
    with _PROGRAMS_LOCK:
        if key in _PROGRAMS:
            return _PROGRAMS[key]
        fallback = tf.constant([family.defaults], DTYPE)

        def program(points, data, coefficients, constant, u):
            theta = from_coordinates(family, points, coords)
            valid = tf.reduce_all(tf.math.is_finite(theta), axis=-1)
            # Invalid points compute at a harmless theta and are masked after: a negative
            # concentration must never reach a quantile or lgamma.
            safe = tf.where(valid[:, None], theta, fallback)
            nan = tf.fill(tf.shape(valid), tf.constant(np.nan, DTYPE))
            if method is ElboMethod.EXACT:
                fit = AffineLogJoint(features, tuple(tf.unstack(coefficients, num=len(features))), constant)
                elbo, se = exact_elbo(fit, family, safe), tf.zeros_like(nan)
            else:
                elbo, se = crn_elbo(model, family, safe, data, u)
            return tf.where(valid, elbo, nan), tf.where(valid, se, nan)

        _PROGRAMS[key] = tf.function(program, reduce_retracing=True, autograph=False)
        return _PROGRAMS[key]


MAX_GRID_WORK = 8_000_000  # grid points x Monte Carlo samples: bounds one call's memory (~100 MB)


def compute_grid(target: Target, coordinates, box: Box, resolution: int, method, samples: int, seed: int) -> Grid:
    """The ELBO of ``target`` on a ``resolution`` x ``resolution`` grid over ``box`` in
    ``coordinates``: every point in ONE TensorFlow call. ``method`` "exact" falls back to the
    Monte Carlo estimate (``note`` says why) where there is no closed form."""
    coords, method = Coordinates(coordinates), ElboMethod(method)
    note = ""
    if method is ElboMethod.EXACT and not target.exact:
        method = ElboMethod.MC
        note = (f"no closed form for {target.model.name} with {target.family.name}: a common-random-numbers "
                f"Monte Carlo estimate instead")
    x = np.linspace(box.x[0], box.x[1], resolution)
    y = np.linspace(box.y[0], box.y[1], resolution)
    X, Y = np.meshgrid(x, y)  # rows follow y
    points = tf.constant(np.stack([X.ravel(), Y.ravel()], axis=-1), DTYPE)
    fit = target.fit if method is ElboMethod.EXACT else None
    features = fit.features if fit else ()
    coefficients = tf.constant(fit.coefficients if fit else [], DTYPE, shape=[len(features)])
    constant = tf.constant(fit.constant if fit else 0.0, DTYPE)
    u = common_uniforms(seed, samples) if method is ElboMethod.MC else tf.constant([0.5, 0.5], DTYPE)
    program = _grid_program(target.model, target.family, coords, method, features)
    t0 = time.perf_counter()
    elbo, se = program(points, target.data, coefficients, constant, u)
    elbo, se = elbo.numpy().reshape(X.shape), se.numpy().reshape(X.shape)
    seconds = time.perf_counter() - t0
    mc = method is ElboMethod.MC
    return Grid(coords, method, box, x, y, elbo, se if mc else None, samples if mc else 0, seconds, note)


# -- paths ---------------------------------------------------------------------------------------
class Path(NamedTuple):
    """One optimizer's path so far: its theta at each recorded step, the start first."""

    optimizer: str
    lr: float
    status: str  # the run's status word (running, finished, diverged...)
    steps: np.ndarray  # [N] the step of each point (0: the start)
    theta: np.ndarray  # [N, 2] constrained parameters


def path_from_history(optimizer: str, lr: float, status: str, start, series: dict) -> Path:
    """The Path of a run from its start and its history ``series`` (a worker snapshot's)."""
    steps = np.asarray(series.get("step", np.zeros(0)), dtype=np.int64)
    theta = np.asarray(series.get("theta", np.zeros((0, 2))), dtype=float).reshape(-1, 2)
    return Path(optimizer, float(lr), status, np.concatenate([[0], steps]), np.vstack([np.asarray(start, float)[None], theta]))


class PathView(NamedTuple):
    """A path as drawn: at most ``MAX_POINTS`` of its points, in some coordinates."""

    path: Path
    steps: np.ndarray  # [K]
    points: np.ndarray  # [K, 2]


def view_path(path: Path, family: Family, coordinates, limit: int = MAX_POINTS) -> PathView:
    """``path`` thinned to about ``limit`` points, in ``coordinates``: half spread evenly over the
    steps, half geometrically (steps 1, 2, 3, ... then ever sparser). Evenly alone drew a natural
    gradient's first dozen steps, where it crosses the whole plane, as one segment."""
    n = len(path.steps)
    early = np.geomspace(1, n - 1, limit // 2).astype(int) if n > 1 else np.zeros(0, int)
    idx = np.union1d(thin(path.steps, limit // 2), np.concatenate([[0], early]))
    return PathView(path, path.steps[idx], coordinates_of(family, path.theta[idx], coordinates))


ARRIVAL = 0.05  # a path has arrived once its distance to the optimum is this fraction of its start's


class PathStats(NamedTuple):
    """How a path went, measured in some coordinates with each axis scaled (see ``path_stats``)."""

    steps: int  # the last step drawn
    remaining: float  # distance to the optimum now, as a fraction of the start's
    arrived: Optional[int]  # the first step within ARRIVAL of the optimum (None: not yet)
    straightness: float  # chord / length of the path up to its arrival (or its end): 1 is a straight line


def path_stats(path, steps, optimum, scale=None) -> PathStats:
    """Measure a path [N, 2] (its first row the start, ``steps`` [N] the step of each row) against
    ``optimum`` [2], with each axis divided by ``scale`` [2] (default: the start's distance from
    the optimum along that axis), so that a step along either axis counts as it looks on a plot
    spanning start and optimum."""
    path = np.asarray(path, dtype=float)
    optimum = np.asarray(optimum, dtype=float)
    if scale is None:
        scale = np.abs(path[0] - optimum)
    scale = np.where(np.asarray(scale, dtype=float) > 0, scale, 1.0)
    p = (path - optimum) / scale
    finite = np.all(np.isfinite(p), axis=1)
    p, steps = p[finite], np.asarray(steps)[finite]
    dist = np.linalg.norm(p, axis=1)
    start = dist[0] if dist[0] > 0 else 1.0
    near = np.nonzero(dist <= ARRIVAL * start)[0]
    end = int(near[0]) if near.size else len(p) - 1
    length = float(np.sum(np.linalg.norm(np.diff(p[:end + 1], axis=0), axis=1)))
    chord = float(np.linalg.norm(p[end] - p[0]))
    return PathStats(int(steps[-1]), float(dist[-1] / start), int(steps[near[0]]) if near.size else None,
                     chord / length if length > 0 else 1.0)


# -- settings --------------------------------------------------------------------------------------
LandscapeConfig = config_class("LandscapeConfig", LANDSCAPE_SETTINGS, {},
                               "Every setting of the landscape page (one field per ``LANDSCAPE_SETTINGS`` entry).")
LandscapeConfig.__module__ = __name__


def parse_optimizers(text) -> Tuple[str, ...]:
    """The optimizers ``text`` names (``adam,sgd``, or a sequence), in order, each once;
    ConfigError on ``optimizers``."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise ConfigError("optimizers", "choose at least one optimizer")
    known = [o.value for o in optimizer_specs.OptimizerName]
    for n in names:
        if n not in known:
            raise ConfigError("optimizers", f"unknown optimizer {n!r}; choose from: {', '.join(known)}")
    return tuple(dict.fromkeys(names))


def parse_learning_rates(text, optimizers: Sequence[str]) -> Dict[str, float]:
    """{optimizer: learning rate} for ``optimizers``: those ``text`` (``adam:0.1,natural:0.5``)
    names, the others their defaults; ConfigError on ``lr``. A rate for an optimizer not chosen
    is checked and kept out (so removing an optimizer never makes the rates wrong)."""
    rates = {o: optimizer_specs.default_lr(o) for o in optimizers}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition(":")
        name = name.strip()
        if not sep or name not in [o.value for o in optimizer_specs.OptimizerName]:
            raise ConfigError("lr", f"cannot read {item.strip()!r}: expected optimizer:rate, e.g. adam:0.05")
        try:
            rate = SETTING["lr"].check(value.strip())
        except ConfigError as e:
            raise ConfigError("lr", f"{name}: {e.message}") from None
        if name in rates:
            rates[name] = float(rate)
    return rates


def run_config(config, optimizer: str) -> RunConfig:
    """The engine's settings of ``optimizer``'s path (``config`` validated): the landscape's
    model, family, start, parameterization, gradient samples, steps and seed, pathwise
    gradients, and the optimizer's learning rate. No variance telemetry: a path needs none."""
    rates = parse_learning_rates(config.lr, parse_optimizers(config.optimizers))
    return RunConfig(model=config.model, family=config.family, init=config.init, parameterization=config.parameterization,
                     estimator="pathwise", samples=config.samples, optimizer=optimizer, lr=rates[optimizer],
                     steps=config.steps, seed=config.seed, variance_every=0)


def validate_landscape(config) -> "LandscapeConfig":
    """Every setting checked (registry ranges and choices, then model, family, coordinates, start,
    optimizers and rates, and the grid's work); returns a validated copy with the family and
    start filled in. ConfigError naming the setting at fault."""
    values = {}
    for s in LANDSCAPE_SETTINGS:
        v = getattr(config, s.name)
        if v is None or (v == "" and s.kind is Kind.TEXT):
            values[s.name] = v
        else:
            values[s.name] = s.parse(v) if isinstance(v, str) and s.kind in (Kind.INT, Kind.FLOAT) else s.check(v)
    c = LandscapeConfig(**values)
    model = get_model(c.model)
    family = get_family(c.family or model.default_family, model)
    check_family(model, family)
    c.family = family.name
    c.coordinates = check_coordinates(family, c.coordinates).value
    c.init = c.init.strip() if c.init and c.init.strip() else default_init(family)
    explicit_init(family, c.init)
    c.optimizers = ",".join(parse_optimizers(c.optimizers))
    parse_learning_rates(c.lr, c.optimizers.split(","))
    for optimizer in c.optimizers.split(","):
        validate(run_config(c, optimizer))  # what the engine refuses (a natural gradient of a non-exponential family)
    work = c.grid * c.grid * c.mc_samples
    if c.elbo == ElboMethod.MC.value and work > MAX_GRID_WORK:
        raise ConfigError("mc-samples", f"{c.grid} x {c.grid} grid points x {c.mc_samples} samples = {work:,} evaluations "
                                        f"exceeds the cap of {MAX_GRID_WORK:,}; lower the samples or the grid")
    return c
