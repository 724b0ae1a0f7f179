"""Stall and divergence diagnosis from a run's telemetry.

Each variational parameter is classified from its most recent full-resolution steps:

- ``converged``: at the known optimum (within 5%), or, where no optimum is known, its gradient
  has no significant mean lately and the parameter holds still;
- ``stalled (step-limited)``: its gradient keeps one sign window after window, significantly,
  while the parameter moves too little to arrive soon: the optimizer's step is the bottleneck
  (the seed-000 story: a Gamma concentration that barely moves);
- ``stalled (noise-limited)``: it is far from its optimum (or, with no known optimum, wanders
  while the signal-to-noise ratio of its gradient estimate is near zero) and no recent window
  shows a reliable gradient direction: the estimator's noise drowns the signal. A parameter that
  merely tracks a step-limited one (its gradient is near zero given the others) is reported as
  ``converging`` and names the bottleneck instead;
- ``converging``: none of these; progress is being made;
- ``diverged``: the run stopped on a non-finite value in this parameter;
- ``warming up``: too few steps to judge.

Each verdict carries a one-line explanation and, for stalls, a concrete suggestion: a change
of settings that a fresh run can apply.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Optional

import numpy as np

from vizvi import estimators, optimizers
from vizvi.status import Status
from vizvi.parameterizations import Constraint, Parameterization


class Verdict(str, enum.Enum):
    """What the diagnosis says of one parameter."""

    WARMING_UP = "warming up"
    CONVERGING = "converging"
    CONVERGED = "converged"
    STEP_LIMITED = "stalled (step-limited)"
    NOISE_LIMITED = "stalled (noise-limited)"
    DIVERGED = "diverged"

    @property
    def stalled(self) -> bool:
        """True for the two kinds of stall."""
        return self in (Verdict.STEP_LIMITED, Verdict.NOISE_LIMITED)

    def __str__(self) -> str:
        return self.value

WINDOW = 1000  # steps looked at
MIN_STEPS = 100  # fewer than this: too early to judge
SUBWINDOWS = 5
SIGNIFICANT_SE = 3.0  # a window's mean gradient is significant beyond this many standard errors
NOISE_SNR = 0.1  # single-estimate SNR below this is "near zero"
AT_OPTIMUM = 0.05  # relative distance counted as at the optimum
STEP_LIMITED_RELATIVE_CHANGE = 0.5  # moved less than this (relative) over the window
ETA_FACTOR = 5  # step-limited if arriving would take more than this many windows


def _window_stats(x: np.ndarray, parts: int):
    chunks = np.array_split(x, parts)
    means = np.array([c.mean() for c in chunks])
    ses = np.array([c.std(ddof=1) / np.sqrt(len(c)) if len(c) > 1 else np.inf for c in chunks])
    return means, ses


# Natural gradients with a constant step reach the optimum and then jump about it with the
# noise (reference stall, lr 0.1: concentration 2925-5108 over 5k steps, KL 3e-3); a
# Robbins-Monro schedule lets them settle (3764-4149, KL 6e-5), so the suggestion carries it.
_NATURAL_SETTLED = {"optimizer": "natural", "lr": None, "schedule": "robbins-monro"}
_SETTLE = ", with a Robbins-Monro schedule so that the noisy steps shrink and it settles at the optimum"


def _suggest_step_limited(run, name: str, constraint: Constraint) -> dict:
    c = run.config
    if not optimizers.spec(c.optimizer).natural:
        return {
            "text": "switch the optimizer to natural: natural-gradient steps are scaled by the geometry of q, so a "
                    "parameter that needs to grow a hundredfold gets there in a few steps" + _SETTLE,
            "config": _NATURAL_SETTLED,
        }
    if constraint is Constraint.POSITIVE and c.parameterization != Parameterization.EXP.value:
        return {"text": "use the exp parameterization: steps in log space change the parameter by a fixed factor",
                "config": {"parameterization": "exp"}}
    if c.init not in ("prior",):
        return {"text": "initialise from the prior (init = prior) to start nearer the posterior", "config": {"init": "prior"}}
    return {"text": f"raise the learning rate (now {c.lr:g})", "config": {"lr": c.lr * 5}}


def _suggest_noise_limited(run) -> dict:
    c = run.config
    estimator = estimators.spec(c.estimator)
    if estimator.score_function and estimator.quieter:
        # Leaving the score function is the big win; pathwise -> stl is a small one (below).
        return {"text": estimator.quieter_why, "config": {"estimator": estimator.quieter}}
    if optimizers.spec(c.optimizer).adaptive:
        # Measured on the reference stall (Gamma q, Adam 0.05, 16 samples): 80k more steps of
        # stl left KL at 3.2 (pathwise: 3.4); natural from scratch reached 0.007 in 5k steps.
        return {"text": f"switch the optimizer to natural: {c.optimizer} divides each step by the gradient's running "
                        "size, so when noise dominates its steps shrink to about signal-to-noise x learning rate; "
                        "natural-gradient steps follow the geometry of q and are not shrunk by the noise" + _SETTLE,
                "config": _NATURAL_SETTLED}
    if estimator.quieter:
        return {"text": estimator.quieter_why, "config": {"estimator": estimator.quieter}}
    if c.samples < 256:
        return {"text": f"use more samples per step (now {c.samples}): variance falls as 1/samples",
                "config": {"samples": min(c.samples * 4, 4096)}}
    return {"text": "use the robbins-monro schedule to average the noise out", "config": {"schedule": "robbins-monro"}}


def _verdict(status: Verdict, text: str, suggestion: Optional[dict] = None) -> dict:
    return {"status": status, "text": text, "suggestion": suggestion}


class Evidence(NamedTuple):
    """What the last window of steps says of one parameter."""

    significant: np.ndarray  # [SUBWINDOWS] bool: the window's mean gradient is significant
    consistent: bool  # significant in every window, always the same sign
    direction: str  # "up" or "down": the last window's gradient sign
    value: float  # the parameter now (last subwindow's mean)
    rel_change: float  # moved, relative to its size, over the window
    rel_spread: float  # max - min over the window, relative to its size
    snr: Optional[float]  # median single-estimate signal-to-noise in the window
    at_optimum: bool  # within AT_OPTIMUM of a known optimum
    slow: bool  # would not arrive within ETA_FACTOR windows at this pace (or barely moves)
    where: str  # how far from its optimum, for the verdict's text


def _evidence(grad: np.ndarray, theta: np.ndarray, snr: np.ndarray, constraint: Constraint, target) -> Evidence:
    """Evidence from one parameter's gradient, values and SNR measurements over the window."""
    w = len(grad)
    g_means, g_ses = _window_stats(grad, SUBWINDOWS)
    significant = np.abs(g_means) > SIGNIFICANT_SE * g_ses
    consistent = bool(significant.all() and (np.all(g_means > 0) or np.all(g_means < 0)))
    t_means, _ = _window_stats(theta, SUBWINDOWS)
    t_start, t_end = t_means[0], t_means[-1]
    floor = 1e-8 if constraint is Constraint.POSITIVE else 0.1
    scale = max(abs(t_start), abs(t_end), floor)
    rel_change = abs(t_end - t_start) / scale
    snr = snr[np.isfinite(snr)]
    pace = abs(t_end - t_start) / max(w * (SUBWINDOWS - 1) / SUBWINDOWS, 1)
    at_optimum, slow, where = False, rel_change < STEP_LIMITED_RELATIVE_CHANGE, ""
    if target is not None:
        gap = abs(t_end - target)
        at_optimum = gap <= AT_OPTIMUM * max(abs(target), floor)
        eta = gap / pace if pace > 0 else np.inf
        slow = eta > ETA_FACTOR * w
        where = f"; at this pace it needs about {eta:,.0f} more steps to reach its optimum {target:.4g}" if np.isfinite(eta) else \
            f"; its optimum is {target:.4g}"
    return Evidence(significant, consistent, "up" if g_means[-1] > 0 else "down", t_end, rel_change,
                    (theta.max() - theta.min()) / scale, float(np.median(snr)) if len(snr) else None, at_optimum, slow, where)


def _judge(run, n: str, constraint: Constraint, ev: Evidence, w: int, has_optimum: bool) -> Optional[dict]:
    """The verdict on one parameter, or None when it is far and slow without a steady gradient:
    noise-limited, unless it follows a step-limited parameter (decided once all are judged)."""
    if ev.at_optimum:
        target = run.optimum[run.family.param_names.index(n)]
        return _verdict(Verdict.CONVERGED, f"{n} = {ev.value:.4g} is within {AT_OPTIMUM:.0%} of its optimum {target:.4g}")
    if ev.consistent and ev.slow:
        return _verdict(
            Verdict.STEP_LIMITED,
            f"{n} is step-limited: its gradient has pointed {ev.direction} in every one of the last {SUBWINDOWS} windows "
            f"({w} steps) yet it moved only {ev.rel_change:.1%} (now {ev.value:.4g}){ev.where}. The optimizer's step is the bottleneck.",
            _suggest_step_limited(run, n, constraint),
        )
    quiet = not ev.significant[-2:].any()
    noisy_without_optimum = not has_optimum and ev.snr is not None and ev.snr < NOISE_SNR and ev.rel_spread > 0.1
    # Far from a known optimum and too slow to arrive, with no steady gradient direction:
    # noise-limited even if a window or two shows a significant mean (a parameter 76x short
    # of its optimum, moving 10% per thousand steps, is not "converging").
    if ev.slow and (has_optimum or (quiet and noisy_without_optimum)):
        return None
    if not has_optimum and quiet and ev.rel_spread <= 0.1:
        return _verdict(Verdict.CONVERGED, f"{n} = {ev.value:.4g} holds still and its gradient has no significant mean")
    return _verdict(Verdict.CONVERGING, f"{n} = {ev.value:.4g} is still moving ({ev.rel_change:.1%} over the last {w} steps)")


def _noisy_verdict(run, n: str, ev: Evidence, w: int, bottlenecks: list) -> dict:
    """A far, slow parameter with no steady gradient: following a bottleneck, or noise-limited."""
    if bottlenecks:
        return _verdict(
            Verdict.CONVERGING,
            f"{n} = {ev.value:.4g} follows {', '.join(bottlenecks)}: its own gradient is near zero given the others, "
            f"so it moves only as fast as the bottleneck ({ev.rel_change:.1%} over the last {w} steps)",
        )
    snr_text = f"{ev.snr:.2g}" if ev.snr is not None else "not measured"
    return _verdict(
        Verdict.NOISE_LIMITED,
        f"{n} is noise-limited: no window of the last {w} steps shows a reliable gradient direction "
        f"(single-estimate signal-to-noise {snr_text}), so its steps are mostly noise (now {ev.value:.4g}){ev.where}.",
        _suggest_noise_limited(run),
    )


def diagnose(run) -> dict:
    """Per-parameter verdicts ``{name: {"status": Verdict, "text", "suggestion"}}`` for a Run,
    the parameter farthest from its optimum (relative) first: the banner a user reads first
    names the bottleneck."""
    names = run.family.param_names
    out = {}
    if run.status is Status.DIVERGED and run.divergence:
        d = run.divergence
        for n in names:
            if d["parameter"] in (None, n):
                fix = ({"text": "start from the prior's match (init=prior)", "config": {"init": "prior"}} if d.get("at_start")
                       else {"text": "lower the learning rate tenfold", "config": {"lr": run.config.lr / 10}})
                out[n] = _verdict(Verdict.DIVERGED, d["message"], fix)
    rec = run.history.steps.recent()
    steps_seen = len(rec["step"]) if rec else 0
    if steps_seen < MIN_STEPS:
        for n in names:
            out.setdefault(n, _verdict(Verdict.WARMING_UP, f"{n}: too few steps to judge ({steps_seen} < {MIN_STEPS})"))
        return out
    w = min(WINDOW, steps_seen)
    grad, theta = rec["grad"][-w:], rec["theta"][-w:]
    var = run.history.variance.recent()
    var_steps = var.get("step", np.zeros(0))
    recent_var = var_steps >= rec["step"][-w] if len(var_steps) else np.zeros(0, bool)
    pending = {}
    for i, (n, constraint) in enumerate(zip(names, run.family.constraints)):
        if n in out:
            continue
        snr = var["grad_snr"][recent_var, i] if recent_var.any() else np.zeros(0)
        target = run.optimum[i] if run.optimum is not None else None
        ev = _evidence(grad[:, i], theta[:, i], snr, constraint, target)
        verdict = _judge(run, n, constraint, ev, w, run.optimum is not None)
        if verdict is None:
            pending[n] = ev
        else:
            out[n] = verdict
    bottlenecks = [n for n, v in out.items() if v["status"] is Verdict.STEP_LIMITED]
    for n, ev in pending.items():
        out[n] = _noisy_verdict(run, n, ev, w, bottlenecks)
    return {n: out[n] for n in _farthest_first(run, names, theta[-1])}


def _farthest_first(run, names, theta) -> list:
    """Parameter names ordered by relative distance from their optimum, farthest first (the
    family's order where no optimum is known; a stable sort keeps it among ties)."""
    if run.optimum is None:
        return list(names)
    gap = np.abs(theta - run.optimum) / np.maximum(np.abs(run.optimum), 1e-8)
    # Rounded so that parameters equally far (both ~99% short, as a Gamma's concentration and
    # rate are when they must grow together) keep the family's order.
    return [names[i] for i in np.argsort(-np.round(gap, 2), kind="stable")]


def stalled(run) -> list:
    """Names of the stalled parameters."""
    return [n for n, d in diagnose(run).items() if d["status"].stalled]


# -- how good q is as a whole: PSIS k-hat and the latent moments against a reference ----------
KHAT_GOOD = 0.5  # below: q is close where importance sampling needs it (Yao et al. 2018)
MEAN_OFF_SD = 0.5  # a latent's q mean this many reference sds from the reference mean is "off"
SD_RATIO_LOW, SD_RATIO_HIGH = 0.67, 1.5  # q's sd outside these multiples of the reference sd


class LatentGap(NamedTuple):
    """One latent element: q's mean and sd against the reference's."""

    name: str  # the part's name with its index, e.g. theta[3]
    q_mean: float
    q_sd: float
    ref_mean: float
    ref_sd: float

    @property
    def mean_gap(self) -> float:
        """(q mean - reference mean) in reference sds."""
        return (self.q_mean - self.ref_mean) / self.ref_sd if self.ref_sd > 0 else float("nan")

    @property
    def sd_ratio(self) -> float:
        """q's sd over the reference's."""
        return self.q_sd / self.ref_sd if self.ref_sd > 0 else float("nan")


def _elements(means: dict, sds: dict):
    """(name[index], mean, sd) for every element of every latent part."""
    for part, m in means.items():
        m, s = np.asarray(m, dtype=float), np.asarray(sds[part], dtype=float)
        if m.ndim == 0:
            yield part, float(m), float(s)
        else:
            for idx in np.ndindex(*m.shape):
                yield f"{part}[{','.join(map(str, idx))}]", float(m[idx]), float(s[idx])


def latent_gaps(run) -> list:
    """Every latent element's q moments against the reference's (empty without a reference
    that has latent moments), the worst (largest |mean gap| or sd ratio away from 1) first."""
    ref = run.reference
    if ref is None:
        return []
    ref_mean, ref_sd = run.model.reference_moments(ref)
    if not ref_mean:
        return []
    q_mean, q_sd = run.model.latent_moments(run.family, run.theta)
    refs = {n: (m, s) for n, m, s in _elements(ref_mean, ref_sd)}
    gaps = [LatentGap(n, m, s, *refs[n]) for n, m, s in _elements(q_mean, q_sd) if n in refs]

    def badness(g):
        return max(abs(g.mean_gap) / MEAN_OFF_SD, abs(np.log(max(g.sd_ratio, 1e-12))) / np.log(SD_RATIO_HIGH))

    return sorted(gaps, key=badness, reverse=True)


def posterior_check(run) -> dict:
    """How well q matches the target as a whole: the latest PSIS k-hat with its verdict, and
    the latent elements whose mean or sd is off the reference's. ``lines`` say it in words."""
    khat_series = run.history.variance_series().get("khat", np.zeros(0))
    khat_series = np.asarray(khat_series, dtype=float)
    khat_series = khat_series[~np.isnan(khat_series)]
    lines = []
    khat = float(khat_series[-1]) if len(khat_series) else None
    if khat is not None:
        from vizvi.psis import KHAT_THRESHOLD

        if khat > KHAT_THRESHOLD:
            lines.append(f"PSIS k-hat = {khat:.2f} > {KHAT_THRESHOLD}: importance weights of the target against q have "
                         f"(effectively) infinite variance, so q is not a reliable approximation of this posterior "
                         f"(Yao et al. 2018): trust its moments only as far as a reference confirms them.")
        elif khat > KHAT_GOOD:
            lines.append(f"PSIS k-hat = {khat:.2f}, between {KHAT_GOOD} and {KHAT_THRESHOLD}: q is usable but rough.")
        else:
            lines.append(f"PSIS k-hat = {khat:.2f} < {KHAT_GOOD}: q is close to the posterior where it matters.")
    gaps = latent_gaps(run)
    off = [g for g in gaps if abs(g.mean_gap) > MEAN_OFF_SD or not SD_RATIO_LOW <= g.sd_ratio <= SD_RATIO_HIGH]
    ref = run.reference
    for g in off[:5]:
        parts = []
        if abs(g.mean_gap) > MEAN_OFF_SD:
            parts.append(f"its mean {g.q_mean:.3g} is {abs(g.mean_gap):.1f} reference sds {'above' if g.mean_gap > 0 else 'below'} "
                         f"the reference's {g.ref_mean:.3g}")
        if not SD_RATIO_LOW <= g.sd_ratio <= SD_RATIO_HIGH:
            parts.append(f"its sd {g.q_sd:.3g} is {g.sd_ratio:.2f}x the reference's {g.ref_sd:.3g} "
                         f"({'too narrow: q understates the uncertainty' if g.sd_ratio < 1 else 'too wide'})")
        lines.append(f"{g.name}: " + "; ".join(parts) + ".")
    if gaps and not off:
        lines.append(f"Every latent's q mean is within {MEAN_OFF_SD} reference sds of the reference's and its sd within "
                     f"{SD_RATIO_LOW}-{SD_RATIO_HIGH}x.")
    if ref is not None and ref.mcmc is not None and ref.mcmc.get("divergences"):
        lines.append(f"The NUTS reference itself had {ref.mcmc['divergences']} divergent transitions (a funnel or other "
                     f"hard geometry): it may miss part of the posterior, so read these gaps with care.")
    return {"khat": khat, "gaps": [g._asdict() | {"mean_gap": g.mean_gap, "sd_ratio": g.sd_ratio} for g in gaps],
            "off": [g.name for g in off], "lines": lines}
