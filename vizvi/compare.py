"""A set of up to eight runs trained side by side: the compare page, ``vizvi compare`` and the race.

Each member is an ordinary ``Run`` (its own settings, state, history, diagnosis). The set
advances every member in ONE XLA-compiled call per chunk:

- Members that share their structure (same ``StructuralKey``: model, family,
  parameterization, estimator, optimizer, sample and replicate counts) and data shapes, and
  differ only in numbers (initial values, learning rate, schedule, seed, steps), form a
  *batched group*: their states and inputs are stacked along a leading batch dimension and one
  step advances all of them (``tf.vectorized_map`` over ``engine.step``), so the batch costs
  far less than its runs one after another.
- Every other member runs its own chunk loop inside the same compiled call (one dispatch per
  chunk for the whole set; XLA:CPU executes those loops in sequence).

A batched member gives the same numbers as the same run alone (tested): ``engine.step`` is a
pure function of (state, inputs) and draws with ``fold_in(seed, step)``, and vectorizing it
changes no arithmetic. A member stops on its own fault or at its own end; the others go on.

Families sampled by rejection (Gamma, Beta: TFP's sampler is a data-dependent loop) cannot be
batched: ``tf.vectorized_map`` turns the loop into TensorList operations that XLA cannot
compile (``Family.rejection_sampled``), so their members run one loop each in the shared call.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Iterable, NamedTuple, Optional, Sequence

import numpy as np
from vizvi._tf import tf

from vizvi.engine import (
    CHUNK_STEPS, ChunkInfo, CompiledChunks, EngineState, Fault, PendingChunk, Run, RunConfig, StepInputs,
    StructuralKey, Telemetry, built_once, chunk, chunk_signature, make_problem, step, step_info_signature, telemetry_buffers,
    validate, variance_due,
)
from vizvi.errors import ConfigError
from vizvi.families import get_family
from vizvi.models import get_model
from vizvi.parameterizations import DTYPE
from vizvi.settings import RUN_SETTINGS, SETTING, by_flag
from vizvi.status import Status

MAX_RUNS = 8


class Group(NamedTuple):
    """Members of a set that one part of the compiled call advances together."""

    key: StructuralKey
    members: tuple  # indices into the set's runs
    vectorized: bool  # one vectorized step for all members (else a step mapped over them)


class Layout(NamedTuple):
    """How a set's members split into groups: the compiled call's structure (its cache key)."""

    groups: tuple  # Group per part, members in the set's order within each group

    @property
    def shape(self) -> tuple:
        """What the compiled function depends on: each group's key, size and vectorization."""
        return tuple((g.key, len(g.members), g.vectorized) for g in self.groups)


def _data_shapes(run: Run) -> tuple:
    return tuple((k, tuple(v.shape)) for k, v in sorted(run.data.items()))


def can_batch(key: StructuralKey) -> bool:
    """True when runs of this structure can share one vectorized step."""
    model = get_model(key.model)
    return not get_family(key.family, model).rejection_sampled


def plan(runs: Sequence[Run]) -> Layout:
    """Group runs of the same structure and data shapes; a group is vectorized when it has
    more than one member and its family's sampler can be vectorized."""
    groups: dict = {}
    for i, run in enumerate(runs):
        groups.setdefault((run.key, _data_shapes(run)), []).append(i)
    return Layout(tuple(Group(key, tuple(m), len(m) > 1 and can_batch(key)) for (key, _), m in groups.items()))


def _stack(trees):
    return tf.nest.map_structure(lambda *xs: tf.stack(xs), *trees)


def _unstack(tree, count: int) -> list:
    return [tf.nest.map_structure(lambda x, i=i: x[i], tree) for i in range(count)]


def _where(mask, new, old):
    """Per member: ``new`` where ``mask`` [B] else ``old`` (leading batch dimension)."""
    def pick(a, b):
        m = tf.reshape(mask, tf.concat([tf.shape(mask), tf.ones([tf.rank(a) - 1], tf.int32)], 0))
        return tf.where(m, a, b)

    return tf.nest.map_structure(pick, new, old)


def batched_chunk(problem, states: EngineState, inputs: StepInputs, num_steps, vectorized: bool = True,
                  chunk_steps: int = CHUNK_STEPS):
    """Up to ``num_steps[b]`` steps of each of B runs of one structure, stacked on a leading
    batch dimension: ``(states, Telemetry [chunk_steps, B, ...], ChunkInfo [B])``.

    Per iteration, one ``engine.step`` vectorized over the batch (``vectorized``) or mapped over
    its members (``tf.map_fn``: for families ``tf.vectorized_map`` cannot compile). A member
    that faulted or took its steps keeps its state (its later telemetry rows are not counted),
    as ``engine.chunk`` does for one run.
    """
    size = num_steps.shape[0]
    buffers = telemetry_buffers(problem, chunk_steps, batch=(size,))
    zeros = tf.zeros([size], tf.int32)

    def cond(i, st, tel, count, active, fault, index, value):
        return tf.reduce_any(active)

    def body(i, st, tel, count, active, fault, index, value):
        if vectorized:
            # Draws with a per-member seed have no vectorized kernel: pfor loops over the batch
            # for those few ops only (fallback_to_while_loop), everything else is one batched op.
            gate = tf.reduce_any(tf.logical_and(active, variance_due(st.step, inputs.variance_every)))
            new, info = tf.vectorized_map(lambda a: step(problem, a[0], a[1], gate), (st, inputs),
                                          fallback_to_while_loop=True)
        else:
            # One step in the program, looped over the members: no faster than the runs one
            # after another, but compiled once for the group instead of once per member.
            new, info = tf.map_fn(lambda a: step(problem, a[0], a[1]), (st, inputs),
                                  fn_output_signature=(chunk_signature(problem)[0], step_info_signature(problem)))
        ok = tf.equal(info.fault, int(Fault.NONE))
        take = tf.logical_and(active, ok)
        failed = tf.logical_and(active, ~ok)
        st = _where(take, new, st)
        tel = Telemetry(*[buf.write(i, getattr(info, f)) for buf, f in zip(tel, Telemetry._fields)])
        count = count + tf.cast(take, tf.int32)
        fault = tf.where(failed, info.fault, fault)
        index = tf.where(failed, info.fault_index, index)
        value = tf.where(failed, info.fault_value, value)
        return i + 1, st, tel, count, tf.logical_and(take, count < num_steps), fault, index, value

    start = (tf.constant(0), states, buffers, zeros, num_steps > 0, zeros, zeros, tf.zeros([size], DTYPE))
    _, st, tel, count, _, fault, index, value = tf.while_loop(cond, body, start, maximum_iterations=chunk_steps)
    return st, Telemetry(*[buf.stack() for buf in tel]), ChunkInfo(count, fault, index, value)


def build_set_fn(layout_shape: tuple):
    """One XLA-compiled call advancing a chunk of every member of a set laid out as
    ``layout_shape`` (``Layout.shape``).

    ``fn(parts)``: per group, ``((state, inputs), step counts [size])``, state and inputs
    stacked on a leading dimension when the group has several members; returns per group
    ``(state, Telemetry, ChunkInfo)``, stacked likewise. Numbers stay tensor
    arguments: no retrace for new values, seeds or data of the same shapes.
    """
    problems = [make_problem(key) for key, _, _ in layout_shape]
    specs = []
    for problem, (_, size, _) in zip(problems, layout_shape):
        state_spec, inputs_spec = chunk_signature(problem)
        if size > 1:
            state_spec, inputs_spec = tf.nest.map_structure(
                lambda s: tf.TensorSpec([size] + s.shape.as_list(), s.dtype), (state_spec, inputs_spec))
        specs.append(((state_spec, inputs_spec), tf.TensorSpec([size], tf.int32)))

    def set_chunk(parts):
        out = []
        for problem, (_, size, vectorized), ((state, inputs), num_steps) in zip(problems, layout_shape, parts):
            if size > 1:
                out.append(batched_chunk(problem, state, inputs, num_steps, vectorized))
            else:
                out.append(chunk(problem, state, inputs, num_steps[0]))
        return tuple(out)

    # No AutoGraph: the loops and branches are written with tf.while_loop / tf.cond already, and
    # converting every function the step calls (TFP's included) is very slow.
    return tf.function(set_chunk, jit_compile=True, autograph=False, input_signature=[tuple(specs)])


get_set_fn = built_once(build_set_fn)  # the compiled call per Layout.shape


class SetPending(NamedTuple):
    """A chunk of the set computed but not yet applied (``RunSet.commit_chunk``)."""

    version: int  # the set's composition and settings when it was computed
    chunks: tuple  # one PendingChunk per member, in the set's order
    seconds: float


def differences(configs: Sequence[RunConfig]) -> list:
    """Per config, ``flag=value`` of each setting in which the configs differ (a run's label)."""
    names = [s.name for s in RUN_SETTINGS if len({repr(getattr(c, s.name)) for c in configs}) > 1]
    return [", ".join(f"{SETTING[n].flag}={getattr(c, n)}" for n in names) for c in configs]


class RunSet(CompiledChunks):
    """Up to ``MAX_RUNS`` runs advanced together (see the module's docstring).

    ``runs`` are the members, in order; ``labels`` say what sets each apart. Runs of the same
    model, observations, data file and seed share one data set and reference (made once).
    The set offers the driving interface of a ``Run`` (``compile``, ``compute_chunk``,
    ``commit_chunk``, ``advance``, ``step``, ``status``, ``config``), so one background trainer
    drives either (``vizvi.worker``); ``add`` and ``drop`` change the set between chunks.
    """

    def __init__(self, configs: Sequence[RunConfig] = (), runs: Sequence[Run] = (), csv_text: Optional[str] = None):
        self.runs: list = list(runs)
        self.csv_text = csv_text  # a data file's text, for members added later
        self._data: dict = {}
        for r in self.runs:
            self._data.setdefault(self._data_key(r.config), (r.dataset, r.reference))
        self.version = 0
        self.compile_s = 0.0
        self.compute_s = 0.0
        for c in configs:
            self._append(c)
        if not self.runs:
            raise ConfigError("runs", "a comparison needs at least one run")
        self._relayout()

    # -- membership -------------------------------------------------------------------------
    @staticmethod
    def _data_key(config: RunConfig) -> tuple:
        return (config.model, config.n, config.data, config.seed)

    def _append(self, config: RunConfig) -> Run:
        if len(self.runs) >= MAX_RUNS:
            raise ConfigError("runs", f"a comparison holds at most {MAX_RUNS} runs")
        config = validate(config)
        shared = self._data.get(self._data_key(config))
        if shared:
            run = Run(config, dataset=shared[0], reference=shared[1])
        else:
            run = Run(config, csv_text=self.csv_text)
            self._data[self._data_key(config)] = (run.dataset, run.reference)
        self.runs.append(run)
        return run

    def _relayout(self) -> None:
        self.layout = plan(self.runs)
        self._fn = get_set_fn(self.layout.shape)
        self.version += 1

    def copy(self) -> "RunSet":
        """A new set of the same ``Run`` objects: changed (``add``, ``drop``) and compiled while
        this one still trains, then swapped in (``vizvi.worker.SetTrainer``)."""
        return RunSet(runs=self.runs, csv_text=self.csv_text)

    def add(self, config: RunConfig) -> Run:
        """Add a run (from step 0) while the others keep their state; returns it."""
        run = self._append(config)
        self._relayout()
        return run

    def drop(self, index: int) -> Run:
        """Remove the run at ``index`` (the last one cannot go); returns it."""
        if len(self.runs) == 1:
            raise ConfigError("runs", "a comparison keeps at least one run")
        if not 0 <= index < len(self.runs):
            raise ConfigError("runs", f"there is no run {index + 1}; the comparison has {len(self.runs)}")
        run = self.runs.pop(index)
        self._relayout()
        return run

    @property
    def configs(self) -> list:
        """Every member's settings."""
        return [r.config for r in self.runs]

    @property
    def labels(self) -> list:
        """What sets each run apart: the settings in which the members differ."""
        return differences(self.configs)

    @property
    def batched(self) -> bool:
        """True when some members share one vectorized step."""
        return any(g.vectorized for g in self.layout.groups)

    # -- the Run-like interface a trainer drives -----------------------------------------------
    @property
    def config(self) -> RunConfig:
        """The first member's settings (what a trainer reads for ``steps``: the longest run's)."""
        return max(self.configs, key=lambda c: c.steps)

    @property
    def step(self) -> int:
        """Steps of the member that has gone furthest."""
        return max(r.step for r in self.runs)

    @property
    def status(self) -> Status:
        """RUNNING or READY while any member can go on; FINISHED once all have stopped
        (DIVERGED if every one diverged)."""
        states = [r.status for r in self.runs]
        if all(s.over for s in states):
            return Status.DIVERGED if all(s is Status.DIVERGED for s in states) else Status.FINISHED
        return Status.RUNNING if self.step else Status.READY

    @property
    def state(self) -> tuple:
        """Every member's engine state (a new tuple whenever any member's state changes)."""
        return tuple(r.state for r in self.runs)

    def _wanted(self, num_steps: int) -> list:
        return [0 if r.status.over else max(0, min(num_steps, r.config.steps - r.step)) for r in self.runs]

    def _call(self, num_steps: int):
        wanted = self._wanted(num_steps)
        parts = []
        for g in self.layout.groups:
            members = [self.runs[i] for i in g.members]
            if len(g.members) > 1:
                state = _stack([r.state for r in members])
                inputs = _stack([r.inputs() for r in members])
            else:
                state, inputs = members[0].state, members[0].inputs()
            parts.append(((state, inputs), tf.constant([wanted[i] for i in g.members], tf.int32)))
        return self._fn(tuple(parts))

    def compute_chunk(self, num_steps: int) -> SetPending:
        """Up to ``num_steps`` more steps of every member still going, in one compiled call,
        without changing the set (``commit_chunk`` applies it)."""
        versions = [r.settings_version for r in self.runs]
        version = self.version
        t0 = time.perf_counter()
        results = self._call(min(CHUNK_STEPS, num_steps))
        seconds = time.perf_counter() - t0
        chunks: list = [None] * len(self.runs)
        for g, (state, tel, info) in zip(self.layout.groups, results):
            size = len(g.members)
            if size > 1:
                states = _unstack(state, size)
                tels = [Telemetry(*[x[:, b] for x in tel]) for b in range(size)]
                infos = [ChunkInfo(*[x[b] for x in info]) for b in range(size)]
            else:
                states, tels, infos = [state], [tel], [info]
            for i, s, t, inf in zip(g.members, states, tels, infos):
                chunks[i] = PendingChunk(versions[i], s, t, inf, int(inf.count.numpy()), seconds)
        return SetPending(version, tuple(chunks), seconds)

    def commit_chunk(self, pending: SetPending) -> int:
        """Apply a computed chunk; returns the most steps any member took (0 if the set changed
        since it was computed)."""
        if pending.version != self.version:
            return 0
        self.compute_s += pending.seconds
        # A member that was over took no steps; committing its empty chunk would set a diverged
        # run RUNNING again (Run.commit_chunk judges status from the chunk), and it would retry.
        return max(0 if r.status.over else r.commit_chunk(c) for r, c in zip(self.runs, pending.chunks))

    def advance(self, num_steps: int) -> int:
        """Run up to ``num_steps`` more steps of every member; returns the most taken."""
        done = 0
        while done < num_steps and not self.status.over:
            taken = self.commit_chunk(self.compute_chunk(num_steps - done))
            if not taken:
                break
            done += taken
        return done

    def update_settings(self, **changes) -> list:
        """Change live settings of every member; every member checks the change before any
        takes it, so a value one member cannot use leaves the whole set as it was."""
        for r in self.runs:
            validate(dataclasses.replace(r.config, **{k: v for k, v in changes.items() if v is not None}))
        events = []
        for r in self.runs:
            events.extend(r.update_settings(**changes))
        self._relayout()  # a live change of estimator or optimizer changes a member's structure
        return events

    def records(self) -> list:
        """Every member's record in the CLI's JSON schema, in order."""
        from vizvi.history import to_record

        return [to_record(r) for r in self.runs]


# -- building sets from a base and varied settings -----------------------------------------------
def parse_vary(text: str) -> tuple:
    """``SETTING=V1,V2,...`` -> (setting name, [values parsed by the registry]).

    Raises ConfigError naming ``vary`` (an unknown setting or an empty list) or the setting (a
    bad value). An ``init`` list separates runs with ``;`` (its own values hold commas):
    ``init=concentration=0.1,rate=1;concentration=1,rate=1``.
    """
    if "=" not in text:
        raise ConfigError("vary", f"{text!r} is not SETTING=V1,V2,...")
    flag, values = text.split("=", 1)
    flag = flag.strip()
    try:
        setting = by_flag(flag)
    except KeyError:
        raise ConfigError("vary", f"unknown setting {flag!r}; choose one of: "
                                  f"{', '.join(s.flag for s in RUN_SETTINGS)}") from None
    if setting not in RUN_SETTINGS:
        raise ConfigError("vary", f"{flag!r} is not a setting of a run")
    parts = [v.strip() for v in values.split(";" if setting.name == "init" else ",")]
    if not parts or any(not p for p in parts):
        raise ConfigError("vary", f"{text!r}: give at least one value, none empty")
    if setting.name == "init" and len(parts) == 1 and "=" not in parts[0]:
        parts = [v.strip() for v in values.split(",")]  # init=prior,random
    return setting.name, [setting.parse(p) if setting.name not in ("init", "data") else p for p in parts]


def vary(base: RunConfig, variations: Iterable[tuple]) -> list:
    """The product of ``(setting name, values)`` variations over ``base``: one config per
    combination, at most ``MAX_RUNS`` (ConfigError naming ``vary`` beyond)."""
    variations = list(variations)
    names = [n for n, _ in variations]
    if len(set(names)) != len(names):
        raise ConfigError("vary", "each setting can be varied once")
    total = int(np.prod([len(v) for _, v in variations])) if variations else 1
    if total > MAX_RUNS:
        raise ConfigError("vary", f"{total} runs: a comparison holds at most {MAX_RUNS}")
    configs = []
    for combo in itertools.product(*[v for _, v in variations]):
        c = dataclasses.replace(base, **dict(zip(names, combo)))
        if "optimizer" in names and "lr" not in names:
            c.lr = None  # each optimizer with its own default learning rate
        configs.append(c)
    return configs
