"""Many latents and model files on the charts, without Streamlit: which parameters are drawn
(``vizvi.focus``), the k-hat chart, the ELBO without a log evidence, q's marginals and pairs
against MCMC draws and the overview heatmap (``vizvi.latent_charts``), the trainer attaching
a reference computed in the background, and the dashboard's ``--model-file`` arguments.

Snapshots are built by hand (fixed seeds) unless a test needs a real run; every figure is
checked to be valid Plotly.
"""

from __future__ import annotations

import math
import textwrap
import time
from types import SimpleNamespace

import numpy as np
import plotly.graph_objects as go
import pytest

from vizvi import charts, focus, latent_charts
from vizvi.diagnostics import Verdict
from vizvi.families import get_family
from vizvi.models import MODELS, Reference
from vizvi.psis import KHAT_THRESHOLD
from vizvi.status import Status
from vizvi.worker import Snapshot

EIGHT_SCHOOLS = "examples/eight_schools_noncentered.py"


def _model(coordinates):
    return SimpleNamespace(coordinates=tuple(coordinates), dim=len(coordinates), support=get_family("mean-field-normal").support)


def _mcmc_reference(mean, cov, draws=4000, seed=0, divergences=0, rhat=1.001):
    """A Reference of kind "mcmc" with Gaussian draws of the given moments (a stand-in for NUTS)."""
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal(mean, cov, size=draws)
    names = [f"c{i}" for i in range(len(mean))]
    info = {"sampler": "NUTS", "chains": 4, "draws": draws // 4, "divergences": divergences, "seconds": 1.0,
            "ess_bulk": dict.fromkeys(names, 900.0), "rhat": dict.fromkeys(names, rhat), "ess_bulk_min": 900.0,
            "rhat_max": rhat}
    return Reference("mcmc", z.mean(axis=0), np.cov(z, rowvar=False), float("nan"), "mcmc", {}, None, z, None, None, info)


def _snapshot(family, theta_rows, *, reference=None, variance=None, coordinates=None, density=None):
    """A worker Snapshot of a run of ``family`` whose parameters went through ``theta_rows`` [N, P]."""
    theta_rows = np.asarray(theta_rows, dtype=float)
    steps = np.arange(1, len(theta_rows) + 1)
    series = {"step": steps, "elbo": -50.0 - 10.0 / steps, "theta": theta_rows, "grad": np.ones_like(theta_rows) / steps[:, None]}
    theta = theta_rows[-1]
    coordinates = coordinates or tuple(f"c{i}" for i in range(family.dim))
    if density is None:
        mean, _ = family.moments(theta)
        density = {"kind": "gaussian", "mean": np.asarray(mean), "cov": family.covariance(theta), "coordinates": coordinates,
                   "latent": "z"}
    return Snapshot(
        step=int(steps[-1]), status=Status.RUNNING, config={"variance_every": 100}, names=family.param_names, series=series,
        variance=variance or {}, params=dict(zip(family.param_names, theta.tolist())), optimum=None, reference=reference,
        events=[], divergence=None, diagnosis={}, density=density, steps_per_s=None, compile_s=0.0, error=None,
        kl_kind=None, model_title="", dim=family.dim, param_coordinates=family.parameter_coordinates,
        reference_match=focus.reference_match(family, reference))


@pytest.fixture(scope="module")
def many():
    """A mean-field q over 10 coordinates (20 parameters) against a correlated MCMC-like reference."""
    d = 10
    family = get_family("mean-field-normal", _model([f"c{i}" for i in range(d)]))
    rng = np.random.default_rng(1)
    a = rng.normal(size=(d, d))
    cov = a @ a.T / d + 0.5 * np.eye(d)
    mean = np.linspace(-2.0, 2.0, d)
    reference = _mcmc_reference(mean, cov)
    steps = 3000
    start = np.concatenate([np.zeros(d), np.ones(d)])
    end = np.concatenate([mean + 0.1, np.sqrt(np.diag(cov)) * 0.6])
    end[3] = mean[3] + 3.0 * math.sqrt(cov[3, 3])  # loc[c3]: three posterior sds off
    rows = start + (end - start) * (1 - np.exp(-np.arange(1, steps + 1) / 400.0))[:, None]
    var_steps = np.arange(100, steps + 1, 100)
    snr = np.full((len(var_steps), family.size), 2.0)
    snr[:, 5] = 0.01  # loc[c5]: noise drowns its gradient
    khat = np.linspace(1.2, 0.4, len(var_steps))
    khat[2] = np.inf  # a few draws carried all the weight
    variance = {"step": var_steps, "grad_variance": np.full_like(snr, 0.1), "grad_snr": snr, "khat": khat}
    return SimpleNamespace(family=family, snap=_snapshot(family, rows, reference=reference, variance=variance),
                           mean=mean, cov=cov)


# -- families: parameters to coordinates, and q's covariance --------------------------------------
def test_vector_families_map_each_parameter_to_its_coordinate_and_give_their_covariance():
    model = _model(["a", "b", "c"])
    mean_field = get_family("mean-field-normal", model)
    assert mean_field.parameter_coordinates == (0, 1, 2, 0, 1, 2)
    theta = np.array([0.0, 1.0, 2.0, 0.5, 2.0, 3.0])
    assert np.allclose(mean_field.covariance(theta), np.diag([0.25, 4.0, 9.0]))
    full = get_family("full-rank-normal", model)
    # scale_tril[a,a], [b,a], [b,b], [c,a], [c,b], [c,c]: each entry belongs to its row
    assert full.parameter_coordinates == (0, 1, 2, 0, 1, 1, 2, 2, 2)
    chol = np.array([[1.0, 0, 0], [0.5, 2.0, 0], [-1.0, 0.3, 0.7]])
    theta = np.concatenate([np.zeros(3), chol[np.tril_indices(3)]])
    assert np.allclose(full.covariance(theta), chol @ chol.T)
    assert np.allclose(np.sqrt(np.diag(full.covariance(theta))), full.moments(theta)[1])
    assert get_family("gamma").parameter_coordinates == (0, 0)


# -- which parameters are drawn ------------------------------------------------------------------
def test_reference_match_measures_each_parameter_in_its_coordinates_posterior_sds(many):
    target, scale = many.snap.reference_match
    sd = np.sqrt(np.diag(many.snap.reference.cov))
    assert np.allclose(target, np.concatenate([many.snap.reference.mean, sd]))
    assert np.allclose(scale, np.concatenate([sd, sd]))
    gaps = focus.gap(list(many.snap.params.values()), many.snap.reference_match)
    assert gaps[3] == pytest.approx(3.0, abs=0.1) and int(np.argmax(gaps)) == 3
    assert focus.reference_match(many.family, None) is None
    given = Reference("given", None, None, float("nan"), "given", {}, latent_mean={"a": 1.0}, latent_sd={"a": 1.0})
    assert focus.reference_match(many.family, given) is None


def test_auto_focus_takes_the_farthest_and_keeps_its_choice_while_they_stay_near_the_top(many):
    names = many.snap.names
    gaps = np.arange(len(names), dtype=float)  # the last parameter farthest
    picked = focus.auto_focus(names, gaps=gaps)
    assert picked == list(names[-focus.AUTO_SHOWN:])  # in the family's order
    # A little reshuffle: those still within STICKY x the number shown stay.
    shuffled = gaps.copy()
    shuffled[0] = 100.0
    assert focus.auto_focus(names, gaps=shuffled, previous=picked) == picked
    # Far down the ranking: replaced.
    moved = gaps.copy()
    moved[-1] = -1.0
    assert names[-1] not in focus.auto_focus(names, gaps=moved, previous=picked)
    # Without a reference: the stalled first, the converged last.
    verdict = lambda v: {"status": v}  # noqa: E731
    diagnosis = {n: verdict(Verdict.CONVERGED) for n in names}
    diagnosis[names[7]] = verdict(Verdict.NOISE_LIMITED)
    diagnosis[names[2]] = verdict(Verdict.CONVERGING)
    chosen = focus.auto_focus(names, diagnosis=diagnosis)
    assert names[7] in chosen and names[2] in chosen and len(chosen) == focus.AUTO_SHOWN
    # A family of few parameters: all of them, whatever is asked.
    few = ("loc", "scale")
    assert focus.auto_focus(few, gaps=np.array([0.0, 1.0])) == list(few)
    assert focus.shown(few, chosen=["scale"]) == [0, 1]


def test_shown_takes_the_users_choice_then_the_automatic_one_and_ignores_other_runs_names(many):
    names = many.snap.names
    assert focus.shown(names) == list(range(focus.AUTO_SHOWN))
    assert focus.shown(names, auto=[names[9], names[2]]) == [2, 9]
    assert focus.shown(names, chosen=[names[11], "loc[theta[3]]"], auto=[names[2]]) == [11]
    assert len(focus.shown(names, chosen=list(names))) == focus.MAX_CHOSEN


# -- the charts ----------------------------------------------------------------------------------
def test_parameter_charts_draw_the_focus_with_the_references_moments(many):
    shown = [3, 5, 12]
    params = charts.params_figure(many.snap, focus=shown)
    go.Figure(params)
    lines = [t for t in params["data"] if not isinstance(t["x"], list)]
    assert [t["name"] for t in lines] == [many.snap.names[i] for i in shown]
    assert params["layout"]["title"]["text"].endswith(f"({len(shown)} of {len(many.snap.names)})")
    assert "yaxis4" not in params["layout"]  # three panels
    references = [t for t in params["data"] if isinstance(t["x"], list)]
    assert references[0]["name"] == "posterior's moments (MCMC)"
    assert [t["y"][0] for t in references] == pytest.approx(many.snap.reference_match[0][shown])
    grads = charts.grads_figure(many.snap, focus=shown)
    assert [t["name"] for t in grads["data"]] == [many.snap.names[i] for i in shown]
    variance = charts.variance_figure(many.snap, focus=shown)
    assert {t["legendgroup"] for t in variance["data"] if "legendgroup" in t} == {many.snap.names[i] for i in shown}


def test_khat_chart_has_the_threshold_and_marks_values_off_its_scale(many):
    fig = charts.khat_figure(many.snap)
    go.Figure(fig)
    line = fig["data"][0]
    assert len(line["x"]) == len(many.snap.variance["step"])
    assert np.nanmax(line["y"]) <= charts.KHAT_CAP
    (off,) = [t for t in fig["data"] if t["mode"] == "markers"]
    assert list(off["x"]) == [300]  # the infinite k-hat, drawn on the top edge
    levels = sorted(s["y0"] for s in fig["layout"]["shapes"])
    assert levels == [0.5, KHAT_THRESHOLD] and all(s["xref"] == "paper" for s in fig["layout"]["shapes"])
    assert str(KHAT_THRESHOLD) in fig["layout"]["title"]["text"]
    # No measurement yet, or none asked for: the chart says which.
    empty = _snapshot(many.family, many.snap.series["theta"][:10], reference=None)
    assert "none yet" in charts.khat_figure(empty)["layout"]["annotations"][-1]["text"]
    empty.config["variance_every"] = 0
    assert "not measured" in charts.khat_figure(empty)["layout"]["annotations"][-1]["text"]


@pytest.mark.parametrize("reference", ["none", "mcmc"])
def test_the_elbo_without_a_log_evidence_has_no_line_and_log_axes_show_minus_the_elbo(many, reference):
    snap = many.snap if reference == "mcmc" else _snapshot(many.family, many.snap.series["theta"], reference=None)
    fig = charts.elbo_figure(snap)
    go.Figure(fig)
    assert [t["name"] for t in fig["data"]] == ["estimate", "EMA (span 50)"]  # no evidence line
    assert "unknown" in fig["layout"]["title"]["text"]
    assert fig["layout"]["yaxis"]["range"][0] < np.min(snap.series["elbo"][300:])
    log = charts.elbo_figure(snap, log_axes=True)
    assert log["layout"]["yaxis"]["type"] == "log" and "−ELBO" in log["layout"]["title"]["text"]
    assert np.allclose(log["data"][0]["y"], -snap.series["elbo"][charts.thin(snap.series["step"])], rtol=1e-6)


def test_marginals_are_densities_against_a_histogram_of_the_draws(many):
    coordinates = (3, 0, 7)
    fig = latent_charts.latent_figure(many.snap, latent_charts.LatentView(coordinates=coordinates))
    go.Figure(fig)
    draws = [t for t in fig["data"] if t["name"].startswith("reference")]
    q = [t for t in fig["data"] if t["name"] == "q (current)"]
    assert len(draws) == len(q) == len(coordinates)
    for k, (h, c) in enumerate(zip(draws, coordinates)):
        x, y = np.asarray(h["x"], float), np.asarray(h["y"], float)
        assert np.sum(y[:-1] * np.diff(x)) == pytest.approx(1.0, abs=0.03)  # a density of (nearly) all the draws
        qx, qy = np.asarray(q[k]["x"], float), np.asarray(q[k]["y"], float)
        assert np.sum(qy[:-1] * np.diff(qx)) == pytest.approx(1.0, abs=0.02)
        suffix = "" if k == 0 else str(k + 1)
        assert fig["layout"][f"xaxis{suffix}"]["title"]["text"] == f"c{c}"
        assert h["xaxis"] == q[k]["xaxis"] == f"x{suffix}"
    # Without a reference: q alone, and the title says so.
    alone = _snapshot(many.family, many.snap.series["theta"], reference=None)
    fig = latent_charts.latent_figure(alone, latent_charts.LatentView(coordinates=coordinates))
    assert {t["name"] for t in fig["data"]} == {"q (current)"} and "no reference" in fig["layout"]["title"]["text"]


def test_a_pair_draws_q_contours_over_the_draws(many):
    fig = latent_charts.latent_figure(many.snap, latent_charts.LatentView(mode="pair", pair=(2, 5)))
    go.Figure(fig)
    points, contour = fig["data"]
    assert points["mode"] == "markers" and len(points["x"]) <= latent_charts.PAIR_DRAWS
    assert contour["type"] == "contour" and np.asarray(contour["z"]).shape == (latent_charts.PAIR_GRID,) * 2
    assert (fig["layout"]["xaxis"]["title"]["text"], fig["layout"]["yaxis"]["title"]["text"]) == ("c2", "c5")
    # q's joint density integrates to about 1 over its window.
    xs, ys = np.asarray(contour["x"], float), np.asarray(contour["y"], float)
    assert np.asarray(contour["z"], float).sum() * np.diff(xs)[0] * np.diff(ys)[0] == pytest.approx(1.0, abs=0.05)
    # A pair of one coordinate twice falls back to the first two.
    same = latent_charts.latent_figure(many.snap, latent_charts.LatentView(mode="pair", pair=(4, 4)))
    assert (same["layout"]["xaxis"]["title"]["text"], same["layout"]["yaxis"]["title"]["text"]) == ("c0", "c1")


def test_the_default_marginals_are_those_of_the_parameters_drawn(many):
    # loc[c3], scale[c3] and scale[c6]: coordinates 3 and 6, once each, in order.
    assert latent_charts.default_coordinates(many.snap, [3, 13, 16]) == (3, 6)


@pytest.mark.parametrize("quantity", ["snr", "change", "distance"])
def test_the_overview_shows_every_parameter_over_the_steps(many, quantity):
    shown = [3, 5]
    fig = latent_charts.overview_figure(many.snap, quantity, shown)
    go.Figure(fig)
    (heat,) = fig["data"]
    z = np.asarray(heat["z"], float)
    assert z.shape[0] == len(many.snap.names) and 1 <= z.shape[1] <= latent_charts.OVERVIEW_COLUMNS
    assert list(heat["y"]) == list(many.snap.names)
    lo, hi = latent_charts.OVERVIEWS[quantity].zrange
    assert np.nanmin(z) >= lo and np.nanmax(z) <= hi
    bold = [t for t in fig["layout"]["yaxis"]["ticktext"] if t.startswith("<b>")]
    assert bold == [f"<b>{many.snap.names[i]}</b>" for i in shown]
    if quantity == "snr":
        assert np.all(z[5] == lo) and np.all(z[0] > -1)  # loc[c5]'s noise at the colour scale's end
    if quantity == "distance":
        assert z[3, -1] == pytest.approx(3.0, abs=0.1)  # loc[c3]: three posterior sds away


def test_the_distance_overview_needs_a_reference_with_moments(many):
    alone = _snapshot(many.family, many.snap.series["theta"], reference=None)
    assert latent_charts.overviews_available(alone) == ["snr", "change"]
    assert latent_charts.overviews_available(many.snap) == ["snr", "change", "distance"]
    # Asked for anyway: the signal-to-noise overview instead.
    fig = latent_charts.overview_figure(alone, "distance", [])
    assert fig["layout"]["title"]["text"] == latent_charts.OVERVIEWS["snr"].title


def test_all_figures_with_a_focus_adds_the_overview(many):
    figures = charts.all_figures(many.snap, focus=[1, 2], latent_view=latent_charts.LatentView(coordinates=(1, 2)),
                                 overview="distance")
    assert set(figures) == {"elbo", "params", "grads", "variance", "density", "khat", "overview"}
    for key, fig in figures.items():
        go.Figure(fig)
        for trace in fig["data"]:
            assert len(trace.get("x") if trace.get("x") is not None else []) <= charts.MAX_POINTS, key


def test_a_scalar_latents_density_shows_the_mcmc_draws_or_the_given_moments():
    family = get_family("lognormal")
    z = np.linspace(0.01, 8.0, 300)
    density = {"kind": "1d", "z": z, "q": np.exp(-0.5 * (np.log(z) - 1.0) ** 2) / z / math.sqrt(2 * math.pi),
               "exact": None, "latent": "rate"}
    rows = np.tile([1.0, 0.5], (50, 1))
    mcmc = _mcmc_reference([3.0], [[0.25]])
    fig = charts.density_figure(_snapshot(family, rows, reference=mcmc, density=density))
    assert [t["name"] for t in fig["data"]] == ["q (current)", "reference posterior (MCMC draws)"]
    given = Reference("given", None, None, float("nan"), "given", {}, latent_mean={"rate": 3.0}, latent_sd={"rate": 0.5})
    fig = charts.density_figure(_snapshot(family, rows, reference=given, density=density))
    go.Figure(fig)
    band, mean = fig["layout"]["shapes"]
    assert (band["x0"], band["x1"], mean["x0"]) == (2.5, 3.5, 3.0)
    assert "given" in fig["layout"]["title"]["text"]


# -- a real model file's run: its density data and its reference, attached under the lock ----------
class _FinishedJob:
    """An MCMC job that is done (what ``Trainer`` polls), standing in for NUTS."""

    def __init__(self, result):
        self.result, self.error, self.done, self.progress, self.phase = result, None, True, 1.0, "done"


def test_a_trainer_attaches_the_background_reference_and_the_charts_use_it(monkeypatch):
    from vizvi import mcmc
    from vizvi.engine import Run, RunConfig
    from vizvi.model_file import register_model_files
    from vizvi.worker import Trainer, density_data, drawn_from_moments

    (model,) = register_model_files([EIGHT_SCHOOLS])
    run = Run(RunConfig(model=model.name, steps=400, variance_every=50, seed=3))
    assert run.reference is None and drawn_from_moments(run)
    data = density_data(run)
    assert data["kind"] == "gaussian" and data["coordinates"] == model.coordinates and data["cov"].shape == (10, 10)
    reference = _mcmc_reference(np.zeros(10), np.eye(10), seed=4)
    pending = SimpleNamespace(result=None, error=None, done=False, progress=0.3, phase="warming up")
    monkeypatch.setattr(mcmc, "reference_job", lambda m, d: pending)
    trainer = Trainer(run)
    try:
        assert trainer.reference_job is pending
        assert trainer.snapshot(diagnosis=False).reference is None  # not done: nothing attached
        trainer.reference_job = _FinishedJob(reference)
        ref, job = trainer.reference_state()
        assert ref is reference and run.reference is reference
        snap = trainer.snapshot(diagnosis=False)
        assert snap.reference_match is not None and snap.param_coordinates == run.family.parameter_coordinates
        figures = charts.all_figures(snap, focus=focus.shown(snap.names), overview="distance",
                                     latent_view=latent_charts.LatentView(coordinates=(0, 1)))
        assert any(t["name"].startswith("reference posterior") for t in figures["density"]["data"])
        trainer.step(100)
        end = time.monotonic() + 120
        while trainer.busy and time.monotonic() < end:  # the step's chunk (and its compile) done
            time.sleep(0.05)
        assert trainer.snapshot(diagnosis=False).step == 100
    finally:
        trainer.close()


def test_a_model_files_own_reference_is_attached_at_once(tmp_path):
    from vizvi.engine import Run, RunConfig
    from vizvi.model_file import register_model_files
    from vizvi.worker import Trainer

    path = tmp_path / "vizvi_ui_given_rate.py"
    path.write_text(textwrap.dedent('''
        import numpy as np
        import tensorflow_probability as tfp
        tfd = tfp.distributions
        joint = tfd.JointDistributionNamed(dict(
            rate=tfd.Gamma(np.float64(2.0), np.float64(1.0)),
            counts=lambda rate: tfd.Sample(tfd.Poisson(rate), 4)))
        observed = {"counts": np.array([3.0, 5.0, 4.0, 6.0])}
        reference = {"latent_mean": {"rate": 20.0 / 5.0}, "latent_sd": {"rate": 20.0 ** 0.5 / 5.0}}
    '''))
    (model,) = register_model_files([str(path)])
    trainer = Trainer(Run(RunConfig(model=model.name, steps=100)))
    try:
        assert trainer.reference_job is None and trainer.run.reference.kind == "given"
        snap = trainer.snapshot(diagnosis=False)
        assert snap.density["kind"] == "1d"
        fig = charts.density_figure(snap)
        assert "given" in fig["layout"]["title"]["text"]
    finally:
        trainer.close()
    # The landscape draws built-in models only: a model file's 1-D latent is not offered.
    from vizvi import landscape

    assert model.name in MODELS and model.name not in landscape.landscape_models()
    assert model.name not in landscape.builtin_models()


# -- the dashboard's --model-file arguments ------------------------------------------------------
def test_model_file_arguments_are_read_and_a_bad_file_is_reported_once(tmp_path, capsys):
    from vizvi.ui import model_files

    assert model_files.paths_from_argv(["--model-file", "a.py", "--other", "--model-file=b.py", "--model-file"]) == \
        ["a.py", "b.py"]
    bad = tmp_path / "vizvi_ui_bad.py"
    bad.write_text("import numpy as np\njoint = (\n")
    paths = [str(bad), EIGHT_SCHOOLS]
    messages = model_files.register(paths)
    assert len(messages) == 1 and messages[0].startswith(f"{bad}:") and "syntax error" in messages[0]
    assert "eight-schools-noncentered" in MODELS  # the good file after the bad one is loaded
    assert model_files.register(paths) == messages  # once per process: the same answer, printed once
    printed = capsys.readouterr().err
    assert printed.count("model file not loaded") == 1 and str(bad) in printed
