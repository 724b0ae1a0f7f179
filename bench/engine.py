"""Engine throughput on the reference problem: steady state against steady state, one run.

Reference problem: poisson-gamma, n = 1000 (seed 0), q = Gamma(concentration, rate) through
softplus, pathwise gradient with 16 samples, Adam lr 0.05, starting at concentration = rate = 1.

Every competitor is timed over the same steps from the same start, steps 2,000 to 22,000 (a
Gamma pathwise step gets dearer as the concentration grows, so another window would not be the
same work): the first 2,000 steps run untimed, the next 20,000 are timed. Compile and start-up
are measured and reported on their own lines, never inside a steady-state figure.

- ``hand-written loop``: the same log joint, q, estimator, seeds (``fold_in(seed, step)``, as the
  engine draws) and Adam in one XLA ``tf.while_loop`` with no telemetry: the ceiling. It follows
  the engine's trajectory; the report checks that both end at the same theta.
- ``fit_surrogate_posterior``: ``tfp.vi.fit_surrogate_posterior(jit_compile=True)`` with a Keras
  Adam, fresh surrogate variables and optimizer for each fit. Every call traces and compiles
  anew, so its speed is measured two ways: (a) *re-run*: each fit length (2,000 and 22,000
  steps) traced and compiled once in a ``tf.function``, then re-run from the same start (its
  variables and the optimizer's reset) and timed: 20,000 / (t_22000 - t_2000), compile excluded
  exactly; (b) *fresh fits*, each call compiling: 20,000 / (median t_22000 - median t_2000). (b)
  cancels the compile only on average: the compile's jitter (about +-0.3 s) is as large as the
  20,000 timed steps (about 0.65 s), so (b) is printed with its spread as a check and the
  ratios use (a). Its first-call time (trace + compile, paid on every call) is its own line.
- ``engine``: ``vizvi.engine.Run`` with full telemetry at the default variance cadence, and with
  variance off, via ``Run.advance`` (the path the dashboard's trainer and the CLI take).
- ``engine via CLI``: ``python -m vizvi run ... --json`` in-process (``vizvi.cli.main``) for
  2,000 and for 22,000 steps; the difference includes the run's record and its JSON, so the
  CLI's host-side cost shows against the bare engine.

float64 is the project's dtype; the hand-written loop and fit_surrogate_posterior are also
timed in float32 beside it (the engine is float64 only).

Each steady-state figure is the median over repeated runs, with min-max, in wall-clock steps/s
and in process-CPU-time steps/s. The machine may be shared: CPU time does not count time the
process waited for a core, so its ratios hold still while wall-clock ones swing. The goal is
checked on CPU time; wall-clock ratios are printed beside.

Goal (issue 8): engine with full telemetry >= 0.8x the hand-written loop.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time

import numpy as np
from vizvi._tf import tf
import tensorflow_probability as tfp

from vizvi.engine import Run, RunConfig
from vizvi.families import get_family
from vizvi.models import get_model

tfd, tfb = tfp.distributions, tfp.bijectors

MODEL, FAMILY, N, SEED = "poisson-gamma", "gamma", 1000, 0
SAMPLES, LR, INIT = 16, 0.05, (1.0, 1.0)
WARM, TIMED = 2_000, 20_000  # untimed steps, then the timed window: steps 2,000 -> 22,000
GOAL_ENGINE_VS_HAND = 0.8
FSP_SEED = (1, 2)
MAX_ROUNDS = 6


def _clock():
    return time.perf_counter(), time.process_time()


def _since(start):
    w, c = _clock()
    return w - start[0], c - start[1]


def _summary(rates) -> dict:
    """Median and spread of [(wall steps/s, cpu steps/s), ...]."""
    wall = [r[0] for r in rates]
    cpu = [r[1] for r in rates]
    return {
        "steps_per_s": float(np.median(wall)), "min": float(min(wall)), "max": float(max(wall)),
        "cpu_steps_per_s": float(np.median(cpu)), "cpu_min": float(min(cpu)), "cpu_max": float(max(cpu)),
        "runs": len(rates),
    }


def _rate(seconds) -> tuple:
    return TIMED / seconds[0], TIMED / seconds[1]


# -- the problem, written once for both dtypes --------------------------------------------------
def _problem():
    model = get_model(MODEL)
    family = get_family(FAMILY, model)
    data = model.data_tensors(model.simulate(N, SEED))
    # q's class is the family's own (its Gamma writes (c - 1) log z as a plain product).
    q_class = type(family.build(tf.constant([list(INIT)], tf.float64)))
    return model, family, data, q_class


def _log_joint(model, data, dtype):
    """PoissonGamma.log_joint (sufficient statistics + Gamma prior) in ``dtype``."""
    d = {k: tf.cast(v, dtype) for k, v in data.items()}
    prior = tfd.Gamma(tf.constant(getattr(model, "prior_concentration", 2.0), dtype),
                      tf.constant(getattr(model, "prior_rate", 1.0), dtype))

    def log_joint(z):
        return d["sum_x"] * tf.math.log(z) - d["n"] * z - d["sum_lgamma_x1"] + prior.log_prob(z)

    return log_joint


def _check_same_math(model, data):
    """The bench's dtype-generic log joint is the model's, to rounding (float64)."""
    z = tf.constant([0.5, 3.0, 4.2, 17.0], tf.float64)
    ours = _log_joint(model, data, tf.float64)(z).numpy()
    theirs = model.log_joint(z, data).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


# -- hand-written loop -------------------------------------------------------------------------
def _hand_loop(lj, q_class, dtype):
    """The engine's steps (same draws, same Adam) in one XLA while_loop, no telemetry.
    Returns (compile seconds, run(n from start) -> state, run_from(state, n))."""
    b1, b2, eps = 0.9, 0.999, 1e-7

    @tf.function(jit_compile=True)
    def loop(u, m, v, t0, n, seed):
        def body(t, u, m, v):
            with tf.GradientTape() as tape:
                tape.watch(u)
                theta = tf.nn.softplus(u)
                q = q_class(theta[0], theta[1])
                z = q.sample(SAMPLES, seed=tf.random.experimental.stateless_fold_in(seed, t))
                elbo = tf.reduce_mean(lj(z) - q.log_prob(z))
            g = tape.gradient(elbo, u)  # ascent direction; Adam on the loss -g, signs folded in
            tt = tf.cast(t + 1, dtype)
            m = m + (g - m) * (1.0 - b1)
            v = v + (g * g - v) * (1.0 - b2)
            alpha = LR * tf.sqrt(1.0 - tf.pow(tf.constant(b2, dtype), tt)) / (1.0 - tf.pow(tf.constant(b1, dtype), tt))
            return t + 1, u + alpha * m / (tf.sqrt(v) + eps), m, v

        return tf.while_loop(lambda t, *_: t < t0 + n, body, (t0, u, m, v))

    u0 = tfb.Softplus().inverse(tf.constant(INIT, dtype))
    zeros = tf.zeros([2], dtype)
    seed = tf.constant([SEED, 0], tf.int32)

    def run(state, n):
        out = loop(*state, tf.constant(n, tf.int32), seed)
        out[1].numpy()
        return (out[1], out[2], out[3], out[0])

    start = (u0, zeros, zeros, tf.constant(0, tf.int32))
    c0 = _clock()
    run(start, 0)
    compile_s = _since(c0)[0]

    def measure():
        state = run(start, WARM)
        c = _clock()
        state = run(state, TIMED)
        return _rate(_since(c)), tf.nn.softplus(state[0]).numpy()

    return compile_s, measure


# -- fit_surrogate_posterior -------------------------------------------------------------------
def _fsp_objects(lj, q_class, dtype):
    import tf_keras

    conc = tfp.util.TransformedVariable(tf.constant(INIT[0], dtype), tfb.Softplus())
    rate = tfp.util.TransformedVariable(tf.constant(INIT[1], dtype), tfb.Softplus())
    q = q_class(conc, rate)
    optimizer = tf_keras.optimizers.Adam(LR)

    def fit(num_steps):
        return tfp.vi.fit_surrogate_posterior(lj, q, optimizer, num_steps=num_steps, sample_size=SAMPLES,
                                              jit_compile=True, seed=FSP_SEED)

    return q, optimizer, fit


def _fsp_rerun(lj, q_class, dtype):
    """Each fit length traced and compiled once, then re-run from the same start.
    Returns (first-call seconds by length, measure)."""
    q, optimizer, fit = _fsp_objects(lj, q_class, dtype)
    fns = {n: tf.function(lambda n=n: fit(n)) for n in (WARM, WARM + TIMED)}
    start = [v.numpy() for v in q.trainable_variables]

    def reset():
        for var, value in zip(q.trainable_variables, start):
            var.assign(value)
        for var in optimizer.variables():
            var.assign(tf.zeros_like(var))

    first = {}
    for n, fn in fns.items():
        reset()
        c = _clock()
        fn().numpy()
        first[n] = _since(c)[0]

    def measure():
        t = {}
        for n, fn in fns.items():
            reset()
            c = _clock()
            fn().numpy()
            t[n] = _since(c)
        return (TIMED / (t[WARM + TIMED][0] - t[WARM][0]), TIMED / (t[WARM + TIMED][1] - t[WARM][1])), \
            np.array([q.concentration.numpy(), q.rate.numpy()])

    return first, measure


def _fsp_fresh(lj, q_class, dtype, pairs):
    """Fresh fits of 2,000 and 22,000 steps (each call traces and compiles); wall and CPU seconds."""
    times = {WARM: [], WARM + TIMED: []}
    for _ in range(pairs):
        for n in times:
            _, _, fit = _fsp_objects(lj, q_class, dtype)
            c = _clock()
            fit(n).numpy()
            times[n].append(_since(c))
    return times


# -- engine --------------------------------------------------------------------------------
def _config(**changes) -> RunConfig:
    settings = dict(model=MODEL, family=FAMILY, parameterization="softplus", estimator="pathwise", samples=SAMPLES,
                    optimizer="adam", lr=LR, init=f"concentration={INIT[0]:g},rate={INIT[1]:g}", seed=SEED, n=N,
                    steps=WARM + TIMED)
    settings.update(changes)
    return RunConfig(**settings)


def _engine_measure(variance_every):
    def measure():
        run = Run(_config(variance_every=variance_every))
        run.advance(WARM)
        c = _clock()
        run.advance(TIMED)
        seconds = _since(c)
        if run.step != WARM + TIMED:
            raise RuntimeError(f"engine stopped at step {run.step} ({run.status})")
        return _rate(seconds), np.asarray(run.theta)

    return measure


def _cli_argv(path: str, steps: int) -> list:
    return ["run", "--model", MODEL, "--family", FAMILY, "--parameterization", "softplus", "--estimator", "pathwise",
            "--samples", str(SAMPLES), "--optimizer", "adam", "--lr", str(LR),
            "--init", f"concentration={INIT[0]:g},rate={INIT[1]:g}", "--seed", str(SEED), "--n", str(N),
            "--steps", str(steps), "--json", path, "--quiet"]


def _cli_measure(tmpdir: str):
    from vizvi import cli

    path = os.path.join(tmpdir, "run.json")

    def call(steps):
        c = _clock()
        status = cli.main(_cli_argv(path, steps))
        if status != 0:
            raise RuntimeError(f"python -m vizvi run exited with status {status}")
        return _since(c)

    def measure():
        a, b = call(WARM), call(WARM + TIMED)
        return (TIMED / (b[0] - a[0]), TIMED / (b[1] - a[1])), None

    return measure


def _cli_host_cost():
    """Seconds the CLI spends after the last step of a 22,000-step run: record() and its JSON."""
    try:
        from vizvi.history import to_json
    except ImportError:
        return None
    run = Run(_config())
    run.advance(WARM + TIMED)
    c = _clock()
    record = run.record()
    record_s = _since(c)[0]
    c = _clock()
    text = to_json(record)
    json_s = _since(c)[0]
    return {"record_s": record_s, "json_s": json_s, "json_bytes": len(text), "history_rows": len(record["history"]["step"])}


# -- the run -------------------------------------------------------------------------------
def main(seconds: float = 4.0, repeats: int = 3) -> dict:
    """Run every measurement once and return the figures and the ratios between them.

    Each steady-state measurement is repeated at least ``repeats`` times and until about
    ``seconds`` of timed work (at most ``MAX_ROUNDS`` times), interleaved across competitors so a burst of
    load on the machine hits them alike; fresh fit_surrogate_posterior fits: ``repeats`` pairs.
    """
    t_start = time.perf_counter()
    model, family, data, q_class = _problem()
    _check_same_math(model, data)
    lj = {dt: _log_joint(model, data, dt) for dt in (tf.float64, tf.float32)}
    f = {"dtype": "float64", "window": [WARM, WARM + TIMED], "variance_every_default": RunConfig().variance_every}

    # Compile / start-up, each on its own line. XLA's one-off start-up is paid by a trivial
    # function first, so no competitor's compile carries it. Then the engine: its compile is the
    # first of its structural key in this process (unless something compiled it before main()).
    tf.function(lambda x: x + 1.0, jit_compile=True)(tf.constant(0.0, tf.float64)).numpy()
    c = _clock()
    f["engine_compile_s"] = Run(_config()).compile()
    f["engine_new_run_s"] = _since(c)[0]
    c = _clock()
    Run(_config(lr=0.01, seed=1, init="concentration=2,rate=0.5")).compile()
    f["engine_numeric_change_s"] = _since(c)[0]

    measures = {}
    for dt, tag in ((tf.float64, "64"), (tf.float32, "32")):
        f[f"hand_compile_s_f{tag}"], measures[f"hand_f{tag}"] = _hand_loop(lj[dt], q_class, dt)
        first, measures[f"fsp_rerun_f{tag}"] = _fsp_rerun(lj[dt], q_class, dt)
        f[f"fsp_first_call_s_f{tag}"] = first  # trace + compile + run, by fit length
    measures["engine"] = _engine_measure(RunConfig().variance_every)
    measures["engine_no_variance"] = _engine_measure(0)
    tmpdir = tempfile.mkdtemp(prefix="vizvi-bench-")
    measures["engine_cli"] = _cli_measure(tmpdir)
    cli_ok = True
    try:
        measures["engine_cli"]()  # warm: argument parsing, imports
    except Exception as e:  # noqa: BLE001 - the CLI is optional for the figures above
        cli_ok, f["engine_cli_error"] = False, f"{type(e).__name__}: {e}"
        del measures["engine_cli"]

    # Steady state, interleaved rounds.
    rates = {k: [] for k in measures}
    ends = {}
    rounds = 0
    while True:
        for name, measure in measures.items():
            rate, end = measure()
            rates[name].append(rate)
            if end is not None:
                ends[name] = end
        rounds += 1
        window_s = float(np.mean([TIMED / np.median([x[0] for x in r]) for r in rates.values()]))
        if rounds >= repeats and (rounds * window_s >= seconds or rounds >= MAX_ROUNDS):
            break
    for name, r in rates.items():
        f[name] = _summary(r)
    f["theta_end"] = {k: v.tolist() for k, v in ends.items()}

    # fit_surrogate_posterior as it is called: every call traces and compiles.
    for dt, tag in ((tf.float64, "64"), (tf.float32, "32")):
        times = _fsp_fresh(lj[dt], q_class, dt, repeats)
        small, big = times[WARM], times[WARM + TIMED]
        per_pair = [TIMED / (b[0] - a[0]) if b[0] > a[0] else math.inf for a, b in zip(small, big)]
        med = lambda xs, i: float(np.median([x[i] for x in xs]))  # noqa: E731
        steady = f[f"fsp_rerun_f{tag}"]["steps_per_s"]
        f[f"fsp_fresh_f{tag}"] = {
            "steps_per_s": TIMED / (med(big, 0) - med(small, 0)) if med(big, 0) > med(small, 0) else math.inf,
            "cpu_steps_per_s": TIMED / (med(big, 1) - med(small, 1)) if med(big, 1) > med(small, 1) else math.inf,
            "pair_steps_per_s": per_pair, "pair_min": min(per_pair), "pair_max": max(per_pair), "pairs": len(per_pair),
            "call_s_2000": med(small, 0), "call_s_22000": med(big, 0),
            # the first-call overhead: a fresh 2,000-step call less its 2,000 steady-state steps
            "first_call_overhead_s": med(small, 0) - WARM / steady,
            "first_call_overhead_min_s": min(a[0] for a in small) - WARM / steady,
            "first_call_overhead_max_s": max(a[0] for a in small) - WARM / steady,
        }

    shutil.rmtree(tmpdir, ignore_errors=True)
    if cli_ok:
        try:
            f["cli_host"] = _cli_host_cost()
        except Exception as e:  # noqa: BLE001
            f["cli_host"] = None
            f["cli_host_error"] = f"{type(e).__name__}: {e}"

    # Ratios, all from this run: CPU time (the goal's basis) and wall clock.
    def ratio(a, b, key):
        return f[a][key] / f[b][key]

    for key, suffix in (("cpu_steps_per_s", ""), ("steps_per_s", "_wall")):
        f["ratio_engine_vs_hand_written" + suffix] = ratio("engine", "hand_f64", key)
        f["ratio_engine_no_variance_vs_hand_written" + suffix] = ratio("engine_no_variance", "hand_f64", key)
        f["ratio_engine_vs_fit_surrogate_posterior" + suffix] = ratio("engine", "fsp_rerun_f64", key)
        f["ratio_fit_surrogate_posterior_vs_hand_written" + suffix] = ratio("fsp_rerun_f64", "hand_f64", key)
        f["variance_cost_fraction" + suffix] = 1.0 - ratio("engine", "engine_no_variance", key)
        if cli_ok:
            f["ratio_engine_cli_vs_hand_written" + suffix] = ratio("engine_cli", "hand_f64", key)
            f["ratio_engine_cli_vs_engine" + suffix] = ratio("engine_cli", "engine", key)
    f["ratio_engine_compile_vs_fsp_first_call"] = f["engine_compile_s"] / f["fsp_fresh_f64"]["first_call_overhead_s"]
    f["goal_engine_vs_hand_written"] = GOAL_ENGINE_VS_HAND
    f["goal_met"] = f["ratio_engine_vs_hand_written"] >= GOAL_ENGINE_VS_HAND
    # Same steps from the same start: the engine and the hand-written loop end at the same theta.
    if "engine" in ends and "hand_f64" in ends:
        f["theta_rel_diff_engine_vs_hand"] = float(np.max(np.abs(ends["engine"] / ends["hand_f64"] - 1.0)))
    f["load_average"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    f["bench_wall_s"] = time.perf_counter() - t_start
    # Back-compatible headline keys (steps/s, CPU-time medians).
    f["fit_surrogate_posterior"] = f["fsp_rerun_f64"]["cpu_steps_per_s"]
    f["hand_written_loop"] = f["hand_f64"]["cpu_steps_per_s"]
    return f


def _row(label, s, width=46):
    if s is None:
        return f"  {label:<{width}}{'-':>10}"
    return (f"  {label:<{width}}{s['steps_per_s']:>9,.0f} [{s['min']:>6,.0f}-{s['max']:>6,.0f}]"
            f"  {s['cpu_steps_per_s']:>9,.0f} [{s['cpu_min']:>6,.0f}-{s['cpu_max']:>6,.0f}]")


def _fresh_row(fresh, width):
    def fmt(x):
        return f"{x:,.0f}" if 0 < x < math.inf else "n/a"

    return (f"  {'fit_surrogate_posterior(jit), fresh fits':<{width}}{fmt(fresh['steps_per_s']):>9}"
            f"   check only: median difference of {fresh['pairs']} fit pairs, per pair {fmt(fresh['pair_min'])}"
            f"..{fmt(fresh['pair_max'])} (each call's compile jitters as much as the timed window)")


def report(figures: dict) -> str:
    """Human-readable table: steady state, compile apart, ratios with their goal."""
    f = figures
    w = 46
    lo, hi = f["window"]
    ve = f["variance_every_default"]
    fresh64, fresh32 = f["fsp_fresh_f64"], f["fsp_fresh_f32"]
    head = f"  {'':<{w}}{'wall steps/s [min-max]':>26}  {'CPU steps/s [min-max]':>26}"
    lines = [
        f"engine throughput, reference problem: {MODEL} n={N}, q Gamma (softplus), pathwise x{SAMPLES}, Adam lr {LR}, "
        f"init ({INIT[0]:g}, {INIT[1]:g}), seed {SEED}",
        f"steady state over steps {lo:,} -> {hi:,} from the same start; median [min-max] of {f['engine']['runs']} runs; "
        f"compile on its own lines",
        "float64 (the project's dtype)",
        head,
        _row("hand-written XLA loop, no telemetry", f["hand_f64"], w),
        _row("fit_surrogate_posterior(jit), re-run", f["fsp_rerun_f64"], w),
        _fresh_row(fresh64, w),
        _row(f"engine, full telemetry (variance every {ve})", f["engine"], w),
        _row("engine, variance off", f["engine_no_variance"], w),
        _row("engine via CLI (run --json), marginal", f.get("engine_cli"), w),
        "float32 (the engine is float64 only)",
        _row("hand-written XLA loop, no telemetry", f["hand_f32"], w),
        _row("fit_surrogate_posterior(jit), re-run", f["fsp_rerun_f32"], w),
        _fresh_row(fresh32, w),
        "compile / start-up, seconds (float64; float32 in brackets)",
        f"  {'fit_surrogate_posterior, first-call overhead':<{w}}{fresh64['first_call_overhead_s']:>9.2f} "
        f"[{fresh64['first_call_overhead_min_s']:.2f}-{fresh64['first_call_overhead_max_s']:.2f}]"
        f"  ({fresh32['first_call_overhead_s']:.2f})  paid on every call: each call traces and compiles",
        f"  {'engine, new configuration (first Run.compile)':<{w}}{f['engine_compile_s']:>9.2f}"
        f"   once per structural key and process{'  (already compiled?)' if f['engine_compile_s'] < 0.5 else ''}",
        f"  {'engine, new numeric settings (lr, seed, init)':<{w}}{f['engine_numeric_change_s']:>9.2f}   no retrace",
        f"  {'hand-written loop, first call':<{w}}{f['hand_compile_s_f64']:>9.2f}   ({f['hand_compile_s_f32']:.2f})",
    ]
    host = f.get("cli_host")
    if host:
        lines.append(f"  {'CLI after a 22,000-step run: record / JSON':<{w}}{host['record_s']:>9.3f} / {host['json_s']:.3f}"
                     f"   ({host['history_rows']:,} history rows, {host['json_bytes'] / 1e6:.1f} MB)")
    goal = f["goal_engine_vs_hand_written"]
    verdict = "met" if f["goal_met"] else "MISSED"
    lines += [
        "ratios, this run: CPU time (wall clock in brackets)",
        f"  {'engine / hand-written':<{w}}{f['ratio_engine_vs_hand_written']:>8.2f}x ({f['ratio_engine_vs_hand_written_wall']:.2f}x)"
        f"   goal >= {goal}x: {verdict}",
        f"  {'engine, variance off / hand-written':<{w}}{f['ratio_engine_no_variance_vs_hand_written']:>8.2f}x "
        f"({f['ratio_engine_no_variance_vs_hand_written_wall']:.2f}x)",
        f"  {'engine / fit_surrogate_posterior (re-run)':<{w}}{f['ratio_engine_vs_fit_surrogate_posterior']:>8.2f}x "
        f"({f['ratio_engine_vs_fit_surrogate_posterior_wall']:.2f}x)   issue's hope ~2.5x: "
        f"{'met' if f['ratio_engine_vs_fit_surrogate_posterior'] >= 2.5 else 'not met'}",
        f"  {'fit_surrogate_posterior / hand-written':<{w}}{f['ratio_fit_surrogate_posterior_vs_hand_written']:>8.2f}x "
        f"({f['ratio_fit_surrogate_posterior_vs_hand_written_wall']:.2f}x)",
    ]
    if "ratio_engine_cli_vs_hand_written" in f:
        lines += [
            f"  {'engine via CLI / hand-written':<{w}}{f['ratio_engine_cli_vs_hand_written']:>8.2f}x "
            f"({f['ratio_engine_cli_vs_hand_written_wall']:.2f}x)",
            f"  {'engine via CLI / engine':<{w}}{f['ratio_engine_cli_vs_engine']:>8.2f}x ({f['ratio_engine_cli_vs_engine_wall']:.2f}x)",
        ]
    else:
        lines.append(f"  engine via CLI: not measured ({f.get('engine_cli_error', 'unavailable')})")
    lines += [
        f"  {'variance telemetry cost (default cadence)':<{w}}{f['variance_cost_fraction']:>8.1%}  ({f['variance_cost_fraction_wall']:.1%})"
        f"   of the engine's step time",
        f"  {'engine compile / fsp first-call overhead':<{w}}{f['ratio_engine_compile_vs_fsp_first_call']:>8.2f}x",
    ]
    if "theta_rel_diff_engine_vs_hand" in f:
        end = f["theta_end"]["engine"]
        lines.append(f"same steps: engine and hand-written loop end at theta ({end[0]:.6g}, {end[1]:.6g}), "
                     f"max relative difference {f['theta_rel_diff_engine_vs_hand']:.1e}")
    if f.get("load_average"):
        lines.append(f"load average at the end {f['load_average'][0]:.2f} (2 cores: other work makes wall clock noisy); "
                     f"bench took {f['bench_wall_s']:.0f} s")
    return "\n".join(lines)
