"""Pure Plotly figures of the ELBO landscape page: a ``vizvi.landscape.Grid`` and the paths in, a
figure dict out (no Streamlit).

These go to ``st.plotly_chart``, which rebuilds a Plotly figure from the dict and serialises it
itself: every array is a plain Python list (NumPy arrays were mangled on the way), and a
non-finite value is None (Plotly's gap), never a NaN token.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from vizvi.charts import COLORS, EXACT_COLOR, base_layout, plotly_figure, legend_below_axis_title
from vizvi.landscape import Grid, PathView
from vizvi.optimizers import OptimizerName

# The surface is drawn pale, so that the paths in the run page's saturated colours stand out on
# it everywhere, including the far corners where they start. Light: near the optimum.
SURFACE_SCALE = [[0.0, "#fde68a"], [0.2, "#fef9c3"], [0.5, "#f8fafc"], [1.0, "#cbd5e1"]]
GAP_FLOOR = 1e-3  # the smallest gap drawn (the exact optimum's is 0: log10 would be -inf there)
CONTOURS = 24
# The colour range stops at this quantile of the grid's gaps: in softplus coordinates the box's
# edge reaches parameters of e^-300, where KL is 1e180, and a range up to there left the whole
# valley in the lowest colour. Higher gaps take the top colour.
TOP_QUANTILE = 0.95


def wire_values(a) -> list:
    """A plain (nested) list of floats with None for non-finite values."""
    a = np.asarray(a, dtype=float)
    if a.ndim > 1:
        return [wire_values(row) for row in a]
    return [float(v) if math.isfinite(v) else None for v in a]


def optimizer_color(optimizer: str) -> str:
    """One colour per optimizer, the same in every coordinate system and on every model."""
    return COLORS[[o.value for o in OptimizerName].index(optimizer) % len(COLORS)]


def gap(grid: Grid, log_evidence: float) -> np.ndarray:
    """log10 of the ELBO's gap below the log evidence (that is, of KL(q || posterior)), floored at
    ``GAP_FLOOR`` and, for an estimate, at each point's standard error (below it the gap's size
    is noise). A log scale, because the gap spans many orders of magnitude between the valley
    floor and the corners where paths start; linear contours would all crowd there."""
    floor = GAP_FLOOR if grid.se is None else np.maximum(GAP_FLOOR, np.nan_to_num(grid.se, nan=GAP_FLOOR))
    with np.errstate(invalid="ignore"):
        return np.log10(np.maximum(log_evidence - grid.elbo, floor))


def landscape_figure(grid: Grid, log_evidence: float, titles: Sequence[str], paths: Sequence[PathView],
                     start: Optional[Sequence[float]], optimum: Optional[Sequence[float]], title: str, key: str) -> dict:
    """The ELBO's gap to the log evidence over the grid (filled contours, log10), with each path,
    the start and the exact optimum on it, all in the grid's coordinates. ``key`` keeps a user's
    zoom across updates of the same view (Plotly's ``uirevision``)."""
    x, y = wire_values(grid.x), wire_values(grid.y)
    mc = grid.se is not None
    custom = np.stack([grid.elbo, grid.se if mc else np.zeros_like(grid.elbo)], axis=-1)
    hover = (f"{titles[0]} %{{x:.4g}}<br>{titles[1]} %{{y:.4g}}<br>ELBO %{{customdata[0]:.6g}}"
             + (" ± %{customdata[1]:.2g} (SE)" if mc else "") + "<br>log10 KL %{z:.3g}<extra></extra>")
    z = gap(grid, log_evidence)
    finite = z[np.isfinite(z)]
    lo, hi = (float(finite.min()), float(np.quantile(finite, TOP_QUANTILE))) if finite.size else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1.0
    data = [{
        "type": "contour", "name": "log10 KL(q‖p)", "x": x, "y": y, "z": wire_values(z), "zmin": lo, "zmax": hi,
        "contours": {"start": lo, "end": hi, "size": (hi - lo) / CONTOURS},
        "customdata": [[wire_values(cell) for cell in row] for row in custom], "hovertemplate": hover,
        "colorscale": SURFACE_SCALE, "line": {"width": 0.6, "color": "rgba(71, 85, 105, 0.45)"},
        "colorbar": {"title": {"text": "log₁₀ KL(q‖p)<br>= log₁₀(log p(x) − ELBO)", "side": "right"}, "thickness": 14},
        "showlegend": False, "connectgaps": False,
    }]
    for view in paths:
        color = optimizer_color(view.path.optimizer)
        name = f"{view.path.optimizer} (lr {view.path.lr:g})"
        steps = [int(s) for s in view.steps]
        data.append({"type": "scatter", "mode": "lines", "name": name, "legendgroup": view.path.optimizer,
                     "x": wire_values(view.points[:, 0]), "y": wire_values(view.points[:, 1]), "customdata": steps,
                     "hovertemplate": f"{view.path.optimizer}: step %{{customdata:,}}<extra></extra>",
                     "line": {"color": color, "width": 2.5}})
        if len(steps):
            data.append({"type": "scatter", "mode": "markers", "name": f"{view.path.optimizer} now",
                         "legendgroup": view.path.optimizer, "showlegend": False,
                         "x": wire_values(view.points[-1:, 0]), "y": wire_values(view.points[-1:, 1]), "customdata": steps[-1:],
                         "hovertemplate": f"{view.path.optimizer} at step %{{customdata:,}} ({view.path.status})<extra></extra>",
                         "marker": {"color": color, "size": 9, "line": {"color": "white", "width": 1.5}}})
    if start is not None:
        data.append({"type": "scatter", "mode": "markers", "name": "start", "x": wire_values([start[0]]), "y": wire_values([start[1]]),
                     "marker": {"color": EXACT_COLOR, "size": 10, "symbol": "circle"}, "hovertemplate": "start<extra></extra>"})
    if optimum is not None:
        data.append({"type": "scatter", "mode": "markers", "name": "exact optimum", "x": wire_values([optimum[0]]),
                     "y": wire_values([optimum[1]]), "marker": {"color": "#facc15", "size": 17, "symbol": "star",
                                                          "line": {"color": EXACT_COLOR, "width": 1.5}},
                     "hovertemplate": "exact optimum<extra></extra>"})
    layout = base_layout(title, key, height=600)
    layout["xaxis"] = {"title": {"text": titles[0]}, "range": list(grid.box.x), "zeroline": False}
    layout["yaxis"] = {"title": {"text": titles[1]}, "range": list(grid.box.y), "zeroline": False}
    legend_below_axis_title(layout)
    return plotly_figure(data, layout)


def se_figure(grid: Grid, titles: Sequence[str], key: str) -> dict:
    """The Monte Carlo standard error of the grid's estimate (log10), over the same plane."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log10(grid.se)
    data = [{"type": "contour", "name": "log10 SE", "x": wire_values(grid.x), "y": wire_values(grid.y), "z": wire_values(z),
             "colorscale": "Greys", "ncontours": 16, "showlegend": False, "connectgaps": False,
             "colorbar": {"title": {"text": "log₁₀ SE", "side": "right"}, "thickness": 14},
             "hovertemplate": f"{titles[0]} %{{x:.4g}}<br>{titles[1]} %{{y:.4g}}<br>log10 SE %{{z:.3g}}<extra></extra>"}]
    layout = base_layout(f"Standard error of the estimate ({grid.samples:,} common draws per point)", key, height=320)
    layout["xaxis"] = {"title": {"text": titles[0]}, "range": list(grid.box.x)}
    layout["yaxis"] = {"title": {"text": titles[1]}, "range": list(grid.box.y)}
    return plotly_figure(data, layout)
