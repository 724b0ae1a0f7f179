"""The compiled training core and the ``Run``.

A *chunk* is up to ``CHUNK_STEPS`` optimisation steps in one XLA-compiled ``tf.while_loop``
that writes every step's telemetry in-graph. One compiled function exists per *structural*
choice (model, family, parameterization, estimator, optimizer, sample count, replicate count);
everything numeric (parameters, optimizer state, learning rate, schedule, seed, variance
cadence, data, number of steps) is a tensor argument, so changing it never retraces, and the
function captures no variables, so one compiled function is shared by every browser session.

Randomness is stateless: step t draws with ``fold_in(seed, t)``, so a run is reproducible bit
for bit on one machine and does not depend on how it was cut into chunks.

Guard rails: before any value reaches a sampler it is checked finite and inside its support.
A non-finite ELBO, gradient or parameter ends the chunk at that step with the step, the
quantity and the parameter recorded, and the last finite state kept (XLA's Gamma sampler loops
forever on an infinite concentration, so an unguarded step would hang the whole app).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import NamedTuple, Optional

import numpy as np
from vizvi._tf import tf
import tensorflow_probability as tfp

from vizvi import diagnostics
from vizvi.errors import ConfigError
from vizvi.estimators import ESTIMATORS, EstimatorName, check_estimator, elbo_and_grad, parse_estimator
from vizvi.families import Family, get_family, resolve_init
from vizvi.history import History
from vizvi.models import Model, get_model, load_dataset
from vizvi.optimizers import DEFAULT_LR, OptimizerName, StepInfo, make_optimizer, parse_optimizer
from vizvi.parameterizations import DTYPE, ParameterMap, parse_parameterization

tfd = tfp.distributions

# The most steps one compiled call takes (its telemetry buffers' length). Callers pass fewer
# at will (a tensor argument: no retrace); fast targets such as banana run ~1.8x faster in
# chunks of 8192 than of 1024, since each call costs fixed Python and runtime overhead.
CHUNK_STEPS = 8192
SCHEDULES = {"constant": 0, "robbins-monro": 1}
# Robbins-Monro schedule lr_t = lr * (1 + t / TAU)^-KAPPA: with 0.5 < KAPPA <= 1 the steps sum to
# infinity while their squares do not, the condition for SGD to converge.
RM_TAU, RM_KAPPA = 100.0, 0.6
MAX_SAMPLES = 4096
MAX_REPLICATES = 256
MAX_SAMPLE_ELEMENTS = 20_000_000  # samples x replicates x per-sample data work, a memory-safe cap
MAX_LR = 1e6
MAX_STEPS = 1_000_000_000
DIVERGED_WHAT = {1: "ELBO", 2: "gradient", 3: "parameter"}


@dataclasses.dataclass
class RunConfig:
    """Every setting of a run; ``None`` fields take the documented defaults."""

    model: str = "poisson-gamma"
    family: Optional[str] = None
    parameterization: str = "softplus"
    init: Optional[str] = None
    estimator: str = "pathwise"
    samples: int = 16
    optimizer: str = "adam"
    lr: Optional[float] = None
    schedule: str = "constant"
    steps: int = 2000
    seed: int = 0
    n: Optional[int] = None
    data: Optional[str] = None
    variance_every: int = 100
    replicates: int = 16

    def filled(self, model: Model) -> "RunConfig":
        """A copy with every default filled in (family, lr, n)."""
        c = dataclasses.replace(self)
        if c.family is None:
            c.family = model.default_family
        if c.lr is None:
            c.lr = DEFAULT_LR[parse_optimizer(c.optimizer)]
        if c.n is None and c.data is None:
            c.n = model.default_n
        return c

    def to_dict(self) -> dict:
        """Plain dict of the settings."""
        return dataclasses.asdict(self)


def _check_number(name, value, lo, hi, integer=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(name, f"{value!r} is not a number") from None
    if not np.isfinite(v):
        raise ConfigError(name, f"{value!r} is not a finite number")
    if integer and v != int(v):
        raise ConfigError(name, f"{value!r} is not a whole number")
    if not lo <= v <= hi:
        raise ConfigError(name, f"{value!r} is out of range [{lo:g}, {hi:g}]")
    return int(v) if integer else v


def validate(config: RunConfig):
    """Check every setting; return (filled config, model, family, param map, estimator, optimizer name)."""
    model = get_model(config.model)
    config = config.filled(model)
    family = get_family(config.family, model)
    param_map = ParameterMap(family.constraints, parse_parameterization(config.parameterization))
    estimator = parse_estimator(config.estimator)
    optimizer = parse_optimizer(config.optimizer)
    config.samples = _check_number("samples", config.samples, 1, MAX_SAMPLES, integer=True)
    config.replicates = _check_number("replicates", config.replicates, 2, MAX_REPLICATES, integer=True)
    config.variance_every = _check_number("variance-every", config.variance_every, 0, MAX_STEPS, integer=True)
    config.steps = _check_number("steps", config.steps, 0, MAX_STEPS, integer=True)
    config.seed = _check_number("seed", config.seed, 0, 2**31 - 1, integer=True)
    lr = _check_number("lr", config.lr, 0, MAX_LR)
    if lr <= 0:
        raise ConfigError("lr", f"learning rate must be positive, got {config.lr!r}")
    config.lr = lr
    if config.schedule not in SCHEDULES:
        raise ConfigError("schedule", f"unknown schedule {config.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    if config.n is not None and config.data is None and model.csv_columns:
        config.n = _check_number("n", config.n, 1, 10_000_000, integer=True)
    check_estimator(estimator, family, config.samples)
    if optimizer is OptimizerName.NATURAL and not hasattr(family, "mean_params"):
        raise ConfigError("optimizer", f"natural gradients need an exponential family; {family.name!r} is not one")
    per_sample = max(1, config.n or 1) if model.name == "logistic-regression" else 1
    if config.samples * config.replicates * per_sample > MAX_SAMPLE_ELEMENTS:
        raise ConfigError(
            "samples",
            f"{config.samples} samples x {config.replicates} replicates x {per_sample} observations exceeds the memory-safe cap "
            f"of {MAX_SAMPLE_ELEMENTS:,} per step; lower samples or replicates",
        )
    return config, model, family, param_map, estimator, optimizer


class EngineState(NamedTuple):
    """Everything a chunk carries from one step to the next."""

    u: tf.Tensor  # unconstrained parameters [D]
    opt_state: tuple  # the optimizer's NamedTuple state
    step: tf.Tensor  # int64: steps taken so far
    projections: tf.Tensor  # int64 [D]: cumulative projections back into the support


class Telemetry(NamedTuple):
    """Per-step records of one chunk; every field has CHUNK_STEPS rows, the first ``count`` valid."""

    step: tf.Tensor  # [K] int64, the step number after the update (1-based)
    elbo: tf.Tensor  # [K] ELBO estimate at the parameters before the update
    kl: tf.Tensor  # [K] analytic KL(q || exact posterior) before the update, NaN when unknown
    lr: tf.Tensor  # [K] learning rate used
    theta: tf.Tensor  # [K, D] constrained parameters after the update
    u: tf.Tensor  # [K, D] unconstrained parameters after the update
    grad: tf.Tensor  # [K, D] d ELBO / d u: the gradient the update used
    grad_theta: tf.Tensor  # [K, D] d ELBO / d theta (constrained units)
    update: tf.Tensor  # [K, D] the change in u
    has_variance: tf.Tensor  # [K] bool: variance measured at this step
    grad_variance: tf.Tensor  # [K, D] variance of a single gradient estimate (w.r.t. u)
    grad_snr: tf.Tensor  # [K, D] |mean| / sd of a single gradient estimate


class ChunkInfo(NamedTuple):
    """How a chunk ended."""

    count: tf.Tensor  # steps completed
    diverged_what: tf.Tensor  # 0 none, 1 ELBO, 2 gradient, 3 parameter
    diverged_index: tf.Tensor  # parameter index (for gradient / parameter)
    diverged_value: tf.Tensor  # the offending value


class StructuralKey(NamedTuple):
    """The choices that change the compiled program; all else is a tensor argument."""

    model: str
    family: str
    parameterization: str
    estimator: str
    optimizer: str
    samples: int
    replicates: int


def _kl_fn(model: Model, family: Family):
    """Analytic KL(q || exact posterior) in-graph when TFP has it registered, else None."""
    try:
        dummy_data = _dummy_data(model)
        post = model.exact_posterior(dummy_data)
        if post is None:
            return None
        tfd.kl_divergence(family.build(tf.constant(family.defaults, DTYPE)), post)
    except NotImplementedError:
        return None

    def kl(theta, data):
        return tfd.kl_divergence(family.build(theta), model.exact_posterior(data))

    return kl


def _dummy_data(model: Model) -> dict:
    return model.data_tensors(model.simulate(4, 0) if model.csv_columns else model.simulate(None, 0))


def build_chunk_fn(key: StructuralKey, jit: bool = True, chunk_steps: int = CHUNK_STEPS):
    """Trace-once, XLA-compiled chunk of steps for one structural choice.

    Returns ``(chunk, optimizer)``. With ``jit=False`` the chunk is the plain Python function
    (eager when called eagerly): the tests use it to run every combination of choices without
    paying an XLA compile for each; the compiled path is the same code.
    """
    model = get_model(key.model)
    family = get_family(key.family, model)
    param_map = ParameterMap(family.constraints, parse_parameterization(key.parameterization))
    estimator = EstimatorName(key.estimator)
    optimizer = make_optimizer(OptimizerName(key.optimizer), family, param_map)
    kl_fn = _kl_fn(model, family)
    samples, replicates, dim = key.samples, key.replicates, family.size

    def chunk(state: EngineState, seed, lr, schedule_id, variance_every, num_steps, data):
        def ta(dtype, shape=()):
            return tf.TensorArray(dtype, size=chunk_steps, element_shape=shape)

        tel0 = Telemetry(
            ta(tf.int64), ta(DTYPE), ta(DTYPE), ta(DTYPE), ta(DTYPE, [dim]), ta(DTYPE, [dim]), ta(DTYPE, [dim]),
            ta(DTYPE, [dim]), ta(DTYPE, [dim]), ta(tf.bool), ta(DTYPE, [dim]), ta(DTYPE, [dim]),
        )
        zero_i, zero_f = tf.constant(0, tf.int32), tf.constant(0.0, DTYPE)

        def cond(i, st, tel, what, idx, val):
            return tf.logical_and(i < num_steps, tf.equal(what, 0))

        def body(i, st, tel, what, idx, val):
            theta = param_map.constrain(st.u)
            step_seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(st.step, tf.int32))
            elbo, g_theta = elbo_and_grad(estimator, family, model, theta[None], data, step_seed, samples)
            elbo, g_theta = elbo[0], g_theta[0]
            dtheta_du = param_map.dtheta_du(st.u)
            g_u = g_theta * dtheta_du
            kl = kl_fn(theta, data) if kl_fn is not None else tf.constant(np.nan, DTYPE)
            t = tf.cast(st.step, DTYPE)
            lr_t = tf.where(tf.equal(schedule_id, 1), lr * tf.pow(1.0 + t / RM_TAU, -RM_KAPPA), lr)
            updates, opt_new = optimizer.update(-g_u, st.opt_state, st.u, lr_t, StepInfo(theta, g_theta))
            u_new, projected = param_map.project(st.u + updates)
            theta_new = param_map.constrain(u_new)

            bad_grad = ~tf.math.is_finite(g_u)
            bad_param = ~tf.logical_and(family.in_support(theta_new), tf.math.is_finite(u_new))
            new_what = tf.where(
                ~tf.math.is_finite(elbo), 1, tf.where(tf.reduce_any(bad_grad), 2, tf.where(tf.reduce_any(bad_param), 3, 0))
            )
            new_idx = tf.where(
                tf.equal(new_what, 2),
                tf.argmax(tf.cast(bad_grad, tf.int32), output_type=tf.int32),
                tf.argmax(tf.cast(bad_param, tf.int32), output_type=tf.int32),
            )
            new_val = tf.where(
                tf.equal(new_what, 1), elbo, tf.where(tf.equal(new_what, 2), tf.gather(g_u, new_idx), tf.gather(theta_new, new_idx))
            )
            ok = tf.equal(new_what, 0)

            def variance():
                # R independent single-estimate gradients at the current q, one batched call.
                rep_seed = tf.random.experimental.stateless_fold_in(step_seed, 1)
                theta_rep = tf.tile(theta[None], [replicates, 1])
                _, g_rep = elbo_and_grad(estimator, family, model, theta_rep, data, rep_seed, samples)
                g_rep = g_rep * dtheta_du
                mean = tf.reduce_mean(g_rep, axis=0)
                var = tf.reduce_sum(tf.square(g_rep - mean), axis=0) / (replicates - 1.0)
                return var, tf.abs(mean) / tf.sqrt(var)

            do_var = tf.logical_and(ok, tf.logical_and(variance_every > 0, tf.equal(st.step % tf.cast(tf.maximum(variance_every, 1), tf.int64), 0)))
            nan_d = tf.fill([dim], tf.constant(np.nan, DTYPE))
            var, snr = tf.cond(do_var, variance, lambda: (nan_d, nan_d))

            # On a fault nothing is committed: the state and telemetry keep the last finite step.
            new_state = EngineState(
                tf.where(ok, u_new, st.u),
                tf.nest.map_structure(lambda a, b: tf.where(ok, a, b), opt_new, st.opt_state),
                st.step + tf.cast(ok, tf.int64),
                st.projections + tf.cast(tf.logical_and(ok, projected), tf.int64),
            )
            write = lambda arr, v: arr.write(i, v)  # noqa: E731
            tel = Telemetry(*[
                write(a, v) for a, v in zip(tel, (st.step + 1, elbo, kl, lr_t, theta_new, u_new, g_u, g_theta, u_new - st.u, do_var, var, snr))
            ])
            return i + tf.cast(ok, tf.int32), new_state, tel, new_what, new_idx, new_val

        i, st, tel, what, idx, val = tf.while_loop(
            cond, body, (zero_i, state, tel0, tf.constant(0, tf.int32), zero_i, zero_f), maximum_iterations=chunk_steps
        )
        return st, Telemetry(*[a.stack() for a in tel]), ChunkInfo(i, what, idx, val)

    if not jit:
        return chunk, optimizer
    # A fixed signature with every data dimension unknown: a new data set, sample size, seed,
    # learning rate or initial value is a new argument value, never a new trace. (XLA still
    # specialises its machine code per concrete data shape, inside the one trace.)
    u0 = tf.constant(family.defaults, DTYPE)
    state_spec = tf.nest.map_structure(
        tf.TensorSpec.from_tensor, EngineState(u0, optimizer.init(u0), tf.constant(0, tf.int64), tf.zeros([dim], tf.int64))
    )
    data_spec = {k: tf.TensorSpec([None] * v.shape.rank, v.dtype) for k, v in _dummy_data(model).items()}
    signature = [
        state_spec,
        tf.TensorSpec([2], tf.int32),
        tf.TensorSpec([], DTYPE),
        tf.TensorSpec([], tf.int32),
        tf.TensorSpec([], tf.int64),
        tf.TensorSpec([], tf.int32),
        data_spec,
    ]
    fn = tf.function(chunk, jit_compile=True, input_signature=signature)
    return fn, optimizer


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def get_chunk_fn(key: StructuralKey):
    """The shared compiled chunk function (and optimizer) for ``key``; built once per process."""
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = build_chunk_fn(key)
        return _CACHE[key]


class Run:
    """One variational-inference run: its settings, state, history and status.

    ``advance(n)`` runs n more steps through the shared compiled chunk function. Numeric
    settings may change between calls (``update_settings``); the change is recorded as an event
    so charts can mark it. Status is ``ready``, ``running``, ``finished`` or ``diverged``.
    """

    def __init__(self, config: RunConfig, dataset=None, csv_text: Optional[str] = None):
        self.config, self.model, self.family, self.param_map, self.estimator, self.optimizer_name = validate(config)
        c = self.config
        self.dataset = dataset or load_dataset(self.model, c.n, c.seed, csv_path=c.data, csv_text=csv_text)
        if self.dataset.n and c.data is not None:
            c.n = self.dataset.n
        self.data = self.model.data_tensors(self.dataset)
        self.reference = self.model.reference(self.data)
        self.optimum = self.family.optimum(self.reference)
        theta0 = resolve_init(self.family, self.model, self.data, c.init, c.seed)
        self.theta0 = theta0
        u0 = self.param_map.unconstrain(theta0)
        self._fn, optimizer = get_chunk_fn(self._key())
        self.state = EngineState(u0, optimizer.init(u0), tf.constant(0, tf.int64), tf.zeros([self.family.size], tf.int64))
        self.history = History(self.family.param_names)
        self.events: list = []
        self.status = "ready"
        self.divergence: Optional[dict] = None
        self.compute_s = 0.0
        self.compile_s = 0.0
        self.settings_version = 0
        self._theta_cache = (None, None)
        self._kl = _kl_fn(self.model, self.family)
        self.kl_kind = "analytic" if self._kl is not None else (
            "log evidence - ELBO estimate" if self.reference.kind == "exact" else None)

    # -- structure ------------------------------------------------------------------------
    def _key(self) -> StructuralKey:
        c = self.config
        return StructuralKey(c.model, c.family, c.parameterization, c.estimator, c.optimizer, c.samples, c.replicates)

    @property
    def step(self) -> int:
        """Steps taken so far."""
        return int(self.state.step.numpy())

    @property
    def theta(self) -> np.ndarray:
        """Current constrained parameters."""
        # Cached per u (commit_chunk stores the chunk's last theta): the page reads it several
        # times per update, and an eager bijector call both costs milliseconds of interpreter
        # time and is unsafe beside a trainer thread (TFP's bijector cache is not thread-safe:
        # concurrent calls corrupt it). One tuple, read and replaced whole.
        u, (cached_for, theta) = self.state.u, self._theta_cache
        if cached_for is not u:
            theta = self.param_map.constrain(u).numpy()
            self._theta_cache = (u, theta)
        return theta.copy()

    def params(self) -> dict:
        """Current constrained parameters by name."""
        return dict(zip(self.family.param_names, self.theta.tolist()))

    def update_settings(self, **changes) -> list:
        """Change numeric settings mid-run (lr, schedule, estimator, optimizer, samples,
        variance_every, replicates); applies from the next step and returns the events recorded.
        Structural settings (model, family, parameterization, data) need a new Run."""
        allowed = {"lr", "schedule", "estimator", "optimizer", "samples", "variance_every", "replicates", "steps"}
        unknown = set(changes) - allowed
        if unknown:
            raise ConfigError(sorted(unknown)[0], "this setting changes the run's structure; reset the run to change it")
        new = dataclasses.replace(self.config, **{k: v for k, v in changes.items() if v is not None})
        if "optimizer" in changes and "lr" not in changes and changes["optimizer"] != self.config.optimizer:
            new.lr = DEFAULT_LR[parse_optimizer(changes["optimizer"])]
        new, *_ = validate(new)
        events = []
        for k in sorted(allowed):
            old_v, new_v = getattr(self.config, k), getattr(new, k)
            if old_v != new_v:
                events.append({"step": self.step, "setting": k.replace("_", "-"), "from": old_v, "to": new_v})
        if not events:
            return []
        old_optimizer = self.config.optimizer
        self.config = new
        self.estimator = EstimatorName(new.estimator)
        self.optimizer_name = OptimizerName(new.optimizer)
        self._fn, optimizer = get_chunk_fn(self._key())
        if new.optimizer != old_optimizer:
            self.state = self.state._replace(opt_state=optimizer.init(self.state.u))
        self.events.extend(events)
        self.settings_version += 1
        return events

    # -- running --------------------------------------------------------------------------
    def _call(self, num_steps: int):
        c = self.config
        return self._fn(
            self.state,
            tf.constant([c.seed, 0], tf.int32),
            tf.constant(c.lr, DTYPE),
            tf.constant(SCHEDULES[c.schedule], tf.int32),
            tf.constant(c.variance_every, tf.int64),
            tf.constant(num_steps, tf.int32),
            self.data,
        )

    def compile(self) -> float:
        """Compile (or fetch) the chunk function by running zero steps; returns seconds spent."""
        t0 = time.perf_counter()
        self._call(0)
        dt = time.perf_counter() - t0
        self.compile_s += dt
        return dt

    def compute_chunk(self, num_steps: int):
        """Run up to ``min(num_steps, CHUNK_STEPS)`` steps from the current state without
        changing the Run; returns the pending result for ``commit_chunk``. (A trainer thread
        computes outside its lock and commits under it.)"""
        version = self.settings_version
        t0 = time.perf_counter()
        out = self._call(min(CHUNK_STEPS, num_steps))
        count = int(out[2].count.numpy())
        return version, out, count, time.perf_counter() - t0

    def commit_chunk(self, pending) -> int:
        """Apply a computed chunk; returns the steps taken (0 if settings changed meanwhile)."""
        version, (state, tel, info), count, seconds = pending
        if version != self.settings_version:
            return 0  # computed under settings that have since changed: drop it
        self.compute_s += seconds
        self.state = state
        if count:
            rows = {f: getattr(tel, f).numpy()[:count] for f in Telemetry._fields}
            self.history.append(rows)
            self._theta_cache = (state.u, rows["theta"][-1])  # the theta of the committed u
        what = int(info.diverged_what.numpy())
        if what:
            self._diverge(what, int(info.diverged_index.numpy()), float(info.diverged_value.numpy()))
        elif self.step >= self.config.steps:
            self.status = "finished"
        else:
            self.status = "running"
        return count

    def advance(self, num_steps: int) -> int:
        """Run up to ``num_steps`` more steps (never past ``config.steps``); returns how many."""
        done = 0
        while done < num_steps and self.status not in ("diverged", "finished"):
            want = min(num_steps - done, self.config.steps - self.step)
            if want <= 0:
                self.status = "finished"
                break
            done += self.commit_chunk(self.compute_chunk(want))
        return done

    def _diverge(self, what: int, index: int, value: float):
        step = self.step + 1
        name = self.family.param_names[index] if what in (2, 3) else None
        quantity = DIVERGED_WHAT[what]
        where = f"{quantity} of {name}" if name else quantity
        self.status = "diverged"
        self.divergence = {
            "step": step,
            "quantity": quantity,
            "parameter": name,
            "value": value,
            "message": f"diverged at step {step}: {where} became {value!r}; the last finite state (step {step - 1}) is kept. "
                       f"Lower the learning rate (now {self.config.lr:g}) or switch to a safer optimizer.",
        }

    def run(self, progress=None) -> "Run":
        """Run to ``config.steps`` (or divergence); ``progress(run)`` is called after each chunk."""
        self.compile()
        while self.status not in ("diverged", "finished"):
            self.advance(CHUNK_STEPS * 8)
            if progress:
                progress(self)
        return self

    # -- results --------------------------------------------------------------------------
    def kl_to_exact(self) -> Optional[float]:
        """KL(q || exact posterior) at the current parameters, analytic where registered."""
        if self._kl is None:
            return None
        return float(self._kl(tf.constant(self.theta, DTYPE), self.data).numpy())

    def diagnose(self) -> dict:
        """Per-parameter stall/convergence diagnosis (see ``vizvi.diagnostics``)."""
        return diagnostics.diagnose(self)

    def record(self) -> dict:
        """The run as the CLI's JSON schema."""
        from vizvi.history import to_record

        return to_record(self)
