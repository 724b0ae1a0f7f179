"""Comparisons a talk opens with one click: each a base configuration and the settings varied.

A preset is data, not code: ``Preset.configs()`` builds its runs with ``vizvi.compare.vary``
(and any extra runs), so a preset is exactly what a user could type as ``--vary`` options, and
its URL is ``?preset=<name>``. Each preset states the story its charts tell; the tests assert
that story on the engine's output (``tests/test_presets.py``).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from vizvi.compare import MAX_RUNS, vary
from vizvi.engine import RunConfig
from vizvi.errors import ConfigError


class Preset(NamedTuple):
    """A named comparison: base settings, the settings varied over values, and its story."""

    name: str
    title: str
    base: RunConfig
    variations: tuple  # ((setting name, (values...)), ...): their product is the set of runs
    extra: tuple  # further runs as {setting: value} overrides of the base (outside the product)
    story: str  # what the charts show, in a sentence or two

    def configs(self) -> list:
        """The preset's runs (at most ``MAX_RUNS``)."""
        runs = vary(self.base, [(n, list(v)) for n, v in self.variations])
        runs += [dataclasses.replace(self.base, **overrides) for overrides in self.extra]
        assert len(runs) <= MAX_RUNS, self.name
        return runs


_GAMMA = RunConfig(model="poisson-gamma", family="gamma", n=50, seed=0, steps=3000)
_INITS = ("concentration=0.001,rate=1", "concentration=0.1,rate=1", "concentration=1,rate=1")

PRESETS = {p.name: p for p in (
    Preset(
        "gamma-stall", "Gamma concentration stall", _GAMMA,
        (("parameterization", ("softplus", "exp")), ("init", _INITS)),
        ({"optimizer": "natural", "lr": 0.1, "init": _INITS[1]}, {"optimizer": "natural", "lr": 0.1, "init": _INITS[2]}),
        "Seed 000's fit from three initial concentrations. With softplus and Adam the concentration barely moves "
        "(an additive step of about the learning rate per step, toward an optimum of about 219): the stall report "
        "flags it step-limited. The exp parameterization turns every step into a relative change and gets most of "
        "the way; the natural gradient reaches the exact posterior. From 0.001 the pathwise gradient is not even "
        "defined: half of Gamma(0.001) draws underflow to 0, and the run stops at its first step.",
    ),
    Preset(
        "score-vs-pathwise", "Score function vs pathwise",
        dataclasses.replace(_GAMMA, init=_INITS[2], parameterization="exp"),
        (("estimator", ("score", "score-baseline", "pathwise")),), (),
        "The same model, data, start and seed; only the gradient estimator differs. The plain score function's "
        "gradient is the noisiest: it stalls far from the optimum and the stall report calls it noise-limited. A "
        "leave-one-out baseline removes most of that noise, and the pathwise gradient trains smoothly.",
    ),
    Preset(
        "mean-field-vs-full-rank", "Mean-field vs full-rank",
        RunConfig(model="correlated-gaussian", seed=0, steps=3000),
        (("family", ("mean-field-normal", "full-rank-normal")),), (),
        "A Gaussian target with correlation 0.9. The full-rank family recovers the posterior exactly; mean-field "
        "cannot express the correlation and, minimising KL(q || p), underestimates each marginal variance "
        "(sd 0.44 instead of 1): compare the q-against-posterior panels.",
    ),
    Preset(
        "robbins-monro", "Robbins-Monro vs constant step",
        RunConfig(model="normal-mean", optimizer="sgd", lr=0.005, samples=1, seed=0, steps=4000),
        (("schedule", ("constant", "robbins-monro")),), (),
        "Plain SGD with one sample per step. With a constant step the parameters hover around the optimum, "
        "kept in motion by the gradient noise; the Robbins-Monro schedule (steps that sum to infinity, squares "
        "that do not) lets them settle.",
    ),
)}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ConfigError naming ``preset`` otherwise."""
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
