"""Pure Plotly figure builders: a worker ``Snapshot`` in, a figure dict out.

Figures are plain dicts (``{"data": [...], "layout": {...}}``) rather than ``go.Figure``s: a
Figure carries about 3.5 kB of theme template into every live update, and these go over the
wire several times a second. Every trace is capped at ``MAX_POINTS`` however long the run, and
each figure sets ``uirevision`` so a user's zoom survives updates. No Streamlit here.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

MAX_POINTS = 600  # per trace: about one per pixel of a chart; bounds browser work per update
COLORS = ["#4f46e5", "#e11d48", "#059669", "#d97706", "#0891b2", "#7c3aed"]
EXACT_COLOR = "#111827"
SMOOTHERS = ("ema", "moving-average")


def thin(x: np.ndarray, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``limit`` evenly spread points, first and last included."""
    n = len(x)
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def _list(a) -> np.ndarray:
    """float32 values with non-finite ones as NaN (Plotly draws a gap). Kept as numpy: the live
    chart sends arrays as compact typed arrays, and float32 (7 digits, plenty for a screen)
    halves the bytes of every update."""
    a = np.array(a, dtype=np.float32)
    a[~np.isfinite(a)] = np.nan
    return a


def _steps(steps: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Step numbers as int32 (runs stay far below 2^31 steps)."""
    return np.asarray(steps)[idx].astype(np.int32)


def _linear_scan(beta: float, x: np.ndarray) -> np.ndarray:
    """acc[i] = beta * acc[i-1] + x[i] (acc[-1] = 0), vectorised.

    A Python loop over the history took ~4 ms per series, three series per chart update, all
    of it holding the interpreter the trainer thread needs; NumPy has no linear recurrence
    (scipy.signal.lfilter is not a dependency). Recursive doubling needs log2(n) passes and
    stops once beta**shift underflows, so every term keeps its exact weight up to rounding.
    """
    acc = np.array(x, dtype=float)
    power, shift = beta, 1
    while shift < len(acc) and power > 0.0:
        acc[shift:] = acc[shift:] + power * acc[:-shift]
        power, shift = power * power, shift * 2
    return acc


def smooth(y: np.ndarray, method: str = "ema", span: int = 50) -> np.ndarray:
    """Bias-corrected exponential moving average, or a trailing moving average, of ``y``."""
    if int(span) != span or span < 1:
        raise ValueError(f"smoothing span must be a whole number of at least 1, got {span!r}")
    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        return y
    if method == "ema":
        beta = 1.0 - 2.0 / (span + 1.0)
        acc = _linear_scan(beta, (1.0 - beta) * y)
        return acc / -np.expm1(np.arange(1, len(y) + 1) * np.log(beta)) if beta > 0 else acc
    if method == "moving-average":
        c = np.cumsum(np.insert(y, 0, 0.0))
        idx = np.arange(1, len(y) + 1)
        start = np.maximum(idx - span, 0)
        return (c[idx] - c[start]) / (idx - start)
    raise ValueError(f"unknown smoother {method!r}; choose one of {SMOOTHERS}")


def _base_layout(title: str, key: str, height: int = 300) -> dict:
    return {
        "title": {"text": title, "x": 0.01, "font": {"size": 15}},
        "uirevision": key,
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        # The x axis is the step everywhere (said in the hover); the legend takes its place.
        "legend": {"orientation": "h", "y": -0.12, "yanchor": "top", "x": 0},
        "hovermode": "closest",
        "xaxis": {},
    }


def _figure(data: list, layout: dict) -> dict:
    """The figure dict, with every axis set to skip plotly.js's tick-label overflow check.

    By default plotly.js re-measures all tick labels of an axis for each label it places
    (``ticklabeloverflow = "hide past div"``): about an eighth of the browser's time per live
    update, for labels that never overflow these fixed margins.
    """
    for name, axis in layout.items():
        if name.startswith(("xaxis", "yaxis")) and isinstance(axis, dict):
            axis.setdefault("ticklabeloverflow", "allow")
    return {"data": data, "layout": layout}


def _event_shapes(events: list, axis_count: int = 1) -> tuple:
    """Vertical dashed lines (and labels) where a setting changed mid-run."""
    shapes, annotations = [], []
    for e in events:
        for k in range(axis_count):
            suffix = "" if k == 0 else str(k + 1)
            shapes.append({
                "type": "line", "xref": f"x{suffix}", "yref": f"y{suffix} domain", "x0": e["step"], "x1": e["step"],
                "y0": 0, "y1": 1, "line": {"dash": "dot", "width": 1.5, "color": "#6b7280"},
            })
        annotations.append({
            "xref": "x", "yref": "paper", "x": e["step"], "y": 1.0, "yanchor": "bottom", "showarrow": False,
            "text": f"{e['setting']}→{e['to']}", "font": {"size": 10, "color": "#6b7280"},
        })
    return shapes, annotations


def elbo_figure(snap, method: str = "ema", span: int = 50) -> dict:
    """ELBO estimates, raw and smoothed, with the exact (or grid) log evidence as a line."""
    s = snap.series
    steps = np.asarray(s.get("step", []))
    elbo = np.asarray(s.get("elbo", []), dtype=float)
    smoothed = smooth(elbo, method, span)
    idx = thin(steps)
    label = "EMA" if method == "ema" else "moving average"
    data = [
        {"type": "scatter", "mode": "lines", "name": "estimate", "x": _steps(steps, idx), "y": _list(elbo[idx]),
         "line": {"color": "#a5b4fc", "width": 1}},
        {"type": "scatter", "mode": "lines", "name": f"{label} (span {span})", "x": _steps(steps, idx),
         "y": _list(smoothed[idx]), "line": {"color": COLORS[0], "width": 2.5}},
    ]
    layout = _base_layout("ELBO", "elbo")
    ref = snap.reference
    if len(steps):
        kind = "exact" if ref.kind == "exact" else "grid"
        data.append({"type": "scatter", "mode": "lines", "name": f"log evidence ({kind})",
                     "x": [int(steps[0]), int(steps[-1])], "y": [ref.log_evidence, ref.log_evidence],
                     "line": {"color": EXACT_COLOR, "dash": "dash", "width": 1.5}})
        # Early ELBOs can be thousands below the end; range on the later 90% so the gap to the
        # evidence stays visible (the user can still zoom out; uirevision keeps their choice).
        tail = smoothed[len(smoothed) // 10:]
        lo, hi = float(np.nanmin(tail)), max(float(np.nanmax(smoothed[-max(1, len(smoothed) // 2):])), ref.log_evidence)
        pad = 0.08 * max(hi - lo, 1e-6)
        layout["yaxis"] = {"range": [lo - pad, hi + pad], "title": {"text": "nats"}}
    shapes, annotations = _event_shapes(snap.events)
    layout["shapes"], layout["annotations"] = shapes, annotations
    return _figure(data, layout)


def _stacked_axes(layout: dict, n: int, gap: float = 0.06) -> None:
    """n vertically stacked y-axes sharing the x-axis (no make_subplots: no template payload)."""
    height = (1.0 - gap * (n - 1)) / n
    for k in range(n):
        top = 1.0 - k * (height + gap)
        suffix = "" if k == 0 else str(k + 1)
        layout[f"yaxis{suffix}"] = {"domain": [max(top - height, 0.0), top], "anchor": f"x{suffix}"}
        layout[f"xaxis{suffix}"] = {"anchor": f"y{suffix}", "matches": "x" if k else None,
                                    "showticklabels": k == n - 1}
        if k == 0:
            del layout["xaxis"]["matches"]


def params_figure(snap) -> dict:
    """Each variational parameter in constrained units, one panel each, with its optimum."""
    s = snap.series
    names = snap.names
    steps = np.asarray(s.get("step", []))
    theta = np.asarray(s.get("theta", np.zeros((0, len(names)))))
    idx = thin(steps)
    n = len(names)
    layout = _base_layout("Variational parameters", "params", height=max(300, 150 * n))
    _stacked_axes(layout, n)
    data = []
    for k, name in enumerate(names):
        suffix = "" if k == 0 else str(k + 1)
        data.append({"type": "scatter", "mode": "lines", "name": name, "x": _steps(steps, idx),
                     "y": _list(theta[idx, k]) if len(idx) else [], "xaxis": f"x{suffix}", "yaxis": f"y{suffix}",
                     "line": {"color": COLORS[k % len(COLORS)], "width": 2}})
        layout[f"yaxis{suffix}"]["title"] = {"text": name, "font": {"size": 11}}
        if snap.optimum is not None and len(steps):
            target = float(snap.optimum[k])
            data.append({"type": "scatter", "mode": "lines", "name": f"{name} optimum", "showlegend": k == 0,
                         "legendgroup": "optimum", "x": [int(steps[0]), int(steps[-1])], "y": [target, target],
                         "xaxis": f"x{suffix}", "yaxis": f"y{suffix}",
                         "line": {"color": EXACT_COLOR, "dash": "dash", "width": 1.5}})
    if snap.optimum is not None and data:
        for trace in data:
            if trace["name"].endswith("optimum"):
                trace["name"] = "optimum (exact)" if trace["showlegend"] else trace["name"]
    shapes, annotations = _event_shapes(snap.events, n)
    layout["shapes"], layout["annotations"] = shapes, annotations
    return _figure(data, layout)


def grads_figure(snap, span: int = 50) -> dict:
    """|d ELBO / d u| per parameter (the gradient the update used), smoothed, on a log axis."""
    s = snap.series
    steps = np.asarray(s.get("step", []))
    grad = np.abs(np.asarray(s.get("grad", np.zeros((0, len(snap.names))))))
    idx = thin(steps)
    data = []
    for k, name in enumerate(snap.names):
        g = grad[:, k] if len(grad) else np.zeros(0)
        # The EMA carries the magnitude; the noise around it is what the variance chart shows
        # (a raw trace per parameter doubled the browser's drawing time per update).
        data.append({"type": "scatter", "mode": "lines", "name": name, "x": _steps(steps, idx),
                     "y": _list(np.maximum(smooth(g, "ema", span)[idx], 1e-300)) if len(g) else [],
                     "line": {"color": COLORS[k % len(COLORS)], "width": 2.5}})
    layout = _base_layout(f"|gradient| of the optimised (unconstrained) values, EMA span {span}", "grads")
    layout["yaxis"] = {"type": "log", "title": {"text": "|gradient|"}}
    layout["shapes"], layout["annotations"] = _event_shapes(snap.events)
    return _figure(data, layout)


def variance_figure(snap) -> dict:
    """Gradient-estimator variance and signal-to-noise ratio per parameter, log axes."""
    v = snap.variance
    steps = np.asarray(v.get("step", []))
    idx = thin(steps)
    layout = _base_layout("Gradient estimator: variance and signal-to-noise ratio", "variance", height=380)
    _stacked_axes(layout, 2, gap=0.1)
    layout["yaxis"].update({"type": "log", "title": {"text": "variance"}})
    layout["yaxis2"].update({"type": "log", "title": {"text": "SNR |mean|/sd"}})
    data = []
    for k, name in enumerate(snap.names):
        color = COLORS[k % len(COLORS)]
        var = np.asarray(v.get("grad_variance", np.zeros((0, len(snap.names)))))
        snr = np.asarray(v.get("grad_snr", np.zeros((0, len(snap.names)))))
        data.append({"type": "scatter", "mode": "lines", "name": name, "legendgroup": name,
                     "x": _steps(steps, idx), "y": _list(var[idx, k]) if len(idx) else [],
                     "line": {"color": color, "width": 1.5}})
        data.append({"type": "scatter", "mode": "lines", "name": f"{name} SNR", "legendgroup": name,
                     "showlegend": False, "x": _steps(steps, idx), "y": _list(snr[idx, k]) if len(idx) else [],
                     "xaxis": "x2", "yaxis": "y2", "marker": {"size": 3}, "line": {"color": color, "width": 1.5}})
    if len(steps):
        data.append({"type": "scatter", "mode": "lines", "name": "SNR 0.1", "x": [int(steps[0]), int(steps[-1])],
                     "y": [0.1, 0.1], "xaxis": "x2", "yaxis": "y2", "line": {"color": EXACT_COLOR, "dash": "dot", "width": 1}})
    shapes, annotations = _event_shapes(snap.events, 2)
    layout["shapes"], layout["annotations"] = shapes, annotations
    return _figure(data, layout)


def _legend_below_axis_title(layout: dict) -> None:
    """The legend at the figure's bottom edge, under the x-axis title rather than on it."""
    layout["legend"].update({"yref": "container", "y": 0, "yanchor": "bottom"})
    layout["margin"]["b"] = 80


def density_figure(snap) -> dict:
    """The current q against the exact posterior (1-D densities) or the reference (2-D contours)."""
    d = snap.density
    latent = d.get("latent", "z")
    if d.get("kind") == "1d":
        data = [{"type": "scatter", "mode": "lines", "name": "q (current)", "x": _list(d["z"]), "y": _list(d["q"]),
                 "line": {"color": COLORS[0], "width": 2.5}}]
        if d.get("exact") is not None:
            data.append({"type": "scatter", "mode": "lines", "name": "exact posterior", "x": _list(d["z"]),
                         "y": _list(d["exact"]), "line": {"color": EXACT_COLOR, "dash": "dash", "width": 2}})
        layout = _base_layout("q against the exact posterior", "density")
        layout["xaxis"] = {"title": {"text": latent}}
        layout["yaxis"] = {"title": {"text": "density"}}
        _legend_below_axis_title(layout)
        return _figure(data, layout)
    ref_name = "reference posterior (grid)" if d.get("exact_is_grid") else "exact posterior"
    data = [
        {"type": "contour", "name": ref_name, "x": _list(d["x"]), "y": _list(d["y"]), "z": _list(d["exact"]),
         "contours": {"coloring": "lines"}, "line": {"width": 1.5, "dash": "dash"}, "colorscale": [[0, EXACT_COLOR], [1, EXACT_COLOR]],
         "showscale": False, "ncontours": 8, "showlegend": True},
        {"type": "contour", "name": "q (current)", "x": _list(d["x"]), "y": _list(d["y"]), "z": _list(d["q"]),
         "contours": {"coloring": "lines"}, "line": {"width": 2}, "colorscale": [[0, COLORS[0]], [1, COLORS[0]]],
         "showscale": False, "ncontours": 8, "showlegend": True},
    ]
    layout = _base_layout(f"q against the {ref_name}", "density", height=360)
    layout["xaxis"] = {"title": {"text": f"{latent}[0]"}}
    layout["yaxis"] = {"title": {"text": f"{latent}[1]"}}
    _legend_below_axis_title(layout)
    return _figure(data, layout)


def all_figures(snap, method: str = "ema", span: int = 50) -> dict:
    """Every live chart, keyed by its chart key."""
    return {
        "elbo": elbo_figure(snap, method, span),
        "params": params_figure(snap),
        "grads": grads_figure(snap, span),
        "variance": variance_figure(snap),
        "density": density_figure(snap),
    }


def figure_point_count(fig: dict) -> Optional[int]:
    """Largest number of points in any trace (for tests and the bytes benchmark)."""
    counts = [len(t.get("x") or []) for t in fig.get("data", [])]
    return max(counts) if counts else None
