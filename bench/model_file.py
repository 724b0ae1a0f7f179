"""Model files headless: the engine against ``tfp.vi.fit_surrogate_posterior`` on eight schools,
and the engine's rate on a 50-coefficient regression.

Eight schools, non-centered (bench/models/eight_schools_noncentered_f64.py: the example in
float64, so both sides compute in one dtype), q mean-field Normal on the unconstrained latents
(ADVI), pathwise gradient with 16 samples, Adam at lr 0.01, from loc 0 and scale 1 everywhere.
Every figure times steps 2,000 -> 12,000 from that start (the first 2,000 untimed), median of
``REPEATS``, in process-CPU time (wall beside). Compile and trace times are their own lines.

Competitors, all with the same target (the pinned joint with its default event-space bijector),
surrogate (``tfp.experimental.vi.build_factored_surrogate_posterior``: per part a Normal
pushed through the bijector, the same q as the engine's mean-field family on R^10), estimator
and optimizer (tf_keras Adam: the engine's Adam has the same constants):

- ``fit_surrogate_posterior`` as its documentation calls it (a plain eager call): no compile,
  so steps 2,000 -> 3,000 are timed (the cost per step does not depend on the window here);
- the same call inside a ``tf.function`` (graph mode), traced once per length and re-run from
  the same start (variables and optimizer reset): 10,000 / (t_12000 - t_2000);
- the same with ``jit_compile=True`` (XLA), timed the same way;
- the engine (``Run.advance``, what the CLI and the dashboard drive) with full telemetry at the
  default cadence (gradient variance and PSIS k-hat every 100 steps) and with it off.

Goals (issue 11): engine >= 20x fit_surrogate_posterior at steady state; the 50-coefficient
regression (bench/models/regression50.py, mean-field, 100 parameters) >= 1,000 steps/s.
"""

from __future__ import annotations

import functools
import os
import time

import numpy as np
from vizvi._tf import tf
import tensorflow_probability as tfp

from vizvi.engine import Run, RunConfig
from vizvi.model_file import register_model_files

HERE = os.path.join(os.path.dirname(__file__), "models")
EIGHT_SCHOOLS = os.path.join(HERE, "eight_schools_noncentered_f64.py")
REGRESSION = os.path.join(HERE, "regression50.py")
WARM, TIMED, EAGER_TIMED, REPEATS = 2_000, 10_000, 1_000, 3
SAMPLES, LR = 16, 0.01
GOAL_VS_FSP, GOAL_REGRESSION = 20.0, 1000.0


def _clock():
    return time.perf_counter(), time.process_time()


def _since(start):
    return time.perf_counter() - start[0], time.process_time() - start[1]


def _median(pairs, which):
    return float(np.median([p[which] for p in pairs]))


def _engine(model_name: str, variance_every: int):
    """(compile s, [(wall, cpu) of the timed window] per repeat)."""
    compile_s, times = None, []
    for _ in range(REPEATS):
        run = Run(RunConfig(model=model_name, family="mean-field-normal", estimator="pathwise", samples=SAMPLES,
                            optimizer="adam", lr=LR, seed=0, steps=WARM + TIMED, variance_every=variance_every))
        dt = run.compile()
        compile_s = dt if compile_s is None else compile_s
        run.advance(WARM)
        c = _clock()
        run.advance(TIMED)
        times.append(_since(c))
        if run.step != WARM + TIMED:
            raise RuntimeError(f"the engine stopped at step {run.step} ({run.status})")
    return compile_s, times


def _fsp(model, mode: str):
    """fit_surrogate_posterior in ``mode`` ("eager", "graph", "xla"): (first-call s by length,
    [(wall, cpu) of the timed window] per repeat)."""
    import tf_keras

    pinned = model.pinned
    surrogate = tfp.experimental.vi.build_factored_surrogate_posterior(
        event_shape=pinned.event_shape, bijector=pinned.experimental_default_event_space_bijector(),
        initial_parameters={"loc": 0.0, "scale": 1.0}, dtype=tf.float64)
    optimizer = tf_keras.optimizers.Adam(LR)
    start = [v.numpy() for v in surrogate.trainable_variables]

    def fit(num_steps):
        return tfp.vi.fit_surrogate_posterior(pinned.unnormalized_log_prob, surrogate, optimizer, num_steps=num_steps,
                                              sample_size=SAMPLES, jit_compile=(mode == "xla"), seed=(1, 2))

    def reset():
        for var, value in zip(surrogate.trainable_variables, start):
            var.assign(value)
        for var in optimizer.variables():
            var.assign(tf.zeros_like(var))

    timed = EAGER_TIMED if mode == "eager" else TIMED
    lengths = (WARM, WARM + timed)
    fns = {n: functools.partial(fit, n) for n in lengths}
    if mode != "eager":  # one trace per length (no AutoGraph: the loop is a tf.while_loop already)
        fns = {n: tf.function(fn, autograph=False) for n, fn in fns.items()}
    first = {}
    for n in lengths:  # the traces (and XLA compiles) happen here, untimed below
        reset()
        c = _clock()
        fns[n]().numpy()
        first[n] = _since(c)[0]
    times = []
    for _ in range(REPEATS):
        t = {}
        for n in lengths:
            reset()
            c = _clock()
            fns[n]().numpy()
            t[n] = _since(c)
        scale = TIMED / timed  # the window's seconds, as if it were TIMED steps
        times.append(((t[lengths[1]][0] - t[lengths[0]][0]) * scale, (t[lengths[1]][1] - t[lengths[0]][1]) * scale))
    return first, times


def main() -> dict:
    """Every measurement once; returns the figures."""
    eight, regression = register_model_files([EIGHT_SCHOOLS, REGRESSION])
    out = {"eight_schools": {}, "regression50": {}}
    for label, every in (("engine, telemetry", 100), ("engine, variance off", 0)):
        compile_s, times = _engine(eight.name, every)
        out["eight_schools"][label] = {"compile_s": compile_s, "cpu_s": _median(times, 1), "wall_s": _median(times, 0)}
    for mode in ("eager", "graph", "xla"):
        first, times = _fsp(eight, mode)
        out["eight_schools"][f"fit_surrogate_posterior, {mode}"] = {
            "first_call_s": first, "cpu_s": _median(times, 1), "wall_s": _median(times, 0)}
    for label, every in (("engine, telemetry", 100), ("engine, variance off", 0)):
        compile_s, times = _engine(regression.name, every)
        out["regression50"][label] = {"compile_s": compile_s, "cpu_s": _median(times, 1), "wall_s": _median(times, 0),
                                      "parameters": 2 * regression.dim}
    return out


def report(results: dict) -> str:
    """The figures as rates and ratios."""
    es = results["eight_schools"]
    engine = es["engine, telemetry"]
    lines = [f"Model files: eight schools non-centered (float64), mean-field, pathwise x{SAMPLES}, Adam {LR}; "
             f"steps {WARM:,} -> {WARM + TIMED:,}, median of {REPEATS}, CPU time (wall beside)"]
    for label, r in es.items():
        rate_cpu, rate_wall = TIMED / r["cpu_s"], TIMED / r["wall_s"]
        line = f"  {label}: {rate_cpu:,.0f} steps/s CPU ({rate_wall:,.0f} wall)"
        if not label.startswith("engine, telemetry"):
            line += f"; engine with telemetry = {r['cpu_s'] / engine['cpu_s']:.1f}x this (wall {r['wall_s'] / engine['wall_s']:.1f}x)"
        lines.append(line)
    for label, r in es.items():
        if "compile_s" in r:
            lines.append(f"  compile, {label}: {r['compile_s']:.2f} s")
        else:
            firsts = ", ".join(f"{n:,} steps {s:.2f} s" for n, s in r["first_call_s"].items())
            lines.append(f"  first calls (trace/compile + steps), {label}: {firsts}")
    fsp = es["fit_surrogate_posterior, eager"]
    ratio = fsp["cpu_s"] / engine["cpu_s"]
    lines.append(f"  goal: engine >= {GOAL_VS_FSP:g}x fit_surrogate_posterior as documented (eager): {ratio:.1f}x "
                 f"({'met' if ratio >= GOAL_VS_FSP else 'MISSED'}); against its graph and XLA forms: "
                 f"{es['fit_surrogate_posterior, graph']['cpu_s'] / engine['cpu_s']:.1f}x and "
                 f"{es['fit_surrogate_posterior, xla']['cpu_s'] / engine['cpu_s']:.2f}x")
    reg = results["regression50"]
    for label, r in reg.items():
        lines.append(f"  regression, 50 coefficients ({r['parameters']} parameters), {label}: {TIMED / r['cpu_s']:,.0f} steps/s "
                     f"CPU ({TIMED / r['wall_s']:,.0f} wall); compile {r['compile_s']:.2f} s")
    rate = TIMED / reg["engine, telemetry"]["cpu_s"]
    lines.append(f"  goal: >= {GOAL_REGRESSION:,.0f} steps/s at 50 coefficients: {rate:,.0f} "
                 f"({'met' if rate >= GOAL_REGRESSION else 'MISSED'})")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(main()))
