"""Pure figure builders: valid Plotly, capped traces, smoothing, reference lines."""

import inspect
import types
import itertools
from types import SimpleNamespace

import numpy as np
import plotly.graph_objects as go
import pytest

from vizvi import charts
from vizvi.engine import Run, RunConfig
from vizvi.history import DecimatingBuffer
from vizvi.status import Status
from vizvi.worker import Snapshot, Trainer


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
    assert set(figures) == {"elbo", "params", "grads", "variance", "density", "khat"}
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
    assert [t["type"] for t in d2["data"]] == ["scatter", "scatter"]  # level lines, traced here (charts.level_lines)
    assert d2["data"][0]["name"] == "reference posterior (grid)"
    assert all(np.isfinite(t["x"]).sum() > 20 for t in d2["data"])


def test_level_lines_of_a_gaussian_are_its_ellipses_at_the_peak_fractions():
    # exp(-(x^2/2 + y^2/8)): the level f * peak is the ellipse x^2/2 + y^2/8 = -ln f, each
    # traced point on one of them; one closed ring per level, NaN between rings.
    xs, ys = np.linspace(-6, 6, 121), np.linspace(-10, 10, 161)
    X, Y = np.meshgrid(xs, ys)  # rows follow y
    x, y = charts.level_lines(xs, ys, 3.0 * np.exp(-(X ** 2 / 2 + Y ** 2 / 8)))
    ring = np.cumsum(np.isnan(x))
    assert ring[-1] == len(charts.LEVEL_FRACTIONS) - 1
    for k, f in enumerate(charts.LEVEL_FRACTIONS):
        on = (ring == k) & ~np.isnan(x)
        assert np.allclose(x[on] ** 2 / 2 + y[on] ** 2 / 8, -np.log(f), rtol=0.02, atol=0.01)
    assert charts.level_lines(xs, ys, np.zeros_like(X))[0].size == 0  # no peak, no lines
    assert charts.level_lines(xs, ys, np.full_like(X, np.nan))[0].size == 0



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


@pytest.mark.parametrize("which", ["gamma", "banana"])
def test_every_live_axis_has_its_type_so_plotly_does_not_guess_it_each_update(snaps, which):
    for key, fig in charts.all_figures(snaps[which], log_axes=True).items():
        axes = {k: v for k, v in fig["layout"].items() if k.startswith(("xaxis", "yaxis"))}
        assert axes and all(a.get("type") in ("linear", "log") for a in axes.values()), (key, axes)


def test_only_axes_of_numbers_are_typed_linear():
    data = [{"type": "heatmap", "x": np.arange(3), "y": ["a", "b"], "z": [[1, 2, 3], [4, 5, 6]]},
            {"type": "scatter", "x": [1.0, None, 2], "y": np.array([1, 2, 3], dtype=np.float32),
             "xaxis": "x2", "yaxis": "y2"},
            {"type": "scatter", "x": ["2026-01-01", "2026-01-02"], "y": [1, 2], "xaxis": "x3", "yaxis": "y2"}]
    layout = {"xaxis": {}, "yaxis": {}, "xaxis2": {}, "yaxis2": {"type": "log"}, "xaxis3": {}, "xaxis4": {}}
    out = charts.plotly_figure(data, layout)["layout"]
    assert out["xaxis"]["type"] == "linear" and "type" not in out["yaxis"]  # names: a category axis
    assert out["xaxis2"]["type"] == "linear" and out["yaxis2"]["type"] == "log"  # kept as set
    assert "type" not in out["xaxis3"]  # strings: plotly.js decides (dates here)
    assert out["xaxis4"]["type"] == "linear"  # no trace on it: what plotly.js makes of it anyway
    go.Figure({"data": data, "layout": out})


def test_smoothers():
    y = np.full(50, 3.0)
    np.testing.assert_allclose(charts.smooth(y, "ema", 10), 3.0)  # bias-corrected from step 1
    np.testing.assert_allclose(charts.smooth(np.arange(10.0), "moving-average", 3)[2:], np.arange(1.0, 9.0))
    with pytest.raises(ValueError, match="unknown smoother"):
        charts.smooth(y, "median")


# -- hand-built snapshots ------------------------------------------------------------------------

def _snapshot(series, names, *, events=(), optimum=None, log_evidence=-100.0, variance=None):
    """A worker Snapshot with only what the figure builders read."""
    steps = series.get("step", [])
    return Snapshot(
        step=int(steps[-1]) if len(steps) else 0, status=Status.RUNNING, config={}, names=tuple(names),
        series=series, variance=variance or {}, params={}, optimum=None if optimum is None else np.asarray(optimum),
        reference=SimpleNamespace(kind="exact", log_evidence=log_evidence), events=list(events), divergence=None,
        diagnosis={}, density={}, steps_per_s=None, compile_s=0.0, error=None, kl_kind=None, model_title="", dim=1)


def _trace(fig, name):
    (trace,) = [t for t in fig["data"] if t["name"] == name]
    return trace


# -- issue 8, item 9.1: log axes -----------------------------------------------------------------

def test_log_axes_put_positive_parameter_panels_on_log_axes_and_keep_loc_linear():
    steps = np.arange(1, 3001)
    # The reported stall: a concentration stuck near 18 under an optimum of 3944, next to a loc
    # that crosses zero (which no log axis can show).
    theta = np.stack([np.linspace(-1.0, 0.5, 3000), 18.0 + np.linspace(0.0, 1.0, 3000)], axis=1)
    snap = _snapshot({"step": steps, "elbo": np.full(3000, -120.0), "theta": theta},
                     ("loc", "concentration"), optimum=[0.2, 3944.0])
    linear = charts.params_figure(snap)
    assert all(linear["layout"][k].get("type") != "log" for k in ("yaxis", "yaxis2"))
    fig = charts.params_figure(snap, log_axes=True)
    go.Figure(fig)
    loc_axis, conc_axis = fig["layout"]["yaxis"], fig["layout"]["yaxis2"]
    assert conc_axis["type"] == "log" and "log" in conc_axis["title"]["text"]
    assert loc_axis.get("type") != "log" and "linear" in loc_axis["title"]["text"]
    # Nothing <= 0 is ever fed to a log axis.
    for trace in fig["data"]:
        axis = fig["layout"]["yaxis" + trace.get("yaxis", "y")[1:]]
        if axis.get("type") == "log":
            assert np.all(np.asarray(trace["y"], float) > 0), trace["name"]
    # A positive panel whose optimum is not positive stays linear too.
    assert charts.params_figure(_snapshot(snap.series, snap.names, optimum=[0.2, -1.0]),
                                log_axes=True)["layout"]["yaxis2"].get("type") != "log"


def test_log_axes_turn_the_elbo_into_its_gap_to_the_log_evidence():
    rng = np.random.default_rng(0)
    steps = np.arange(1, 5001)
    gap = 2000.0 * np.exp(-steps / 300.0) + 0.05  # the KL, down to 0.05 nat
    elbo = -100.0 - gap + rng.normal(scale=0.2, size=steps.size)  # noise > gap at the end
    snap = _snapshot({"step": steps, "elbo": elbo}, ("a",), log_evidence=-100.0)
    fig = charts.elbo_figure(snap, "ema", 50, log_axes=True)
    go.Figure(fig)
    axis = fig["layout"]["yaxis"]
    assert axis["type"] == "log" and "log evidence − ELBO" in axis["title"]["text"] and "range" not in axis
    assert "KL" in fig["layout"]["title"]["text"] and "log scale" in fig["layout"]["title"]["text"]
    raw, smoothed = _trace(fig, "estimate"), _trace(fig, "EMA (span 50)")
    x = np.asarray(raw["x"])
    at = np.searchsorted(steps, x)
    y_raw, y_smooth = np.asarray(raw["y"], float), np.asarray(smoothed["y"], float)
    # Gaps <= 0 (an estimate above the evidence, by noise) are gaps in the line, never <= 0.
    assert np.all(np.isnan(y_raw) == (elbo[at] >= -100.0)) and np.isnan(y_raw).any()
    assert np.all(y_raw[~np.isnan(y_raw)] > 0) and np.all(y_smooth[~np.isnan(y_smooth)] > 0)
    np.testing.assert_allclose(y_raw[~np.isnan(y_raw)], (-100.0 - elbo[at])[~np.isnan(y_raw)], rtol=1e-5)
    expected = -100.0 - charts.smooth(elbo, "ema", 50)[at]
    np.testing.assert_allclose(y_smooth[expected > 0], expected[expected > 0], rtol=1e-5)
    assert not any(t["name"].startswith("log evidence") for t in fig["data"])  # it is the zero line
    # Linear by default, as before.
    plain = charts.elbo_figure(snap)
    assert plain["layout"]["yaxis"].get("type") != "log" and np.nanmax(_trace(plain, "estimate")["y"]) < 0


def test_all_figures_takes_log_axes_as_a_keyword(snaps):
    params = list(inspect.signature(charts.all_figures).parameters.values())
    assert [(p.name, p.default) for p in params[1:]] == [("method", "ema"), ("span", 50), ("log_axes", False),
                                                          ("per_evaluation", False), ("focus", None),
                                                          ("latent_view", None), ("overview", None)]
    for which in ("gamma", "banana"):
        figures = charts.all_figures(snaps[which], "ema", 50, log_axes=True)
        assert set(figures) == {"elbo", "params", "grads", "variance", "density", "khat"}
        for fig in figures.values():
            go.Figure(fig)
            assert fig["layout"]["uirevision"]
            assert all(len(t.get("x") if t.get("x") is not None else []) <= charts.MAX_POINTS for t in fig["data"])
        assert figures["elbo"]["layout"]["yaxis"]["type"] == "log"
    # The Poisson-Gamma q: concentration and rate, both positive; all of them on log axes.
    gamma = charts.all_figures(snaps["gamma"], log_axes=True)["params"]["layout"]
    assert [gamma[f"yaxis{s}"].get("type") for s in ("", "2")] == ["log", "log"]


# -- issue 8, item 9.2: decimation uniform along the step axis -----------------------------------

def test_thinning_is_uniform_in_steps_over_the_histories_uneven_rows():
    # A long run as the history really keeps it: the newest rows at full resolution, the older
    # ones thinned by a doubling stride. The ELBO noise is the same everywhere.
    buf = DecimatingBuffer()
    rng = np.random.default_rng(1)
    total, chunk = 100_000, 500
    for start in range(1, total + 1, chunk):
        step = np.arange(start, start + chunk)
        buf.append({"step": step, "elbo": -1000.0 + rng.normal(scale=5.0, size=chunk),
                    "grad": rng.normal(size=(chunk, 1)), "theta": np.ones((chunk, 1))})
    series = buf.columns()
    steps = series["step"]
    assert np.diff(steps)[:100].min() > 1 and np.all(np.diff(steps)[-100:] == 1)  # really uneven
    fig = charts.elbo_figure(_snapshot(series, ("a",), log_evidence=-900.0))
    raw = _trace(fig, "estimate")
    x, y = np.asarray(raw["x"], float), np.asarray(raw["y"], float)
    assert len(x) <= charts.MAX_POINTS and x[0] == 1 and x[-1] == total
    # Drawn points are evenly spaced in steps (before: ~12 steps apart in the recent rows, ~370 before).
    dx = np.diff(x)
    assert dx.min() > 0.5 * np.median(dx) and dx.max() < 1.5 * np.median(dx)
    # So both halves of the axis get as many points and as much ink: the noise looks the same.
    left = x <= (x[0] + x[-1]) / 2
    assert abs(left.sum() - (~left).sum()) <= 0.05 * len(x)

    def ink_per_step(mask):
        xs, ys = x[mask], y[mask]
        return np.abs(np.diff(ys)).sum() / (xs[-1] - xs[0])

    assert ink_per_step(left) == pytest.approx(ink_per_step(~left), rel=0.2)
    assert np.abs(np.diff(y[left])).mean() == pytest.approx(np.abs(np.diff(y[~left])).mean(), rel=0.2)
    # The smoothed curve is still computed from every row, then drawn at the same steps.
    at = np.searchsorted(steps, x)
    full = charts.smooth(series["elbo"], "ema", 50)
    np.testing.assert_allclose(_trace(fig, "EMA (span 50)")["y"], full[at], rtol=1e-6)
    # The other step charts draw the same steps.
    snap = _snapshot(series, ("a",))
    np.testing.assert_array_equal(charts.grads_figure(snap)["data"][0]["x"], raw["x"])
    np.testing.assert_array_equal(charts.params_figure(snap)["data"][0]["x"], raw["x"])


# -- issue 8, item 9.3: one marker per step, labels that do not overlap --------------------------

def test_settings_changed_at_one_step_share_one_marker_and_nearby_labels_do_not_overlap():
    steps = np.arange(1, 10001)
    events = [
        {"step": 500, "setting": "lr", "from": 0.05, "to": 0.01},
        {"step": 500, "setting": "optimizer", "from": "adam", "to": "rmsprop"},
        {"step": 520, "setting": "samples", "from": 1, "to": 4},
        {"step": 8000, "setting": "lr", "from": 0.01, "to": 0.001},
    ]
    snap = _snapshot({"step": steps, "elbo": np.full(10000, -5.0), "theta": np.ones((10000, 2)),
                      "grad": np.ones((10000, 2))}, ("a", "b"), events=events)
    fig = charts.elbo_figure(snap)
    shapes, labels = fig["layout"]["shapes"], fig["layout"]["annotations"]
    assert [s["x0"] for s in shapes] == [500, 520, 8000]
    assert [(a["x"], a["text"]) for a in labels] == [
        (500, "lr 0.05→0.01, optimizer adam→rmsprop"), (520, "samples 1→4"), (8000, "lr 0.01→0.001")]

    def place(a):
        return a["y"], a["yanchor"], a.get("yshift", 0)

    # 500 and 520 are 0.2% of the axis apart: their labels go on different rows; 8000 is free.
    assert place(labels[0]) != place(labels[1])
    assert place(labels[2]) == place(labels[0])
    params = charts.params_figure(snap)  # one line per step in each panel, one label per step
    assert len(params["layout"]["shapes"]) == 3 * 2 and len(params["layout"]["annotations"]) == 3
    go.Figure(fig), go.Figure(params)


# -- issue 8, item 9.4: y-axis titles clear the tick labels --------------------------------------

def test_y_axis_titles_clear_long_tick_labels(snaps):
    elbo = charts.elbo_figure(snaps["gamma"])["layout"]["yaxis"]
    assert elbo["automargin"] is True and elbo["title"]["standoff"] > 0
    for fig in charts.all_figures(snaps["gamma"], log_axes=True).values():
        for name, axis in fig["layout"].items():
            if name.startswith("yaxis") and axis.get("title"):
                assert axis["automargin"] is True and axis["title"]["standoff"] > 0, name


# -- issue 8, item 9.5: clearly distinct parameter colours ---------------------------------------

def _lab(hex_color, cvd=None):
    """CIELAB (D65) of an sRGB colour, optionally as seen with a colour-vision deficiency."""
    rgb = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]) / 255.0
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    if cvd is not None:
        lin = np.clip(cvd @ lin, 0.0, 1.0)
    xyz = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                    [0.0193339, 0.1191920, 0.9503041]]) @ lin / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def _ciede2000(lab1, lab2):
    """Perceptual colour difference (Sharma, Wu & Dalal 2005); about 2 is just noticeable."""
    (l1, a1, b1), (l2, a2, b2) = lab1, lab2
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar ** 7 / (c_bar ** 7 + 25 ** 7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    h1, h2 = np.degrees(np.arctan2(b1, a1)) % 360, np.degrees(np.arctan2(b2, a2)) % 360
    dh = 0.0 if c1 * c2 == 0 else (h2 - h1 + 180) % 360 - 180
    d_l, d_c, d_h = l2 - l1, c2 - c1, 2 * np.sqrt(c1 * c2) * np.sin(np.radians(dh / 2))
    l_bar, c_bar = (l1 + l2) / 2, (c1 + c2) / 2
    h_bar = h1 + h2 if c1 * c2 == 0 else ((h1 + h2) / 2 if abs(h1 - h2) <= 180 else (h1 + h2 + 360) / 2 % 360)
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c, s_h = 1 + 0.045 * c_bar, 1 + 0.015 * c_bar * t
    r_t = (-2 * np.sqrt(c_bar ** 7 / (c_bar ** 7 + 25 ** 7))
           * np.sin(np.radians(60 * np.exp(-(((h_bar - 275) / 25) ** 2)))))
    return float(np.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h)))


# Tritanopia (Machado, Oliveira & Fernandes 2009, severity 1), on linear RGB. Thin lines and
# small legend swatches lose blue-yellow contrast for everyone ("small-field tritanopia"), so
# two colours that differ mostly in that direction look alike in a line chart.
_TRITAN = np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                    [0.004733, 0.691367, 0.303900]])


def test_five_parameters_get_clearly_distinct_colours():
    names = ("loc[0]", "loc[1]", "scale_tril[0,0]", "scale_tril[1,0]", "scale_tril[1,1]")  # full-rank normal
    steps = np.arange(1, 201)
    ones = np.ones((200, 5))
    snap = _snapshot({"step": steps, "elbo": -np.ones(200), "theta": ones, "grad": ones}, names,
                     variance={"step": steps, "grad_variance": ones, "grad_snr": ones})
    grads = {t["name"]: t["line"]["color"] for t in charts.grads_figure(snap)["data"]}
    variance = {t["name"]: t["line"]["color"] for t in charts.variance_figure(snap)["data"] if t["name"] in names}
    assert grads == variance and list(grads) == list(names)  # one colour per parameter, in both charts
    for a, b in itertools.combinations(names, 2):
        assert _ciede2000(_lab(grads[a]), _lab(grads[b])) > 30, (a, b)
        assert _ciede2000(_lab(grads[a], _TRITAN), _lab(grads[b], _TRITAN)) > 10, (a, b)
    # The sixth colour (a six-parameter family) is not a shade of one of the first five.
    for a, b in itertools.combinations(charts.COLORS, 2):
        assert _ciede2000(_lab(a), _lab(b)) > 20, (a, b)


def test_variance_per_target_evaluation_follows_the_estimator_in_effect():
    # 2 parameters, 4 samples: pathwise costs 4 evaluations per estimate, measure-valued 16
    # (2 per parameter and sample); the estimator switched at step 150.
    snap = types.SimpleNamespace(
        names=("loc", "scale"), config={"estimator": "measure-valued", "samples": 4},
        events=[{"step": 150, "setting": "estimator", "from": "pathwise", "to": "measure-valued"}],
        variance={"step": np.array([1, 101, 201]), "grad_variance": np.full((3, 2), 2.0), "grad_snr": np.full((3, 2), 8.0)})
    np.testing.assert_array_equal(charts.evaluations_per_estimate(snap, np.array([1, 101, 201])), [4, 4, 16])
    per_estimate = charts.variance_figure(snap)
    per_evaluation = charts.variance_figure(snap, per_evaluation=True)
    np.testing.assert_allclose(_trace(per_estimate, "loc")["y"], [2.0, 2.0, 2.0])
    np.testing.assert_allclose(_trace(per_evaluation, "loc")["y"], [8.0, 8.0, 32.0])
    np.testing.assert_allclose(_trace(per_evaluation, "scale SNR")["y"], [4.0, 4.0, 2.0])
    assert "per target evaluation" in per_evaluation["layout"]["title"]["text"]


def test_explorer_log_axis_spans_the_nonzero_variances():
    # At k = mu the coupled measure-valued variance of d/dmu is zero up to rounding (1e-31):
    # the axis spans the other values, from 0.5 to 400, not down to 1e-31.
    result = types.SimpleNamespace(
        k=np.array([-1.0, 1.0, 3.0]), replicates=1000,
        config={"samples": 1, "mu": 1.0, "sigma": 1.0, "cost": "square"},
        variance={"score": {"mu": np.array([400.0, 30.0, 90.0]), "sigma": np.array([50.0, 10.0, 20.0])},
                  "measure-valued-coupled": {"mu": np.array([17.0, 1e-31, 4.0]), "sigma": np.array([0.5, 2.0, 8.0])}})
    layout = charts.explorer_variance_figure(result, log_y=True)["layout"]
    lo, hi = layout["yaxis"]["range"]
    assert lo == pytest.approx(np.log10(4.0) - 0.25) and hi == pytest.approx(np.log10(400.0) + 0.25)
    lo, hi = layout["yaxis2"]["range"]
    assert lo == pytest.approx(np.log10(0.5) - 0.25) and hi == pytest.approx(np.log10(50.0) + 0.25)
    linear = charts.explorer_variance_figure(result, log_y=False)["layout"]
    assert linear["yaxis"]["type"] == "linear" and "range" not in linear["yaxis"]
