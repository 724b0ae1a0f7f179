"""The ELBO landscape page (``app_pages/landscape.py``) through Streamlit's ``AppTest``: no browser.

Each test opens a fresh session on the page (``switch_page`` before the first run, so the session
starts there and the page reads the URL). The paths train in background threads (one
``vizvi.worker.Trainer`` per optimizer, in the session's ``landscape_state``), so the tests poll
(``at.run()`` and a short sleep) with a bound; every trainer is closed when its test ends.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from vizvi import landscape as L

from tests.test_app import (  # noqa: F401 - the fixtures are used by name
    assert_no_exception,
    button,
    errors,
    open_app,
    opening_page,
    prepare_within_the_script_run,
    type_bad_value,
    wait_until,
)

PAGE = "app_pages/landscape.py"
DEADLINE_S = 150.0
SHORT = {"steps": "300", "speed": "max"}
# Every setting as a URL query, none of them the default.
FULL_QUERY = {"model": "normal-mean", "family": "normal", "init": "loc=-1,scale=2", "parameterization": "exp",
              "optimizers": "adam,natural", "lr": "adam:0.1", "samples": "8", "steps": "500", "seed": "3", "speed": "max",
              "coordinates": "natural", "grid": "30", "elbo": "mc", "mc-samples": "64"}


def state(at):
    return at.session_state["landscape_state"]


def figure(at) -> dict:
    charts = {el.key: json.loads(el.proto.spec) for el in at.get("plotly_chart")}
    assert "landscape" in charts, list(charts)
    return charts["landscape"]


def traces(fig) -> dict:
    return {t["name"]: t for t in fig["data"]}


def wait_for_paths(at) -> None:
    wait_until(at, lambda a: state(a).trainers and not state(a).busy, "the paths to finish", timeout=DEADLINE_S, interval=0.5)
    at.run()
    assert_no_exception(at)


@pytest.fixture
def open_landscape(open_app):  # noqa: F811 - the fixture imported above
    """``open_landscape(query=None)``: a fresh session started on the landscape page; its trainers
    are closed afterwards."""
    yield from opening_page(open_app, PAGE, "ELBO landscape",
                            lambda at: state(at).close() if "landscape_state" in at.session_state else None)


def test_the_page_renders_the_exact_landscape_with_its_defaults(open_landscape):
    at = open_landscape()
    assert errors(at) == []
    fig = figure(at)
    contour = fig["data"][0]
    assert contour["type"] == "contour" and len(contour["z"]) == 60 and len(contour["z"][0]) == 60
    assert set(traces(fig)) == {"log10 KL(q‖p)", "start", "exact optimum"}  # no paths before Start
    s = state(at)
    assert (s.config.model, s.config.family, s.config.init) == ("poisson-gamma", "gamma", "concentration=0.1,rate=1")
    np.testing.assert_allclose(traces(fig)["exact optimum"]["x"], L.coordinates_of(s.target.family, s.target.optimum[None],
                                                                                   "softplus")[:, 0])
    captions = [c.value for c in at.caption]
    assert any(c.startswith("Exact (E_q[log p(x, z)] in closed form") and "beta-bernoulli with beta" in c for c in captions)
    assert any(c.startswith("60 × 60 grid, computed in one call") and "exact ELBO" in c for c in captions), captions
    assert dict(at.query_params) == {"model": "poisson-gamma", "family": "gamma", "init": "concentration=0.1,rate=1",
                                     "parameterization": "softplus", "optimizers": "adam,sgd,natural", "lr": "",
                                     "samples": "16", "steps": "20000", "seed": "0", "speed": "200",
                                     "coordinates": "softplus", "grid": "60", "elbo": "exact", "mc-samples": "256"}


def test_start_draws_the_paths_and_switching_coordinates_keeps_them(open_landscape):
    at = open_landscape(SHORT)
    button(at, "Start").click().run()
    assert_no_exception(at)
    trainers = dict(state(at).trainers)
    assert list(trainers) == ["adam", "sgd", "natural"]
    wait_for_paths(at)
    assert {o: t.run.step for o, t in trainers.items()} == {"adam": 300, "sgd": 300, "natural": 300}
    s = state(at)
    for coords in ("softplus", "natural", "log", "mean", "constrained"):
        if coords != "softplus":
            at.radio(key="w_landscape-coordinates").set_value(coords).run()
            assert_no_exception(at)
            wait_until(at, lambda a: not state(a).busy, "the grid", timeout=DEADLINE_S)
        assert errors(at) == []
        assert state(at).trainers == trainers, "switching coordinates retrained"
        fig = figure(at)
        drawn = traces(fig)
        assert fig["layout"]["xaxis"]["title"]["text"] == L.axis_titles(s.target.family, coords)[0]
        for o, t in trainers.items():
            line = drawn[f"{o} (lr {t.run.config.lr:g})"]
            assert len(line["x"]) > 10
            # The same run's history, in these coordinates.
            theta = t.run.history.series()["theta"]
            last = L.coordinates_of(s.target.family, theta[-1:], coords)[0]
            np.testing.assert_allclose([line["x"][-1], line["y"][-1]], last, rtol=1e-9)
            np.testing.assert_allclose([line["x"][0], line["y"][0]],
                                       L.coordinates_of(s.target.family, s.target.start[None], coords)[0], rtol=1e-9)
        assert at.query_params["coordinates"] == coords
    table = at.dataframe[0].value
    assert list(table["optimizer"]) == ["adam", "sgd", "natural"] and list(table["step"]) == [300, 300, 300]


def test_the_monte_carlo_landscape_shows_its_standard_error(open_landscape):
    at = open_landscape({"model": "normal-mean", "elbo": "mc", "mc-samples": "128", "grid": "40"})
    wait_until(at, lambda a: not state(a).busy, "the grid", timeout=DEADLINE_S)
    assert errors(at) == []
    grid = state(at).shown.result
    assert grid.method is L.ElboMethod.MC and grid.samples == 128 and grid.elbo.shape == (40, 40)
    caption = next(c.value for c in at.caption if "grid, computed in one call" in c.value)
    largest, median = grid.se_summary()
    assert "128 common random numbers" in caption and f"median {median:.3g}, largest {largest:.3g}" in caption
    assert "SE" in figure(at)["data"][0]["hovertemplate"]
    assert "landscape-se" in [el.key for el in at.get("plotly_chart")]


BAD_INPUT = [
    # (widget kind, key, bad value, setting named first in the message, words it must contain)
    ("text_input", "w_landscape-init-gamma", "concentration=-1", "init", "outside its support"),
    ("text_input", "w_landscape-init-gamma", "loc=1", "init", "no parameter 'loc'"),
    ("text_input", "w_landscape-lr", "adam:-1", "lr", "learning rate must be positive"),
    ("multiselect", "w_landscape-optimizers", [], "optimizers", "at least one"),
    ("selectbox", "w_landscape-model", "correlated-gaussian", "model", "1-D latent"),
    ("number_input", "w_landscape-mc-samples", 20_000, "mc-samples", "out of range"),
]


def test_bad_input_is_named_and_the_last_landscape_stays(open_landscape):
    at = open_landscape(SHORT)
    shown = figure(at)
    for kind, key, bad, name, words in BAD_INPUT:
        good, errs = type_bad_value(at, kind, key, bad, name, words)
        assert "keeps the last good settings" in errs[0]
        assert figure(at)["data"][0]["z"] == shown["data"][0]["z"], f"{key}={bad!r} changed the landscape"
        getattr(at, kind)(key=key).set_value(good).run()
        assert_no_exception(at)
        assert errors(at) == [], f"the error stayed after {key} was corrected: {errors(at)}"
    # Start with a bad setting trains nothing.
    at.text_input(key="w_landscape-init-gamma").set_value("concentration=0").run()
    button(at, "Start").click().run()
    assert_no_exception(at)
    assert len(errors(at)) == 1 and not state(at).trainers


def test_the_url_restores_every_setting_and_round_trips(open_landscape):
    at = open_landscape(FULL_QUERY)
    assert errors(at) == []
    c = state(at).config
    assert (c.model, c.family, c.init, c.parameterization, c.optimizers, c.lr, c.samples, c.steps, c.seed, c.speed,
            c.coordinates, c.grid, c.elbo, c.mc_samples) == (
        "normal-mean", "normal", "loc=-1,scale=2", "exp", "adam,natural", "adam:0.1", 8, 500, 3, "max", "natural", 30,
        "mc", 64)
    assert at.multiselect(key="w_landscape-optimizers").value == ["adam", "natural"]
    assert at.radio(key="w_landscape-coordinates").value == "natural"
    wait_until(at, lambda a: not state(a).busy, "the grid", timeout=DEADLINE_S)
    assert dict(at.query_params) == FULL_QUERY
    button(at, "Start").click().run()
    assert_no_exception(at)
    runs = {o: t.run for o, t in state(at).trainers.items()}
    assert {o: r.config.lr for o, r in runs.items()} == {"adam": 0.1, "natural": 0.1}
    assert all((r.config.parameterization, r.config.samples, r.config.seed, r.config.steps) == ("exp", 8, 3, 500)
               for r in runs.values())
    np.testing.assert_allclose(runs["adam"].theta0, [-1.0, 2.0])
    assert dict(at.query_params) == FULL_QUERY


def test_bad_url_values_are_named_and_their_defaults_used(open_landscape):
    at = open_landscape({"coordinates": "polar", "init": "rate=-2", "optimizers": "adam,lbfgs", "lr": "adam:x",
                         "colour": "red"})
    errs = errors(at)
    assert len(errs) == 5, errs
    for start in ("URL query: coordinates='polar' ignored", "URL query: init='rate=-2' ignored",
                  "URL query: optimizers='adam,lbfgs' ignored", "URL query: lr='adam:x' ignored",
                  "URL query: unknown setting 'colour' ignored"):
        assert any(e.startswith(start) for e in errs), (start, errs)
    c = state(at).config
    assert (c.coordinates, c.init, c.optimizers, c.lr) == ("softplus", "concentration=0.1,rate=1", "adam,sgd,natural", "")
    assert figure(at)["data"][0]["type"] == "contour"
