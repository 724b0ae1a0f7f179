"""What a comparison costs: N runs that differ only in numbers (initial values, learning rate,
seed) advanced as one set, against one run alone, for N = 1, 2, 4, 8.

Same dtype (float64), same settings per run (16 samples, Adam, variance every 100 steps with 16
replicates), same start; every figure times steps 2,000 -> 12,000 (the first 2,000 untimed) and
is the median of ``race.REPEATS`` repeats in process-CPU time (wall-clock beside). Compile
times are their own lines.

Problems:
- poisson-gamma, q Gamma (the reference problem of ``bench.engine``). TFP samples the Gamma by
  rejection, a data-dependent loop ``tf.vectorized_map`` cannot compile under XLA, so a set of
  Gamma runs is a *mapped* group: one step in the program looped over the members.
- normal-mean (q Normal) and correlated-gaussian (q mean-field Normal): *vectorized* groups, one
  step for the whole batch.

Goal (issue 10): 8 runs under 2x one run on the reference problem. The report also times the
floor of any batching: one run drawing eight runs' samples per step does all their per-sample
work with none of their per-run overhead; where that floor is above 2x (the reference problem:
the Gamma sampler and its implicit reparameterization gradient cost per sample), no batching
can meet the goal on this machine.
"""

from __future__ import annotations

import dataclasses

from bench.race import REPEATS, WARM, _median, _timed
from vizvi.compare import RunSet
from vizvi.engine import Run, RunConfig

TIMED = 10_000
SIZES = (1, 2, 4, 8)
PROBLEMS = {
    "poisson-gamma (reference)": RunConfig(model="poisson-gamma", family="gamma", n=1000, samples=16, lr=0.05,
                                           init="concentration=1,rate=1"),
    "normal-mean": RunConfig(model="normal-mean", samples=16),
    "correlated-gaussian": RunConfig(model="correlated-gaussian", samples=16),
}


def _members(base: RunConfig, size: int) -> list:
    """``size`` runs of ``base`` differing in learning rate and seed (numbers only)."""
    return [dataclasses.replace(base, lr=(base.lr or 0.05) * (1 + 0.1 * i), seed=i, steps=WARM + TIMED)
            for i in range(size)]


def main() -> dict:
    """Sets of 1, 2, 4 and 8 runs against one run, per problem; returns the figures."""
    out = {}
    for name, base in PROBLEMS.items():
        one_compile, one_times = _timed(lambda: Run(_members(base, 1)[0]), TIMED)
        sets = {}
        for size in SIZES:
            compile_s, times = _timed(lambda size=size: RunSet(_members(base, size)), TIMED)
            probe = RunSet(_members(base, size))
            sets[size] = {"compile_s": compile_s, "cpu_s": _median(times, 1), "wall_s": _median(times, 0),
                          "vectorized": probe.batched}
        # The floor of any batching: one run drawing the samples of eight (8 x 16 per step) does
        # all the per-sample work of 8 runs with none of their per-run overhead.
        wide = dataclasses.replace(_members(base, 1)[0], samples=8 * base.samples)
        _, wide_times = _timed(lambda: Run(wide), TIMED)
        out[name] = {"one": {"compile_s": one_compile, "cpu_s": _median(one_times, 1), "wall_s": _median(one_times, 0)},
                     "sets": sets, "eight_runs_samples_in_one": {"cpu_s": _median(wide_times, 1)}}
    return out


def report(results: dict) -> str:
    """The figures as ratios to one run alone, one problem per block."""
    lines = [f"Comparison sets: N runs differing in learning rate and seed, advanced as one set, vs one run alone; "
             f"steps {WARM:,} -> {WARM + TIMED:,}, median of {REPEATS}, CPU time (wall beside)"]
    for name, r in results.items():
        one = r["one"]
        lines.append(f"  {name}: one run {one['cpu_s']:.3f} s CPU ({one['wall_s']:.3f} s wall), compile {one['compile_s']:.1f} s")
        for size, s in r["sets"].items():
            how = "alone in a set" if size == 1 else "vectorized" if s["vectorized"] else "mapped"
            lines.append(f"    {size} runs ({how}): {s['cpu_s']:.3f} s CPU = {s['cpu_s'] / one['cpu_s']:.2f}x one run "
                         f"(wall {s['wall_s'] / one['wall_s']:.2f}x); compile {s['compile_s']:.1f} s")
        eight = r["sets"][8]["cpu_s"] / one["cpu_s"]
        floor = r["eight_runs_samples_in_one"]["cpu_s"] / one["cpu_s"]
        lines.append(f"    8 runs: {eight:.2f}x one run (goal < 2x): {'met' if eight < 2 else 'MISSED'}; "
                     f"floor: one run with 8 runs' samples ({8 * PROBLEMS[name].samples} per step) costs {floor:.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(main()))
