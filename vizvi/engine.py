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
import enum
import functools
import threading
import time
from typing import Callable, NamedTuple, Optional

import numpy as np
from vizvi._tf import tf
import tensorflow_probability as tfp

from vizvi import diagnostics, optimizers, psis, schedules
from vizvi.errors import ConfigError
from vizvi.estimators import EstimatorName, check_estimator, elbo_and_grad
from vizvi.families import Family, explicit_init, get_family, init_from_prior, resolve_init
from vizvi.history import History
from vizvi.models import Model, get_model, load_dataset
from vizvi.optimizers import Optimizer, OptimizerName, UpdateInfo, make_optimizer
from vizvi.parameterizations import DTYPE, ParameterMap, parse_parameterization
from vizvi.settings import LIVE_SETTINGS, RUN_SETTINGS, SETTING, config_class
from vizvi.status import Status

tfd = tfp.distributions

# The most steps one compiled call takes (its telemetry buffers' length). Callers pass fewer
# at will (a tensor argument: no retrace); fast targets such as banana run ~1.8x faster in
# chunks of 8192 than of 1024, since each call costs fixed Python and runtime overhead.
CHUNK_STEPS = 8192
MAX_SAMPLE_ELEMENTS = 20_000_000  # samples x replicates x per-sample data work, a memory-safe cap


class Fault(enum.IntEnum):
    """Which quantity of a step was not finite (or left its support); NONE for a good step."""

    NONE = 0
    ELBO = 1
    GRADIENT = 2
    PARAMETER = 3

    @property
    def quantity(self) -> str:
        """The quantity's name in messages."""
        return {Fault.ELBO: "ELBO", Fault.GRADIENT: "gradient", Fault.PARAMETER: "parameter"}.get(self, "")

    @property
    def per_parameter(self) -> bool:
        """True when the fault is in one parameter's component (it has an index)."""
        return self in (Fault.GRADIENT, Fault.PARAMETER)


def _run_config_fill(self, model: Model) -> "RunConfig":
    """A copy with every default that depends on another choice filled in (family, lr, n)."""
    c = dataclasses.replace(self)
    if c.family is None:
        c.family = model.default_family
    if c.lr is None:
        c.lr = optimizers.default_lr(c.optimizer)
    if c.n is None and c.data is None:
        c.n = model.default_n
    return c


def _run_config_dict(self) -> dict:
    """Plain dict of the settings."""
    return dataclasses.asdict(self)


# Every setting of a run, one field per ``vizvi.settings`` entry; ``None`` fields take the
# documented defaults (``filled``).
RunConfig = config_class("RunConfig", RUN_SETTINGS, {"filled": _run_config_fill, "to_dict": _run_config_dict},
                         "Every setting of a run (one field per ``vizvi.settings.RUN_SETTINGS`` entry).")
RunConfig.__module__ = __name__


class StructuralKey(NamedTuple):
    """The choices that change the compiled program; all else is a tensor argument."""

    model: str
    family: str
    parameterization: str
    estimator: str
    optimizer: str
    samples: int
    replicates: int


@dataclasses.dataclass(frozen=True)
class Problem:
    """A structural choice resolved to the objects a step computes with."""

    model: Model
    family: Family
    param_map: ParameterMap
    estimator: EstimatorName
    optimizer: Optimizer
    kl: Optional[Callable]  # (theta, data) -> KL(q || exact posterior), None where TFP has none
    samples: int
    replicates: int


def make_problem(key: StructuralKey) -> Problem:
    """The Problem a structural key names (the choices are assumed validated)."""
    model = get_model(key.model)
    family = get_family(key.family, model)
    param_map = ParameterMap(family.constraints, parse_parameterization(key.parameterization))
    optimizer = make_optimizer(OptimizerName(key.optimizer), family, param_map)
    return Problem(model, family, param_map, EstimatorName(key.estimator), optimizer, _kl_fn(model, family),
                   key.samples, key.replicates)


def validate(config: RunConfig) -> RunConfig:
    """Every setting checked (registry ranges and choices, then the ones that depend on each
    other); returns the filled, validated copy. Raises ConfigError naming the setting."""
    model = get_model(SETTING["model"].check(config.model))
    config = config.filled(model)
    for s in RUN_SETTINGS:
        value = getattr(config, s.name)
        if value is not None and s.applies(model) and not (s.name == "n" and config.data is not None):
            setattr(config, s.name, s.check(value))
    family = get_family(config.family, model)
    if not init_from_prior(config.init):
        explicit_init(family, config.init)  # named now, not after the data and reference are made
    check_estimator(EstimatorName(config.estimator), family, config.samples)
    if optimizers.spec(config.optimizer).natural and not family.exponential_family:
        raise ConfigError("optimizer", f"natural gradients need an exponential family; {family.name!r} is not one")
    per_sample = model.cost_per_sample(config.n)
    if config.samples * config.replicates * per_sample > MAX_SAMPLE_ELEMENTS:
        raise ConfigError(
            "samples",
            f"{config.samples} samples x {config.replicates} replicates x {per_sample} observations exceeds the memory-safe cap "
            f"of {MAX_SAMPLE_ELEMENTS:,} per step; lower samples or replicates",
        )
    return config


class EngineState(NamedTuple):
    """Everything a chunk carries from one step to the next."""

    u: tf.Tensor  # unconstrained parameters [D]
    opt_state: tuple  # the optimizer's NamedTuple state
    step: tf.Tensor  # int64: steps taken so far
    projections: tf.Tensor  # int64 [D]: cumulative projections back into the support


class StepInputs(NamedTuple):
    """Everything numeric a step takes besides its state: tensors, so a change never retraces."""

    seed: tf.Tensor  # [2] int32, the run's seed; step t draws with fold_in(seed, t)
    lr: tf.Tensor  # base learning rate
    schedule: tf.Tensor  # int32 index into ``schedules.SCHEDULES``
    variance_every: tf.Tensor  # int64: measure the estimator's variance every K steps (0: never)
    data: dict  # the model's data tensors


class StepInfo(NamedTuple):
    """What one step did: its telemetry (every ``Telemetry`` field) and whether it faulted."""

    step: tf.Tensor  # int64, the step number after the update (1-based)
    elbo: tf.Tensor  # ELBO estimate at the parameters before the update
    kl: tf.Tensor  # analytic KL(q || exact posterior) before the update, NaN when unknown
    lr: tf.Tensor  # learning rate used
    theta: tf.Tensor  # [D] constrained parameters after the update
    u: tf.Tensor  # [D] unconstrained parameters after the update
    grad: tf.Tensor  # [D] d ELBO / d u: the gradient the update used
    grad_theta: tf.Tensor  # [D] d ELBO / d theta (constrained units)
    update: tf.Tensor  # [D] the change in u
    has_variance: tf.Tensor  # bool: variance measured at this step
    grad_variance: tf.Tensor  # [D] variance of a single gradient estimate (w.r.t. u)
    grad_snr: tf.Tensor  # [D] |mean| / sd of a single gradient estimate
    khat: tf.Tensor  # PSIS k-hat of q against the target (``vizvi.psis``), NaN between measurements
    fault: tf.Tensor  # int32 ``Fault``; the state was not advanced unless NONE
    fault_index: tf.Tensor  # int32 parameter index of a per-parameter fault
    fault_value: tf.Tensor  # the offending value


# Per-step records of one chunk: the StepInfo fields a chart or the history reads, each with
# CHUNK_STEPS rows, the first ``ChunkInfo.count`` valid.
Telemetry = NamedTuple("Telemetry", [(f, tf.Tensor) for f in StepInfo._fields if not f.startswith("fault")])
Telemetry.__doc__ = "Per-step records of one chunk (StepInfo's telemetry fields, CHUNK_STEPS rows each)."


class ChunkInfo(NamedTuple):
    """How a chunk ended."""

    count: tf.Tensor  # steps completed
    fault: tf.Tensor  # ``Fault`` of the step that ended the chunk (NONE if it ran its steps)
    fault_index: tf.Tensor  # parameter index (per-parameter faults)
    fault_value: tf.Tensor  # the offending value


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


def _first_fault(elbo, g_u, theta_new, u_new, family):
    """(Fault, index, value) of a step's first non-finite quantity: ELBO, then gradient, then parameter."""
    bad_grad = ~tf.math.is_finite(g_u)
    bad_param = ~tf.logical_and(family.in_support(theta_new), tf.math.is_finite(u_new))
    fault = tf.where(~tf.math.is_finite(elbo), int(Fault.ELBO),
                     tf.where(tf.reduce_any(bad_grad), int(Fault.GRADIENT),
                              tf.where(tf.reduce_any(bad_param), int(Fault.PARAMETER), int(Fault.NONE))))
    index = tf.where(tf.equal(fault, int(Fault.GRADIENT)),
                     tf.argmax(tf.cast(bad_grad, tf.int32), output_type=tf.int32),
                     tf.argmax(tf.cast(bad_param, tf.int32), output_type=tf.int32))
    value = tf.where(tf.equal(fault, int(Fault.ELBO)), elbo,
                     tf.where(tf.equal(fault, int(Fault.GRADIENT)), tf.gather(g_u, index), tf.gather(theta_new, index)))
    return fault, index, value


def _measurements(problem: Problem, theta, dtheta_du, data, seed):
    """What is measured every K steps at theta: the variance and signal-to-noise of one gradient
    estimate (w.r.t. u), from R independent estimates in one batched call, and the PSIS k-hat
    of q from ``KHAT_DRAWS`` draws."""
    r = problem.replicates
    grad_seed, khat_seed = tfp.random.split_seed(seed, 2)
    _, g_rep = elbo_and_grad(problem.estimator, problem.family, problem.model, tf.tile(theta[None], [r, 1]), data,
                             grad_seed, problem.samples)
    g_rep = g_rep * dtheta_du
    mean = tf.reduce_mean(g_rep, axis=0)
    var = tf.reduce_sum(tf.square(g_rep - mean), axis=0) / (r - 1.0)
    q = problem.family.build(theta)
    z = tf.stop_gradient(q.sample(psis.KHAT_DRAWS, seed=khat_seed))
    khat = psis.pareto_khat(problem.model.log_joint(z, data) - q.log_prob(z))
    return var, tf.abs(mean) / tf.sqrt(var), khat


def variance_due(step_count, every):
    """True at the steps where the estimator's variance is measured: every ``every`` steps (0: never)."""
    return tf.logical_and(every > 0, tf.equal(step_count % tf.maximum(every, 1), 0))


def step(problem: Problem, state: EngineState, inputs: StepInputs, variance_gate=None):
    """One optimisation step: ``(state, inputs) -> (new state, StepInfo)``.

    Draws with ``fold_in(seed, state.step)``, so a step is a pure function of its arguments.
    Before any value reaches a sampler it is checked finite and inside its support: on a fault
    the returned state is ``state`` unchanged (nothing is committed) and ``StepInfo.fault`` says
    which quantity failed.

    ``variance_gate``: for a step vectorized over a batch of runs (``vizvi.compare``), a scalar
    saying whether ANY member measures its variance now. The branch is then taken on it (one
    predicate for the whole batch: a per-member predicate would make ``tf.vectorized_map``
    split the batch, which XLA cannot compile) and each member keeps the measurement only when
    due for itself, so its numbers are those of the run alone.
    """
    family, param_map, data = problem.family, problem.param_map, inputs.data
    theta = param_map.constrain(state.u)
    step_seed = tf.random.experimental.stateless_fold_in(inputs.seed, tf.cast(state.step, tf.int32))
    elbo, g_theta = elbo_and_grad(problem.estimator, family, problem.model, theta[None], data, step_seed, problem.samples)
    elbo, g_theta = elbo[0], g_theta[0]
    dtheta_du = param_map.dtheta_du(state.u)
    g_u = g_theta * dtheta_du
    kl = problem.kl(theta, data) if problem.kl is not None else tf.constant(np.nan, DTYPE)
    lr_t = schedules.learning_rate(inputs.schedule, inputs.lr, tf.cast(state.step, DTYPE))
    updates, opt_new = problem.optimizer.update(-g_u, state.opt_state, state.u, lr_t, UpdateInfo(theta, g_theta))
    u_new, projected = param_map.project(state.u + updates)
    theta_new = param_map.constrain(u_new)
    fault, fault_index, fault_value = _first_fault(elbo, g_u, theta_new, u_new, family)
    ok = tf.equal(fault, int(Fault.NONE))

    do_var = tf.logical_and(ok, variance_due(state.step, inputs.variance_every))
    nan_d = tf.fill([family.size], tf.constant(np.nan, DTYPE))
    nan = tf.constant(np.nan, DTYPE)
    var_seed = tf.random.experimental.stateless_fold_in(step_seed, 1)
    var, snr, khat = tf.cond(do_var if variance_gate is None else variance_gate,
                             lambda: _measurements(problem, theta, dtheta_du, data, var_seed), lambda: (nan_d, nan_d, nan))
    if variance_gate is not None:
        var, snr, khat = tf.where(do_var, var, nan_d), tf.where(do_var, snr, nan_d), tf.where(do_var, khat, nan)

    new_state = EngineState(
        tf.where(ok, u_new, state.u),
        tf.nest.map_structure(lambda a, b: tf.where(ok, a, b), opt_new, state.opt_state),
        state.step + tf.cast(ok, tf.int64),
        state.projections + tf.cast(tf.logical_and(ok, projected), tf.int64),
    )
    info = StepInfo(state.step + 1, elbo, kl, lr_t, theta_new, u_new, g_u, g_theta, u_new - state.u, do_var, var, snr,
                    khat, fault, fault_index, fault_value)
    return new_state, info


_PER_PARAMETER = {"theta", "u", "grad", "grad_theta", "update", "grad_variance", "grad_snr"}  # [D] fields of StepInfo
_NOT_FLOAT = {"step": tf.int64, "has_variance": tf.bool, "fault": tf.int32, "fault_index": tf.int32}


def step_info_signature(problem: Problem) -> StepInfo:
    """The ``StepInfo`` a step of ``problem`` returns, as TensorSpecs."""
    dim = problem.family.size
    return StepInfo(*[tf.TensorSpec([dim] if f in _PER_PARAMETER else [], _NOT_FLOAT.get(f, DTYPE))
                      for f in StepInfo._fields])


def telemetry_buffers(problem: Problem, chunk_steps: int, batch: tuple = ()) -> Telemetry:
    """Empty per-step buffers of a chunk: one TensorArray per Telemetry field, rows of shape
    ``batch`` + the field's shape (``batch`` is the number of runs stepped together, if any)."""
    spec = step_info_signature(problem)
    return Telemetry(*[tf.TensorArray(getattr(spec, f).dtype, size=chunk_steps,
                                      element_shape=list(batch) + getattr(spec, f).shape.as_list())
                       for f in Telemetry._fields])


def chunk(problem: Problem, state: EngineState, inputs: StepInputs, num_steps, chunk_steps: int = CHUNK_STEPS):
    """Up to ``num_steps`` (<= ``chunk_steps``) steps in one ``tf.while_loop`` over ``step``,
    stopping at a fault; returns ``(state, Telemetry, ChunkInfo)``."""
    buffers = telemetry_buffers(problem, chunk_steps)
    zero = tf.constant(0, tf.int32)

    def cond(i, st, tel, fault, index, value):
        return tf.logical_and(i < num_steps, tf.equal(fault, int(Fault.NONE)))

    def body(i, st, tel, fault, index, value):
        st, info = step(problem, st, inputs)
        tel = Telemetry(*[buf.write(i, getattr(info, f)) for buf, f in zip(tel, Telemetry._fields)])
        ok = tf.equal(info.fault, int(Fault.NONE))
        return i + tf.cast(ok, tf.int32), st, tel, info.fault, info.fault_index, info.fault_value

    i, st, tel, fault, index, value = tf.while_loop(
        cond, body, (zero, state, buffers, zero, zero, tf.constant(0.0, DTYPE)), maximum_iterations=chunk_steps)
    return st, Telemetry(*[buf.stack() for buf in tel]), ChunkInfo(i, fault, index, value)


def initial_state(problem: Problem, u0) -> EngineState:
    """The state before step 1 at unconstrained parameters ``u0``."""
    u0 = tf.convert_to_tensor(u0, DTYPE)
    return EngineState(u0, problem.optimizer.init(u0), tf.constant(0, tf.int64), tf.zeros([problem.family.size], tf.int64))


def build_chunk_fn(key: StructuralKey, jit: bool = True, chunk_steps: int = CHUNK_STEPS):
    """Trace-once, XLA-compiled ``chunk(state, inputs, num_steps)`` for one structural choice.

    Returns ``(chunk, optimizer)``. With ``jit=False`` the chunk is the plain Python function
    (eager when called eagerly): the tests use it to run every combination of choices without
    paying an XLA compile for each; the compiled path is the same code.
    """
    problem = make_problem(key)
    fn = functools.partial(chunk, problem, chunk_steps=chunk_steps)
    if not jit:
        return fn, problem.optimizer
    state_spec, inputs_spec = chunk_signature(problem)
    signature = [state_spec, inputs_spec, tf.TensorSpec([], tf.int32)]
    # No AutoGraph: the loop and branches are written with tf.while_loop / tf.cond already, and
    # converting every function the step calls (TFP's included) is slow, very slow beside a busy
    # page (minutes for a race of estimators, see ``vizvi.race``).
    return tf.function(lambda state, inputs, num_steps: fn(state, inputs, num_steps), jit_compile=True, autograph=False,
                       input_signature=signature), problem.optimizer


def chunk_signature(problem: Problem):
    """(state spec, inputs spec) of a compiled chunk's arguments for ``problem``.

    A fixed signature with every data dimension unknown: a new data set, sample size, seed,
    learning rate or initial value is a new argument value, never a new trace. (XLA still
    specialises its machine code per concrete data shape, inside the one trace.)
    """
    state_spec = tf.nest.map_structure(tf.TensorSpec.from_tensor, initial_state(problem, problem.family.defaults))
    data_spec = {k: tf.TensorSpec([None] * v.shape.rank, v.dtype) for k, v in _dummy_data(problem.model).items()}
    inputs_spec = StepInputs(tf.TensorSpec([2], tf.int32), tf.TensorSpec([], DTYPE), tf.TensorSpec([], tf.int32),
                             tf.TensorSpec([], tf.int64), data_spec)
    return state_spec, inputs_spec


def built_once(build: Callable) -> Callable:
    """``build(key)`` memoised for the process: one compiled function per key, shared by every
    session (it holds no per-user state). Under a lock, so a second caller waits for the first
    build rather than compiling the same program again."""
    cache: dict = {}
    lock = threading.Lock()

    def get(key):
        with lock:
            if key not in cache:
                cache[key] = build(key)
            return cache[key]

    get.__doc__ = f"``{build.__name__}(key)``, built once per process and shared."
    return get


get_chunk_fn = built_once(build_chunk_fn)  # (compiled chunk, optimizer) per StructuralKey


def build_graph_chunk_fn(key: StructuralKey, chunk_steps: int = CHUNK_STEPS):
    """``chunk(state, inputs, num_steps)`` as a TensorFlow graph without XLA, for previews.

    Traced in about a second where the XLA build of the same program takes three to six, and
    about five times slower per step once built: a run started before its compiled program is
    ready takes its first steps with this (``Run.compute_chunk(preview=True)``). Its random
    draws differ from the compiled program's (XLA has its own samplers), so those steps are
    recomputed with the compiled program when it is ready (``Run.recomputed``).
    """
    problem = make_problem(key)
    fn = functools.partial(chunk, problem, chunk_steps=chunk_steps)
    state_spec, inputs_spec = chunk_signature(problem)
    signature = [state_spec, inputs_spec, tf.TensorSpec([], tf.int32)]
    return tf.function(lambda state, inputs, num_steps: fn(state, inputs, num_steps), autograph=False,
                       input_signature=signature)


get_graph_chunk_fn = built_once(build_graph_chunk_fn)  # the uncompiled preview program per StructuralKey


class CompiledPrograms:
    """Which programs this process has built with XLA, and how long builds take here.

    XLA specialises its machine code per concrete data shape inside one trace, so a program is
    known by its structural key and its data's shapes (``Run.program``). Process-wide and
    shared by every session: it holds no per-user state.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._built: set = set()
        self._seconds: list = []

    def built(self, program) -> bool:
        """Whether ``program`` has been built (a call of it starts at once)."""
        with self._lock:
            return program in self._built

    def add(self, program, seconds: float) -> None:
        """Record that ``program`` was built, in ``seconds`` (the first build only)."""
        with self._lock:
            if program not in self._built:
                self._built.add(program)
                self._seconds.append(seconds)

    def typical_seconds(self) -> Optional[float]:
        """The median build time seen in this process (None before the first build)."""
        with self._lock:
            return float(np.median(self._seconds)) if self._seconds else None


COMPILED = CompiledPrograms()


class PendingChunk(NamedTuple):
    """A chunk computed from a Run's state but not yet applied to it (``Run.commit_chunk``)."""

    settings_version: int  # the Run's settings when it was computed: stale if they changed since
    state: EngineState
    telemetry: Telemetry
    info: ChunkInfo
    count: int  # steps it took
    seconds: float  # wall time it took
    preview: bool = False  # computed with the uncompiled graph (``build_graph_chunk_fn``)


class CompiledChunks:
    """What drives compiled chunks (a Run, a RunSet): ``compile()`` by calling ``_call(0)``, and
    ``run()`` to the end over the subclass's ``advance`` and ``status``."""

    compile_s = 0.0
    can_preview = False  # whether chunks can run uncompiled while the program builds (a Run's can)

    def _call(self, num_steps: int):
        raise NotImplementedError

    def run(self, progress=None):
        """Train to the end (every step, or a fault); ``progress(self)`` is called after each
        batch of chunks. Returns self."""
        self.compile()
        while not self.status.over:
            self.advance(CHUNK_STEPS * 8)
            if progress:
                progress(self)
        return self

    def compile(self) -> float:
        """Compile (or fetch) the chunk function by running zero steps; returns seconds spent."""
        t0 = time.perf_counter()
        self._call(0)
        dt = time.perf_counter() - t0
        self.compile_s += dt
        if self.program is not None:
            COMPILED.add(self.program, dt)
        return dt

    @property
    def program(self):
        """What identifies the compiled program this runs (``CompiledPrograms``); None when
        unknown, and such a program is never taken as built."""
        return None

    @property
    def is_compiled(self) -> bool:
        """Whether the compiled program is built already (``compile()`` would return at once)."""
        return self.program is not None and COMPILED.built(self.program)


class Run(CompiledChunks):
    """One variational-inference run: its settings, state, history and status.

    ``advance(n)`` runs n more steps through the shared compiled chunk function. Live settings
    may change between calls (``update_settings``); the change is recorded as an event so charts
    can mark it. ``status`` is a ``Status``: READY, RUNNING, FINISHED or DIVERGED.
    """

    can_preview = True

    def __init__(self, config: RunConfig, dataset=None, csv_text: Optional[str] = None, reference=None):
        """``dataset`` and ``reference`` (the posterior reference of that data set) can be given
        to share them between runs of one data set (a race); else they are made here."""
        self.config = c = validate(config)
        self.model = get_model(c.model)
        self.family = get_family(c.family, self.model)
        self.param_map = ParameterMap(self.family.constraints, parse_parameterization(c.parameterization))
        self.dataset = dataset or load_dataset(self.model, c.n, c.seed, csv_path=c.data, csv_text=csv_text)
        if self.dataset.n and c.data is not None:
            c.n = self.dataset.n
        self.data = self.model.data_tensors(self.dataset)
        # None for a model file until its MCMC reference is attached (``attach_reference``).
        self.reference = reference if reference is not None else self.model.reference(self.data)
        self.optimum = self.family.optimum(self.reference) if self.reference is not None else None
        self.theta0 = resolve_init(self.family, self.model, self.data, c.init, c.seed)
        self._fn, optimizer = get_chunk_fn(self.key)
        u0 = self.param_map.unconstrain(self.theta0)
        self.state = EngineState(u0, optimizer.init(u0), tf.constant(0, tf.int64), tf.zeros([self.family.size], tf.int64))
        self.history = History(self.family.param_names)
        self.events: list = []
        self.status = Status.READY
        self.divergence: Optional[dict] = None
        self.compute_s = 0.0
        self.compile_s = 0.0
        self.settings_version = 0
        self.preview_steps = 0  # steps computed by the uncompiled preview program and not recomputed since
        self._theta_cache = (None, None)
        self._kl = _kl_fn(self.model, self.family)
        self.kl_kind = "analytic" if self._kl is not None else (
            "log evidence - ELBO estimate" if self.reference is not None and self.reference.kind == "exact" else None)

    def attach_reference(self, reference) -> None:
        """Use ``reference`` (a posterior reference computed since, e.g. by MCMC) from now on."""
        self.reference = reference
        self.optimum = self.family.optimum(reference)

    # -- structure ------------------------------------------------------------------------
    @property
    def key(self) -> StructuralKey:
        """The structural choice the run's compiled chunk function is built for."""
        c = self.config
        return StructuralKey(c.model, c.family, c.parameterization, c.estimator, c.optimizer, c.samples, c.replicates)

    @property
    def estimator(self) -> EstimatorName:
        """The gradient estimator in use."""
        return EstimatorName(self.config.estimator)

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
        """Change live settings mid-run (``vizvi.settings`` entries of role LIVE); applies from the
        next step and returns the events recorded. Structural settings need a new Run."""
        unknown = set(changes) - set(LIVE_SETTINGS)
        if unknown:
            name = sorted(unknown)[0]
            raise ConfigError(name.replace("_", "-"), "this setting changes the run's structure; reset the run to change it")
        new = dataclasses.replace(self.config, **{k: v for k, v in changes.items() if v is not None})
        if "optimizer" in changes and "lr" not in changes and changes["optimizer"] != self.config.optimizer:
            new.lr = optimizers.default_lr(changes["optimizer"])
        new = validate(new)
        events = []
        for k in sorted(LIVE_SETTINGS):
            old_v, new_v = getattr(self.config, k), getattr(new, k)
            if old_v != new_v:
                events.append({"step": self.step, "setting": SETTING[k].flag, "from": old_v, "to": new_v})
        if not events:
            return []
        old_optimizer = self.config.optimizer
        self.config = new
        self._fn, optimizer = get_chunk_fn(self.key)
        if new.optimizer != old_optimizer:
            self.state = self.state._replace(opt_state=optimizer.init(self.state.u))
        self.events.extend(events)
        self.settings_version += 1
        if self.status is not Status.DIVERGED:
            self.status = Status.FINISHED if self.step >= new.steps else (Status.RUNNING if self.step else Status.READY)
        return events

    # -- running --------------------------------------------------------------------------
    def inputs(self) -> StepInputs:
        """The step inputs of the run's current settings."""
        c = self.config
        return StepInputs(tf.constant([c.seed, 0], tf.int32), tf.constant(c.lr, DTYPE),
                          tf.constant(schedules.schedule_index(c.schedule), tf.int32),
                          tf.constant(c.variance_every, tf.int64), self.data)

    @property
    def program(self) -> tuple:
        """The structural key and the data's shapes: what XLA builds one program for."""
        return self.key, tuple(sorted((k, tuple(v.shape)) for k, v in self.data.items()))

    def _call(self, num_steps: int, fn=None):
        return (fn or self._fn)(self.state, self.inputs(), tf.constant(num_steps, tf.int32))

    def compute_chunk(self, num_steps: int, preview: bool = False) -> PendingChunk:
        """Run up to ``min(num_steps, CHUNK_STEPS)`` steps from the current state without
        changing the Run; returns the pending result for ``commit_chunk``. (A trainer thread
        computes outside its lock and commits under it.) ``preview``: with the uncompiled
        graph (``build_graph_chunk_fn``), while the compiled program is being built."""
        version = self.settings_version
        t0 = time.perf_counter()
        fn = get_graph_chunk_fn(self.key) if preview else None
        state, tel, info = self._call(min(CHUNK_STEPS, num_steps), fn)
        count = int(info.count.numpy())
        return PendingChunk(version, state, tel, info, count, time.perf_counter() - t0, preview)

    def recomputed(self) -> "Run":
        """A new Run of the same settings, data and reference, advanced with the compiled
        program to this run's step: what the run would have been had its preview steps been
        compiled ones (for ``adopt``). Call it from the thread that advances this run."""
        fresh = Run(self.config, dataset=self.dataset, reference=self.reference)
        fresh.advance(self.step)
        return fresh

    def adopt(self, fresh: "Run") -> bool:
        """Take ``fresh``'s steps (from ``recomputed``) in place of this run's preview steps;
        False, and nothing changed, when live settings changed since this run started (its
        steps then are not the URL's: the preview steps stay, counted in ``preview_steps``)."""
        if self.settings_version != 0 or fresh.step != self.step or fresh.config != self.config:
            return False
        self.state, self.history, self.status = fresh.state, fresh.history, fresh.status
        self.divergence, self.events = fresh.divergence, fresh.events
        self._theta_cache = fresh._theta_cache
        self.compute_s, self.preview_steps = fresh.compute_s, 0
        return True

    def commit_chunk(self, pending: PendingChunk) -> int:
        """Apply a computed chunk; returns the steps taken (0 if settings changed meanwhile)."""
        if pending.settings_version != self.settings_version:
            return 0  # computed under settings that have since changed: drop it
        self.compute_s += pending.seconds
        self.state = pending.state
        count = pending.count
        if pending.preview:
            self.preview_steps += count
        if count:
            rows = {f: getattr(pending.telemetry, f).numpy()[:count] for f in Telemetry._fields}
            self.history.append(rows)
            self._theta_cache = (pending.state.u, rows["theta"][-1])  # the theta of the committed u
        fault = Fault(int(pending.info.fault.numpy()))
        if fault is not Fault.NONE:
            self._diverge(fault, int(pending.info.fault_index.numpy()), float(pending.info.fault_value.numpy()))
        elif self.step >= self.config.steps:
            self.status = Status.FINISHED
        else:
            self.status = Status.RUNNING
        return count

    def advance(self, num_steps: int) -> int:
        """Run up to ``num_steps`` more steps (never past ``config.steps``); returns how many."""
        done = 0
        while done < num_steps and not self.status.over:
            want = min(num_steps - done, self.config.steps - self.step)
            if want <= 0:
                self.status = Status.FINISHED
                break
            done += self.commit_chunk(self.compute_chunk(want))
        return done

    def _diverge(self, fault: Fault, index: int, value: float):
        step = self.step + 1
        name = self.family.param_names[index] if fault.per_parameter else None
        where = f"{fault.quantity} of {name}" if name else fault.quantity
        self.status = Status.DIVERGED
        # A first ELBO or gradient that is not finite comes before any update: no learning rate
        # is to blame, the initial values are (e.g. Gamma draws at a concentration of 0.001
        # underflow to 0, where the pathwise gradient is undefined).
        at_start = step == 1 and fault is not Fault.PARAMETER
        advice = (f"It failed at the initial values ({self._initial_text()}), before any update: start elsewhere "
                  f"(e.g. init=prior) or use another estimator." if at_start else
                  f"Lower the learning rate (now {self.config.lr:g}) or switch to a safer optimizer.")
        self.divergence = {
            "step": step,
            "quantity": fault.quantity,
            "parameter": name,
            "value": value,
            "at_start": at_start,
            "message": f"diverged at step {step}: {where} became {value!r}; the last finite state (step {step - 1}) is kept. "
                       + advice,
        }

    def _initial_text(self) -> str:
        return ", ".join(f"{n}={v:.4g}" for n, v in zip(self.family.param_names, self.theta0))

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
