"""Variance explorer throughput: figure 2 of Mohamed et al. (2020) at the dashboard's default.

The figure: the variance of estimates of d/dmu and d/dsigma E_{N(x | 1, 1)}[(x - k)^2] for 13
values of k from -3 to 3, 200,000 replicates of one-sample estimates, all five estimators
(``vizvi.variance_lab.compute``): 200,000 x 13 x 5 x 2 estimates.

Steady state is the median (with min-max) of repeated computations of the whole figure, in
wall-clock and process-CPU seconds. The first call, which traces and XLA-compiles the batch, is
reported on its own line (XLA's one-off start-up is paid by a trivial function before it), as
are a computation with other numbers (no retrace, no compile) and one with another number of k
values (a new shape: compiled, not retraced). Per-estimator cost: each estimator computed alone
(its own compiled batch), so the sum against the whole shows what the five share (draws, the
batch loop).

Goal: the figure in under 3 s (steady state, wall clock) on the 2-core reference machine.
"""

from __future__ import annotations

import os
import time

import numpy as np
from vizvi._tf import tf

from bench.engine import _clock, _since
from vizvi import variance_lab as vl

GOAL_S = 3.0
FIGURE = dict(cost="square", mu=1.0, sigma=1.0, k="-3:3:13", samples=1, replicates=200_000, seed=0)
SHOWN_K = (-3.0, 0.0, 3.0)  # the figure's columns the report prints


def _timed(config, estimators=None):
    c = _clock()
    result = vl.compute(config, estimators=estimators)
    return _since(c), result


def _steady(config, repeats, estimators=None) -> dict:
    """Median and min-max of ``repeats`` computations (wall and CPU seconds)."""
    times = [_timed(config, estimators)[0] for _ in range(repeats)]
    wall, cpu = [t[0] for t in times], [t[1] for t in times]
    return {"s": float(np.median(wall)), "min_s": min(wall), "max_s": max(wall), "cpu_s": float(np.median(cpu)),
            "runs": repeats}


def main(repeats: int = 5, estimator_repeats: int = 3) -> dict:
    """Time the figure (first call, steady state), a numeric change, a new shape, and each
    estimator alone; return the figures with the goal and whether it is met."""
    t_start = time.perf_counter()
    config = vl.LabConfig(**FIGURE)
    k_count = len(vl.parse_k(config.k))
    f = {"figure": dict(FIGURE), "estimates": config.replicates * k_count * len(vl.LabEstimator) * 2,
         "batch_rows": vl._batch_rows(k_count, config.replicates), "goal_s": GOAL_S}

    tf.function(lambda x: x + 1.0, jit_compile=True)(tf.constant(0.0, tf.float64)).numpy()  # XLA's start-up
    (f["first_call_s"], _), result = _timed(config)
    f["steady"] = _steady(config, repeats)
    f["compile_s"] = f["first_call_s"] - f["steady"]["s"]  # trace + XLA compile: the first call less a steady one
    other = vl.LabConfig(**{**FIGURE, "mu": 0.3, "sigma": 1.7, "k": "-2:4:13", "seed": 7})
    f["numeric_change_s"] = _timed(other)[0][0]
    f["new_shape_first_call_s"] = _timed(vl.LabConfig(**{**FIGURE, "k": "-3:3:25", "replicates": 100_000}))[0][0]
    f["variance"] = {est: {p: [float(per[p][list(result.k).index(k)]) for k in SHOWN_K] for p in vl.PARAMS}
                     for est, per in result.variance.items()}

    f["per_estimator"] = {}
    for est in vl.LabEstimator:
        (first, _), _ = _timed(config, [est])
        f["per_estimator"][est.value] = {**_steady(config, estimator_repeats, [est]), "first_call_s": first}
    f["per_estimator_sum_s"] = sum(e["s"] for e in f["per_estimator"].values())
    f["goal_met"] = f["steady"]["s"] < GOAL_S
    f["load_average"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    f["bench_wall_s"] = time.perf_counter() - t_start
    return f


def report(figures: dict) -> str:
    """Human-readable lines: the figure's steady state against the goal, compile apart, per estimator."""
    f = figures
    s = f["steady"]
    w = 44
    fig = f["figure"]
    k_count = len(vl.parse_k(fig["k"]))
    lines = [
        f"variance explorer, figure 2: {fig['replicates']:,} replicates x {k_count} values of k x 5 estimators x 2 parameters "
        f"({f['estimates']:,} estimates), {fig['cost']} cost, mu = {fig['mu']:g}, sigma = {fig['sigma']:g}, "
        f"samples = {fig['samples']}; batches of {f['batch_rows']:,} replicates",
        f"  {'figure, steady state (median [min-max])':<{w}}{s['s']:>7.3f} s [{s['min_s']:.3f}-{s['max_s']:.3f}]  "
        f"CPU {s['cpu_s']:.3f} s, {s['runs']} runs",
        f"  {'goal: the figure in under':<{w}}{f['goal_s']:>7.3f} s   {'met' if f['goal_met'] else 'MISSED'}: "
        f"{f['goal_s'] / s['s']:.1f}x the goal's speed",
        f"  {'first call (trace + XLA compile + run)':<{w}}{f['first_call_s']:>7.3f} s   compile ~{f['compile_s']:.2f} s, "
        f"once per cost and process",
        f"  {'other mu, sigma, k values, seed':<{w}}{f['numeric_change_s']:>7.3f} s   no retrace, no compile",
        f"  {'25 values of k, 100k replicates (new shape)':<{w}}{f['new_shape_first_call_s']:>7.3f} s   XLA compile of the "
        f"new shape, no retrace",
        "  each estimator alone (steady median; first call with its compile in brackets):",
    ]
    for est, e in f["per_estimator"].items():
        lines.append(f"    {est:<{w - 2}}{e['s']:>7.3f} s  ({e['first_call_s']:.2f} s)")
    lines.append(f"    {'sum of the five alone':<{w - 2}}{f['per_estimator_sum_s']:>7.3f} s  against {s['s']:.3f} s together "
                 f"(shared draws and batches)")
    head = "".join(f"{'k = ' + format(k, 'g'):>12}" for k in SHOWN_K)
    lines.append(f"  variance of one estimate, d/dmu | d/dsigma: {head} |{head}")
    for est, per in f["variance"].items():
        row = "".join(f"{v:>12.4g}" for v in per["mu"]) + " |" + "".join(f"{v:>12.4g}" for v in per["sigma"])
        lines.append(f"    {est:<{w - 2}}{row}")
    if f.get("load_average"):
        lines.append(f"  load average at the end {f['load_average'][0]:.2f} (2 cores); bench took {f['bench_wall_s']:.0f} s")
    return "\n".join(lines)
