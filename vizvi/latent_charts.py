"""Pure Plotly builders for a latent with many coordinates (a model file's): q against the
reference posterior's MCMC draws, coordinate by coordinate or as a pair, and an overview
heatmap of every variational parameter over the steps.

q's marginals come from its mean and covariance (the families on R^d are Gaussian, so each
marginal is a Normal and each pair a bivariate Normal), evaluated here in NumPy; the draws
are the reference's (``Reference.draws``, z [N, d]). Both live on the unconstrained latent
vector z that q is fitted on. Figures are plain dicts built with ``vizvi.charts``' helpers
(float32 arrays sent as typed arrays, ``uirevision`` keeping a user's zoom). No Streamlit here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple, Optional

import numpy as np

from vizvi import focus as focus_rules
from vizvi.charts import (
    COLORS, base_layout, draws_histogram, legend_below_axis_title, plotly_figure, reference_draws,
    step_numbers, thin, wire_values,
)

CURVE_POINTS = 160  # points of each marginal density
PAIR_GRID = 50  # grid points per axis of the pair's contours
PAIR_DRAWS = 800  # reference draws drawn as points in the pair view
OVERVIEW_COLUMNS = 150  # steps (columns) of the overview heatmap: one every few pixels
MODES = ("marginals", "pair")


@dataclasses.dataclass(frozen=True)
class LatentView:
    """What the q-against-posterior chart shows of a latent in R^d: the marginals of
    ``coordinates`` (indices into the model's coordinates), or the ``pair`` (two indices)."""

    mode: str = "marginals"
    coordinates: tuple = ()
    pair: tuple = (0, 1)


def default_coordinates(snap, shown) -> tuple:
    """The coordinates whose marginals are drawn unasked: those of the parameters ``shown``
    (indices), in order, at most ``focus.MAX_SHOWN``."""
    coordinates = getattr(snap, "param_coordinates", ()) or (0,) * len(snap.names)
    out = []
    for i in shown:
        c = coordinates[i]
        if c not in out:
            out.append(c)
    return tuple(out[:focus_rules.MAX_SHOWN])


def _window(mean: float, sd: float, draws: Optional[np.ndarray]) -> tuple:
    """(lo, hi) covering q (4 sds) and the middle 99% of the draws."""
    lo, hi = mean - 4 * sd, mean + 4 * sd
    if draws is not None and len(draws):
        d_lo, d_hi = np.quantile(draws, [0.005, 0.995])
        lo, hi = min(lo, float(d_lo)), max(hi, float(d_hi))
    if not hi > lo:
        lo, hi = lo - 1.0, hi + 1.0
    return lo, hi


def _normal_pdf(x, mean: float, sd: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def _grid_axes(layout: dict, count: int, columns: int, gap_x: float = 0.1, gap_y: float = 0.12) -> list:
    """Axis suffixes of ``count`` panels in a grid of ``columns`` (rows filled first), each its
    own x and y axes."""
    rows = math.ceil(count / columns)
    width = (1.0 - gap_x * (columns - 1)) / columns
    height = (1.0 - gap_y * (rows - 1)) / rows
    suffixes = []
    for k in range(count):
        row, col = divmod(k, columns)
        suffix = "" if k == 0 else str(k + 1)
        left, top = col * (width + gap_x), 1.0 - row * (height + gap_y)
        layout[f"xaxis{suffix}"] = {"domain": [left, left + width], "anchor": f"y{suffix}"}
        layout[f"yaxis{suffix}"] = {"domain": [max(top - height, 0.0), top], "anchor": f"x{suffix}",
                                    "showticklabels": False}
        suffixes.append(suffix)
    return suffixes


def marginals_figure(snap, coordinates) -> dict:
    """q's marginal density of each of ``coordinates`` (indices), one small panel each, against
    a histogram of the reference's draws of that coordinate (when it has draws)."""
    d = snap.density
    names, mean, cov = d["coordinates"], np.asarray(d["mean"]), np.asarray(d["cov"])
    draws = reference_draws(snap.reference)
    coordinates = [c for c in coordinates if 0 <= c < len(names)] or [0]
    columns = 1 if len(coordinates) == 1 else 2
    rows = math.ceil(len(coordinates) / columns)
    against = "the reference posterior (MCMC draws)" if draws is not None else "no reference yet"
    layout = base_layout(f"q's marginals against {against}", "density-marginals-" + "-".join(map(str, coordinates)),
                         height=110 + 150 * rows)
    suffixes = _grid_axes(layout, len(coordinates), columns)
    data = []
    for k, (c, suffix) in enumerate(zip(coordinates, suffixes)):
        m, sd = float(mean[c]), float(math.sqrt(max(cov[c, c], 1e-300)))
        column = draws[:, c] if draws is not None else None
        lo, hi = _window(m, sd, column)
        x = np.linspace(lo, hi, CURVE_POINTS)
        if column is not None:
            data.append(draws_histogram(column, lo, hi, axis=suffix, showlegend=k == 0))
        data.append({"type": "scatter", "mode": "lines", "name": "q (current)", "legendgroup": "q", "showlegend": k == 0,
                     "x": wire_values(x), "y": wire_values(_normal_pdf(x, m, sd)), "xaxis": f"x{suffix}",
                     "yaxis": f"y{suffix}", "line": {"color": COLORS[0], "width": 2}})
        layout[f"xaxis{suffix}"].update({"title": {"text": names[c], "font": {"size": 11}, "standoff": 2}, "zeroline": False})
    legend_below_axis_title(layout)
    return plotly_figure(data, layout)


def pair_figure(snap, pair) -> dict:
    """q's joint density of two coordinates (contours) against the reference's draws of them
    (points, at most ``PAIR_DRAWS``)."""
    d = snap.density
    names, mean, cov = d["coordinates"], np.asarray(d["mean"]), np.asarray(d["cov"])
    i, j = (int(c) for c in pair)
    if not (0 <= i < len(names) and 0 <= j < len(names)) or i == j:
        i, j = 0, min(1, len(names) - 1)
    draws = reference_draws(snap.reference)
    m = mean[[i, j]]
    sub = cov[np.ix_([i, j], [i, j])]
    sd = np.sqrt(np.maximum(np.diag(sub), 1e-300))
    (x_lo, x_hi), (y_lo, y_hi) = (_window(m[k], sd[k], draws[:, c] if draws is not None else None)
                                  for k, c in enumerate((i, j)))
    xs, ys = np.linspace(x_lo, x_hi, PAIR_GRID), np.linspace(y_lo, y_hi, PAIR_GRID)
    X, Y = np.meshgrid(xs, ys)  # rows follow y, as Plotly's contour z expects
    diff = np.stack([X - m[0], Y - m[1]], axis=-1)
    sub = sub + 1e-12 * np.eye(2) * max(float(np.trace(sub)), 1e-12)  # a degenerate q still draws
    precision = np.linalg.inv(sub)
    quad = np.einsum("...i,ij,...j->...", diff, precision, diff)
    density = np.exp(-0.5 * quad) / (2 * math.pi * math.sqrt(max(np.linalg.det(sub), 1e-300)))
    data = []
    if draws is not None:
        stride = max(1, len(draws) // PAIR_DRAWS)
        data.append({"type": "scatter", "mode": "markers", "name": "reference posterior (MCMC draws)",
                     "x": wire_values(draws[::stride, i]), "y": wire_values(draws[::stride, j]),
                     "marker": {"size": 3, "color": "rgba(17,24,39,0.35)"}})
    data.append({"type": "contour", "name": "q (current)", "x": wire_values(xs), "y": wire_values(ys), "z": wire_values(density),
                 "contours": {"coloring": "lines"}, "line": {"width": 2}, "colorscale": [[0, COLORS[0]], [1, COLORS[0]]],
                 "showscale": False, "ncontours": 8, "showlegend": True})
    against = "the reference posterior (MCMC draws)" if draws is not None else "no reference yet"
    layout = base_layout(f"q against {against}: {names[i]} and {names[j]}", f"density-pair-{i}-{j}", height=420)
    layout["xaxis"] = {"title": {"text": names[i]}, "range": [x_lo, x_hi]}
    layout["yaxis"] = {"title": {"text": names[j]}, "range": [y_lo, y_hi]}
    legend_below_axis_title(layout)
    return plotly_figure(data, layout)


def latent_figure(snap, view: Optional[LatentView] = None) -> dict:
    """The q-against-posterior chart of a latent in R^d as ``view`` asks (default: the
    marginals of the first coordinates)."""
    view = view or LatentView(coordinates=tuple(range(min(focus_rules.MAX_SHOWN, len(snap.density["coordinates"])))))
    if view.mode == "pair" and len(snap.density["coordinates"]) > 1:
        return pair_figure(snap, view.pair)
    return marginals_figure(snap, view.coordinates)


# -- the overview heatmap ---------------------------------------------------------------------
class Overview(NamedTuple):
    """A quantity the overview heatmap can show per parameter and step."""

    label: str  # for the view's control
    title: str
    colorbar: str
    zrange: tuple  # fixed, so colours mean the same at every update
    colorscale: list
    needs_reference: bool
    values: Callable  # (snap) -> (steps [M], values [M, P]) before the colour transform


def _snr(snap) -> tuple:
    v = snap.variance
    steps = np.asarray(v.get("step", []))
    snr = np.asarray(v.get("grad_snr", np.zeros((0, len(snap.names)))), dtype=float)
    with np.errstate(divide="ignore"):
        return steps, np.log10(snr)


def _columns(snap) -> tuple:
    """(steps, theta) of the per-step series at ``OVERVIEW_COLUMNS + 1`` steps evenly spread."""
    s = snap.series
    steps = np.asarray(s.get("step", []))
    theta = np.asarray(s.get("theta", np.zeros((0, len(snap.names)))), dtype=float)
    idx = thin(steps, OVERVIEW_COLUMNS + 1)
    return steps[idx], theta[idx]


def _change(snap) -> tuple:
    """log10 of each parameter's change per 1,000 steps between columns, in posterior sds of its
    coordinate where a reference gives them, else relative to its typical size."""
    steps, theta = _columns(snap)
    if len(steps) < 2:
        return steps[:0], theta[:0]
    match = getattr(snap, "reference_match", None)
    scale = match[1] if match is not None else np.maximum(np.median(np.abs(theta), axis=0), 1e-3)
    rate = np.abs(np.diff(theta, axis=0)) / np.diff(steps)[:, None] * 1000.0 / scale
    with np.errstate(divide="ignore"):
        return steps[1:], np.log10(rate)


def _distance(snap) -> tuple:
    steps, theta = _columns(snap)
    return steps, focus_rules.gap(theta, getattr(snap, "reference_match", None))


_SEQUENTIAL = [[0, "#f8fafc"], [0.5, "#818cf8"], [1, "#1e1b4b"]]
_NOISE = [[0, "#be123c"], [0.33, "#fecdd3"], [0.5, "#f8fafc"], [1, "#3730a3"]]  # SNR 0.01 rose .. 10 indigo

OVERVIEWS = {
    "snr": Overview("gradient signal-to-noise", "Every parameter: gradient signal-to-noise |mean|/sd (log10; rose below "
                    "−1: noise drowns the signal)", "log10 SNR", (-2.0, 1.0), _NOISE, False, _snr),
    "change": Overview("change per 1,000 steps", "Every parameter: how fast it moves (log10 of its change per 1,000 "
                       "steps, in posterior sds where a reference gives them)", "log10 change", (-4.0, 0.0),
                       _SEQUENTIAL, False, _change),
    "distance": Overview("distance to the reference", "Every parameter: distance to the reference posterior's moments "
                         "(in its coordinate's posterior sds; 3 and more are one colour)", "sds", (0.0, 3.0),
                         _SEQUENTIAL, True, _distance),
}


def overviews_available(snap) -> list:
    """The overview quantities that can be drawn for ``snap`` (the distance needs a reference
    with moments of the latent vector)."""
    return [k for k, o in OVERVIEWS.items() if not o.needs_reference or getattr(snap, "reference_match", None) is not None]


def overview_figure(snap, quantity: str, shown=None) -> dict:
    """A heatmap of one quantity (``OVERVIEWS``) for every parameter (rows) over the steps
    (columns, at most ``OVERVIEW_COLUMNS``); the rows of the parameters ``shown`` (indices) in
    the other charts are labelled in bold."""
    spec = OVERVIEWS.get(quantity) if quantity in overviews_available(snap) else None
    spec = spec or OVERVIEWS["snr"]
    steps, values = spec.values(snap)
    idx = thin(steps, OVERVIEW_COLUMNS)
    names = list(snap.names)
    bold = set(shown or ())
    # Clipped to the colour range: a parameter that did not move at all (log10 0 = -inf) is
    # the range's end, not a hole; NaN (not measured) stays a hole.
    z = np.clip(np.asarray(values, dtype=float)[idx].T, *spec.zrange) if len(idx) else np.full((len(names), 1), np.nan)
    x = step_numbers(steps, idx) if len(idx) else np.zeros(1, dtype=np.int32)
    # Rows by name (a category axis): the hover then names the parameter.
    data = [{"type": "heatmap", "name": spec.label, "x": x, "y": names,
             "z": wire_values(z), "zmin": spec.zrange[0], "zmax": spec.zrange[1], "colorscale": spec.colorscale,
             "colorbar": {"title": {"text": spec.colorbar, "side": "right"}, "thickness": 12}, "hoverongaps": False}]
    height = int(min(1000, max(320, 120 + 11 * len(names))))
    layout = base_layout(spec.title, f"overview-{quantity}-{len(names)}", height=height)
    every = max(1, math.ceil(len(names) / 90))  # at most ~90 labels; Plotly draws every one it is given
    ticks = list(range(0, len(names), every))
    layout["yaxis"] = {"type": "category", "tickmode": "array", "tickvals": [names[i] for i in ticks], "autorange": "reversed",
                       "tickfont": {"size": 9}, "ticktext": [f"<b>{names[i]}</b>" if i in bold else names[i] for i in ticks]}
    layout["xaxis"] = {"title": {"text": "step"}}
    layout["margin"] = {**layout["margin"], "l": 150}
    layout["showlegend"] = False
    return plotly_figure(data, layout)
