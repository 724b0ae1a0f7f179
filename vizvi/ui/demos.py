"""Demos to open from the guide: each a URL query of the run page (``DEMOS``) or of the lab page
(``LAB_DEMOS``); settings not named take their defaults."""

from __future__ import annotations

from urllib.parse import parse_qsl

DEMOS = [
    ("The stall: a Gamma concentration that barely moves under Adam (seed 000)",
     "model=poisson-gamma&family=gamma&optimizer=adam&lr=0.05&steps=20000&speed=max"),
    ("Its fix: natural gradients, with a Robbins-Monro schedule so the noisy steps settle",
     "model=poisson-gamma&family=gamma&optimizer=natural&lr=0.1&schedule=robbins-monro&steps=20000&speed=max"),
    ("Score function: the same target with REINFORCE gradients (watch the variance chart)",
     "model=normal-mean&estimator=score&samples=4&optimizer=adam&steps=5000&speed=200"),
    ("…against pathwise (reparameterization) gradients on the same settings",
     "model=normal-mean&estimator=pathwise&samples=4&optimizer=adam&steps=5000&speed=200"),
    ("Mean-field Normal on a correlated target: too narrow",
     "model=correlated-gaussian&family=mean-field-normal&optimizer=adam&lr=0.02&steps=5000&speed=200"),
    ("…against a full-rank Normal, which matches it",
     "model=correlated-gaussian&family=full-rank-normal&optimizer=adam&lr=0.02&steps=5000&speed=200"),
]

LAB_DEMOS = [
    ("Figure 2 of Mohamed et al. (2020): the square cost, mu = sigma = 1, one sample per estimate",
     "cost=square&k=-3:3:13&samples=1"),
    ("The ranking changes with the cost: a Gaussian bump, where the score function does well far away",
     "cost=gauss&k=-5:5:21&samples=1"),
    ("…and the absolute value, whose derivative jumps: pathwise against measure-valued",
     "cost=abs&k=-3:3:13&samples=1"),
    ("Estimator race: why the score function needs a baseline, and why pathwise wins when it applies",
     "view=race&model=normal-mean&samples=16&optimizer=adam&steps=5000&speed=200"
     "&estimators=score,score-baseline,pathwise,measure-valued"),
    ("Estimator race with plain SGD: the score function's noise throws it out, pathwise trains on",
     "view=race&model=normal-mean&samples=2&optimizer=sgd&lr=0.003&steps=3000&speed=200&estimators=score,pathwise"),
]


def settings_of(query: str) -> dict:
    """A demo's query as {flag: text}."""
    return dict(parse_qsl(query, strict_parsing=True))
