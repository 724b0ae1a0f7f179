"""The variance explorer: five estimators of d/dtheta E_{N(x | mu, sigma^2)}[f(x; k)], side by side.

Mohamed, Rosca, Figurnov and Mnih (2020), "Monte Carlo Gradient Estimation in Machine Learning",
figure 2: the variance of estimates of the gradient of E_q[(x - k)^2] with respect to mu and to
sigma, as k moves across the mean. Here for three costs (``Cost``) and five estimators
(``LabEstimator``), each estimate the mean of ``samples`` per-sample terms:

- ``score``: f(x) d log q(x) / d theta, x ~ q.
- ``score-baseline``: (f(x) - b) d log q(x) / d theta with b the mean of f over
  ``BASELINE_DRAWS`` independent draws of q. b stands for the running mean of f a training loop
  keeps: a long running average is nearly E_q[f] and is independent of the current draw, so it
  works with one sample per estimate (the paper's setting), where a leave-one-out baseline (the
  engine's ``score-baseline``) does not exist. b is drawn afresh for each k and each batch of
  replicates and shared by that batch's replicates.
- ``pathwise``: x = mu + sigma eps; d/dmu = f'(x), d/dsigma = f'(x) eps.
- ``measure-valued`` and ``measure-valued-coupled``: the Gaussian's weak derivatives
  (``vizvi.weak_derivatives``), weight * (f(plus) - f(minus)), the two parts drawn
  independently or coupled. Coupling is no free lunch: for mu it mirrors one Rayleigh draw
  W to mu +- sigma W, which cancels f's even part around mu and lowers the variance near
  k = mu (to zero at k = mu for the three symmetric costs here), but where f is monotone over
  the draws the difference keeps the odd part and the variance can rise: for the square cost,
  with d = mu - k, coupled Var = 16 d^2 Var(W) / (2 pi) and uncoupled
  Var = (2 Var(W^2) + 8 d^2 Var(W)) / (2 pi), so coupling wins only for |d| < ~1.53 sigma. For
  sigma (a Maxwell draw and the same draw pulled towards mu by a uniform factor) it lowers the
  variance broadly.

Every estimate is measured over many independent replicates: the unbiased variance of one
estimate, its mean and the Monte Carlo error of that mean, against the exact gradient
(``exact_gradient``, closed form). One XLA-compiled call computes a *batch* of replicates for
all five estimators, both parameters and every k at once; batches are merged with Chan et
al.'s parallel mean / M2 update, so memory stays bounded whatever the replicate count.

Randomness is stateless: batch b draws from ``fold_in(seed, b)`` and sample m of it from
``fold_in(., m)``, so a result depends only on its settings, never on progress or cancel
timing. Each estimator's draws come from its own streams (the normal draws, the loc and the
scale weak-derivative draws), so an estimator computed alone gives the same numbers as with
the others. The batch size depends on the number of k values and of replicates (see
``_batch_rows``), so a result is reproducible for the same settings but is not the same draw
for draw under another ``REPLICATE_BATCH``.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
import threading
import time
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from vizvi._tf import tf
import tensorflow_probability as tfp

from vizvi.errors import ConfigError
from vizvi.settings import LAB_RUN_SETTINGS, LAB_SETTING, Kind, config_class
from vizvi.weak_derivatives import gaussian_loc_parts, gaussian_scale_parts

DTYPE = tf.float64
PARAMS = ("mu", "sigma")
MAX_K = 101
MAX_WORK = 2_000_000_000  # replicates x k values x samples: per-sample evaluations of every estimator
BASELINE_DRAWS = 1000
# Rows (replicates) per compiled call: as many as fit ``BATCH_ELEMENTS`` rows x k values, a power
# of two from ``MIN_BATCH_ROWS`` to ``REPLICATE_BATCH``. Measured on the 2-core reference machine,
# all five estimators, 1 sample (seconds, median of 7): 13 k values x 200k replicates: 2,048 rows
# 0.17, 4,096 0.13, 8,192 0.13-0.15, 16,384 0.21, 32,768 0.27, 65,536 0.31 (the arrays of a
# batch stop fitting in cache); 101 k values x 40k: 256 rows 0.64, 512 0.37, 1,024 0.24, 4,096
# 0.23 (below ~1,000 rows the fixed cost of a call shows); 3 k values x 800k: 8,192 to 65,536
# rows 0.20-0.23. A batch holds about 30 float64 arrays of rows x k values: ~25 MB at most.
BATCH_ELEMENTS = 65536
MIN_BATCH_ROWS = 1024
REPLICATE_BATCH = 16384  # the most rows per call (few k values)


# -- the costs -------------------------------------------------------------------------------
class Cost(str, enum.Enum):
    """The cost f(x; k) whose expectation under N(mu, sigma^2) is differentiated."""

    SQUARE = "square"
    GAUSS = "gauss"
    ABS = "abs"


def _erf(z):
    return np.vectorize(math.erf, otypes=[float])(z)


def _normal_cdf(z):
    return 0.5 * (1.0 + _erf(np.asarray(z, float) / math.sqrt(2.0)))


class CostSpec(NamedTuple):
    """One cost, written once. ``f`` and ``df`` take u = x - k and an array module ``xp``
    (``tf`` inside the compiled estimators, ``np`` for plotting), so TensorFlow and NumPy
    evaluate the same formula. ``df`` is written out rather than taken by autodiff: it is one
    line per cost, the page plots it, and pathwise then needs no gradient tape in the batch.
    ``expectation`` and ``gradient`` take d = mu - k and sigma (NumPy, closed form)."""

    formula: str  # plain text, for the CLI's list and the legend
    latex: str  # the same for the page's st.latex
    f: Callable  # (u, xp) -> f
    df: Callable  # (u, xp) -> df/dx
    expectation: Callable  # (d, sigma) -> E_q[f]
    gradient: Callable  # (d, sigma) -> (dE/dmu, dE/dsigma)


def _gauss_expectation(d, s):
    # x - k ~ N(d, s^2): E exp(-(x-k)^2) = a^{-1/2} exp(-d^2 / a), a = 1 + 2 s^2 (Gaussian integral).
    a = 1.0 + 2.0 * s * s
    return np.exp(-d * d / a) / np.sqrt(a)


def _gauss_gradient(d, s):
    a = 1.0 + 2.0 * s * s
    e = _gauss_expectation(d, s)
    # d/dd: -2d/a E; d/ds: da/ds = 4s, so E (-2s/a + 4 s d^2 / a^2).
    return -2.0 * d / a * e, e * (4.0 * s * d * d / (a * a) - 2.0 * s / a)


def _abs_expectation(d, s):
    # The folded normal's mean.
    return s * math.sqrt(2.0 / math.pi) * np.exp(-d * d / (2.0 * s * s)) + d * (2.0 * _normal_cdf(d / s) - 1.0)


def _abs_gradient(d, s):
    return 2.0 * _normal_cdf(d / s) - 1.0, math.sqrt(2.0 / math.pi) * np.exp(-d * d / (2.0 * s * s))


COSTS: Dict[Cost, CostSpec] = {
    Cost.SQUARE: CostSpec(
        "(x - k)^2", "(x - k)^2", f=lambda u, xp: u * u, df=lambda u, xp: 2.0 * u,
        expectation=lambda d, s: d * d + s * s, gradient=lambda d, s: (2.0 * d, 2.0 * s * np.ones_like(d))),
    Cost.GAUSS: CostSpec(
        "exp(-(x - k)^2)", r"\exp\left(-(x - k)^2\right)",
        f=lambda u, xp: xp.exp(-u * u), df=lambda u, xp: -2.0 * u * xp.exp(-u * u),
        expectation=_gauss_expectation, gradient=_gauss_gradient),
    Cost.ABS: CostSpec(
        "|x - k|", r"\lvert x - k \rvert", f=lambda u, xp: xp.abs(u), df=lambda u, xp: xp.sign(u),
        expectation=_abs_expectation, gradient=_abs_gradient),
}


def parse_cost(name) -> Cost:
    """The Cost called ``name``; a ConfigError on ``cost`` listing the choices if none."""
    return Cost(LAB_SETTING["cost"].check(name))  # a Cost is a str: Cost.SQUARE == "square"


def cost_curve(cost, x, k: float) -> Tuple[np.ndarray, np.ndarray]:
    """(f(x; k), df/dx) at the points ``x``, in NumPy (the page's bottom row of plots)."""
    spec = COSTS[parse_cost(cost)]
    u = np.asarray(x, float) - k
    return spec.f(u, np), spec.df(u, np)


def exact_expectation(cost, mu: float, sigma: float, k) -> np.ndarray:
    """E_{N(x | mu, sigma^2)}[f(x; k)] in closed form, for every k."""
    return COSTS[parse_cost(cost)].expectation(mu - np.asarray(k, float), float(sigma))


def exact_gradient(cost, mu: float, sigma: float, k) -> Tuple[np.ndarray, np.ndarray]:
    """(d/dmu, d/dsigma) of E_{N(x | mu, sigma^2)}[f(x; k)] in closed form, for every k."""
    d_mu, d_sigma = COSTS[parse_cost(cost)].gradient(mu - np.asarray(k, float), float(sigma))
    return np.asarray(d_mu, float), np.asarray(d_sigma, float)


# -- the estimators ----------------------------------------------------------------------------
class LabEstimator(str, enum.Enum):
    """The gradient estimators the explorer compares."""

    SCORE = "score"
    SCORE_BASELINE = "score-baseline"
    PATHWISE = "pathwise"
    MEASURE_VALUED = "measure-valued"
    MEASURE_VALUED_COUPLED = "measure-valued-coupled"


class LabEstimatorSpec(NamedTuple):
    """What an estimator is, for the page's legend and the CLI's ``list``."""

    description: str
    evaluations: int  # evaluations of f (pathwise: of f') per sample, for mu and sigma together
    baseline: str = ""  # which baseline, where there is one


LAB_ESTIMATORS: Dict[LabEstimator, LabEstimatorSpec] = {
    LabEstimator.SCORE: LabEstimatorSpec("score function / REINFORCE: f(x) d log q(x) / d theta", 1),
    LabEstimator.SCORE_BASELINE: LabEstimatorSpec(
        "score function with a baseline: (f(x) - b) d log q(x) / d theta", 1,
        f"b is the mean of f over {BASELINE_DRAWS} independent draws of q, standing for the running mean of f a "
        "training loop keeps: a long running average is nearly E[f] and independent of the current draw, so it "
        "works with one sample per estimate, where a leave-one-out baseline does not exist"),
    LabEstimator.PATHWISE: LabEstimatorSpec(
        "pathwise / reparameterization: x = mu + sigma eps, f'(x) and f'(x) eps (one evaluation of f')", 1),
    LabEstimator.MEASURE_VALUED: LabEstimatorSpec(
        "measure-valued (weak derivative), positive and negative parts drawn independently", 4),
    LabEstimator.MEASURE_VALUED_COUPLED: LabEstimatorSpec(
        "measure-valued (weak derivative), parts coupled: mirrored Rayleigh for mu, Maxwell times uniform for sigma", 4),
}
ESTIMATOR_ORDER = tuple(LabEstimator)


# -- the configuration -------------------------------------------------------------------------
LabConfig = config_class("LabConfig", LAB_RUN_SETTINGS, {},
                         "Every setting of a variance computation (one field per ``LAB_RUN_SETTINGS`` entry).")
LabConfig.__module__ = __name__


def parse_k(text) -> Tuple[float, ...]:
    """The k values ``text`` names: a list ``0,1.5,3`` or a range ``lo:hi:count`` (count evenly
    spaced values from lo to hi, both included; one value is lo), at most ``MAX_K`` of them; a
    sequence of numbers is taken as the list. ConfigError on ``k`` saying what is wrong."""
    if not isinstance(text, str):  # a sequence of numbers, as the page may hold them
        text = ",".join(str(v) for v in text)
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ConfigError("k", f"{text!r}: a range is lo:hi:count")
        lo, hi = (_k_number(p, text) for p in parts[:2])
        try:
            count = int(parts[2])
        except ValueError:
            raise ConfigError("k", f"{text!r}: the count {parts[2].strip()!r} is not a whole number") from None
        if not 1 <= count <= MAX_K:
            raise ConfigError("k", f"{text!r}: the count must be from 1 to {MAX_K}, got {count}")
        values = (lo,) if count == 1 else tuple(float(v) for v in np.linspace(lo, hi, count))
    else:
        values = tuple(_k_number(p, text) for p in text.split(","))
        if len(values) > MAX_K:
            raise ConfigError("k", f"{len(values)} values of k; at most {MAX_K}")
    return values


def _k_number(part: str, text: str) -> float:
    try:
        v = float(part)
    except ValueError:
        raise ConfigError("k", f"{text!r}: {part.strip()!r} is not a number") from None
    if not math.isfinite(v):
        raise ConfigError("k", f"{text!r}: {part.strip()!r} is not a finite number")
    return v


def validate_lab(config) -> "LabConfig":
    """Every setting checked (registry ranges and choices, k parsed, the work cap); returns the
    validated copy, numbers as numbers. Raises ConfigError naming the setting."""
    values = {}
    for s in LAB_RUN_SETTINGS:
        value = getattr(config, s.name)
        values[s.name] = s.parse(value) if isinstance(value, str) and s.kind in (Kind.INT, Kind.FLOAT) else s.check(value)
    checked = LabConfig(**values)
    k_count = len(parse_k(checked.k))
    work = checked.replicates * k_count * checked.samples
    if work > MAX_WORK:
        # Named on replicates, the setting that usually makes the work (and the one to lower).
        raise ConfigError("replicates", f"{checked.replicates:,} replicates x {k_count} values of k x "
                                        f"{checked.samples} samples = {work:,} evaluations exceeds the cap of {MAX_WORK:,}; "
                                        "lower replicates, samples or the number of k values")
    return checked


# -- the compiled batch ------------------------------------------------------------------------
class Cancelled(Exception):
    """``compute`` stopped between batches because its cancel event was set."""


_COMPILED: Dict[tuple, Callable] = {}
_COMPILED_LOCK = threading.Lock()
_TRACES: collections.Counter = collections.Counter()  # Python traces per (cost, estimators): the no-retrace test

_SIGNATURE = (
    tf.TensorSpec([], DTYPE),  # mu
    tf.TensorSpec([], DTYPE),  # sigma
    tf.TensorSpec([None], DTYPE),  # k [K]
    tf.TensorSpec([None], DTYPE),  # rows [B]: 1 for a replicate that counts, 0 for padding
    tf.TensorSpec([], tf.int32),  # samples per estimate
    tf.TensorSpec([2], tf.int32),  # seed
    tf.TensorSpec([], tf.int32),  # batch index
)


def _batch_function(cost: Cost, estimators: Tuple[LabEstimator, ...]) -> Callable:
    """The compiled batch for a cost and a set of estimators, built once per process.

    Every numeric input is a tensor argument under a fixed signature, so new mu, sigma, k,
    seed, samples or replicates never retrace; XLA compiles once per new shape (number of k
    values, rows per batch). It captures no per-user state, so all sessions share it.
    """
    key = (cost, estimators)
    with _COMPILED_LOCK:
        if key not in _COMPILED:
            _COMPILED[key] = tf.function(_batch_body(cost, estimators), input_signature=_SIGNATURE, jit_compile=True,
                                           autograph=False)  # no Python control flow on tensors to convert
        return _COMPILED[key]


def _batch_body(cost: Cost, estimators: Tuple[LabEstimator, ...]) -> Callable:
    spec = COSTS[cost]
    want = set(estimators)
    e = LabEstimator

    def batch(mu, sigma, k, rows, samples, seed, batch_index):
        """Means [E, 2, K] and centred sums of squares [E, 2, K] of one batch's estimates."""
        _TRACES[(cost, estimators)] += 1

        def f_at(x):  # x [B] -> f(x; k) [B, K]
            return spec.f(x[:, None] - k, tf)

        shape = tf.shape(rows)
        seed_baseline, seed_samples = tfp.random.split_seed(tf.random.experimental.stateless_fold_in(seed, batch_index), 2)
        baseline = 0.0
        if e.SCORE_BASELINE in want:
            z = mu + sigma * tf.random.stateless_normal([BASELINE_DRAWS, tf.shape(k)[0]], seed_baseline, dtype=DTYPE)
            baseline = tf.reduce_mean(spec.f(z - k, tf), axis=0)  # [K], fresh per k and per batch

        def terms(m):
            """Each estimator's per-sample terms for mu and sigma, [B, K] each, in ``estimators`` order."""
            seed_eps, seed_loc, seed_scale = tfp.random.split_seed(tf.random.experimental.stateless_fold_in(seed_samples, m), 3)
            out = {}
            if want & {e.SCORE, e.SCORE_BASELINE, e.PATHWISE}:
                eps = tf.random.stateless_normal(shape, seed_eps, dtype=DTYPE)
                x = mu + sigma * eps
                score_mu, score_sigma = (eps / sigma)[:, None], ((eps * eps - 1.0) / sigma)[:, None]
                if want & {e.SCORE, e.SCORE_BASELINE}:
                    fx = f_at(x)
                    out[e.SCORE] = (fx * score_mu, fx * score_sigma)
                    # Sharing b across the batch's replicates does not bias the measured variance:
                    # E[(f - b) s | b] = grad for every b (E[s] = 0), so the replicates are
                    # uncorrelated and each has the unconditional variance of the estimator.
                    centred = fx - baseline
                    out[e.SCORE_BASELINE] = (centred * score_mu, centred * score_sigma)
                if e.PATHWISE in want:
                    g = spec.df(x[:, None] - k, tf)
                    out[e.PATHWISE] = (g, g * eps[:, None])
            for name, coupled in ((e.MEASURE_VALUED, False), (e.MEASURE_VALUED_COUPLED, True)):
                if name in want:
                    # The same seeds for both couplings: the positive parts are the same draws.
                    loc = gaussian_loc_parts(mu, sigma, shape, seed_loc, coupled=coupled)
                    scale = gaussian_scale_parts(mu, sigma, shape, seed_scale, coupled=coupled)
                    out[name] = (loc.weight * (f_at(loc.plus) - f_at(loc.minus)),
                                 scale.weight * (f_at(scale.plus) - f_at(scale.minus)))
            return [t for name in estimators for t in out[name]]

        # Samples in a loop with a tensor trip count: a new sample count is no new program, and
        # memory holds one sample's terms whatever the count.
        first = terms(tf.constant(0, tf.int32))
        _, sums = tf.while_loop(lambda m, acc: m < samples,
                                lambda m, acc: (m + 1, [a + t for a, t in zip(acc, terms(m))]),
                                (tf.constant(1, tf.int32), first))
        estimates = tf.stack(sums) / tf.cast(samples, DTYPE)  # [E * 2, B, K]
        w = rows[None, :, None]
        n = tf.reduce_sum(rows)
        mean = tf.reduce_sum(w * estimates, axis=1) / n  # [E * 2, K]
        m2 = tf.reduce_sum(w * tf.square(estimates - mean[:, None, :]), axis=1)  # centred in-batch: no cancellation
        count = len(estimators)
        return tf.reshape(mean, [count, 2, -1]), tf.reshape(m2, [count, 2, -1])

    return batch


def _batch_rows(k_count: int, replicates: int) -> int:
    """Rows per compiled call for ``k_count`` values of k: about ``BATCH_ELEMENTS`` elements,
    from ``MIN_BATCH_ROWS`` to ``REPLICATE_BATCH`` rows, no more than the replicates (rounded up).
    Always a power of two, so few shapes are ever compiled."""
    by_elements = 1 << (max(1, BATCH_ELEMENTS // k_count).bit_length() - 1)
    return min(max(by_elements, MIN_BATCH_ROWS), REPLICATE_BATCH, 1 << (replicates - 1).bit_length())


# -- the computation ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VarianceResult:
    """Variance, mean and Monte Carlo error of each estimator's estimates, for every k.

    ``variance[estimator][param]`` is the unbiased variance (divided by R - 1) of ONE estimate
    (a mean over ``samples`` draws), ``mean`` the mean of the R estimates and ``mean_stderr``
    sqrt(variance / R), the Monte Carlo error of that mean; ``param`` is "mu" or "sigma".
    """

    k: np.ndarray
    variance: Dict[str, Dict[str, np.ndarray]]
    mean: Dict[str, Dict[str, np.ndarray]]
    mean_stderr: Dict[str, Dict[str, np.ndarray]]
    exact: Dict[str, np.ndarray]
    config: dict
    replicates: int
    seconds: float


def _merge(a, b):
    """Chan et al.'s parallel update of (count, mean, M2) with another batch's."""
    (na, mean_a, m2_a), (nb, mean_b, m2_b) = a, b
    n = na + nb
    delta = mean_b - mean_a
    return n, mean_a + delta * (nb / n), m2_a + m2_b + delta * delta * (na * nb / n)


def compute(config, progress: Optional[Callable[[float], None]] = None, cancel: Optional[threading.Event] = None,
            estimators: Optional[Sequence] = None) -> VarianceResult:
    """The variance and mean of every estimator's estimates over ``config.replicates``
    independent replicates, for every k of ``config.k``, mu and sigma.

    ``progress(fraction_done)`` is called after each batch; if ``cancel`` (a threading.Event)
    is set, the computation stops between batches and raises ``Cancelled``. ``estimators``
    (default: all five) picks a subset; each estimator's numbers are the same either way.
    """
    start = time.perf_counter()
    config = validate_lab(config)
    ks = parse_k(config.k)
    cost = Cost(config.cost)
    names = tuple(LabEstimator(x) for x in estimators) if estimators else ESTIMATOR_ORDER
    fn = _batch_function(cost, names)
    rows = _batch_rows(len(ks), config.replicates)
    args = (tf.constant(config.mu, DTYPE), tf.constant(config.sigma, DTYPE), tf.constant(ks, DTYPE))
    tail = (tf.constant(config.samples, tf.int32), tf.constant([config.seed, 0], tf.int32))
    full = tf.ones([rows], DTYPE)
    state, done, batch = None, 0, 0
    while done < config.replicates:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"cancelled after {done:,} of {config.replicates:,} replicates")
        n = min(rows, config.replicates - done)
        mask = full if n == rows else tf.constant((np.arange(rows) < n).astype(float), DTYPE)
        mean, m2 = fn(*args, mask, *tail, tf.constant(batch, tf.int32))
        part = (n, mean.numpy(), m2.numpy())
        state = part if state is None else _merge(state, part)
        done, batch = done + n, batch + 1
        if progress is not None:
            progress(done / config.replicates)
    count, mean, m2 = state
    variance = m2 / (count - 1)

    def by_name(a):
        return {name.value: {p: a[i, j] for j, p in enumerate(PARAMS)} for i, name in enumerate(names)}

    d_mu, d_sigma = exact_gradient(cost, config.mu, config.sigma, ks)
    return VarianceResult(
        k=np.asarray(ks), variance=by_name(variance), mean=by_name(mean), mean_stderr=by_name(np.sqrt(variance / count)),
        exact={"mu": d_mu, "sigma": d_sigma}, config={**dataclasses.asdict(config), "k": list(ks)},
        replicates=count, seconds=time.perf_counter() - start)


def to_json_dict(result: VarianceResult) -> dict:
    """The result as the CLI writes it: plain lists, keyed by estimator name and parameter."""

    def lists(d):
        return {est: {p: np.asarray(v).tolist() for p, v in per.items()} for est, per in d.items()}

    return {
        "k": result.k.tolist(),
        "variance": lists(result.variance),
        "mean": lists(result.mean),
        "mean_stderr": lists(result.mean_stderr),
        "exact": {p: np.asarray(v).tolist() for p, v in result.exact.items()},
        "config": result.config,
        "replicates": result.replicates,
        "elapsed_s": result.seconds,
    }
