"""Pure figure builders: valid Plotly, capped traces, smoothing, reference lines."""

import numpy as np
import plotly.graph_objects as go
import pytest

from vizvi import charts
from vizvi.engine import Run, RunConfig
from vizvi.worker import Trainer


@pytest.fixture(scope="module")
def snaps():
    out = {}
    for name, config in {
        "gamma": RunConfig(model="poisson-gamma", steps=6000, variance_every=10),
        "banana": RunConfig(model="banana", steps=300),
    }.items():
        run = Run(config).run()
        run.update_settings(lr=0.01)
        trainer = Trainer(run)
        out[name] = trainer.snapshot()
        trainer.close()
    return out


@pytest.mark.parametrize("which", ["gamma", "banana"])
def test_every_figure_is_valid_plotly_and_capped(snaps, which):
    figures = charts.all_figures(snaps[which])
    assert set(figures) == {"elbo", "params", "grads", "variance", "density"}
    for key, fig in figures.items():
        go.Figure(fig)  # raises on any property Plotly does not know
        assert fig["layout"]["uirevision"] == key
        for trace in fig["data"]:
            assert len(trace.get("x") if trace.get("x") is not None else []) <= charts.MAX_POINTS, (key, trace["name"])


def test_long_history_is_thinned_to_the_cap_with_both_ends(snaps):
    snap = snaps["gamma"]
    fig = charts.elbo_figure(snap)
    x = np.asarray(fig["data"][0]["x"])
    assert len(snap.series["step"]) > charts.MAX_POINTS
    assert len(x) == charts.MAX_POINTS and x[0] == 1 and x[-1] == snap.step
    assert x.dtype == np.int32 and np.asarray(fig["data"][0]["y"]).dtype == np.float32


def test_reference_lines_and_events(snaps):
    snap = snaps["gamma"]
    elbo = charts.elbo_figure(snap)
    evidence = [t for t in elbo["data"] if t["name"].startswith("log evidence")]
    assert evidence and evidence[0]["y"][0] == pytest.approx(snap.reference.log_evidence)
    params = charts.params_figure(snap)
    optimum = [t for t in params["data"] if "optimum" in t["name"]]
    assert [t["y"][0] for t in optimum] == pytest.approx(list(snap.optimum))
    # The learning-rate change is a dotted vertical line at its step, in every panel.
    assert any(sh["x0"] == snap.events[0]["step"] for sh in params["layout"]["shapes"])
    assert len(params["layout"]["shapes"]) == len(snap.names)


def test_density_1d_and_2d(snaps):
    d1 = charts.density_figure(snaps["gamma"])
    names = [t["name"] for t in d1["data"]]
    assert names == ["q (current)", "exact posterior"]
    z, q = np.asarray(d1["data"][0]["x"], float), np.asarray(d1["data"][0]["y"], float)
    assert np.all(z > 0)  # the rate's support
    assert np.sum(q[:-1] * np.diff(z)) == pytest.approx(1.0, abs=0.02)  # a density
    d2 = charts.density_figure(snaps["banana"])
    assert [t["type"] for t in d2["data"]] == ["contour", "contour"]
    assert d2["data"][0]["name"] == "reference posterior (grid)"


@pytest.mark.parametrize("span", [1, 2, 3, 50, 5000])
def test_ema_matches_the_recursion_it_vectorises(span):
    y = np.random.default_rng(span).normal(size=3000) * 40 - 2000
    beta = 1 - 2 / (span + 1)
    acc, expected = 0.0, []
    for i, v in enumerate(y):
        acc = beta * acc + (1 - beta) * v
        expected.append(acc / (1 - beta ** (i + 1)))
    np.testing.assert_allclose(charts.smooth(y, "ema", span), expected, rtol=1e-10)
    assert charts.smooth(np.zeros(0), "ema", span).size == 0


def test_axes_skip_the_tick_label_overflow_check(snaps):
    for fig in charts.all_figures(snaps["gamma"]).values():
        axes = [v for k, v in fig["layout"].items() if k.startswith(("xaxis", "yaxis"))]
        assert axes and all(a["ticklabeloverflow"] == "allow" for a in axes)


def test_smoothers():
    y = np.full(50, 3.0)
    np.testing.assert_allclose(charts.smooth(y, "ema", 10), 3.0)  # bias-corrected from step 1
    np.testing.assert_allclose(charts.smooth(np.arange(10.0), "moving-average", 3)[2:], np.arange(1.0, 9.0))
    with pytest.raises(ValueError, match="unknown smoother"):
        charts.smooth(y, "median")
