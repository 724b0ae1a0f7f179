"""Target models: data, log joint, and the exact posterior or a grid reference.

Each model is a small object with a fixed *data structure* (a dict of tensors whose keys and
ranks never change), so one compiled training function serves every data set of that model:
the data is an argument, never a captured constant.

Likelihoods of the conjugate models are written on sufficient statistics. They are exactly
TFP's ``Poisson``/``Normal``/``Bernoulli`` log-likelihoods summed over the data, but cost O(1)
per sample instead of O(n): that is what lets a compiled step run in tens of microseconds.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import io
import math
from typing import Callable, Optional

import numpy as np
from vizvi._tf import tf
import tensorflow_probability as tfp

from vizvi.errors import ConfigError
from vizvi.parameterizations import DTYPE

tfd = tfp.distributions


class Support(str, enum.Enum):
    """Where a model's latent variable lives; families must match it."""

    REAL = "real"
    POSITIVE = "positive"
    UNIT = "unit"
    VECTOR = "vector"  # R^d, d = the model's ``dim`` (2 for the built-in 2-D targets)

    @property
    def describe(self) -> str:
        """Human-readable interval."""
        return {
            "real": "(-inf, inf)",
            "positive": "(0, inf)",
            "unit": "(0, 1)",
            "vector": "R^d",
        }[self.value]

    @property
    def interval(self) -> tuple:
        """(lo, hi) of a scalar latent, open ends as +-inf (R^d: per coordinate)."""
        return {"real": (-math.inf, math.inf), "positive": (0.0, math.inf), "unit": (0.0, 1.0),
                "vector": (-math.inf, math.inf)}[self.value]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Observed data for one model: raw arrays plus where they came from."""

    model: str
    arrays: dict
    source: str

    @property
    def n(self) -> int:
        """Number of observations (0 for pure density targets)."""
        if not self.arrays:
            return 0
        return int(len(next(iter(self.arrays.values()))))


@dataclasses.dataclass(frozen=True)
class Reference:
    """What is known about the posterior: exact (closed form) or computed on a grid."""

    kind: str  # "exact", "grid", "mcmc" or "given" (a model file's own moments)
    mean: np.ndarray
    cov: np.ndarray
    log_evidence: float
    distribution: str  # name of the exact posterior's TFP class, or "grid"
    params: dict  # exact posterior parameters by TFP name ({} for grid references)
    grid: Optional[dict] = None  # {"x": [...], "y": [...], "density": [[...]]} for 2-D grids
    # An MCMC reference (kind "mcmc", ``vizvi.mcmc``): its draws of the latent vector [N, d], its
    # moments in the model's own coordinates, and its run's figures (chains, draws, ESS, R-hat).
    draws: Optional[np.ndarray] = None
    latent_mean: Optional[dict] = None
    latent_sd: Optional[dict] = None
    mcmc: Optional[dict] = None

    @property
    def has_density(self) -> bool:
        """Whether the posterior's density can be evaluated: exact, or normalised on a grid by its
        log evidence (an MCMC or given reference has draws or moments only)."""
        return self.kind in ("exact", "grid")


def _lgamma(x):
    return tf.math.lgamma(tf.cast(x, DTYPE))


class Model:
    """Base class; subclasses fill in the data handling and the log joint."""

    name: str = ""
    title: str = ""
    description: str = ""
    dim: int = 1
    support: Support = Support.REAL
    default_n: int = 100
    csv_columns: tuple = ()  # empty: CSV data not accepted
    latent_name: str = "z"
    default_family: str = "normal"
    from_file: bool = False  # a user's model file (``vizvi.model_file``), not a built-in target

    @property
    def coordinates(self) -> tuple:
        """Names of the latent's coordinates: what a vector family's parameters are indexed by
        (``loc[0]``, ``scale_tril[1,0]``; a model file's are its parts', e.g. ``loc[theta[3]]``)."""
        return tuple(str(i) for i in range(self.dim))

    @property
    def support_text(self) -> str:
        """Where the latent lives, for messages: an interval, or R^d with the model's d."""
        return f"R^{self.dim}" if self.support is Support.VECTOR else self.support.describe

    def latent_moments(self, family, theta: np.ndarray) -> tuple:
        """(mean, sd) of q at ``theta`` in the model's own coordinates: {latent name: a number,
        or a list for a vector}. Built-in latents are already in those coordinates, so the
        family's exact moments are the answer."""
        mean, sd = family.moments(np.asarray(theta, dtype=np.float64))
        return self._by_latent_name(mean), self._by_latent_name(sd)

    def reference_moments(self, reference: "Reference") -> tuple:
        """(mean, sd) of the reference posterior, keyed like ``latent_moments``."""
        if reference.latent_mean is not None:
            return reference.latent_mean, reference.latent_sd
        return self._by_latent_name(reference.mean), self._by_latent_name(np.sqrt(np.diag(reference.cov)))

    def _by_latent_name(self, values) -> dict:
        values = np.atleast_1d(np.asarray(values, dtype=np.float64))
        return {self.latent_name: float(values[0]) if self.support is not Support.VECTOR else values.tolist()}

    def cost_per_sample(self, n: Optional[int]) -> int:
        """Elements of work one Monte Carlo sample costs the log joint with ``n`` observations
        (1 for likelihoods on sufficient statistics); bounds samples x replicates in memory."""
        return 1

    # -- data -----------------------------------------------------------------------------
    def simulate(self, n: Optional[int], seed: int) -> Dataset:
        """Draw a data set of ``n`` observations (default ``default_n``) from ``seed``."""
        raise NotImplementedError

    def _check_value(self, column: str, value: float) -> Optional[str]:
        """Return the reason a CSV value is invalid for the likelihood, or None."""
        return None

    def parse_csv(self, text: str, source: str = "CSV") -> Dataset:
        """Parse CSV text into a Dataset, naming the line and the reason of any fault."""
        if not self.csv_columns:
            raise ConfigError("data", f"model {self.name!r} takes no data file (it is a fixed density target)")
        ncol = len(self.csv_columns)
        rows = []
        reader = csv.reader(io.StringIO(text))
        for line_no, fields in enumerate(reader, start=1):
            fields = [f.strip() for f in fields]
            if not fields or all(f == "" for f in fields):
                continue
            if len(fields) != ncol:
                raise ConfigError(
                    "data",
                    f"{source} line {line_no}: expected {ncol} column(s) ({', '.join(self.csv_columns)}), got {len(fields)}",
                )
            values = []
            for col, f in zip(self.csv_columns, fields):
                try:
                    v = float(f)
                except ValueError:
                    v = None
                if v is None:
                    if line_no == 1 and not rows and all(_not_number(g) for g in fields):
                        values = None  # a header line
                        break
                    raise ConfigError("data", f"{source} line {line_no}: {col} value {f!r} is not a number")
                if not math.isfinite(v):
                    raise ConfigError("data", f"{source} line {line_no}: {col} value {f!r} is not finite")
                reason = self._check_value(col, v)
                if reason:
                    raise ConfigError("data", f"{source} line {line_no}: {col} value {f!r} {reason}")
                values.append(v)
            if values is not None:
                rows.append(values)
        if not rows:
            raise ConfigError("data", f"{source} has no data rows")
        arr = np.asarray(rows, dtype=np.float64)
        return Dataset(self.name, {c: arr[:, i] for i, c in enumerate(self.csv_columns)}, source)

    def data_tensors(self, dataset: Dataset) -> dict:
        """The fixed-structure dict of tensors the compiled step takes as its data argument."""
        raise NotImplementedError

    # -- densities -------------------------------------------------------------------------
    def log_joint(self, z: tf.Tensor, data: dict) -> tf.Tensor:
        """log p(data, z), vectorised over every leading dimension of ``z``."""
        raise NotImplementedError

    def prior(self, data: dict) -> tfd.Distribution:
        """The prior over the latent (a broad standard reference for pure density targets)."""
        raise NotImplementedError

    def exact_posterior(self, data: dict) -> Optional[tfd.Distribution]:
        """The exact posterior as a TFP distribution, or None when there is no closed form."""
        return None

    def reference(self, data: dict) -> Reference:
        """Posterior mean, covariance and log evidence: exact where known, else on a grid."""
        post = self.exact_posterior(data)
        if post is None:
            return self._grid_reference(data)
        mean = np.atleast_1d(post.mean().numpy())
        if self.dim == 1:
            cov = np.atleast_2d(post.variance().numpy())
        else:
            cov = post.covariance().numpy()
        z_star = post.mean()
        log_evidence = float((self.log_joint(z_star, data) - post.log_prob(z_star)).numpy())
        params = {k: np.asarray(v).tolist() for k, v in _distribution_params(post).items()}
        return Reference("exact", mean, cov, log_evidence, type(post).__name__, params)

    def grid_box(self, data: dict):
        """Coarse (lo, hi) box for grid references of 2-D targets."""
        return (-10.0, -10.0), (10.0, 10.0)

    def _grid_reference(self, data: dict) -> Reference:
        return grid_reference(lambda z: self.log_joint(z, data), *self.grid_box(data))


def _not_number(s: str) -> bool:
    try:
        float(s)
        return False
    except ValueError:
        return True


def _distribution_params(d: tfd.Distribution) -> dict:
    names = {
        "Gamma": ("concentration", "rate"),
        "Normal": ("loc", "scale"),
        "Beta": ("concentration1", "concentration0"),
        "MultivariateNormalTriL": ("loc", "scale_tril"),
        "MultivariateNormalFullCovariance": ("loc", "covariance_matrix"),
    }[type(d).__name__]
    return {k: tf.convert_to_tensor(d.parameters[k]).numpy() for k in names}


def _riemann_moments(log_dens: np.ndarray, xs: np.ndarray, ys: np.ndarray):
    """Normalising constant, mean and covariance of a density given on a regular 2-D grid."""
    dx, dy = xs[1] - xs[0], ys[1] - ys[0]
    m = log_dens.max()
    w = np.exp(log_dens - m)
    total = w.sum()
    log_z = float(m + np.log(total * dx * dy))
    w = w / total
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    mean = np.array([(w * X).sum(), (w * Y).sum()])
    cx, cy = X - mean[0], Y - mean[1]
    cov = np.array([[(w * cx * cx).sum(), (w * cx * cy).sum()], [(w * cx * cy).sum(), (w * cy * cy).sum()]])
    return log_z, mean, cov


GRID_BLOCK = 8192  # grid points per log-density evaluation of a grid reference


def grid_reference(log_density: Callable, lo, hi, coarse: int = 201, fine: int = 401, log_drop: float = 30.0) -> Reference:
    """Reference posterior of a 2-D target by numerical integration on a grid.

    A coarse grid over the box ``lo..hi`` locates the mass: the fine grid spans every coarse
    point whose log density is within ``log_drop`` of the maximum (mass beyond is < e^-30 per
    cell), padded by one coarse cell. Riemann sums on a regular grid converge spectrally fast
    for smooth densities that vanish at the edges, so 401 x 401 points give moments and log
    evidence to many digits.
    """

    def evaluate(xs, ys):
        X, Y = np.meshgrid(xs, ys, indexing="ij")
        z = np.stack([X.ravel(), Y.ravel()], axis=-1)
        # In blocks of points: at once, a likelihood over every observation makes points x
        # observations intermediates (401^2 x 100 for logistic regression: gigabytes that the
        # allocator keeps for the life of the server).
        return np.concatenate([log_density(tf.constant(z[i:i + GRID_BLOCK], DTYPE)).numpy()
                               for i in range(0, len(z), GRID_BLOCK)]).reshape(X.shape)

    xs = np.linspace(lo[0], hi[0], coarse)
    ys = np.linspace(lo[1], hi[1], coarse)
    log_dens = evaluate(xs, ys)
    ix, iy = np.nonzero(log_dens > log_dens.max() - log_drop)
    dx, dy = xs[1] - xs[0], ys[1] - ys[0]
    xs = np.linspace(xs[ix.min()] - dx, xs[ix.max()] + dx, fine)
    ys = np.linspace(ys[iy.min()] - dy, ys[iy.max()] + dy, fine)
    log_dens = evaluate(xs, ys)
    log_z, mean, cov = _riemann_moments(log_dens, xs, ys)
    # A thinned copy of the normalised density for contour plots (charts need ~100x100 at most).
    step = max(1, fine // 100)
    dens = np.exp(log_dens[::step, ::step] - log_z)
    grid = {"x": xs[::step].tolist(), "y": ys[::step].tolist(), "density": dens.T.tolist()}
    return Reference("grid", mean, cov, log_z, "grid", {}, grid)


# ---------------------------------------------------------------------------------------------
class PoissonGamma(Model):
    """counts ~ Poisson(rate), rate ~ Gamma(2, 1); data drawn with true rate 4."""

    name = "poisson-gamma"
    title = "Poisson counts, Gamma prior on the rate"
    description = "counts ~ Poisson(rate), rate ~ Gamma(2, 1); simulated with true rate 4. Exact Gamma posterior."
    support = Support.POSITIVE
    default_n = 1000
    csv_columns = ("count",)
    latent_name = "rate"
    default_family = "gamma"
    prior_concentration, prior_rate, true_rate = 2.0, 1.0, 4.0

    def simulate(self, n, seed):
        n = self.default_n if n is None else n
        x = np.random.default_rng(seed).poisson(self.true_rate, size=n).astype(np.float64)
        return Dataset(self.name, {"count": x}, f"simulated (n={n}, seed={seed}, true rate {self.true_rate})")

    def _check_value(self, column, v):
        if v < 0 or v != int(v):
            return "is not a non-negative whole number (Poisson counts)"
        return None

    def data_tensors(self, dataset):
        x = tf.constant(dataset.arrays["count"], DTYPE)
        return {
            "n": tf.constant(float(dataset.n), DTYPE),
            "sum_x": tf.reduce_sum(x),
            "sum_lgamma_x1": tf.reduce_sum(tf.math.lgamma(x + 1.0)),
        }

    def prior(self, data):
        return tfd.Gamma(tf.constant(self.prior_concentration, DTYPE), tf.constant(self.prior_rate, DTYPE))

    def log_joint(self, z, data):
        # sum_i log Poisson(x_i | z) on sufficient statistics.
        loglik = data["sum_x"] * tf.math.log(z) - data["n"] * z - data["sum_lgamma_x1"]
        return loglik + self.prior(data).log_prob(z)

    def exact_posterior(self, data):
        return tfd.Gamma(self.prior_concentration + data["sum_x"], self.prior_rate + data["n"])


class NormalMean(Model):
    """x ~ Normal(mu, 1), mu ~ Normal(0, 10)."""

    name = "normal-mean"
    title = "Normal mean, known variance"
    description = "x ~ Normal(mu, 1), mu ~ Normal(0, 10); simulated with true mu = 2. Exact Normal posterior."
    support = Support.REAL
    default_n = 100
    csv_columns = ("x",)
    latent_name = "mu"
    default_family = "normal"
    prior_scale, true_mu = 10.0, 2.0

    def simulate(self, n, seed):
        n = self.default_n if n is None else n
        x = np.random.default_rng(seed).normal(self.true_mu, 1.0, size=n)
        return Dataset(self.name, {"x": x}, f"simulated (n={n}, seed={seed}, true mu {self.true_mu})")

    def data_tensors(self, dataset):
        x = tf.constant(dataset.arrays["x"], DTYPE)
        return {"n": tf.constant(float(dataset.n), DTYPE), "sum_x": tf.reduce_sum(x), "sum_x2": tf.reduce_sum(x * x)}

    def prior(self, data):
        return tfd.Normal(tf.constant(0.0, DTYPE), tf.constant(self.prior_scale, DTYPE))

    def log_joint(self, z, data):
        # sum_i log Normal(x_i | z, 1) on sufficient statistics.
        sq = data["sum_x2"] - 2.0 * z * data["sum_x"] + data["n"] * z * z
        loglik = -0.5 * data["n"] * math.log(2.0 * math.pi) - 0.5 * sq
        return loglik + self.prior(data).log_prob(z)

    def exact_posterior(self, data):
        precision = 1.0 / self.prior_scale**2 + data["n"]
        return tfd.Normal(data["sum_x"] / precision, tf.math.rsqrt(precision))


class BetaBernoulli(Model):
    """Coin flips, p ~ Beta(1, 1)."""

    name = "beta-bernoulli"
    title = "Coin flips, uniform prior"
    description = "flips ~ Bernoulli(p), p ~ Beta(1, 1); simulated with true p = 0.3. Exact Beta posterior."
    support = Support.UNIT
    default_n = 100
    csv_columns = ("flip",)
    latent_name = "p"
    default_family = "beta"
    true_p = 0.3

    def simulate(self, n, seed):
        n = self.default_n if n is None else n
        x = (np.random.default_rng(seed).random(n) < self.true_p).astype(np.float64)
        return Dataset(self.name, {"flip": x}, f"simulated (n={n}, seed={seed}, true p {self.true_p})")

    def _check_value(self, column, v):
        return None if v in (0.0, 1.0) else "is not 0 or 1 (a coin flip)"

    def data_tensors(self, dataset):
        x = tf.constant(dataset.arrays["flip"], DTYPE)
        return {"n": tf.constant(float(dataset.n), DTYPE), "heads": tf.reduce_sum(x)}

    def prior(self, data):
        return tfd.Beta(tf.constant(1.0, DTYPE), tf.constant(1.0, DTYPE))

    def log_joint(self, z, data):
        loglik = data["heads"] * tf.math.log(z) + (data["n"] - data["heads"]) * tf.math.log1p(-z)
        return loglik + self.prior(data).log_prob(z)

    def exact_posterior(self, data):
        return tfd.Beta(1.0 + data["heads"], 1.0 + data["n"] - data["heads"])


class CorrelatedGaussian(Model):
    """A fixed 2-D Gaussian target with correlation 0.9."""

    name = "correlated-gaussian"
    title = "Correlated 2-D Gaussian"
    description = "A 2-D Gaussian target, means (1, -1), unit variances, correlation 0.9. Mean-field q underestimates its variance."
    dim = 2
    support = Support.VECTOR
    default_n = 0
    latent_name = "z"
    default_family = "mean-field-normal"
    loc = (1.0, -1.0)
    correlation = 0.9

    def simulate(self, n, seed):
        return Dataset(self.name, {}, "fixed density target (no data)")

    def data_tensors(self, dataset):
        return {}

    def _target(self):
        r = self.correlation
        cov = tf.constant([[1.0, r], [r, 1.0]], DTYPE)
        return tfd.MultivariateNormalTriL(tf.constant(self.loc, DTYPE), tf.linalg.cholesky(cov))

    def prior(self, data):
        return tfd.MultivariateNormalDiag(tf.zeros(2, DTYPE), tf.ones(2, DTYPE))

    def log_joint(self, z, data):
        return self._target().log_prob(z)

    def exact_posterior(self, data):
        return self._target()


class LogisticRegression(Model):
    """Bayesian logistic regression with an intercept and a slope; grid reference."""

    name = "logistic-regression"
    title = "Logistic regression (2 weights)"
    description = "y ~ Bernoulli(sigmoid(w0 + w1 x)), w ~ Normal(0, 2^2 I); simulated with w = (-0.5, 1.5). Reference posterior on a grid."
    dim = 2
    support = Support.VECTOR
    default_n = 100
    csv_columns = ("x", "y")
    latent_name = "w"
    default_family = "full-rank-normal"
    prior_scale = 2.0
    true_w = (-0.5, 1.5)

    def simulate(self, n, seed):
        n = self.default_n if n is None else n
        rng = np.random.default_rng(seed)
        x = rng.normal(size=n)
        p = 1.0 / (1.0 + np.exp(-(self.true_w[0] + self.true_w[1] * x)))
        y = (rng.random(n) < p).astype(np.float64)
        return Dataset(self.name, {"x": x, "y": y}, f"simulated (n={n}, seed={seed}, true w {self.true_w})")

    def cost_per_sample(self, n):
        # The log likelihood sums over every observation for each sample (no sufficient statistics).
        return max(1, n or 1)

    def _check_value(self, column, v):
        if column == "y" and v not in (0.0, 1.0):
            return "is not 0 or 1 (a binary outcome)"
        return None

    def data_tensors(self, dataset):
        return {"x": tf.constant(dataset.arrays["x"], DTYPE), "y": tf.constant(dataset.arrays["y"], DTYPE)}

    def prior(self, data):
        return tfd.MultivariateNormalDiag(tf.zeros(2, DTYPE), tf.fill([2], tf.constant(self.prior_scale, DTYPE)))

    def log_joint(self, z, data):
        logits = z[..., 0:1] + z[..., 1:2] * data["x"]
        loglik = tf.reduce_sum(tfd.Bernoulli(logits=logits, dtype=DTYPE).log_prob(data["y"]), axis=-1)
        return loglik + self.prior(data).log_prob(z)


class Banana(Model):
    """A curved 2-D target: z1 ~ N(0, 1), z2 | z1 ~ N(z1^2 - 1, 0.5^2); grid reference."""

    name = "banana"
    title = "Banana (curved 2-D target)"
    description = "z1 ~ Normal(0, 1), z2 | z1 ~ Normal(z1^2 - 1, 0.5^2): a curved, non-Gaussian target. Reference on a grid."
    dim = 2
    support = Support.VECTOR
    default_n = 0
    latent_name = "z"
    default_family = "full-rank-normal"
    curvature_scale = 0.5

    def simulate(self, n, seed):
        return Dataset(self.name, {}, "fixed density target (no data)")

    def data_tensors(self, dataset):
        return {}

    def prior(self, data):
        return tfd.MultivariateNormalDiag(tf.zeros(2, DTYPE), tf.ones(2, DTYPE))

    def log_joint(self, z, data):
        z1, z2 = z[..., 0], z[..., 1]
        one = tf.constant(1.0, DTYPE)
        return tfd.Normal(tf.zeros_like(one), one).log_prob(z1) + tfd.Normal(z1 * z1 - 1.0, self.curvature_scale * one).log_prob(z2)

    def grid_box(self, data):
        return (-9.0, -5.0), (9.0, 80.0)


MODELS = {m.name: m for m in (PoissonGamma(), NormalMean(), BetaBernoulli(), CorrelatedGaussian(), LogisticRegression(), Banana())}


def get_model(name: str) -> Model:
    """The model called ``name``, or a ConfigError listing the models."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError("model", f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None


def load_dataset(model: Model, n: Optional[int], seed: int, csv_path: Optional[str] = None, csv_text: Optional[str] = None) -> Dataset:
    """Simulate data from (n, seed), or read it from a CSV file path or CSV text."""
    if csv_path is not None or csv_text is not None:
        if csv_text is None:
            try:
                with open(csv_path, encoding="utf-8") as fh:
                    csv_text = fh.read()
            except OSError as e:
                raise ConfigError("data", f"cannot read {csv_path}: {e.strerror}") from None
            except UnicodeDecodeError:
                raise ConfigError("data", f"{csv_path} is not a UTF-8 text file") from None
        return model.parse_csv(csv_text, source=csv_path or "uploaded CSV")
    if n is not None and (n < 1 or n > 10_000_000) and model.csv_columns:
        raise ConfigError("n", f"observation count must be between 1 and 10000000, got {n}")
    return model.simulate(n, seed)
