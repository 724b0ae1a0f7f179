"""A model file on the dashboard through Streamlit's ``AppTest`` (no browser): the run page
with a file-defined model (its reference by MCMC in the background, k-hat, the charts of many
parameters, export), a bad model file named on every page while the rest works, and the other
pages with a model file in the list.

The model files are registered in-process (``register_model_files``, as ``dashboard.py`` does
from ``--model-file``); the bad-file test gives ``dashboard.py`` its arguments through
``sys.argv``. Runs train in background threads, so the tests poll with ``wait_until``
(bounded, on a condition). The MCMC job is a stand-in where a test needs to see it in progress
(the real one is shared per process and may be done already); one test waits for the real one.
"""

from __future__ import annotations

import json
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from vizvi.history import to_json
from vizvi.model_file import register_model_files
from vizvi.models import Reference

from tests.test_app import (  # noqa: F401 - the fixtures are used by name
    assert_no_exception,
    button,
    chart_payloads,
    charts,
    errors,
    infos,
    open_app,
    opening_page,
    prepare_within_the_script_run,
    series,
    status,
    trainer,
    wait_until,
    warnings_,
)

EIGHT_SCHOOLS = "examples/eight_schools_noncentered.py"
MODEL = "eight-schools-noncentered"
CHARTS = {"elbo", "params", "density", "grads", "variance", "khat", "overview"}
DEADLINE_S = 150.0


@pytest.fixture(scope="module", autouse=True)
def eight_schools():
    """The non-centered eight schools in the model list (10 latents: 20 mean-field parameters)."""
    (model,) = register_model_files([EIGHT_SCHOOLS])
    return model


class FakeJob:
    """An MCMC job the test drives: in progress until ``finish`` gives it its reference."""

    def __init__(self):
        self.progress, self.phase, self.result, self.error, self.done = 0.42, "warming up", None, None, False

    def finish(self, reference):
        self.result, self.progress, self.phase, self.done = reference, 1.0, "drawing", True


def _reference(model, *, rhat: float, divergences: int) -> Reference:
    """A Reference of kind "mcmc" (standard normal draws of z), with the ESS and R-hat given."""
    z = np.random.default_rng(0).normal(size=(4000, model.dim))
    info = {"sampler": "NUTS", "chains": 4, "draws": 1000, "divergences": divergences, "seconds": 2.5,
            "ess_bulk": dict.fromkeys(model.coordinates, 812.0), "rhat": {**dict.fromkeys(model.coordinates, 1.001), "tau": rhat},
            "ess_bulk_min": 812.0, "rhat_max": rhat}
    return Reference("mcmc", z.mean(axis=0), np.cov(z, rowvar=False), float("nan"), "mcmc", {}, None, z, None, None, info)


def _drawn(fig) -> list:
    """Names of a figure's traces that are no two-point reference line (empty before any step)."""
    return [t["name"] for t in fig["data"] if not (isinstance(t["x"], list) and len(t["x"]) == 2)]


def _progress(at) -> list:
    return [p.proto.text for p in at.get("progress")]


def test_a_model_file_trains_with_its_reference_computed_in_the_background(open_app, eight_schools, monkeypatch):
    from vizvi import mcmc

    job = FakeJob()
    monkeypatch.setattr(mcmc, "reference_job", lambda model, dataset: job)
    at = open_app({"model": MODEL, "speed": "max", "variance-every": "20"})
    assert errors(at) == [] and status(at) == ("ready", 0)
    t = trainer(at)
    assert t.run.model is eight_schools and t.run.reference is None and t.reference_job is job
    # While NUTS runs: its phase and progress, and charts without a reference.
    (bar,) = _progress(at)
    assert "Reference posterior by MCMC" in bar and "warming up, 42%" in bar
    figs = charts(at)
    assert set(figs) == CHARTS
    assert "unknown" in figs["elbo"]["layout"]["title"]["text"]
    assert [t["name"] for t in figs["elbo"]["data"]] == ["estimate", "EMA (span 50)"]  # no evidence line
    assert figs["params"]["layout"]["title"]["text"] == "Variational parameters (4 of 20)"
    assert any("log evidence of this model is unknown" in c.value for c in at.caption)
    assert any("Yao, Vehtari, Simpson and Gelman 2018" in c.value for c in at.caption)

    button(at, "Start").click().run()
    assert_no_exception(at)
    wait_until(at, lambda a: status(a)[1] >= 2000, "the run to take 2,000 steps", timeout=DEADLINE_S)
    # Training does not wait for it (nor for XLA: its first steps may be an uncompiled preview).
    assert any("Reference posterior by MCMC" in bar for bar in _progress(at))
    # NUTS finishes: attached to the run (under the trainer's lock), ESS and R-hat shown, warned about.
    job.finish(_reference(eight_schools, rhat=1.03, divergences=7))
    wait_until(at, lambda a: any("Reference posterior by MCMC: NUTS" in m for m in infos(a)), "the reference's summary",
               timeout=DEADLINE_S)
    assert t.run.reference is job.result and not any("Reference posterior by MCMC" in bar for bar in _progress(at))
    (summary,) = [m for m in infos(at) if "Reference posterior by MCMC" in m]
    assert "Smallest bulk ESS 812" in summary and "largest R-hat 1.030" in summary and "7 divergent transitions" in summary
    warned = warnings_(at)
    assert any("R-hat 1.030 > 1.01 (worst: tau)" in w for w in warned), warned
    assert any("7 divergent transitions" in w for w in warned), warned
    # q as a whole: the latest k-hat, in words (a warning or a note, as k-hat and the moments say).
    wait_until(at, lambda a: any(m.startswith("**q against the target:** PSIS k-hat = ") for m in warnings_(a) + infos(a)),
               "the posterior check", timeout=DEADLINE_S)

    figs = charts(at)
    density = figs["density"]
    assert any(t["name"] == "reference posterior (MCMC draws)" for t in density["data"])
    assert {t["name"] for t in figs["params"]["data"] if isinstance(t["x"], list)} >= {"posterior's moments (MCMC)"}
    khat = figs["khat"]
    assert len(khat["data"][0]["x"]) >= 10 and 0.7 in [s["y0"] for s in khat["layout"]["shapes"]]
    heat = figs["overview"]["data"][0]
    assert list(heat["y"]) == list(t.run.family.param_names) and np.asarray(heat["z"]).shape[0] == 20
    # The export: the CLI's schema, with the MCMC reference.
    record = json.loads(to_json(t.record()))
    assert record["reference"] is not None and record["config"]["model"] == MODEL
    button(at, "Pause").click().run()
    assert_no_exception(at)


def test_the_user_picks_the_parameters_the_overview_and_the_latent_view(open_app, monkeypatch):
    from vizvi import mcmc

    job = FakeJob()
    monkeypatch.setattr(mcmc, "reference_job", lambda model, dataset: job)
    at = open_app({"model": MODEL})
    names = list(trainer(at).run.family.param_names)
    at.multiselect(key="w_focus").set_value(["loc[tau]", "scale[theta_tilde[3]]"]).run()
    assert_no_exception(at)
    params = charts(at)["params"]
    assert _drawn(params) == ["loc[tau]", "scale[theta_tilde[3]]"]
    assert _drawn(charts(at)["grads"]) == ["loc[tau]", "scale[theta_tilde[3]]"]
    # Without a reference the distance is not offered: the overview falls back to the SNR.
    at.selectbox(key="w_overview").set_value("distance").run()
    assert "signal-to-noise" in charts(at)["overview"]["layout"]["title"]["text"]
    at.selectbox(key="w_overview").set_value("change").run()
    assert "how fast it moves" in charts(at)["overview"]["layout"]["title"]["text"]
    # The marginals of the parameters drawn (tau's and theta_tilde[3]'s), then of those chosen, then a pair.
    density = charts(at)["density"]
    assert [density["layout"][k]["title"]["text"] for k in ("xaxis", "xaxis2")] == ["tau", "theta_tilde[3]"]
    at.multiselect(key="w_latent-coordinates").set_value(["mu", "theta_tilde[0]", "theta_tilde[7]"]).run()
    density = charts(at)["density"]
    assert [density["layout"][k]["title"]["text"] for k in ("xaxis", "xaxis2", "xaxis3")] == \
        ["mu", "theta_tilde[0]", "theta_tilde[7]"]
    at.radio(key="w_latent-mode").set_value("pair").run()
    at.multiselect(key="w_latent-pair").set_value(["mu", "tau"]).run()
    assert_no_exception(at)
    density = charts(at)["density"]
    assert density["data"][-1]["type"] == "contour"
    assert (density["layout"]["xaxis"]["title"]["text"], density["layout"]["yaxis"]["title"]["text"]) == ("mu", "tau")
    # Initial values of a large family: one field of the values that differ from the defaults.
    at.text_input(key=f"w_init-overrides_mean-field-normal_{MODEL}").set_value("loc[mu]=2.5").run()
    button(at, "Reset").click().run()
    assert_no_exception(at)
    run = trainer(at).run
    assert run.theta0[names.index("loc[mu]")] == 2.5 and at.query_params["init"] == "loc[mu]=2.5"
    at.text_input(key=f"w_init-overrides_mean-field-normal_{MODEL}").set_value("loc[nope]=1").run()
    button(at, "Reset").click().run()
    (error,) = errors(at)
    assert error.startswith("init: ") and "loc[nope]" in error and trainer(at).run is run


def test_the_real_mcmc_reference_arrives_and_is_drawn(open_app):
    """NUTS on eight schools (a few seconds, shared per process): the page shows its progress
    or, once done, its diagnostics, and the marginals draw its draws."""
    at = open_app({"model": MODEL})
    t = trainer(at)
    assert t.reference_job is not None
    wait_until(at, lambda a: t.reference_job.done, "NUTS to finish", timeout=DEADLINE_S)
    wait_until(at, lambda a: any("Reference posterior by MCMC: NUTS" in m for m in infos(a)), "its summary")
    m = t.run.reference.mcmc
    assert m["chains"] == 4 and m["ess_bulk_min"] > 100 and m["rhat_max"] < 1.1
    density = charts(at)["density"]
    assert sum(t["name"] == "reference posterior (MCMC draws)" for t in density["data"]) >= 2


def test_a_bad_model_file_is_named_on_every_page_and_the_rest_works(open_app, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "vizvi_app_broken.py"
    bad.write_text("import numpy as np\n\njoint = np.array([1.0])\nobserved = {}\n")
    monkeypatch.setattr(sys, "argv", ["dashboard.py", "--model-file", str(bad), "--model-file", EIGHT_SCHOOLS])
    at = open_app()
    (error,) = errors(at)
    assert error.startswith(f"Model file not loaded: {bad}:3: ") and "not a tfd.JointDistribution" in error
    assert any(o.startswith(f"{MODEL}: ") for o in at.sidebar.selectbox(key="w_model").options)
    assert status(at) == ("ready", 0) and trainer(at).run.model.name == "poisson-gamma"
    assert {"elbo", "params", "density", "grads", "variance", "khat"} == set(charts(at))
    for page in ("app_pages/guide.py", "app_pages/landscape.py", "app_pages/compare.py"):
        at.switch_page(page).run()
        assert_no_exception(at)
        assert any(e.startswith("Model file not loaded") for e in errors(at)), page
    assert capsys.readouterr().err.count(f"model file not loaded: {bad}") == 1  # said on the terminal once


def test_the_landscape_offers_built_in_models_only(open_app):
    at = open_app({"model": MODEL}, run=False)
    at.switch_page("app_pages/landscape.py").run()
    assert_no_exception(at)
    assert not any(o.startswith(f"{MODEL}: ") for o in at.sidebar.selectbox(key="w_landscape-model").options)
    assert any(f"model='{MODEL}' ignored" in e for e in errors(at)), errors(at)  # a link naming one
    assert at.sidebar.selectbox(key="w_landscape-model").value == "poisson-gamma"


def _train_to_the_end(at, state_key: str, steps: int, check) -> None:
    """Start the page's trainer (a comparison, a race), wait until it has taken ``steps``, run
    ``check()``, and close the trainer whatever happens."""
    button(at, "Start").click().run()
    assert_no_exception(at)
    try:
        wait_until(at, lambda a: state_key in a.session_state and not a.session_state[state_key].busy
                   and a.session_state[state_key].run.step >= steps, "the trainer to finish", timeout=DEADLINE_S)
        check()
    finally:
        if state_key in at.session_state:
            at.session_state[state_key].close()


def test_compare_runs_trains_a_model_file(open_app):
    at = open_app({"model": MODEL, "vary": "lr=0.01,0.05", "steps": "300", "speed": "max"}, run=False)
    at.switch_page("app_pages/compare.py").run()
    assert_no_exception(at)

    def check():
        figs = charts(at)
        assert {"cmp-elbo", "cmp-params", "cmp-grads", "cmp-snr"} <= set(figs)
        assert len(series(figs["cmp-elbo"])) == 2 and not [t for t in figs["cmp-elbo"]["data"] if isinstance(t["x"], list)]
        assert len(series(figs["cmp-params"])) == 2 * 4  # each run's first parameters, not all 20

    _train_to_the_end(at, "compare_trainer", 300, check)


def test_a_failed_mcmc_reference_is_named_and_the_run_trains_on(open_app, monkeypatch):
    from vizvi import mcmc

    job = FakeJob()
    job.error, job.done = "the MCMC chains left the region where the log density is finite", True
    monkeypatch.setattr(mcmc, "reference_job", lambda model, dataset: job)
    at = open_app({"model": MODEL, "steps": "500"})
    (error,) = errors(at)
    assert error.startswith("The MCMC reference failed: the MCMC chains left") and "trains on" in error
    button(at, "Start").click().run()
    wait_until(at, lambda a: status(a) == ("finished", 500), "the run to finish", timeout=DEADLINE_S)
    assert trainer(at).run.reference is None and charts(at)["elbo"]["layout"]["title"]["text"].startswith("ELBO (log")


def test_the_estimator_race_runs_a_model_file(open_app):
    at = open_app({"view": "race", "model": MODEL, "steps": "300", "speed": "max", "estimators": "pathwise,score"},
                  run=False)
    at.switch_page("app_pages/lab.py").run()
    assert_no_exception(at)

    def check():
        assert errors(at) == []
        figs = charts(at)
        assert not [t for t in figs["race-elbo"]["data"] if isinstance(t["x"], list)]  # no log evidence to draw
        assert len(series(figs["race-params"])) == 2 * 4  # two entrants x the first parameters, not all 20
        assert figs["race-params"]["layout"]["title"]["text"].endswith("(4 of 20)")

    _train_to_the_end(at, "race_trainer", 300, check)
