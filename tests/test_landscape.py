"""The ELBO landscape's logic (``vizvi.landscape``) and figures (``vizvi.landscape_charts``): no browser.

Every Monte Carlo number here comes from fixed seeds, so each test computes the same numbers on
every run; tolerances are in standard errors, computed alongside.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import tensorflow_probability as tfp

from vizvi import landscape as L
from vizvi import landscape_charts as C
from vizvi.engine import Run
from vizvi.errors import ConfigError
from vizvi.families import FAMILIES, Family
from vizvi.models import MODELS, Support
from vizvi.parameterizations import DTYPE, Constraint
from vizvi._tf import tf

PAIRS = [("poisson-gamma", "gamma"), ("poisson-gamma", "lognormal"), ("normal-mean", "normal"), ("beta-bernoulli", "beta")]
COORDS = list(L.Coordinates)


def target(model, family, n=None, init=None):
    return L.make_target(model, family, init, 0, n=n)


def anchors(t, coords):
    """(optimum, start) in ``coords``."""
    return L.coordinates_of(t.family, np.vstack([t.optimum, t.start]), coords)


def direct_mc(t, theta, samples=20_000, seed=11):
    """The ELBO at one theta from TFP's own sampler (independent of the landscape's draws)."""
    q = t.family.build(tf.constant(np.asarray(theta, float)[None], DTYPE))
    z = q.sample(samples, seed=tfp.random.sanitize_seed(seed))
    f = (t.model.log_joint(z, t.data) - q.log_prob(z)).numpy()[:, 0]
    return f.mean(), f.std(ddof=1) / math.sqrt(samples)


# -- coordinates ---------------------------------------------------------------------------------
THETAS = {
    "gamma": [[0.1, 1.0], [3944.0, 1001.0], [2.5, 0.3], [0.03, 40.0]],
    "lognormal": [[1.37, 0.016], [-2.0, 3.0], [0.0, 1.0]],
    "normal": [[2.08, 0.1], [-5.0, 4.0], [0.0, 1.0]],
    "beta": [[26.0, 76.0], [1.0, 1.0], [0.05, 3.0], [400.0, 0.2]],
}


@pytest.mark.parametrize("family", list(THETAS))
@pytest.mark.parametrize("coords", COORDS)
def test_coordinates_round_trip(family, coords):
    fam = FAMILIES[family]
    theta = np.array(THETAS[family])
    x = L.coordinates_of(fam, theta, coords)
    back = L.from_coordinates(fam, x, coords).numpy()
    np.testing.assert_allclose(back, theta, rtol=1e-7)


def test_natural_and_mean_coordinates_are_the_families_own():
    fam = FAMILIES["gamma"]
    theta = np.array(THETAS["gamma"])
    np.testing.assert_allclose(L.coordinates_of(fam, theta, "natural"), fam.natural_params(tf.constant(theta)).numpy())
    np.testing.assert_allclose(L.coordinates_of(fam, theta, "mean"), fam.mean_params(tf.constant(theta)).numpy())
    np.testing.assert_allclose(L.coordinates_of(fam, theta, "softplus"), tfp.math.softplus_inverse(theta).numpy())
    normal = FAMILIES["normal"]
    x = L.coordinates_of(normal, [[-3.0, 2.0]], "log")  # the real loc is left alone
    np.testing.assert_allclose(x, [[-3.0, math.log(2.0)]])


@pytest.mark.parametrize("family, outside", [
    ("gamma", [[-1.5, -2.0], [0.0, 0.5]]),  # natural: concentration -0.5; rate -0.5
    ("normal", [[1.0, 0.5]]),  # natural: eta2 > 0 is no Normal
    ("beta", [[-2.0, -1.0]]),  # natural: concentration1 = -1
])
def test_points_outside_the_natural_domain_are_nan(family, outside):
    theta = L.from_coordinates(FAMILIES[family], outside, "natural").numpy()
    assert np.all(np.isnan(theta))


@pytest.mark.parametrize("family, outside", [
    ("gamma", [[2.0, 1.0]]),  # E log z > log E z breaks Jensen's inequality
    ("beta", [[-0.1, -0.2]]),  # exp(m1) + exp(m2) > 1
    ("normal", [[2.0, 3.0]]),  # E z^2 < (E z)^2
])
def test_points_outside_the_mean_domain_are_nan(family, outside):
    assert np.all(np.isnan(L.from_coordinates(FAMILIES[family], outside, "mean").numpy()))


class RealOnly(Family):
    """A 2-parameter family with no positive parameter and no exponential-family maps."""

    name, title, support = "real-only", "test", Support.REAL
    param_names = ("a", "b")
    constraints = (Constraint.REAL, Constraint.REAL)
    defaults = (0.0, 0.0)


@pytest.mark.parametrize("coords", ["softplus", "log", "natural", "mean"])
def test_a_coordinate_that_does_not_apply_is_refused_by_name(coords):
    with pytest.raises(ConfigError) as e:
        L.check_coordinates(RealOnly(), coords)
    assert e.value.argument == "coordinates" and "'real-only'" in e.value.message
    assert L.check_coordinates(RealOnly(), "constrained") is L.Coordinates.CONSTRAINED


def test_models_and_families_that_cannot_be_drawn_are_refused_by_name():
    with pytest.raises(ConfigError) as e:
        L.check_family(MODELS["correlated-gaussian"], FAMILIES["mean-field-normal"])
    assert e.value.argument == "model" and "1-D latent" in e.value.message and "poisson-gamma" in e.value.message
    with pytest.raises(ConfigError) as e:
        L.check_family(MODELS["normal-mean"], FAMILIES["full-rank-normal"])
    assert e.value.argument == "family" and "has 5" in e.value.message
    assert L.landscape_models() == ["poisson-gamma", "normal-mean", "beta-bernoulli"]


# -- the closed form -------------------------------------------------------------------------------
def test_the_log_joint_is_read_off_the_models():
    fits = {m: L.fit_log_joint(MODELS[m], target(m, f).data).features for m, f in PAIRS}
    assert fits == {"poisson-gamma": ("z", "log z"), "normal-mean": ("z", "z^2"), "beta-bernoulli": ("log z", "log(1-z)")}
    t = target("poisson-gamma", "gamma")
    a, b = MODELS["poisson-gamma"].prior_concentration, MODELS["poisson-gamma"].prior_rate
    assert dict(zip(t.fit.features, t.fit.coefficients)) == pytest.approx(
        {"z": -(t.dataset.n + b), "log z": float(t.dataset.arrays["count"].sum()) + a - 1.0})


class Quartic(MODELS["normal-mean"].__class__):
    """log p = -z^4: affine in none of the features."""

    name = "quartic"

    def log_joint(self, z, data):
        return -(z ** 4)


def test_a_log_joint_affine_in_no_feature_has_no_closed_form():
    model = Quartic()
    assert L.fit_log_joint(model, model.data_tensors(model.simulate(10, 0))) is None
    assert not L.exact_available(None, FAMILIES["normal"])


def test_which_pairs_are_exact_is_computed():
    assert L.exact_pairs() == {"poisson-gamma": ("lognormal", "gamma"), "normal-mean": ("normal",),
                               "beta-bernoulli": ("beta",)}


@pytest.mark.parametrize("model, family", PAIRS)
def test_every_closed_form_matches_a_monte_carlo_elbo(model, family):
    t = target(model, family)
    opt, start = t.optimum, t.start
    points = [opt, start, 0.5 * (opt + start), opt * np.array([1.0, 1.5]) if family != "normal" else opt + [0.3, 0.05],
              opt * np.array([0.7, 0.7]) if family != "lognormal" else opt + [0.1, 0.02]]
    exact = L.exact_elbo(t.fit, t.family, np.array(points)).numpy()
    for theta, e in zip(points, exact):
        mean, se = direct_mc(t, theta)
        assert abs(mean - e) < 4 * se + 1e-9, (theta, mean, se, e)


@pytest.mark.parametrize("model, family", PAIRS)
def test_the_exact_elbo_at_the_optimum_is_the_log_evidence_for_a_conjugate_family(model, family):
    t = target(model, family)
    gap = t.reference.log_evidence - float(L.exact_elbo(t.fit, t.family, t.optimum[None]).numpy()[0])
    if family == "lognormal":  # not the posterior's family: a small positive KL is left
        assert 0 < gap < 1e-3
    else:
        assert abs(gap) < 1e-6


# -- the grid --------------------------------------------------------------------------------------
def box_for(t, coords):
    return L.grid_box(t.family, coords, anchors(t, coords))


@pytest.mark.parametrize("model, family", PAIRS)
@pytest.mark.parametrize("coords", ["softplus", "natural", "mean"])
def test_the_grid_matches_a_direct_evaluation_at_sampled_points(model, family, coords):
    t = target(model, family)
    box = box_for(t, coords)
    exact = L.compute_grid(t, coords, box, 40, "exact", 0, 0)
    mc = L.compute_grid(t, coords, box, 40, "mc", 64, 3)
    assert exact.elbo.shape == (40, 40) and exact.se is None and exact.method is L.ElboMethod.EXACT
    assert mc.method is L.ElboMethod.MC and mc.samples == 64
    rng = np.random.default_rng(5)
    u = L.common_uniforms(3, 64)
    checked = 0
    for i, j in rng.integers(0, 40, size=(12, 2)):
        point = [[exact.x[j], exact.y[i]]]
        theta = L.from_coordinates(t.family, point, coords).numpy()
        if np.isnan(theta).any():
            assert np.isnan(exact.elbo[i, j]) and np.isnan(mc.elbo[i, j])
            continue
        checked += 1
        np.testing.assert_allclose(exact.elbo[i, j], L.exact_elbo(t.fit, t.family, theta).numpy()[0], rtol=1e-10)
        alone = L.crn_elbo(t.model, t.family, theta, t.data, u)  # the same draws, this point alone
        np.testing.assert_allclose([mc.elbo[i, j], mc.se[i, j]], [alone.elbo.numpy()[0], alone.se.numpy()[0]], rtol=1e-9)
    assert checked >= 6
    # And against TFP's own sampler, at the grid point nearest the optimum.
    ox, oy = anchors(t, coords)[0]
    j, i = np.argmin(np.abs(exact.x - ox)), np.argmin(np.abs(exact.y - oy))
    theta = L.from_coordinates(t.family, [[exact.x[j], exact.y[i]]], coords).numpy()[0]
    mean, se = direct_mc(t, theta)
    assert abs(mean - exact.elbo[i, j]) < 4 * se + 1e-9


ARGMAX_CASES = [("normal-mean", "normal", None), ("beta-bernoulli", "beta", None), ("poisson-gamma", "gamma", 20),
                ("poisson-gamma", "lognormal", 20), ("poisson-gamma", "gamma", None)]


@pytest.mark.parametrize("model, family, n", ARGMAX_CASES)
@pytest.mark.parametrize("coords", COORDS)
def test_the_exact_optimum_is_the_grids_argmax_up_to_its_resolution(model, family, n, coords):
    t = target(model, family, n=n)
    opt = anchors(t, coords)[0]
    best = float(L.exact_elbo(t.fit, t.family, t.optimum[None]).numpy()[0])
    # On the page's box (start and optimum): no grid point beats the optimum.
    grid = L.compute_grid(t, coords, box_for(t, coords), 60, "exact", 0, 0)
    assert np.nanmax(grid.elbo) <= best + 1e-9 * abs(best)
    # On a 61 x 61 grid centred on the optimum, so that the optimum is a grid point: it is the
    # argmax. (Between grid points a narrow valley's floor can be nearer a point farther along
    # it, so an argmax "within a cell" of an off-grid optimum would not hold.)
    span = np.maximum(np.abs(opt) * 0.3, 0.5)
    box = L.Box((opt[0] - span[0], opt[0] + span[0]), (opt[1] - span[1], opt[1] + span[1]))
    grid = L.compute_grid(t, coords, box, 61, "exact", 0, 0)
    assert np.unravel_index(np.nanargmax(grid.elbo), grid.elbo.shape) == (30, 30)
    np.testing.assert_allclose([grid.x[30], grid.y[30]], opt, rtol=1e-12)


@pytest.mark.parametrize("model, family", PAIRS)
def test_the_common_random_numbers_estimate_is_smooth_and_reports_its_error(model, family):
    t = target(model, family)
    box = box_for(t, "log")
    exact = L.compute_grid(t, "log", box, 60, "exact", 0, 0)
    mc = L.compute_grid(t, "log", box, 60, "mc", 256, 1)
    other = L.compute_grid(t, "log", box, 60, "mc", 256, 2)  # independent draws (another seed)
    largest, median = mc.se_summary()
    assert 0 < median <= largest and math.isfinite(largest)
    error = mc.elbo - exact.elbo  # the estimate's error: the same draws everywhere move it smoothly
    neighbours = np.nanmedian(np.abs(np.diff(error, axis=1)) / mc.se[:, 1:])
    independent = np.nanmedian(np.abs(mc.elbo - other.elbo) / mc.se)
    assert 1.0 < independent < 2.5, independent  # about sqrt(2) standard errors apart
    assert neighbours < 0.25 * independent, (neighbours, independent)
    # The error itself is of the size the standard error says.
    finite = np.isfinite(error)
    assert np.mean(np.abs(error[finite]) <= 3 * mc.se[finite]) > 0.95


def test_exact_falls_back_to_monte_carlo_where_there_is_no_closed_form():
    t = dataclasses.replace(target("normal-mean", "normal"), exact=False, fit=None)
    grid = L.compute_grid(t, "constrained", box_for(t, "constrained"), 12, "exact", 32, 0)
    assert grid.method is L.ElboMethod.MC and grid.se is not None and "no closed form" in grid.note


def test_the_box_holds_the_optimum_the_start_and_the_paths_and_stops_runaways():
    t = target("poisson-gamma", "gamma")
    a = anchors(t, "constrained")
    path = np.array([[0.2, 0.05], [50.0, 12.0]])
    box = L.grid_box(t.family, "constrained", a, [path])
    assert box.contains(a) and box.contains(path)
    assert box.x[0] > 0 and box.y[0] > 0  # no q below a positive parameter's 0
    runaway = np.array([[1e9, 1e9]])
    big = L.grid_box(t.family, "softplus", anchors(t, "softplus"), [runaway])
    span = anchors(t, "softplus").max(axis=0) - anchors(t, "softplus").min(axis=0)
    assert big.x[1] < anchors(t, "softplus")[:, 0].max() + 2.5 * span[0]
    assert not big.contains(runaway)


# -- paths -------------------------------------------------------------------------------------------
def test_path_stats_measure_arrival_and_straightness():
    line = np.linspace([0.0, 0.0], [10.0, 5.0], 101)
    stats = L.path_stats(line, np.arange(101), [10.0, 5.0])
    assert stats.straightness == pytest.approx(1.0) and stats.arrived == 95 and stats.remaining == pytest.approx(0.0)
    bent = np.vstack([np.linspace([0.0, 0.0], [10.0, 0.0], 11), np.linspace([10.0, 0.5], [10.0, 4.0], 8)])
    stats = L.path_stats(bent, np.arange(19), [10.0, 5.0])
    assert stats.arrived is None and stats.straightness < 0.8 and 0 < stats.remaining < 0.2


def _run_path(cfg, t, optimizer, **changes):
    run = Run(dataclasses.replace(L.run_config(cfg, optimizer), **changes), dataset=t.dataset, reference=t.reference)
    run.run()
    return L.path_from_history(optimizer, run.config.lr, run.status.value, run.theta0, run.history.series())


@pytest.mark.parametrize("seed", [0, 1])
def test_seed_000_story_natural_walks_straight_in_natural_coordinates_adam_crawls_in_softplus(seed):
    """Gamma q on poisson-gamma from concentration 0.1 (softplus parameterization), as the page
    shows it: the natural gradient (256 samples) reaches the optimum within tens of steps along
    a straight line in natural coordinates; Adam (16 samples, 2000 steps) is still almost as far
    as it started in softplus coordinates, along a bent path. (With 16 samples the natural
    gradient's first steps from so broad a q are noisy, and its path is not reliably straight.)"""
    cfg = L.validate_landscape(L.LandscapeConfig(seed=seed))
    assert (cfg.model, cfg.family, cfg.init, cfg.parameterization) == ("poisson-gamma", "gamma", "concentration=0.1,rate=1",
                                                                        "softplus")
    t = L.make_target(cfg.model, cfg.family, cfg.init, cfg.seed)

    def stats(path, coords):
        a = anchors(t, coords)
        return L.path_stats(L.coordinates_of(t.family, path.theta, coords), path.steps, a[0], np.abs(a[1] - a[0]))

    natural = stats(_run_path(cfg, t, "natural", samples=256, steps=300), "natural")
    assert natural.arrived is not None and natural.arrived <= 60, natural
    assert natural.straightness > 0.9, natural
    adam = stats(_run_path(cfg, t, "adam", steps=2000), "softplus")
    assert adam.arrived is None and adam.remaining > 0.9, adam
    assert adam.straightness < 0.5, adam


# -- settings ----------------------------------------------------------------------------------------
BAD = [
    ({"init": "concentration=-1"}, "init", "outside its support"),
    ({"init": "loc=1"}, "init", "no parameter 'loc'"),
    ({"coordinates": "polar"}, "coordinates", "unknown coordinates"),
    ({"model": "correlated-gaussian"}, "model", "1-D latent"),
    ({"family": "beta"}, "family", "support"),
    ({"optimizers": ""}, "optimizers", "at least one"),
    ({"optimizers": "adam,lbfgs"}, "optimizers", "unknown optimizer 'lbfgs'"),
    ({"lr": "adam:-1"}, "lr", "adam: learning rate must be positive"),
    ({"lr": "adam=0.1"}, "lr", "expected optimizer:rate"),
    ({"grid": 5}, "grid", "out of range"),
    ({"elbo": "mc", "grid": 200, "mc_samples": 5000}, "mc-samples", "exceeds the cap"),
]


@pytest.mark.parametrize("changes, argument, words", BAD)
def test_bad_settings_are_named(changes, argument, words):
    with pytest.raises(ConfigError) as e:
        L.validate_landscape(L.LandscapeConfig(**changes))
    assert e.value.argument == argument and words in e.value.message, str(e.value)


def test_validation_fills_the_family_and_start_and_rates_default():
    c = L.validate_landscape(L.LandscapeConfig(model="normal-mean", lr="natural:0.5,sgd:0.01"))
    assert (c.family, c.init, c.optimizers) == ("normal", "loc=0,scale=1", "adam,sgd,natural")
    assert L.parse_learning_rates(c.lr, c.optimizers.split(",")) == {"adam": 0.05, "sgd": 0.01, "natural": 0.5}
    run = L.run_config(c, "natural")
    assert (run.optimizer, run.lr, run.estimator, run.samples, run.variance_every) == ("natural", 0.5, "pathwise", 16, 0)


# -- figures -----------------------------------------------------------------------------------------
def _no_arrays(obj):
    if isinstance(obj, dict):
        return all(_no_arrays(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(_no_arrays(v) for v in obj)
    return not isinstance(obj, (np.ndarray, np.generic)) and not (isinstance(obj, float) and not math.isfinite(obj))


def test_the_figure_holds_plain_lists_the_contour_the_paths_and_the_markers():
    t = target("poisson-gamma", "gamma")
    path = L.Path("adam", 0.05, "running", np.array([0, 1, 2]), np.array([t.start, [0.2, 0.5], [0.4, 0.2]]))
    view = L.view_path(path, t.family, "natural")
    a = anchors(t, "natural")
    grid = L.compute_grid(t, "natural", L.grid_box(t.family, "natural", a, [view.points]), 20, "mc", 16, 0)
    fig = C.landscape_figure(grid, t.reference.log_evidence, L.axis_titles(t.family, "natural"), [view], a[1], a[0], "t", "k")
    assert _no_arrays(fig), "st.plotly_chart needs plain lists and no NaN tokens"
    json.dumps(fig, allow_nan=False)
    names = [tr["name"] for tr in fig["data"]]
    assert names == ["log10 KL(q‖p)", "adam (lr 0.05)", "adam now", "start", "exact optimum"]
    contour = fig["data"][0]
    assert contour["type"] == "contour" and len(contour["z"]) == 20 and len(contour["z"][0]) == 20
    assert any(v is None for row in contour["z"] for v in row)  # the natural domain's edge: blank
    assert "SE" in contour["hovertemplate"]
    np.testing.assert_allclose(fig["data"][1]["x"], L.coordinates_of(t.family, path.theta, "natural")[:, 0])
    assert fig["layout"]["xaxis"]["range"] == list(grid.box.x)
    se = C.se_figure(grid, ("a", "b"), "se")
    json.dumps(se, allow_nan=False)
