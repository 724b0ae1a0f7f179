"""What an estimator race costs against one run: the race of all five estimators in one
compiled call, against the pathwise run alone and against the five runs one after another.

Same dtype (float64), same settings (16 samples, Adam at the optimizer's default rate, variance
measured every 100 steps with 16 replicates), same seeds; every figure times steps 2,000 ->
12,000 from the same start (the first 2,000 run untimed) and is the median of ``REPEATS``
repeats, in process-CPU time (the machine may be shared; wall-clock beside it). Compile times
are their own lines: the race compiles every entrant into one XLA program.

Problems: normal-mean (q Normal: all five estimators race) and correlated-gaussian (q
mean-field Normal over 2 latents: five, and measure-valued pays 2 target evaluations per
parameter and sample, 8 per sample here); poisson-gamma (the reference problem: q Gamma has
no weak derivative implemented, so four race).
"""

from __future__ import annotations

import time

import numpy as np

from vizvi.engine import Run, RunConfig
from vizvi.race import Race

WARM, TIMED, REPEATS = 2_000, 10_000, 3
PROBLEMS = ("normal-mean", "correlated-gaussian", "poisson-gamma")


def _timed(make, timed: int = TIMED):
    """(compile s, [(wall s, cpu s) per repeat]) of WARM untimed then ``timed`` timed steps,
    each repeat from a fresh object (the compiled function is cached after the first)."""
    compile_s, times = None, []
    for _ in range(REPEATS):
        thing = make()
        dt = thing.compile()
        compile_s = dt if compile_s is None else compile_s
        thing.advance(WARM)
        w0, c0 = time.perf_counter(), time.process_time()
        thing.advance(timed)
        times.append((time.perf_counter() - w0, time.process_time() - c0))
    return compile_s, times


def _median(times, which):
    return float(np.median([t[which] for t in times]))


def main() -> dict:
    """Race against single runs on each problem; returns the figures."""
    out = {}
    for model in PROBLEMS:
        config = RunConfig(model=model, steps=WARM + TIMED, seed=0)
        race_compile, race_times = _timed(lambda: Race(config))
        entrants = [e.value for e in Race(config).entrants]
        singles = {}
        for e in entrants:
            c, t = _timed(lambda e=e: Run(RunConfig(**{**config.to_dict(), "estimator": e})))
            singles[e] = {"compile_s": c, "cpu_s": _median(t, 1), "wall_s": _median(t, 0)}
        out[model] = {
            "entrants": entrants,
            "race": {"compile_s": race_compile, "cpu_s": _median(race_times, 1), "wall_s": _median(race_times, 0)},
            "singles": singles,
        }
    return out


def report(results: dict) -> str:
    """The figures as ratios, one problem per block."""
    lines = [f"Estimator race: all entrants in one compiled call vs runs alone, steps {WARM:,} -> {WARM + TIMED:,}, "
             f"median of {REPEATS}, CPU time (wall beside)"]
    for model, r in results.items():
        race, singles = r["race"], r["singles"]
        one = singles["pathwise"]
        total_cpu = sum(s["cpu_s"] for s in singles.values())
        total_wall = sum(s["wall_s"] for s in singles.values())
        lines.append(f"  {model}: {len(r['entrants'])} entrants ({', '.join(r['entrants'])})")
        lines.append(f"    race of {len(r['entrants'])}: {race['cpu_s']:.3f} s CPU ({race['wall_s']:.3f} s wall) = "
                     f"{race['cpu_s'] / one['cpu_s']:.2f}x one pathwise run ({one['cpu_s']:.3f} s), "
                     f"{race['cpu_s'] / total_cpu:.2f}x the {len(singles)} runs one after another ({total_cpu:.3f} s; "
                     f"wall {race['wall_s'] / total_wall:.2f}x)")
        lines.append("    alone: " + ", ".join(f"{e} {s['cpu_s']:.3f} s" for e, s in singles.items()))
        # A configuration another benchmark compiled earlier in this process is fetched, not
        # compiled (the cache is per process): such a figure is said to be cached.
        def compile_text(seconds):
            return f"{seconds:.1f} s" if seconds >= 0.05 else "cached (compiled by an earlier benchmark)"

        lines.append(f"    compile: race {compile_text(race['compile_s'])}; pathwise alone {compile_text(one['compile_s'])}; "
                     f"the others alone {sum(s['compile_s'] for e, s in singles.items() if e != 'pathwise'):.1f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(main()))
