"""The estimator race: one configuration trained with several gradient estimators side by side.

Every entrant is an ordinary ``Run`` (its own state, history, diagnosis) of the same model,
data, family, initial values, optimizer, learning rate and seed; only the estimator differs.
The entrants differ in structure (each estimator is its own computation), so they cannot share
one batched step; instead all of them advance in ONE compiled call: an XLA program holding
each entrant's chunk loop, so a chunk of the race costs one dispatch rather than one per
estimator, and XLA sees them together. Each entrant stops on its own fault or at its own end;
the others go on.

``Race`` offers the same driving interface as ``Run`` (``compile``, ``compute_chunk``,
``commit_chunk``, ``step``, ``status``, ``config``, ``update_settings``), so one background
trainer drives either (``vizvi.worker``).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import NamedTuple, Optional

from vizvi._tf import tf

from vizvi.engine import (
    CHUNK_STEPS, CompiledChunks, PendingChunk, Run, RunConfig, chunk, chunk_signature, make_problem, validate,
)
from vizvi.errors import ConfigError
from vizvi.estimators import EstimatorName, unavailable
from vizvi.families import get_family
from vizvi.models import get_model
from vizvi.status import Status


def entrants(config: RunConfig, estimators=None) -> tuple:
    """(estimators that can race on ``config``, {estimator: why not} for the others).

    ``estimators`` narrows the field (default: every estimator); the config's own estimator
    setting is ignored.
    """
    model = get_model(config.model)
    family = get_family(config.family or model.default_family, model)
    wanted = [EstimatorName(e) for e in (estimators or list(EstimatorName))]
    refused = unavailable(family, config.samples)
    return [e for e in wanted if e not in refused], {e: why for e, why in refused.items() if e in wanted}


def build_race_fn(keys: tuple):
    """One XLA-compiled call advancing a chunk of every entrant (one structural key each).

    ``fn(states, inputs, num_steps)``: a tuple of engine states, the shared step inputs and
    steps per entrant [N] (0 for an entrant that is over); returns one ``(state, Telemetry,
    ChunkInfo)`` per entrant. Numbers stay tensor arguments, as for a single run: no retrace.
    """
    problems = [make_problem(k) for k in keys]
    state_specs = tuple(chunk_signature(p)[0] for p in problems)
    inputs_spec = chunk_signature(problems[0])[1]  # the entrants share model and data

    def race_chunk(states, inputs, num_steps):
        return tuple(chunk(p, s, inputs, num_steps[i]) for i, (p, s) in enumerate(zip(problems, states)))

    # No AutoGraph: the chunk's loop and branches are written with tf.while_loop / tf.cond, and
    # converting every function it calls (TFP's included) took minutes beside a busy page.
    return tf.function(race_chunk, jit_compile=True, autograph=False,
                       input_signature=[state_specs, inputs_spec, tf.TensorSpec([len(keys)], tf.int32)])


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def get_race_fn(keys: tuple):
    """The shared compiled race function for these entrants; built once per process."""
    keys = tuple(keys)
    with _CACHE_LOCK:
        if keys not in _CACHE:
            _CACHE[keys] = build_race_fn(keys)
        return _CACHE[keys]


class RacePending(NamedTuple):
    """A race chunk computed but not yet applied (``Race.commit_chunk``)."""

    settings_version: int
    chunks: tuple  # one PendingChunk per entrant
    seconds: float


class Race(CompiledChunks):
    """Runs of one configuration, one per estimator, advanced together.

    ``runs`` maps each entrant's estimator to its Run; ``refused`` says why the other
    requested estimators cannot race on this configuration. Raises ConfigError (naming the
    setting) when the configuration is bad or no estimator can race on it.
    """

    def __init__(self, config: RunConfig, estimators=None, csv_text: Optional[str] = None):
        racing, self.refused = entrants(config, estimators)
        if not racing:
            raise ConfigError("estimator", "no estimator can race on this configuration: "
                              + "; ".join(self.refused.values()))
        first = Run(dataclasses.replace(config, estimator=racing[0].value), csv_text=csv_text)
        self.runs = {racing[0]: first}
        for e in racing[1:]:
            # One data set and reference for all: made once, shared.
            self.runs[e] = Run(dataclasses.replace(first.config, estimator=e.value), dataset=first.dataset,
                               reference=first.reference)
        self.config = first.config
        self.model, self.family, self.dataset = first.model, first.family, first.dataset
        self.reference, self.optimum = first.reference, first.optimum
        self._fn = get_race_fn(tuple(run.key for run in self.runs.values()))
        self.settings_version = 0
        self.compile_s = 0.0
        self.compute_s = 0.0

    # -- the Run-like interface a trainer drives ---------------------------------------------
    @property
    def step(self) -> int:
        """Steps of the entrant that has gone furthest."""
        return max(run.step for run in self.runs.values())

    @property
    def status(self) -> Status:
        """RUNNING or READY while any entrant can go on; FINISHED once all have stopped (DIVERGED
        if every one diverged)."""
        states = [run.status for run in self.runs.values()]
        if all(s.over for s in states):
            return Status.DIVERGED if all(s is Status.DIVERGED for s in states) else Status.FINISHED
        return Status.RUNNING if self.step else Status.READY

    @property
    def state(self) -> tuple:
        """Every entrant's engine state."""
        return tuple(run.state for run in self.runs.values())

    def _call(self, num_steps: int):
        wanted = [0 if run.status.over else max(0, min(num_steps, run.config.steps - run.step)) for run in self.runs.values()]
        inputs = next(iter(self.runs.values())).inputs()
        return self._fn(self.state, inputs, tf.constant(wanted, tf.int32))

    def compute_chunk(self, num_steps: int) -> RacePending:
        """Up to ``num_steps`` more steps of every entrant still going, in one compiled call,
        without changing the race (``commit_chunk`` applies it)."""
        versions = [run.settings_version for run in self.runs.values()]
        t0 = time.perf_counter()
        results = self._call(min(CHUNK_STEPS, num_steps))
        seconds = time.perf_counter() - t0
        chunks = tuple(PendingChunk(v, state, tel, info, int(info.count.numpy()), seconds)
                       for v, (state, tel, info) in zip(versions, results))
        return RacePending(self.settings_version, chunks, seconds)

    def commit_chunk(self, pending: RacePending) -> int:
        """Apply a computed race chunk; returns the most steps any entrant took (0 if stale)."""
        if pending.settings_version != self.settings_version:
            return 0
        self.compute_s += pending.seconds
        return max(run.commit_chunk(c) for run, c in zip(self.runs.values(), pending.chunks))

    def advance(self, num_steps: int) -> int:
        """Run up to ``num_steps`` more steps of every entrant; returns the most taken."""
        done = 0
        while done < num_steps and not self.status.over:
            taken = self.commit_chunk(self.compute_chunk(num_steps - done))
            if not taken:
                break
            done += taken
        return done

    def update_settings(self, **changes) -> list:
        """Change live settings of every entrant (not the estimator: that is what races)."""
        if "estimator" in changes:
            raise ConfigError("estimator", "a race runs every estimator; start a new race to change the field")
        # Every entrant checks the change before any takes it: a sample count one estimator
        # cannot use (score-baseline needs 2) must leave the whole race as it was.
        for run in self.runs.values():
            validate(dataclasses.replace(run.config, **{k: v for k, v in changes.items() if v is not None}))
        for run in self.runs.values():
            run.update_settings(**changes)
        self.config = next(iter(self.runs.values())).config
        self.settings_version += 1
        return []

    def records(self) -> dict:
        """{estimator: the entrant's record in the CLI's JSON schema}."""
        from vizvi.history import to_record

        return {e.value: to_record(run) for e, run in self.runs.items()}
