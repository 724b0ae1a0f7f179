"""A reference posterior by MCMC, for models without a closed form (a user's model file).

NUTS (``tfp.mcmc.NoUTurnSampler``) with dual-averaging step-size adaptation, on the model's
latent vector (unconstrained already for a model file's R^d; a scalar positive or unit latent
is sampled through ``tfb.Exp`` / ``tfb.Sigmoid``). The chains run in segments of one
XLA-compiled call each, so a caller sees progress and can cancel between segments, and a time
limit stops a sampler that would take too long (nothing hangs): the draws so far are used if
there are enough, else the job fails with a message. Effective sample size and R-hat come from
``arviz-stats``.

A job is shared: ``reference_job(model, data)`` returns the one job per model and data set in
this process (a second session choosing the same model waits for the same draws), and its
result is kept for the life of the process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from typing import Optional

import numpy as np
from vizvi._tf import tf
import tensorflow_probability as tfp

from vizvi.background import BackgroundCall
from vizvi.engine import built_once
from vizvi.errors import ConfigError
from vizvi.models import MODELS, Model, Reference, Support
from vizvi.parameterizations import DTYPE

tfb = tfp.bijectors


@dataclasses.dataclass(frozen=True)
class McmcSettings:
    """How the reference chains run."""

    chains: int = 4
    warmup: int = 1000  # adaptation steps per chain (discarded)
    draws: int = 1000  # kept draws per chain
    segment: int = 100  # steps per compiled call (progress and cancellation between calls)
    max_tree_depth: int = 8  # at most 2^8 - 1 leapfrog steps per draw
    target_accept: float = 0.8
    seed: int = 0
    time_limit_s: float = 600.0
    min_draws: int = 100  # per chain: fewer after the time limit and the job fails


DEFAULT = McmcSettings()


def _unconstraining(model: Model) -> tfb.Bijector:
    """Maps R^d onto the model's latent (the identity on a vector latent)."""
    return {Support.POSITIVE: tfb.Exp(), Support.UNIT: tfb.Sigmoid()}.get(model.support, tfb.Identity())


def _sampler_key(model_name: str, settings: McmcSettings):
    return (model_name, settings.chains, settings.segment, settings.max_tree_depth, settings.target_accept,
            settings.warmup)


def _build_segment(key):
    """Compiled ``segment(state, kernel_results, seed) -> (draws, state, kernel_results, divergent)``."""
    model_name, chains, segment, max_depth, accept, warmup = key
    model = MODELS[model_name]
    bijector = _unconstraining(model)
    scalar = model.support is not Support.VECTOR

    def target(x):  # x [chains, d] on R^d
        z = bijector.forward(x)
        lp = model.log_joint(z[..., 0] if scalar else z, {})
        return lp + bijector.forward_log_det_jacobian(x, event_ndims=1)

    nuts = tfp.mcmc.NoUTurnSampler(target, step_size=tf.fill([chains, 1], tf.constant(0.1, DTYPE)),
                                   max_tree_depth=max_depth)
    kernel = tfp.mcmc.DualAveragingStepSizeAdaptation(nuts, num_adaptation_steps=warmup, target_accept_prob=accept)

    def run(state, results, seed):
        draws, (divergent, step_size), final = tfp.mcmc.sample_chain(
            segment, state, previous_kernel_results=results, kernel=kernel, seed=seed,
            trace_fn=lambda _, r: (r.inner_results.has_divergence, r.new_step_size), return_final_kernel_results=True)
        return draws, final, divergent, step_size

    compiled = tf.function(run, jit_compile=True, autograph=False)
    return kernel, bijector, compiled


_get_segment = built_once(_build_segment)


class McmcJob:
    """One reference computation, run in the background (``BackgroundCall``); poll
    ``progress`` / ``done``."""

    def __init__(self, model: Model, settings: McmcSettings = DEFAULT):
        self.model, self.settings = model, settings
        self.progress = 0.0  # fraction of all steps done
        self.phase = "compiling the sampler"
        self.started = time.perf_counter()
        self._cancel = threading.Event()
        self._call = BackgroundCall(self._sample, f"vizvi-mcmc-{model.name}", "the MCMC reference failed")

    @property
    def done(self) -> bool:
        """True once the job has a result or an error."""
        return self._call.done

    @property
    def result(self) -> Optional[Reference]:
        """The reference, once done without error."""
        return self._call.result

    @property
    def error(self) -> Optional[str]:
        """Why the job failed, once it has."""
        error = self._call.error
        return error.split(": ", 1)[1] if error and error.startswith("model: ") else error

    def wait(self, timeout: Optional[float] = None) -> Optional[Reference]:
        """Block until done (or ``timeout`` s); the result, or None."""
        self._call.wait(timeout)
        return self.result

    def cancel(self) -> None:
        """Stop between segments (the job then ends with an error saying so)."""
        self._cancel.set()

    def describe(self) -> str:
        """One line for a page: where the job is."""
        if self.error:
            return f"MCMC reference failed: {self.error}"
        if self.result is not None:
            m = self.result.mcmc
            return (f"MCMC reference (NUTS, {m['chains']} chains x {m['draws']} draws, {m['seconds']:.1f} s): "
                    f"min ESS {m['ess_bulk_min']:.0f}, max R-hat {m['rhat_max']:.3f}, {m['divergences']} divergences")
        return f"MCMC reference: {self.phase} ({100 * self.progress:.0f}%, {time.perf_counter() - self.started:.0f} s)"

    def _sample(self) -> Reference:
        s, model = self.settings, self.model
        kernel, bijector, segment = _get_segment(_sampler_key(model.name, s))
        rng = np.random.default_rng(s.seed)
        # Stan's default start: uniform(-2, 2) on the unconstrained scale, around the initial point.
        start = np.asarray(bijector.inverse(tf.constant(model.initial_point(), DTYPE)), dtype=np.float64) \
            if model.support is not Support.VECTOR else model.initial_point()
        state = tf.constant(start + rng.uniform(-2, 2, size=(s.chains, model.dim)), DTYPE)
        results = kernel.bootstrap_results(state)
        seed = tf.constant([s.seed, 17], tf.int32)
        total = s.warmup + s.draws
        kept, divergences, steps = [], 0, 0
        deadline = self.started + s.time_limit_s
        while steps < total:
            if self._cancel.is_set():
                raise ConfigError("model", "the MCMC reference was cancelled")
            if time.perf_counter() > deadline:
                break
            seg_seed = tf.random.experimental.stateless_fold_in(seed, steps)
            draws, results, divergent, _ = segment(state, results, seg_seed)
            state = draws[-1]
            first_kept = max(0, s.warmup - steps)
            if first_kept < s.segment:
                kept.append(draws.numpy()[first_kept:])
                divergences += int(np.sum(divergent.numpy()[first_kept:]))
            steps += s.segment
            self.progress = min(1.0, steps / total)
            self.phase = "warming up" if steps < s.warmup else "drawing"
            if not np.all(np.isfinite(state.numpy())):
                raise ConfigError("model", "the MCMC chains left the region where the log density is finite")
        n_kept = sum(len(k) for k in kept)
        if n_kept < s.min_draws:
            raise ConfigError("model", f"the MCMC reference took longer than {s.time_limit_s:g} s and has only "
                                       f"{n_kept} draws per chain after warm-up (it needs {s.min_draws})")
        x = np.concatenate(kept, axis=0)  # [draws, chains, d] on R^d
        z = np.asarray(bijector.forward(tf.constant(x, DTYPE)), dtype=np.float64)
        return _reference_from_draws(model, z, divergences, time.perf_counter() - self.started)


def _reference_from_draws(model: Model, z: np.ndarray, divergences: int, seconds: float) -> Reference:
    """A Reference of kind "mcmc" from draws z [draws, chains, d] of the latent vector."""
    from arviz_stats.base import array_stats

    n_draws, chains, d = z.shape
    by_chain = np.moveaxis(z, 1, 0)  # [chains, draws, d]: arviz-stats' (chain, draw) layout
    ess = np.array([array_stats.ess(by_chain[..., i], method="bulk") for i in range(d)], dtype=np.float64)
    rhat = np.array([array_stats.rhat(by_chain[..., i]) for i in range(d)], dtype=np.float64)
    flat = z.reshape(-1, d)
    mean = flat.mean(axis=0)
    cov = np.atleast_2d(np.cov(flat, rowvar=False))
    latent_mean, latent_sd = (model.moments_of_draws(flat) if hasattr(model, "moments_of_draws")
                              else model.reference_moments(Reference("mcmc", mean, cov, float("nan"), "mcmc", {})))
    info = {"sampler": "NUTS", "chains": chains, "draws": n_draws, "divergences": divergences, "seconds": seconds,
            "ess_bulk": dict(zip(model.coordinates, ess.tolist())), "rhat": dict(zip(model.coordinates, rhat.tolist())),
            "ess_bulk_min": float(np.min(ess)), "rhat_max": float(np.max(rhat))}
    return Reference("mcmc", mean, cov, float("nan"), "mcmc", {}, None, flat, latent_mean, latent_sd, info)


_JOBS: dict = {}
_JOBS_LOCK = threading.Lock()


def data_fingerprint(model: Model, dataset) -> str:
    """A short hash of a data set's arrays (the cache key beside the model's name)."""
    h = hashlib.sha1(model.name.encode())
    for k in sorted(dataset.arrays):
        h.update(k.encode())
        h.update(np.ascontiguousarray(dataset.arrays[k], dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def reference_job(model: Model, dataset, settings: McmcSettings = DEFAULT) -> McmcJob:
    """The shared job computing ``model``'s MCMC reference on ``dataset`` (started if new; a
    failed job is started again)."""
    key = (model.name, data_fingerprint(model, dataset), settings)
    with _JOBS_LOCK:
        job = _JOBS.get(key)
        if job is None or (job.done and job.error is not None):
            job = _JOBS[key] = McmcJob(model, settings)
        return job


def given_reference(model: Model) -> Optional[Reference]:
    """A model file's own ``reference`` moments as a Reference of kind "given", or None."""
    given = getattr(model, "given_reference", lambda: None)()
    if not given:
        return None
    return Reference("given", None, None, float("nan"), "given", {}, latent_mean=given.get("latent_mean"),
                     latent_sd=given.get("latent_sd"))
