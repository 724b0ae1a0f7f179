"""The estimator lab page (``app_pages/lab.py``) through Streamlit's ``AppTest``: no browser.

Each test opens a fresh session on the lab page (``AppTest.from_file`` on ``dashboard.py``,
then ``switch_page`` before the first run, so the session starts there and the lab reads the
URL). The variance explorer computes in a background thread (``LabJob`` in session state
``lab_job``) and the race trains in one (``race_trainer``), so the tests poll (``at.run()``
and a short sleep) until a condition holds, always with a bound. Replicate counts are small
except where a test needs a long computation to interrupt; every computation left going is
cancelled and every race trainer closed when its test ends.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from vizvi.ui import explorer

from tests.test_app import (  # noqa: F401 - the fixtures are used by name
    assert_no_exception,
    button,
    errors,
    infos,
    open_app,
    opening_page,
    prepare_within_the_script_run,
    type_bad_value,
    wait_until,
)
from vizvi.variance_lab import LabEstimator, parse_k

LAB_PAGE = "app_pages/lab.py"
JOB_DEADLINE_S = 120.0
POLL_S = 0.25
ESTIMATORS = [e.value for e in LabEstimator]
SMALL = {"replicates": "3000", "seed": "1"}

# Every explorer setting as a URL query, none of them the default (test 4).
EXPLORER_QUERY = {"mu": "0.5", "sigma": "2", "k": "-2:2:5", "cost": "abs", "samples": "2", "replicates": "3000",
                  "seed": "4", "log-y": "0"}
RACE_QUERY = {"view": "race", "model": "normal-mean", "steps": "600", "speed": "max",
              "estimators": "pathwise,score,measure-valued"}


# -- helpers ------------------------------------------------------------------------------------
def lab_job(at):
    """The session's variance computation (a ``vizvi.ui.explorer.LabJob``)."""
    return at.session_state["lab_job"]


def wait_for_job(at, timeout: float = JOB_DEADLINE_S):
    """Poll until the current LabJob is done, then rerun once so the page draws its result;
    returns the job."""
    job = lab_job(at)
    deadline = time.monotonic() + timeout
    while not job.done:
        if time.monotonic() > deadline:
            pytest.fail(f"the variance computation {job.config} was not done after {timeout:.0f} s "
                        f"({job.fraction:.0%}; errors on the page: {errors(at)})")
        time.sleep(POLL_S)
        at.run()
        assert_no_exception(at)
        assert lab_job(at) is job, "a rerun with unchanged widgets started a new computation"
    at.run()
    assert_no_exception(at)
    assert lab_job(at) is job, "a rerun with unchanged widgets started a new computation"
    assert job.error is None, job.error
    assert job.result is not None
    return job


def plotly_figures(at) -> dict:
    """{chart key: figure dict} for every st.plotly_chart on the page."""
    return {el.key: json.loads(el.proto.spec) for el in at.get("plotly_chart")}


def variance_figure(at) -> dict:
    return plotly_figures(at)["explorer-variance"]


def title(fig: dict) -> str:
    return fig["layout"]["title"]["text"]


def assert_variance_figure_shows(fig: dict, result) -> None:
    """One curve per estimator and parameter, each over every k, with the result's variances."""
    traces = fig["data"]
    assert len(traces) == len(ESTIMATORS) * 2, [t["name"] for t in traces]
    assert sorted(t["name"] for t in traces) == sorted(ESTIMATORS * 2)
    for estimator in ESTIMATORS:
        mine = [t for t in traces if t["name"] == estimator]
        assert sorted(t["xaxis"] for t in mine) == ["x", "x2"], estimator  # d/dmu left, d/dsigma right
        for t in mine:
            param = "mu" if t["xaxis"] == "x" else "sigma"
            assert len(t["x"]) == len(t["y"]) == len(result.k), (estimator, param)
            assert np.allclose(t["x"], result.k)
            assert np.allclose(t["y"], result.variance[estimator][param]), (estimator, param)
            assert np.all(np.isfinite(t["y"])) and np.all(np.asarray(t["y"]) >= 0), (estimator, param)


def result_caption(at) -> str:
    found = [c.value for c in at.caption if "independent estimates per point" in c.value]
    assert len(found) == 1, [c.value for c in at.caption]
    return found[0]


def race_trainer(at):
    return at.session_state["race_trainer"]


def _end_background_work(at) -> None:
    """Cancel the session's variance computation and close its race trainer, if any."""
    try:
        state = at.session_state
        if "lab_job" in state:
            state["lab_job"].cancel.set()
        if "race_trainer" in state:
            state["race_trainer"].close()
    except Exception:  # noqa: BLE001 - a test that failed early may have no session
        pass


@pytest.fixture
def open_lab(open_app):  # noqa: F811 - the fixture imported above
    """``open_lab(query=None)``: a fresh session started on the lab page with ``query`` as its
    URL, run once; its background work is ended afterwards."""
    yield from opening_page(open_app, LAB_PAGE, "Estimator lab", _end_background_work)


# -- 1. the explorer with its defaults -----------------------------------------------------------
def test_explorer_opens_and_computes_the_default_figure(open_lab):
    at = open_lab()
    assert errors(at) == []
    job = lab_job(at)
    config = job.config
    assert (config.mu, config.sigma, config.k, config.cost, config.samples, config.replicates, config.seed) == (
        1.0, 1.0, "-3:3:13", "square", 1, 20_000, 0)
    # The widgets are the explorer's own (group "lab"), holding the dashboard's defaults.
    assert at.text_input(key="w_lab-mu").value == "1" and at.text_input(key="w_lab-sigma").value == "1"
    assert at.text_input(key="w_lab-k").value == "-3:3:13"
    assert at.radio(key="w_lab-cost").value == "square"
    assert at.number_input(key="w_lab-replicates").value == 20_000
    assert at.toggle(key="w_lab-log-y").value is True
    job = wait_for_job(at)
    result = job.result
    assert result.replicates == 20_000 and len(result.k) == 13
    assert result.config["k"] == list(parse_k("-3:3:13"))
    figs = plotly_figures(at)
    assert sorted(figs) == ["explorer-cost", "explorer-mean", "explorer-variance"]
    assert all(fig["data"] for fig in figs.values())
    fig = figs["explorer-variance"]
    assert_variance_figure_shows(fig, result)
    assert "20,000 replicates" in title(fig) and "cost square" in title(fig)
    assert fig["layout"]["yaxis"]["type"] == "log" and fig["layout"]["yaxis2"]["type"] == "log"
    assert result_caption(at).startswith("20,000 independent estimates per point")
    assert not at.get("progress"), "the progress bar stays after the computation is done"
    assert errors(at) == []
    # The URL now carries every explorer setting (and no view: the explorer is the default).
    assert dict(at.query_params) == {"mu": "1", "sigma": "1", "k": "-3:3:13", "cost": "square", "samples": "1",
                                     "replicates": "20000", "seed": "0", "log-y": "1"}


# -- 2. controls change the figure ---------------------------------------------------------------
def test_explorer_controls_change_the_computation_and_the_figure(open_lab):
    at = open_lab(SMALL)
    first = wait_for_job(at)
    assert title(variance_figure(at)).endswith("cost square")
    at.radio(key="w_lab-cost").set_value("gauss")
    at.text_input(key="w_lab-k").set_value("-1:1:3").run()
    assert_no_exception(at)
    assert errors(at) == []
    job = wait_for_job(at)
    assert job is not first and job.previous is first.result
    assert job.config.cost == "gauss" and job.config.k == "-1:1:3"
    result = job.result
    assert result.config["cost"] == "gauss" and result.config["k"] == [-1.0, 0.0, 1.0]
    assert result.config["replicates"] == 3000 and result.config["seed"] == 1
    fig = variance_figure(at)
    assert_variance_figure_shows(fig, result)
    assert title(fig).endswith("cost gauss") and "3,000 replicates" in title(fig)
    cost_fig = plotly_figures(at)["explorer-cost"]
    assert title(cost_fig) == "The cost f(x; k) = gauss and its derivative, for k in -1, 0, 1"
    assert at.query_params["cost"] == "gauss" and at.query_params["k"] == "-1:1:3"
    # The log axis is a view setting: it redraws the same result, computing nothing new.
    at.toggle(key="w_lab-log-y").set_value(False).run()
    assert_no_exception(at)
    assert lab_job(at) is job
    fig = variance_figure(at)
    assert fig["layout"]["yaxis"]["type"] == "linear" and fig["layout"]["yaxis2"]["type"] == "linear"
    assert at.query_params["log-y"] == "0"


# -- 3. bad input --------------------------------------------------------------------------------
BAD_EXPLORER_INPUT = [
    # (widget kind, key, bad value, setting named first in the message, words it must contain)
    ("text_input", "w_lab-sigma", "0", "sigma", "positive"),
    ("text_input", "w_lab-sigma", "-1", "sigma", "positive"),
    ("text_input", "w_lab-sigma", "abc", "sigma", "not a number"),
    ("text_input", "w_lab-mu", "nan", "mu", "finite"),
    ("text_input", "w_lab-k", "1,x", "k", "'x' is not a number"),
    ("text_input", "w_lab-k", "0:1:500", "k", "count"),
    ("number_input", "w_lab-replicates", 1, "replicates", "out of range"),
    ("number_input", "w_lab-replicates", 20_000_000, "replicates", "out of range"),
    ("number_input", "w_lab-samples", 0, "samples", "out of range"),
]


def test_explorer_bad_input_is_named_and_the_last_figure_stays(open_lab):
    at = open_lab(SMALL)
    job = wait_for_job(at)
    config = job.config
    shown = variance_figure(at)
    for kind, key, bad, name, words in BAD_EXPLORER_INPUT:
        good, errs = type_bad_value(at, kind, key, bad, name, words)
        assert "keeps the last good settings" in errs[0]
        assert lab_job(at) is job and job.config == config, f"{key}={bad!r} started a computation"
        assert variance_figure(at) == shown, f"{key}={bad!r} changed the figure"
        assert len(at.get("plotly_chart")) == 3
        getattr(at, kind)(key=key).set_value(good).run()
        assert_no_exception(at)
        assert errors(at) == [], f"the error stayed after {key} was corrected: {errors(at)}"
        assert lab_job(at) is job, f"correcting {key} recomputed the same settings"


# -- 4. the URL ----------------------------------------------------------------------------------
def test_explorer_url_restores_every_setting_and_round_trips(open_lab):
    at = open_lab(EXPLORER_QUERY)
    assert errors(at) == []
    kinds = {"mu": "text_input", "sigma": "text_input", "k": "text_input", "cost": "radio", "samples": "number_input",
             "replicates": "number_input", "seed": "number_input", "log-y": "toggle"}
    widgets = {flag: getattr(at, kind)(key=f"w_lab-{flag}").value for flag, kind in kinds.items()}
    assert widgets == {"mu": "0.5", "sigma": "2", "k": "-2:2:5", "cost": "abs", "samples": 2, "replicates": 3000,
                       "seed": 4, "log-y": False}
    job = wait_for_job(at)
    assert job.result.config == {"mu": 0.5, "sigma": 2.0, "k": [-2.0, -1.0, 0.0, 1.0, 2.0], "cost": "abs",
                                 "samples": 2, "replicates": 3000, "seed": 4}
    fig = variance_figure(at)
    assert_variance_figure_shows(fig, job.result)
    assert fig["layout"]["yaxis"]["type"] == "linear"  # log-y=0
    assert title(fig) == "Variance of one estimate (2 samples, 3,000 replicates), mu = 0.5, sigma = 2, cost abs"
    assert dict(at.query_params) == EXPLORER_QUERY
    at.run()
    assert_no_exception(at)
    assert dict(at.query_params) == EXPLORER_QUERY and lab_job(at) is job


def test_explorer_bad_url_values_are_named_and_defaults_used(open_lab):
    at = open_lab({"sigma": "-3", "cost": "cubic", "view": "nonsense", "colour": "red", "mu": "0.25", **SMALL})
    errs = errors(at)
    assert len(errs) == 4, errs
    assert any(e.startswith("URL query: view='nonsense' ignored") and "explorer, race" in e for e in errs), errs
    assert any(e.startswith("URL query: sigma='-3' ignored") and "positive" in e for e in errs), errs
    assert any(e.startswith("URL query: cost='cubic' ignored") and "square" in e for e in errs), errs
    assert any(e == "URL query: unknown setting 'colour' ignored" for e in errs), errs
    # The explorer is shown, the bad settings fall back to their defaults, the good ones are taken.
    assert at.text_input(key="w_lab-sigma").value == "1" and at.radio(key="w_lab-cost").value == "square"
    assert at.text_input(key="w_lab-mu").value == "0.25"
    job = wait_for_job(at)
    assert (job.result.config["mu"], job.result.config["sigma"], job.result.config["cost"]) == (0.25, 1.0, "square")
    assert len(at.get("plotly_chart")) == 3
    assert errors(at) == errs  # the URL's messages stay for the session
    qp = dict(at.query_params)
    assert "colour" not in qp and "view" not in qp and qp["sigma"] == "1" and qp["cost"] == "square"


# -- 5. a change while computing -----------------------------------------------------------------
def test_a_change_while_computing_cancels_the_old_computation(open_lab):
    at = open_lab(SMALL)
    done = wait_for_job(at)
    at.number_input(key="w_lab-replicates").set_value(5_000_000).run()  # minutes of work
    assert_no_exception(at)
    long = lab_job(at)
    assert long is not done and long.config.replicates == 5_000_000 and not long.done
    assert not long.cancel.is_set()
    # While it computes: a progress bar, and the last finished figure.
    assert at.get("progress"), "no progress bar while computing"
    assert "3,000 replicates" in title(variance_figure(at))
    at.text_input(key="w_lab-mu").set_value("0.25").run()
    assert_no_exception(at)
    assert errors(at) == []
    fresh = lab_job(at)
    assert fresh is not long
    assert long.cancel.is_set(), "the old computation was not cancelled"
    assert (fresh.config.mu, fresh.config.replicates) == (0.25, 5_000_000) and not fresh.cancel.is_set()
    assert fresh.previous is done.result, "the figure shown meanwhile must be the last finished one"
    deadline = time.monotonic() + 30
    while not long.done:
        assert time.monotonic() < deadline, "the cancelled computation did not stop"
        time.sleep(0.1)
    assert long.result is None and long.error is None, "a cancellation is no result and no error"
    assert long.fraction < 1.0
    # Back to a small count: the long one is cancelled in turn, and the new result is drawn.
    at.number_input(key="w_lab-replicates").set_value(3000).run()
    assert_no_exception(at)
    assert fresh.cancel.is_set()
    small = wait_for_job(at)
    assert (small.result.config["mu"], small.result.replicates) == (0.25, 3000)
    assert "mu = 0.25" in title(variance_figure(at)) and not at.get("progress")


def test_leaving_the_explorer_stops_its_computation_and_coming_back_restarts_it(open_lab):
    at = open_lab({**SMALL, "replicates": "5000000"})
    long = lab_job(at)
    assert not long.done and not long.cancel.is_set()
    at.segmented_control(key="w_lab-view").set_value("race").run()  # nobody sees the explorer now
    assert_no_exception(at)
    assert long.cancel.is_set(), "the hidden view's computation kept the cores busy"
    at.segmented_control(key="w_lab-view").set_value("explorer").run()
    assert_no_exception(at)
    again = lab_job(at)
    assert again is not long and again.config == long.config and not again.cancel.is_set()
    again.cancel.set()


def test_an_abandoned_computation_stops_by_itself(open_lab, monkeypatch):
    monkeypatch.setattr(explorer, "IDLE_S", 0.0)  # as if nobody had looked for longer than IDLE_S
    at = open_lab({**SMALL, "replicates": "5000000"})
    long = lab_job(at)
    deadline = time.monotonic() + 30
    while not long.done:
        assert time.monotonic() < deadline, "an abandoned computation went on"
        time.sleep(0.1)
    assert long.cancel.is_set() and long.result is None and long.error is None


def test_a_bad_k_in_the_url_is_named_and_the_default_used(open_lab):
    at = open_lab({**SMALL, "k": "1,x"})
    assert any(e.startswith("URL query: k='1,x' ignored") for e in errors(at)), errors(at)
    assert at.text_input(key="w_lab-k").value == "-3:3:13"
    assert list(wait_for_job(at).result.k) == list(np.linspace(-3, 3, 13))


# -- 6. the estimator race -----------------------------------------------------------------------
def test_race_from_the_url_runs_the_chosen_estimators(open_lab):
    at = open_lab(RACE_QUERY)
    assert errors(at) == []
    assert "race_trainer" not in at.session_state
    assert any("Press **Start**" in m for m in infos(at)), infos(at)
    assert at.multiselect(key="w_race-estimators").value == ["pathwise", "score", "measure-valued"]
    assert at.selectbox(key="w_model").value == "normal-mean" and at.number_input(key="w_steps").value == 600
    assert at.button[0].label == "Start"
    button(at, "Start").click().run()
    assert_no_exception(at)
    assert errors(at) == []
    trainer = race_trainer(at)
    wait_until(at, lambda a: not race_trainer(a).busy, "the race to finish", timeout=JOB_DEADLINE_S, interval=POLL_S)
    assert race_trainer(at) is trainer and trainer.error is None
    race = trainer.run
    assert [e.value for e in race.entrants] == ["pathwise", "score", "measure-valued"]
    assert race.refused == {}
    assert {e.value: run.step for e, run in race.entrants.items()} == {"pathwise": 600, "score": 600, "measure-valued": 600}
    assert all(run.config.model == "normal-mean" and run.config.steps == 600 for run in race.entrants.values())
    assert str(race.status) == "finished"
    at.run()  # settle: the page as it stands once the race is over
    assert_no_exception(at)
    (table,) = at.dataframe
    standings = table.value
    assert len(standings) == 3
    assert list(standings["estimator"]) == ["pathwise", "score", "measure-valued"]
    assert list(standings["steps"]) == [600, 600, 600]
    qp = dict(at.query_params)
    assert qp["view"] == "race" and qp["estimators"] == "pathwise,score,measure-valued"
    assert (qp["model"], qp["steps"], qp["speed"]) == ("normal-mean", "600", "max")
    assert errors(at) == []


def test_race_whose_estimators_all_sit_out_is_refused_with_their_reason(open_lab):
    at = open_lab({"view": "race", "model": "poisson-gamma", "estimators": "measure-valued"})
    assert errors(at) == []
    assert at.selectbox(key="w_family").value == "gamma"
    assert any(c.value.startswith("Sits out: estimator 'measure-valued'") for c in at.sidebar.caption), \
        [c.value for c in at.sidebar.caption]
    button(at, "Start").click().run()
    assert_no_exception(at)
    errs = errors(at)
    assert len(errs) == 1 and errs[0].startswith("estimator: ") and "'measure-valued'" in errs[0], errs
    assert "gamma" in errs[0]
    assert "race_trainer" not in at.session_state and "race_preparing" not in at.session_state
    at.run()
    assert_no_exception(at)
    assert errors(at) == []  # said once, for the click
