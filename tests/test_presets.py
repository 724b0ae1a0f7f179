"""Each preset's story, asserted on the engine's output (what its charts and stall report show)."""

import numpy as np
import pytest

from vizvi.compare import MAX_RUNS, RunSet
from vizvi.diagnostics import Verdict
from vizvi.presets import PRESETS, get_preset
from vizvi.errors import ConfigError
from vizvi.status import Status


@pytest.fixture(scope="module")
def trained():
    """Every preset trained once as a set, each run by its label."""
    out = {}
    for name, preset in PRESETS.items():
        runs = RunSet(preset.configs()).run()
        out[name] = dict(zip(runs.labels, runs.runs))
    return out


def _verdict(run, name):
    return run.diagnose()[name]["status"]


def test_every_preset_is_a_valid_set_of_at_most_eight_runs():
    for preset in PRESETS.values():
        configs = preset.configs()
        assert 2 <= len(configs) <= MAX_RUNS and preset.story and preset.title
    with pytest.raises(ConfigError, match="unknown preset 'x'") as err:
        get_preset("x")
    assert err.value.argument == "preset"


def test_gamma_stall_softplus_adam_stalls_exp_helps_natural_reaches_the_exact_posterior(trained):
    runs = trained["gamma-stall"]
    label = "parameterization={}, init=concentration={},rate=1, optimizer={}, lr={}"
    softplus = [runs[label.format("softplus", c, "adam", 0.05)] for c in ("0.1", "1")]
    exp = [runs[label.format("exp", c, "adam", 0.05)] for c in ("0.1", "1")]
    natural = [runs[label.format("softplus", c, "natural", 0.1)] for c in ("0.1", "1")]
    optimum = softplus[0].optimum[0]  # exact posterior concentration, about 219
    for s, e, n in zip(softplus, exp, natural):
        # softplus + Adam: the concentration barely moves (under a tenth of the way) and is flagged.
        assert s.status is Status.FINISHED and s.theta[0] < 0.1 * optimum
        assert _verdict(s, "concentration") is Verdict.STEP_LIMITED
        assert "concentration" in s.record()["stalled"]
        # exp: several times further, with the KL to the exact posterior far smaller.
        assert e.theta[0] > 5 * s.theta[0] and e.kl_to_exact() < 0.2 * s.kl_to_exact()
        # natural gradient: at the exact posterior.
        assert n.kl_to_exact() < 0.02 and abs(n.theta[0] / optimum - 1) < 0.15
        assert _verdict(n, "concentration") is Verdict.CONVERGED
    # From 0.001 no pathwise gradient exists (draws underflow): the run stops at its first step.
    for p in ("softplus", "exp"):
        tiny = runs[label.format(p, "0.001", "adam", 0.05)]
        assert tiny.status is Status.DIVERGED and tiny.divergence["step"] == 1 and tiny.divergence["at_start"]
        # No learning rate is to blame: the fix offered is another start.
        assert "before any update" in tiny.divergence["message"]
        assert tiny.diagnose()["concentration"]["suggestion"]["config"] == {"init": "prior"}


def test_score_function_is_noise_limited_where_pathwise_trains(trained):
    runs = trained["score-vs-pathwise"]
    score, baseline, pathwise = runs["estimator=score"], runs["estimator=score-baseline"], runs["estimator=pathwise"]
    assert _verdict(score, "concentration") is Verdict.NOISE_LIMITED
    assert score.kl_to_exact() > 5 * pathwise.kl_to_exact()
    assert baseline.kl_to_exact() < score.kl_to_exact()
    snr = {r: np.nanmedian(r.history.variance_series()["grad_snr"][:, 0]) for r in (score, pathwise)}
    assert snr[score] < snr[pathwise]


def test_mean_field_underestimates_the_variance_full_rank_recovers_it(trained):
    runs = trained["mean-field-vs-full-rank"]
    mean_field, full_rank = runs["family=mean-field-normal"], runs["family=full-rank-normal"]
    posterior_sd = np.sqrt(np.diag(mean_field.reference.cov))  # 1 and 1
    q_sd = np.asarray(mean_field.family.moments(mean_field.theta)[1])
    assert np.all(q_sd < 0.6 * posterior_sd)
    _, full_sd = full_rank.family.moments(full_rank.theta)
    np.testing.assert_allclose(full_sd, posterior_sd, rtol=0.15)
    assert full_rank.kl_to_exact() < 0.2 < mean_field.kl_to_exact()


def test_robbins_monro_settles_where_the_constant_step_hovers(trained):
    runs = trained["robbins-monro"]
    constant, schedule = runs["schedule=constant"], runs["schedule=robbins-monro"]
    last = slice(-1000, None)
    spread = {r: np.std(r.history.series()["theta"][last, 0]) for r in (constant, schedule)}
    assert spread[schedule] < 0.5 * spread[constant]
    error = {r: np.mean(np.abs(r.history.series()["theta"][last, 0] - r.optimum[0])) for r in (constant, schedule)}
    assert error[schedule] < error[constant]
