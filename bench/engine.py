"""Engine throughput on the reference problem, as ratios measured in one run.

Reference: poisson-gamma, n = 1000, q = Gamma, softplus, pathwise, 16 samples, Adam 0.05.

- ``fit_surrogate_posterior``: ``tfp.vi.fit_surrogate_posterior(jit_compile=True)``, the library
  way (one compiled step per Python iteration).
- ``hand-written loop``: the same steps (same log joint, same q, same Adam) in one XLA
  ``tf.while_loop`` with no telemetry: the ceiling.
- ``engine``: ``vizvi.engine.Run`` with full telemetry and the default variance cadence.
- ``engine, no variance``: the same with variance measurement off, to price the cadence.

Goals: engine >= 0.5x the hand-written loop and >= 20x fit_surrogate_posterior; the default
variance cadence costs no more than a fifth of a run's time.
"""

from __future__ import annotations

import time

import numpy as np
from vizvi._tf import tf
import tensorflow_probability as tfp

from vizvi.engine import Run, RunConfig
from vizvi.families import get_family
from vizvi.models import get_model
from vizvi.parameterizations import DTYPE

tfd, tfb = tfp.distributions, tfp.bijectors
SAMPLES, LR = 16, 0.05


def _best_rate(step_fn, steps_per_call, seconds):
    """Best steps/s over repeated calls filling ``seconds`` (after one warm-up call)."""
    step_fn()
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        step_fn()
        best = max(best, steps_per_call / (time.perf_counter() - t0))
    return best


def bench_fit_surrogate_posterior(model, data, seconds):
    """steps/s of tfp.vi.fit_surrogate_posterior with jit_compile=True."""
    import tf_keras

    surrogate = tfd.Gamma(
        tfp.util.TransformedVariable(tf.constant(1.0, DTYPE), tfb.Softplus()),
        tfp.util.TransformedVariable(tf.constant(1.0, DTYPE), tfb.Softplus()),
    )
    optimizer = tf_keras.optimizers.Adam(LR)
    steps = 500

    def call():
        tfp.vi.fit_surrogate_posterior(
            lambda z: model.log_joint(z, data), surrogate, optimizer, num_steps=steps, sample_size=SAMPLES,
            jit_compile=True, seed=(1, 2),
        )

    return _best_rate(call, steps, seconds)


def bench_hand_written(model, family, data, seconds):
    """steps/s of a hand-written XLA while_loop of the same steps, no telemetry."""
    steps = 20_000

    @tf.function(jit_compile=True)
    def loop(u, m, v, seed):
        def body(t, u, m, v):
            with tf.GradientTape() as tape:
                tape.watch(u)
                q = family.build(tf.nn.softplus(u))
                z = q.sample(SAMPLES, seed=tf.random.experimental.stateless_fold_in(seed, t))
                loss = -tf.reduce_mean(model.log_joint(z, data) - q.log_prob(z))
            g = tape.gradient(loss, u)
            tt = tf.cast(t + 1, DTYPE)
            m = m + (g - m) * 0.1
            v = v + (g * g - v) * 0.001
            alpha = LR * tf.sqrt(1 - tf.pow(tf.constant(0.999, DTYPE), tt)) / (1 - tf.pow(tf.constant(0.9, DTYPE), tt))
            return t + 1, u - alpha * m / (tf.sqrt(v) + 1e-7), m, v

        return tf.while_loop(lambda t, *_: t < steps, body, (0, u, m, v))

    u = tfb.Softplus().inverse(tf.constant([1.0, 1.0], DTYPE))
    zeros = tf.zeros([2], DTYPE)
    seed = tf.constant([1, 2], tf.int32)
    return _best_rate(lambda: loop(u, zeros, zeros, seed)[1].numpy(), steps, seconds)


def bench_engine(variance_every, seconds):
    """steps/s of the engine with full telemetry (variance every ``variance_every`` steps)."""
    run = Run(RunConfig(model="poisson-gamma", family="gamma", parameterization="softplus", estimator="pathwise",
                        samples=SAMPLES, optimizer="adam", lr=LR, variance_every=variance_every, steps=10**9))
    run.compile()
    steps = 8 * 1024
    return _best_rate(lambda: run.advance(steps), steps, seconds)


def main(seconds: float = 4.0) -> dict:
    """Run every measurement and return the figures and ratios."""
    model = get_model("poisson-gamma")
    family = get_family("gamma", model)
    data = model.data_tensors(model.simulate(1000, 0))
    figures = {
        "fit_surrogate_posterior": bench_fit_surrogate_posterior(model, data, seconds),
        "hand_written_loop": bench_hand_written(model, family, data, seconds),
        "engine": bench_engine(RunConfig().variance_every, seconds),
        "engine_no_variance": bench_engine(0, seconds),
    }
    figures["ratio_engine_vs_hand_written"] = figures["engine"] / figures["hand_written_loop"]
    figures["ratio_engine_vs_fit_surrogate_posterior"] = figures["engine"] / figures["fit_surrogate_posterior"]
    figures["variance_cost_fraction"] = 1.0 - figures["engine"] / figures["engine_no_variance"]
    return figures


def report(figures: dict) -> str:
    """Human-readable table with the goals."""
    lines = [
        "engine throughput, reference problem (poisson-gamma n=1000, Gamma q, softplus, pathwise x16, Adam 0.05)",
        f"  fit_surrogate_posterior (jit)   {figures['fit_surrogate_posterior']:>10,.0f} steps/s",
        f"  hand-written XLA loop           {figures['hand_written_loop']:>10,.0f} steps/s",
        f"  engine, full telemetry          {figures['engine']:>10,.0f} steps/s",
        f"  engine, variance off            {figures['engine_no_variance']:>10,.0f} steps/s",
        f"  engine / hand-written           {figures['ratio_engine_vs_hand_written']:>10.2f}x   (goal >= 0.5x)",
        f"  engine / fit_surrogate          {figures['ratio_engine_vs_fit_surrogate_posterior']:>10.1f}x   (goal >= 20x)",
        f"  variance telemetry cost         {figures['variance_cost_fraction']:>10.1%}   (goal <= 20% of run time)",
    ]
    return "\n".join(lines)
