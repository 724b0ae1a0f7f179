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
# One colour per parameter (indigo, rose, emerald, gold, sky, brown). Thin lines and small legend
# swatches lose most blue-yellow contrast, so the former emerald and cyan (differing mostly in
# that direction: CIEDE2000 29, 5 under a tritan simulation) looked alike in the full-rank
# family's five-parameter gradient chart, and the sixth colour, violet, was indigo again
# (CIEDE2000 6.5). The first five now stay >= 34 apart, and >= 12 under simulated protan,
# deutan and tritan vision; the sixth >= 23 from all of them.
COLORS = ["#4f46e5", "#e11d48", "#059669", "#ca8a04", "#0ea5e9", "#92400e"]
EXACT_COLOR = "#111827"
SMOOTHERS = ("ema", "moving-average")


def thin(steps: np.ndarray, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``limit`` rows spread evenly along the *step* axis, first and last kept.

    The history (``history.DecimatingBuffer``) keeps the newest rows at full resolution and
    older ones thinned by a doubling stride. Spreading the drawn points evenly by *index* put
    half of them into the dense recent rows: in a long run the last few percent of the steps
    got hundreds of points and the rest a sparse zigzag, so the right end looked far noisier
    than the left. Here ``limit`` equally spaced target steps each take the row nearest to
    them (duplicates merged), so drawn points are about equally spaced in steps everywhere.

    Each drawn point is one recorded row, not an aggregate of a bucket: a bucket of the old
    part holds a few archived rows and one of the recent part dozens to thousands, so a
    per-bucket min/max envelope would widen (and a per-bucket mean would calm down) with the
    number of rows, i.e. towards the right end again. One raw estimate per equal step width
    shows the same noise everywhere; the smoothed curves are computed from every row first.
    """
    x = np.asarray(steps, dtype=float)
    n = len(x)
    if n <= limit:
        return np.arange(n)
    targets = np.linspace(x[0], x[-1], limit)
    right = np.clip(np.searchsorted(x, targets), 1, n - 1)
    nearest = np.where(targets - x[right - 1] <= x[right] - targets, right - 1, right)
    return np.unique(nearest)


def wire_values(a) -> np.ndarray:
    """float32 values with non-finite ones as NaN (Plotly draws a gap). Kept as numpy: the live
    chart sends arrays as compact typed arrays, and float32 (7 digits, plenty for a screen)
    halves the bytes of every update."""
    a = np.array(a, dtype=np.float32)
    a[~np.isfinite(a)] = np.nan
    return a


def step_numbers(steps: np.ndarray, idx: np.ndarray) -> np.ndarray:
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


def base_layout(title: str, key: str, height: int = 300) -> dict:
    """The layout every vizvi chart starts from: its title, ``uirevision`` (zoom kept across
    updates) and height."""
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


def plotly_figure(data: list, layout: dict) -> dict:
    """The figure dict, with every axis set to skip plotly.js's tick-label overflow check, and
    every titled y axis set to keep its title clear of its tick labels.

    An axis whose traces all have numbers on it is typed ``linear``: plotly.js otherwise guesses
    each untyped axis's type from its data on every update (dates? categories?), a scan of every
    point that took 9-15 ms of the browser's 100-180 ms per update of the six live charts
    (measured with Chromium's profiler on the reference problem).

    By default plotly.js re-measures all tick labels of an axis for each label it places
    (``ticklabeloverflow = "hide past div"``): about an eighth of the browser's time per live
    update, for labels that never overflow these fixed margins.

    A y-axis title sits at a fixed distance from the plot's edge, so long tick labels (an ELBO
    of "−12,345.6", a log axis's "0.0001") ran into it. ``automargin`` widens the left margin
    when the labels need it and ``standoff`` then keeps the title that far from the labels.
    """
    numeric = _numeric_axes(data)
    for name, axis in layout.items():
        if name.startswith(("xaxis", "yaxis")) and isinstance(axis, dict):
            axis.setdefault("ticklabeloverflow", "allow")
            if "type" not in axis and numeric.get(name, True):
                axis["type"] = "linear"
            if name.startswith("yaxis") and isinstance(axis.get("title"), dict):
                axis.setdefault("automargin", True)
                axis["title"].setdefault("standoff", 8)
    return {"data": data, "layout": layout}


def _format_value(v) -> str:
    """A setting value as a label shows it (floats in the shortest form: 0.01, not 0.01000)."""
    return f"{v:g}" if isinstance(v, float) else str(v)


def _event_labels(events: list) -> list:
    """(step, label) per step at which settings changed, in step order.

    Several settings changed at once (one ``update_settings`` call records one event each, all
    at the same step) make one combined label, "lr 0.05→0.01, optimizer adam→rmsprop": drawn
    separately they were stacked exactly on top of each other, unreadable. A setting changed
    twice at one step shows its first "from" and last "to"; a step whose changes all cancel out
    gets no marker.
    """
    by_step: dict = {}
    for e in events:
        changes = by_step.setdefault(e["step"], {})
        first = changes.get(e["setting"], (e.get("from"), None))[0]
        changes[e["setting"]] = (first, e["to"])
    out = []
    for step in sorted(by_step):
        parts = [f"{name} {_format_value(a)}→{_format_value(b)}" if a is not None else f"{name}→{_format_value(b)}"
                 for name, (a, b) in by_step[step].items() if a is None or a != b]
        if parts:
            out.append((step, ", ".join(parts)))
    return out


# Label placement without a browser to measure text: a 10 px label is about 6 px per character,
# and a chart's plot area is at least this wide (half-width columns), so labels closer than
# this estimate may overlap and go on another row.
_LABEL_CHAR_PX = 6.0
_PLOT_MIN_PX = 400.0
# Rows of marker labels: the first just above the plot area, as before; the others just inside
# its top edge, going down (growing the top margin would push into the chart title), on a
# translucent box so that a trace under them does not garble them.
_INSIDE = {"yanchor": "top", "bgcolor": "rgba(255, 255, 255, 0.7)"}
_LABEL_ROWS = ({"y": 1.0, "yanchor": "bottom", "yshift": 0},
               {"y": 1.0, "yshift": 0, **_INSIDE},
               {"y": 1.0, "yshift": -15, **_INSIDE})


def _event_shapes(events: list, axis_count: int = 1, x_span: Optional[tuple] = None) -> tuple:
    """Vertical dashed lines (and labels) where settings changed mid-run: one per step.

    ``x_span`` (first, last step drawn) sizes the labels in step units, so that labels of
    nearby steps which would overlap go on different rows (cheap greedy placement; after a
    zoom they may still touch, which is acceptable for markers).
    """
    labelled = _event_labels(events)
    shapes, annotations = [], []
    if x_span is None and labelled:
        x_span = (labelled[0][0], labelled[-1][0])
    width = max(float(x_span[1]) - float(x_span[0]), 1.0) if labelled else 1.0
    step_per_char = _LABEL_CHAR_PX / _PLOT_MIN_PX * width
    row_ends = [-np.inf] * len(_LABEL_ROWS)  # right edge (in steps) of the last label per row
    for step, text in labelled:
        for k in range(axis_count):
            suffix = "" if k == 0 else str(k + 1)
            shapes.append({
                "type": "line", "xref": f"x{suffix}", "yref": f"y{suffix} domain", "x0": step, "x1": step,
                "y0": 0, "y1": 1, "line": {"dash": "dot", "width": 1.5, "color": "#6b7280"},
            })
        half = 0.5 * len(text) * step_per_char  # labels are centred on their step
        free = [r for r, end in enumerate(row_ends) if end < step - half]
        row = free[0] if free else int(np.argmin(row_ends))  # all taken: the row freed earliest
        row_ends[row] = step + half
        annotations.append({
            "xref": "x", "yref": "paper", "x": step, **_LABEL_ROWS[row], "showarrow": False,
            "text": text, "font": {"size": 10, "color": "#6b7280"},
        })
    return shapes, annotations


def _x_span(steps: np.ndarray) -> Optional[tuple]:
    """(first, last) step of a series, or None when it is empty."""
    return (int(steps[0]), int(steps[-1])) if len(steps) else None


def log_evidence(reference) -> Optional[float]:
    """The reference's log evidence, or None where it has none (no reference yet; an MCMC or a
    model file's given reference: draws and moments do not give it)."""
    if reference is None or not np.isfinite(reference.log_evidence):
        return None
    return float(reference.log_evidence)


def elbo_figure(snap, method: str = "ema", span: int = 50, log_axes: bool = False) -> dict:
    """ELBO estimates, raw and smoothed, with the exact (or grid) log evidence as a line.

    With ``log_axes`` the chart shows the gap ``log evidence − ELBO`` instead, on a log axis:
    the ELBO itself is negative, so only the gap has a meaningful log scale, and there a stall
    a few nats (or 0.01 nat) short of the evidence is as visible as the first thousand. Where
    the log evidence is unknown (a model file: MCMC gives none) there is no line, and
    ``log_axes`` shows −ELBO instead of the gap.
    """
    s = snap.series
    steps = np.asarray(s.get("step", []))
    elbo = np.asarray(s.get("elbo", []), dtype=float)
    smoothed = smooth(elbo, method, span)
    idx = thin(steps)
    label = "EMA" if method == "ema" else "moving average"
    evidence = log_evidence(snap.reference)
    kind = "exact" if evidence is not None and snap.reference.kind == "exact" else "grid"
    if log_axes:
        # Gaps in float64 before wire_values's float32: the evidence can be -1e4 and the gap 1e-3.
        top = evidence if evidence is not None else 0.0
        raw, smooth_y = top - elbo, top - smoothed
        # A single estimate (or a short average) can exceed the log evidence by noise, and a
        # grid reference is itself approximate: such gaps <= 0 have no place on a log axis.
        # They become NaN (a gap in the line) rather than a floor, which would draw invented
        # values and stretch the axis down to the floor.
        raw[raw <= 0], smooth_y[smooth_y <= 0] = np.nan, np.nan
    else:
        raw, smooth_y = elbo, smoothed
    data = [
        {"type": "scatter", "mode": "lines", "name": "estimate", "x": step_numbers(steps, idx), "y": wire_values(raw[idx]),
         "line": {"color": "#a5b4fc", "width": 1}},
        {"type": "scatter", "mode": "lines", "name": f"{label} (span {span})", "x": step_numbers(steps, idx),
         "y": wire_values(smooth_y[idx]), "line": {"color": COLORS[0], "width": 2.5}},
    ]
    if log_axes and evidence is None:
        layout = base_layout("−ELBO, log scale (the log evidence is unknown)", "elbo-neg-log")
        layout["yaxis"] = {"type": "log", "autorange": True, "title": {"text": "−ELBO (nats)"}}
    elif log_axes:
        # E[log evidence − ELBO estimate] = KL(q ‖ posterior) exactly (≈ with a grid reference).
        approx = "=" if kind == "exact" else "≈"
        name = "log evidence" if kind == "exact" else "log evidence (grid)"
        layout = base_layout(f"ELBO gap: {name} − ELBO {approx} KL(q ‖ posterior), log scale", "elbo-log")
        # A fresh uirevision (above): a zoom kept from the linear ELBO axis would be read as
        # powers of ten here. No fixed range: a log axis shows early and late gaps together.
        # The axis title is short enough for a 300 px chart; the chart title says the rest.
        layout["yaxis"] = {"type": "log", "autorange": True, "title": {"text": "log evidence − ELBO (nats)"}}
    else:
        layout = base_layout("ELBO" if evidence is not None else "ELBO (log evidence unknown: no line to reach)", "elbo")
    if len(steps) and not log_axes:
        if evidence is not None:
            data.append({"type": "scatter", "mode": "lines", "name": f"log evidence ({kind})",
                         "x": [int(steps[0]), int(steps[-1])], "y": [evidence, evidence],
                         "line": {"color": EXACT_COLOR, "dash": "dash", "width": 1.5}})
        # Early ELBOs can be thousands below the end; range on the later 90% so the gap to the
        # evidence stays visible (the user can still zoom out; uirevision keeps their choice).
        tail = smoothed[len(smoothed) // 10:]
        if np.isfinite(tail).any():
            recent = smoothed[-max(1, len(smoothed) // 2):]
            hi = float(np.nanmax(recent)) if np.isfinite(recent).any() else float(np.nanmax(tail))
            lo, hi = float(np.nanmin(tail)), max([hi] + ([evidence] if evidence is not None else []))
            pad = 0.08 * max(hi - lo, 1e-6)
            layout["yaxis"] = {"range": [lo - pad, hi + pad], "title": {"text": "nats"}}
    shapes, annotations = _event_shapes(snap.events, x_span=_x_span(steps))
    layout["shapes"], layout["annotations"] = shapes, annotations
    return plotly_figure(data, layout)


def _numeric_axes(data: list) -> dict:
    """For each axis (``"xaxis"``, ``"yaxis2"``...) that a trace draws on, whether every such
    trace's values on it are numbers (missing values, drawn as gaps, count as numbers)."""
    numeric: dict = {}
    for trace in data:
        for coordinate in ("x", "y"):
            ref = trace.get(f"{coordinate}axis", coordinate)
            axis = f"{coordinate}axis{ref[1:]}"
            numeric[axis] = numeric.get(axis, True) and _all_numbers(trace.get(coordinate))
    return numeric


def _all_numbers(values) -> bool:
    """Whether ``values`` (an array, a list or nothing: Plotly's implied 0, 1, 2...) are numbers."""
    if values is None:
        return True
    if isinstance(values, np.ndarray):
        return values.dtype.kind in "biuf"
    return all(v is None or (isinstance(v, (int, float, np.number)) and not isinstance(v, bool)) for v in values)


def stack_axes(layout: dict, n: int, gap: float = 0.06) -> None:
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


def log_scalable(values: np.ndarray, optimum: Optional[float]) -> bool:
    """Whether a panel can go on a log axis: some finite values, all of them (and the optimum) > 0."""
    finite = values[np.isfinite(values)]
    return finite.size > 0 and bool(np.all(finite > 0)) and (optimum is None or optimum > 0)


def _shown(snap, focus) -> list:
    """Indices of the parameters a chart draws: ``focus`` (``vizvi.focus.shown``), or all."""
    return list(range(len(snap.names))) if focus is None else list(focus)


def _of_all(snap, shown: list) -> str:
    """" (6 of 62)" in a title when a chart draws only some of the parameters."""
    return f" ({len(shown)} of {len(snap.names)})" if len(shown) < len(snap.names) else ""


def reference_values(snap) -> tuple:
    """(values, label): the line each parameter panel draws, the KL-optimal parameters where
    known in closed form, else the parameters matching the reference posterior's mean and
    covariance (an MCMC reference: a full-rank q can reach them, a mean-field q's scales stay
    below a correlated posterior's); (None, "") without either."""
    if snap.optimum is not None:
        return np.asarray(snap.optimum, dtype=float), "optimum (exact)"
    match = getattr(snap, "reference_match", None)
    if match is not None and reference_draws(snap.reference) is not None:  # a grid's moments are no target
        return np.asarray(match[0], dtype=float), "posterior's moments (MCMC)"
    return None, ""


def params_figure(snap, log_axes: bool = False, focus=None) -> dict:
    """Each variational parameter in constrained units, one panel each, with its optimum.

    With ``log_axes`` every panel whose values and optimum are all positive (scales, rates,
    concentrations) gets a log axis, so a value stalled at 18 under an optimum of 3944 is not a
    flat line at 0; a panel with values <= 0 (a real-valued loc) stays linear and says so.
    ``focus`` (parameter indices) draws only those; without a closed-form optimum the dashed
    line is the reference posterior's moment match (``reference_values``).
    """
    s = snap.series
    names = snap.names
    shown = _shown(snap, focus)
    steps = np.asarray(s.get("step", []))
    theta = np.asarray(s.get("theta", np.zeros((0, len(names)))))
    idx = thin(steps)
    n = len(shown)
    target, target_label = reference_values(snap)
    # A fresh uirevision with log axes (a zoom kept from a linear panel would be read as powers
    # of ten) and for another set of panels (panel k is another parameter).
    key = ("params-log" if log_axes else "params") + ("" if len(shown) == len(names) else "-" + "-".join(map(str, shown)))
    layout = base_layout(f"Variational parameters{_of_all(snap, shown)}", key, height=max(300, 150 * n))
    stack_axes(layout, n)
    # Some of many (a model file's): each panel's title names its parameter, so the legend
    # names only the dashed line, and 4 ticks a panel do; both save the browser milliseconds
    # per update, which a page of tens of parameters needs.
    some = len(shown) < len(names)
    data = []
    for k, i in enumerate(shown):
        name = names[i]
        suffix = "" if k == 0 else str(k + 1)
        data.append({"type": "scatter", "mode": "lines", "name": name, "x": step_numbers(steps, idx),
                     "y": wire_values(theta[idx, i]) if len(idx) else [], "xaxis": f"x{suffix}", "yaxis": f"y{suffix}",
                     "showlegend": not some, "line": {"color": COLORS[k % len(COLORS)], "width": 2}})
        if some:
            layout[f"yaxis{suffix}"]["nticks"] = 4
        title = name
        if log_axes:
            value = float(target[i]) if target is not None else None
            if log_scalable(theta[:, i] if len(theta) else np.zeros(0), value):
                layout[f"yaxis{suffix}"].update({"type": "log", "autorange": True})
                title = f"{name} (log)"
            else:
                title = f"{name} (linear: ≤ 0)"
        layout[f"yaxis{suffix}"]["title"] = {"text": title, "font": {"size": 11}}
        if target is not None and len(steps):
            value = float(target[i])
            data.append({"type": "scatter", "mode": "lines", "name": target_label if k == 0 else f"{name} {target_label}",
                         "showlegend": k == 0, "legendgroup": "optimum", "x": [int(steps[0]), int(steps[-1])],
                         "y": [value, value], "xaxis": f"x{suffix}", "yaxis": f"y{suffix}",
                         "line": {"color": EXACT_COLOR, "dash": "dash", "width": 1.5}})
    shapes, annotations = _event_shapes(snap.events, n, _x_span(steps))
    layout["shapes"], layout["annotations"] = shapes, annotations
    return plotly_figure(data, layout)


def grads_figure(snap, span: int = 50, focus=None) -> dict:
    """|d ELBO / d u| per parameter (the gradient the update used), smoothed, on a log axis;
    ``focus`` (parameter indices) draws only those."""
    s = snap.series
    steps = np.asarray(s.get("step", []))
    grad = np.abs(np.asarray(s.get("grad", np.zeros((0, len(snap.names))))))
    idx = thin(steps)
    shown = _shown(snap, focus)
    data = []
    for k, i in enumerate(shown):
        g = grad[:, i] if len(grad) else np.zeros(0)
        # The EMA carries the magnitude; the noise around it is what the variance chart shows
        # (a raw trace per parameter doubled the browser's drawing time per update).
        data.append({"type": "scatter", "mode": "lines", "name": snap.names[i], "x": step_numbers(steps, idx),
                     "y": wire_values(np.maximum(smooth(g, "ema", span)[idx], 1e-300)) if len(g) else [],
                     "line": {"color": COLORS[k % len(COLORS)], "width": 2.5}})
    layout = base_layout(f"|gradient| of the optimised (unconstrained) values{_of_all(snap, shown)}, EMA span {span}",
                         "grads")
    layout["yaxis"] = {"type": "log", "title": {"text": "|gradient|"}}
    layout["shapes"], layout["annotations"] = _event_shapes(snap.events, x_span=_x_span(steps))
    return plotly_figure(data, layout)


def setting_over_steps(snap, name: str, steps: np.ndarray) -> list:
    """The value a live setting had at each of ``steps``, from the run's change events."""
    changes = sorted((e for e in snap.events if e["setting"] == name.replace("_", "-")), key=lambda e: e["step"])
    values = [changes[0]["from"] if changes else snap.config[name]] * len(steps)
    for e in changes:
        for i, step in enumerate(steps):
            if step > e["step"]:
                values[i] = e["to"]
    return values


def evaluations_per_estimate(snap, steps: np.ndarray) -> np.ndarray:
    """Target evaluations one gradient estimate cost at each of ``steps`` (samples x the
    estimator's evaluations per sample, as the estimator and sample count were then)."""
    from vizvi.estimators import spec

    estimators = setting_over_steps(snap, "estimator", steps)
    samples = setting_over_steps(snap, "samples", steps)
    return np.array([m * spec(e).evaluations_per_sample(len(snap.names)) for e, m in zip(estimators, samples)], dtype=float)


def variance_figure(snap, per_evaluation: bool = False, focus=None) -> dict:
    """Gradient-estimator variance and signal-to-noise ratio per parameter, log axes.

    ``per_evaluation`` scales both to one target evaluation: the variance times the
    evaluations an estimate costs, the SNR over their square root. Estimators that spend more
    evaluations per sample (measure-valued: 2 per parameter) then compare at equal cost.
    ``focus`` (parameter indices) draws only those.
    """
    v = snap.variance
    steps = np.asarray(v.get("step", []))
    idx = thin(steps)
    shown = _shown(snap, focus)
    unit = "per target evaluation" if per_evaluation else "per gradient estimate"
    # Short: the chart shares its row with k-hat's.
    layout = base_layout(f"Gradient variance and signal-to-noise{_of_all(snap, shown)}, {unit}", "variance", height=380)
    stack_axes(layout, 2, gap=0.1)
    layout["yaxis"].update({"type": "log", "title": {"text": "variance x evaluations" if per_evaluation else "variance"}})
    layout["yaxis2"].update({"type": "log", "title": {"text": "SNR / sqrt(evaluations)" if per_evaluation else "SNR |mean|/sd"}})
    cost = evaluations_per_estimate(snap, steps[idx]) if per_evaluation else np.ones(len(idx))
    data = []
    var = np.asarray(v.get("grad_variance", np.zeros((0, len(snap.names)))))
    snr = np.asarray(v.get("grad_snr", np.zeros((0, len(snap.names)))))
    for k, i in enumerate(shown):
        name, color = snap.names[i], COLORS[k % len(COLORS)]
        data.append({"type": "scatter", "mode": "lines", "name": name, "legendgroup": name,
                     "x": step_numbers(steps, idx), "y": wire_values(var[idx, i] * cost) if len(idx) else [],
                     "line": {"color": color, "width": 1.5}})
        data.append({"type": "scatter", "mode": "lines", "name": f"{name} SNR", "legendgroup": name,
                     "showlegend": False, "x": step_numbers(steps, idx), "y": wire_values(snr[idx, i] / np.sqrt(cost)) if len(idx) else [],
                     "xaxis": "x2", "yaxis": "y2", "marker": {"size": 3}, "line": {"color": color, "width": 1.5}})
    if len(steps):
        data.append({"type": "scatter", "mode": "lines", "name": "SNR 0.1", "x": [int(steps[0]), int(steps[-1])],
                     "y": [0.1, 0.1], "xaxis": "x2", "yaxis": "y2", "line": {"color": EXACT_COLOR, "dash": "dot", "width": 1}})
    shapes, annotations = _event_shapes(snap.events, 2, _x_span(steps))
    layout["shapes"], layout["annotations"] = shapes, annotations
    return plotly_figure(data, layout)


def legend_below_axis_title(layout: dict) -> None:
    """The legend at the figure's bottom edge, under the x-axis title rather than on it."""
    layout["legend"].update({"yref": "container", "y": 0, "yanchor": "bottom"})
    layout["margin"]["b"] = 80


HIST_BINS = 40  # bins of a histogram of reference draws against q's density


def draws_histogram(values, lo: float, hi: float, axis: str = "", showlegend: bool = True) -> dict:
    """A histogram of reference draws over [lo, hi] as a filled step line (cheaper for the
    browser than bars), scaled as a density of all the draws (those outside the range count)."""
    values = np.asarray(values, dtype=float)
    counts, edges = np.histogram(values, bins=HIST_BINS, range=(lo, hi))
    density = counts / (max(len(values), 1) * (edges[1] - edges[0]))
    return {"type": "scatter", "mode": "lines", "name": "reference posterior (MCMC draws)", "legendgroup": "draws",
            "showlegend": showlegend, "x": wire_values(edges), "y": wire_values(np.append(density, density[-1])),
            "line": {"color": "#6b7280", "width": 1, "shape": "hv"}, "fill": "tozeroy", "fillcolor": "rgba(107,114,128,0.18)",
            "xaxis": f"x{axis}", "yaxis": f"y{axis}"}


def reference_draws(reference) -> Optional[np.ndarray]:
    """The reference's draws of the latent vector [N, d] (an MCMC reference's), else None."""
    draws = getattr(reference, "draws", None) if reference is not None else None
    return None if draws is None else np.asarray(draws, dtype=float).reshape(len(draws), -1)


def _given_moments(reference) -> Optional[tuple]:
    """(mean, sd) of a scalar latent from a model file's own ``reference`` (kind "given"), else None."""
    if reference is None or reference.kind != "given" or not reference.latent_mean or not reference.latent_sd:
        return None
    mean, sd = next(iter(reference.latent_mean.values())), next(iter(reference.latent_sd.values()))
    return (float(mean), float(sd)) if np.ndim(mean) == 0 and np.ndim(sd) == 0 else None


def density_figure(snap, view=None) -> dict:
    """The current q against the exact posterior (1-D densities), the reference (2-D contours),
    or, for a latent in R^d without a density to draw, q's marginals or a pair against the
    reference's MCMC draws as ``view`` (a ``vizvi.latent_charts.LatentView``) asks."""
    d = snap.density
    latent = d.get("latent", "z")
    if d.get("kind") == "gaussian":
        from vizvi.latent_charts import latent_figure

        return latent_figure(snap, view)
    if d.get("kind") == "1d":
        data = [{"type": "scatter", "mode": "lines", "name": "q (current)", "x": wire_values(d["z"]), "y": wire_values(d["q"]),
                 "line": {"color": COLORS[0], "width": 2.5}}]
        title = "q against the exact posterior"
        if d.get("exact") is not None:
            data.append({"type": "scatter", "mode": "lines", "name": "exact posterior", "x": wire_values(d["z"]),
                         "y": wire_values(d["exact"]), "line": {"color": EXACT_COLOR, "dash": "dash", "width": 2}})
        elif reference_draws(snap.reference) is not None:
            data.append(draws_histogram(reference_draws(snap.reference)[:, 0], float(d["z"][0]), float(d["z"][-1])))
            title = "q against the reference posterior (MCMC)"
        else:
            title = "q (no reference posterior yet)"
        layout = base_layout(title, "density")
        given = _given_moments(snap.reference)
        if given is not None:
            # A model file's own posterior moments: its mean (dashed) and mean ± sd (shaded).
            mean, sd = given
            layout["title"]["text"] = "q against the reference posterior's mean ± sd (given by the model file)"
            layout["shapes"] = [
                {"type": "rect", "xref": "x", "yref": "paper", "x0": mean - sd, "x1": mean + sd, "y0": 0, "y1": 1,
                 "fillcolor": "rgba(17,24,39,0.08)", "line": {"width": 0}},
                {"type": "line", "xref": "x", "yref": "paper", "x0": mean, "x1": mean, "y0": 0, "y1": 1,
                 "line": {"color": EXACT_COLOR, "dash": "dash", "width": 1.5}}]
        layout["xaxis"] = {"title": {"text": latent}}
        layout["yaxis"] = {"title": {"text": "density"}}
        legend_below_axis_title(layout)
        return plotly_figure(data, layout)
    ref_name = "reference posterior (grid)" if d.get("exact_is_grid") else "exact posterior"
    data = [level_lines_trace(ref_name, d["x"], d["y"], d["exact"], {"color": EXACT_COLOR, "width": 1.5, "dash": "dash"}),
            level_lines_trace("q (current)", d["x"], d["y"], d["q"], {"color": COLORS[0], "width": 2})]
    layout = base_layout(f"q against the {ref_name}", "density", height=360)
    layout["xaxis"] = {"title": {"text": f"{latent}[0]"}}
    layout["yaxis"] = {"title": {"text": f"{latent}[1]"}}
    legend_below_axis_title(layout)
    return plotly_figure(data, layout)


LEVEL_FRACTIONS = tuple(k / 8 for k in range(1, 8))  # a density's level lines, as fractions of its peak


def level_lines(xs, ys, density) -> tuple:
    """(x, y) of a density's level lines on a grid (``density`` rows follow ``ys``) at
    ``LEVEL_FRACTIONS`` of its peak, as one polyline with NaN gaps between the pieces; empty
    without a positive finite peak.

    Traced here by contourpy (matplotlib's contouring) and sent as a plain line: the contour
    traces sent both densities' whole 60x60 grids with every live update, 25-31 KB of it
    gzipped on the 2-D targets, where their level lines are 5-7 KB (a room of people shares one
    server's network), and plotly.js no longer traces them in every browser on every update
    (its drawing time did not measurably change on this machine: 15-20 ms for this chart
    either way). Fractions of each density's own peak are what plotly.js's 8 automatic levels
    were, and for a Gaussian they are ellipses of fixed Mahalanobis radii, so q's and the
    posterior's lines compare ring by ring.
    """
    import contourpy

    z = np.nan_to_num(np.asarray(density, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(z.max()) if z.size else 0.0
    if not peak > 0:
        return np.zeros(0), np.zeros(0)
    generator = contourpy.contour_generator(np.asarray(xs, float), np.asarray(ys, float), z,
                                            line_type=contourpy.LineType.ChunkCombinedNan)
    pieces = [chunk for level in LEVEL_FRACTIONS for chunk in generator.lines(level * peak)[0] if chunk is not None]
    if not pieces:
        return np.zeros(0), np.zeros(0)
    gap = np.full((1, 2), np.nan)
    points = np.concatenate([part for piece in pieces for part in (piece, gap)][:-1])
    return points[:, 0], points[:, 1]


def level_lines_trace(name: str, xs, ys, density, line: dict) -> dict:
    """A scatter trace of ``level_lines`` named ``name`` in the legend, drawn with ``line``."""
    x, y = level_lines(xs, ys, density)
    return {"type": "scatter", "mode": "lines", "name": name, "x": wire_values(x), "y": wire_values(y), "line": line,
            "connectgaps": False, "hoverinfo": "name"}


KHAT_CAP = 1.5  # k-hat drawn at most this high; larger (and infinite) values sit on the top edge, marked


def khat_figure(snap) -> dict:
    """PSIS k-hat of q against the target over the steps it was measured at (every K steps),
    with the 0.7 threshold above which q is not trustworthy and the 0.5 below which it is good
    (Yao, Vehtari, Simpson and Gelman 2018, ``vizvi.psis``)."""
    from vizvi.psis import KHAT_THRESHOLD

    v = snap.variance
    steps = np.asarray(v.get("step", []))
    khat = np.asarray(v.get("khat", np.zeros(len(steps))), dtype=float)
    measured = ~np.isnan(khat)
    steps, khat = steps[measured], khat[measured]
    idx = thin(steps)
    shown = khat[idx]
    off = shown > KHAT_CAP  # infinite when a few draws carry all the weight
    data = [{"type": "scatter", "mode": "lines", "name": "k̂", "x": step_numbers(steps, idx),
             "y": wire_values(np.minimum(shown, KHAT_CAP)), "line": {"color": COLORS[0], "width": 1.8}}]
    if off.any():
        data.append({"type": "scatter", "mode": "markers", "name": f"k̂ > {KHAT_CAP:g} (off the scale)",
                     "x": step_numbers(steps, idx[off]), "y": wire_values(np.full(int(off.sum()), KHAT_CAP)),
                     "marker": {"symbol": "triangle-up", "size": 8, "color": COLORS[1]}})
    layout = base_layout(f"PSIS k̂ of q: below 0.5 good, 0.5–{KHAT_THRESHOLD:g} usable, above {KHAT_THRESHOLD:g} "
                         f"not trustworthy", "khat")
    finite = shown[np.isfinite(shown)]
    low = min(0.0, float(finite.min()) - 0.05) if finite.size else 0.0
    layout["yaxis"] = {"range": [low, KHAT_CAP + 0.05], "title": {"text": "k̂"}}
    layout["showlegend"] = bool(off.any())  # one line, named by the title (a legend costs the browser ~3 ms an update)
    # Threshold lines across the whole plot, whatever steps are drawn: shapes in paper x.
    layout["shapes"] = [
        {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": level, "y1": level,
         "line": {"color": color, "dash": dash, "width": 1.5}}
        for level, color, dash in ((KHAT_THRESHOLD, "#dc2626", "dash"), (0.5, "#6b7280", "dot"))]
    layout["annotations"] = [
        {"xref": "paper", "x": 1, "xanchor": "right", "yref": "y", "y": KHAT_THRESHOLD, "yanchor": "bottom",
         "showarrow": False, "text": f"{KHAT_THRESHOLD:g}: above it q is not trustworthy", "font": {"size": 10, "color": "#dc2626"}}]
    if not len(steps):
        every = snap.config.get("variance_every", 0)
        text = ("not measured: set Variance every K steps above 0" if not every
                else f"k̂ is measured every {every:,} steps; none yet")
        layout["annotations"].append({"xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5, "showarrow": False,
                                      "text": text, "font": {"size": 12, "color": "#6b7280"}})
    return plotly_figure(data, layout)


def all_figures(snap, method: str = "ema", span: int = 50, log_axes: bool = False, per_evaluation: bool = False,
                focus=None, latent_view=None, overview: Optional[str] = None) -> dict:
    """Every live chart, keyed by its chart key.

    ``method`` and ``span`` pick the ELBO smoother; ``log_axes`` puts the parameter panels
    that are positive on log axes and turns the ELBO chart into its gap to the log evidence
    on a log axis (see ``elbo_figure`` and ``params_figure``); ``per_evaluation`` scales the
    variance chart to one target evaluation (``variance_figure``). For many parameters,
    ``focus`` (indices, ``vizvi.focus.shown``) picks those the parameter, gradient and variance
    charts draw, ``latent_view`` the coordinates of q against the posterior
    (``vizvi.latent_charts.LatentView``), and ``overview`` adds the heatmap of every parameter
    showing that quantity (``vizvi.latent_charts.OVERVIEWS``).
    """
    figures = {
        "elbo": elbo_figure(snap, method, span, log_axes=log_axes),
        "params": params_figure(snap, log_axes=log_axes, focus=focus),
        "grads": grads_figure(snap, span, focus=focus),
        "variance": variance_figure(snap, per_evaluation, focus=focus),
        "density": density_figure(snap, latent_view),
        "khat": khat_figure(snap),
    }
    if overview is not None:
        from vizvi.latent_charts import overview_figure

        figures["overview"] = overview_figure(snap, overview, focus)
    return figures


def figure_point_count(fig: dict) -> Optional[int]:
    """Largest number of points in any trace (for tests and the bytes benchmark)."""
    counts = [len(t.get("x") or []) for t in fig.get("data", [])]
    return max(counts) if counts else None


# -- the estimator race -----------------------------------------------------------------------
def estimator_color(estimator: str) -> str:
    """One colour per estimator, the same on every race chart and in every race."""
    from vizvi.estimators import EstimatorName

    return COLORS[[e.value for e in EstimatorName].index(estimator) % len(COLORS)]


def _race_line(entry, name: str, x, y, axis: int, showlegend: bool, width: float = 2) -> dict:
    suffix = "" if axis == 0 else str(axis + 1)
    return {"type": "scatter", "mode": "lines", "name": name, "legendgroup": entry.estimator, "showlegend": showlegend,
            "x": x, "y": y, "xaxis": f"x{suffix}", "yaxis": f"y{suffix}",
            "line": {"color": estimator_color(entry.estimator), "width": width}}


def race_elbo_figure(snap, method: str = "ema", span: int = 50) -> dict:
    """Each entrant's smoothed ELBO, overlaid, with the exact (or grid) log evidence."""
    data, lo, hi, first, last = [], np.inf, -np.inf, None, None
    for entry in snap.entries:
        steps = np.asarray(entry.series.get("step", []))
        if not len(steps):
            continue
        smoothed = smooth(np.asarray(entry.series["elbo"], dtype=float), method, span)
        idx = thin(steps)
        data.append(_race_line(entry, entry.estimator, step_numbers(steps, idx), wire_values(smoothed[idx]), 0, True))
        tail = smoothed[len(smoothed) // 10:]
        lo, hi = min(lo, float(np.nanmin(tail))), max(hi, float(np.nanmax(tail)))
        first = int(steps[0]) if first is None else min(first, int(steps[0]))
        last = int(steps[-1]) if last is None else max(last, int(steps[-1]))
    label = "EMA" if method == "ema" else "moving average"
    layout = base_layout(f"ELBO by estimator ({label}, span {span})", "race-elbo")
    ref, evidence = snap.reference, log_evidence(snap.reference)
    if first is not None:
        if evidence is not None:
            data.append({"type": "scatter", "mode": "lines", "name": f"log evidence ({'exact' if ref.kind == 'exact' else 'grid'})",
                         "x": [first, last], "y": [evidence, evidence],
                         "line": {"color": EXACT_COLOR, "dash": "dash", "width": 1.5}})
            hi = max(hi, evidence)
        if np.isfinite(lo):
            pad = 0.08 * max(hi - lo, 1e-6)
            layout["yaxis"] = {"range": [lo - pad, hi + pad], "title": {"text": "nats"}}
    return plotly_figure(data, layout)


def race_params_figure(snap, focus=None) -> dict:
    """Each variational parameter (those of ``focus``, indices, if given), one panel each, one
    line per entrant, with the optimum."""
    shown = _shown(snap, focus)
    names, n = [snap.names[i] for i in shown], len(shown)
    layout = base_layout(f"Variational parameters by estimator{_of_all(snap, shown)}", "race-params", height=max(300, 150 * n))
    stack_axes(layout, n)
    data, span = [], None
    for entry in snap.entries:
        steps = np.asarray(entry.series.get("step", []))
        theta = np.asarray(entry.series.get("theta", np.zeros((0, len(snap.names)))))
        idx = thin(steps)
        if len(steps):
            span = (int(steps[0]), int(steps[-1])) if span is None else (min(span[0], int(steps[0])), max(span[1], int(steps[-1])))
        for k, i in enumerate(shown):
            data.append(_race_line(entry, entry.estimator if k == 0 else f"{entry.estimator} {names[k]}",
                                   step_numbers(steps, idx), wire_values(theta[idx, i]) if len(idx) else [], k, k == 0))
    for k, name in enumerate(names):
        suffix = "" if k == 0 else str(k + 1)
        layout[f"yaxis{suffix}"]["title"] = {"text": name, "font": {"size": 11}}
        if snap.optimum is not None and span is not None:
            target = float(snap.optimum[shown[k]])
            data.append({"type": "scatter", "mode": "lines", "name": "optimum (exact)" if k == 0 else f"{name} optimum",
                         "showlegend": k == 0, "legendgroup": "optimum", "x": list(span), "y": [target, target],
                         "xaxis": f"x{suffix}", "yaxis": f"y{suffix}", "line": {"color": EXACT_COLOR, "dash": "dash", "width": 1.5}})
    return plotly_figure(data, layout)


def race_snr_figure(snap, per_evaluation: bool = False, focus=None) -> dict:
    """Each parameter's (those of ``focus``, indices, if given) gradient signal-to-noise ratio,
    one panel each, one line per entrant (log axes); ``per_evaluation`` divides by the square
    root of an estimate's target evaluations, so estimators compare at equal cost."""
    shown = _shown(snap, focus)
    names, n = [snap.names[i] for i in shown], len(shown)
    unit = "per target evaluation" if per_evaluation else "per gradient estimate"
    layout = base_layout(f"Gradient signal-to-noise ratio |mean|/sd by estimator{_of_all(snap, shown)}, {unit}", "race-snr",
                         height=max(300, 150 * n))
    stack_axes(layout, n)
    data = []
    for entry in snap.entries:
        v = entry.variance
        steps = np.asarray(v.get("step", []))
        snr = np.asarray(v.get("grad_snr", np.zeros((0, len(snap.names)))))
        idx = thin(steps)
        cost = evaluations_per_estimate(entry, steps[idx]) if per_evaluation else np.ones(len(idx))
        for k, i in enumerate(shown):
            data.append(_race_line(entry, entry.estimator if k == 0 else f"{entry.estimator} {names[k]}", step_numbers(steps, idx),
                                   wire_values(snr[idx, i] / np.sqrt(cost)) if len(idx) else [], k, k == 0, width=1.5))
    for k, name in enumerate(names):
        suffix = "" if k == 0 else str(k + 1)
        layout[f"yaxis{suffix}"].update({"type": "log", "title": {"text": f"{name} SNR", "font": {"size": 11}}})
    return plotly_figure(data, layout)


def race_figures(snap, method: str = "ema", span: int = 50, per_evaluation: bool = False, focus=None) -> dict:
    """Every race chart, keyed by its chart key; ``focus`` (parameter indices) picks the
    parameters drawn."""
    return {"race-elbo": race_elbo_figure(snap, method, span), "race-params": race_params_figure(snap, focus),
            "race-snr": race_snr_figure(snap, per_evaluation, focus)}


# -- the variance explorer --------------------------------------------------------------------
def _values(a) -> list:
    """Plain float lists: the explorer's figures go to ``st.plotly_chart`` once (no live
    updates to keep small), and a browser then reads them as ordinary arrays."""
    return np.asarray(a, dtype=float).tolist()


def _side_by_side(layout: dict, titles: tuple, gap: float = 0.08) -> None:
    """Two panels side by side, each with its own axes (mu on the left, sigma on the right)."""
    width = (1.0 - gap) / 2
    layout["xaxis"] = {"domain": [0, width], "anchor": "y"}
    layout["xaxis2"] = {"domain": [1 - width, 1], "anchor": "y2"}
    layout["yaxis"] = {"anchor": "x", "title": {"text": titles[0]}}
    layout["yaxis2"] = {"anchor": "x2", "title": {"text": titles[1]}}


def _explorer_color(estimator: str) -> str:
    from vizvi.variance_lab import ESTIMATOR_ORDER

    return COLORS[[e.value for e in ESTIMATOR_ORDER].index(estimator) % len(COLORS)]


def explorer_variance_figure(result, log_y: bool = True) -> dict:
    """Fig. 2 of Mohamed et al. (2020), top row: each estimator's variance against k, for the
    gradient with respect to mu (left) and sigma (right), as computed from the replicates."""
    c = result.config
    layout = base_layout(f"Variance of one estimate ({c['samples']} sample{'s' if c['samples'] > 1 else ''}, "
                          f"{result.replicates:,} replicates), mu = {c['mu']:g}, sigma = {c['sigma']:g}, cost {c['cost']}",
                          "explorer-variance", height=380)
    _side_by_side(layout, ("variance of d/dmu", "variance of d/dsigma"))
    data = []
    k = _values(result.k)
    for i, (estimator, per) in enumerate(result.variance.items()):
        for j, param in enumerate(("mu", "sigma")):
            data.append({"type": "scatter", "mode": "lines+markers", "name": estimator, "legendgroup": estimator,
                         "showlegend": j == 0, "x": k, "y": _values(per[param]), "xaxis": "x" if j == 0 else "x2",
                         "yaxis": "y" if j == 0 else "y2", "marker": {"size": 5},
                         "line": {"color": _explorer_color(estimator), "width": 2,
                                  "dash": "dot" if estimator == "measure-valued" else "solid"}})
    for j, axis in enumerate(("yaxis", "yaxis2")):
        layout[axis]["type"] = "log" if log_y else "linear"
        if log_y:
            layout[axis].update(_log_range([per["mu" if j == 0 else "sigma"] for per in result.variance.values()]))
    for axis in ("xaxis", "xaxis2"):
        layout[axis]["title"] = {"text": "k"}
    legend_below_axis_title(layout)
    return plotly_figure(data, layout)


ZERO_BELOW = 1e-9  # a variance this far below a panel's largest is zero up to rounding


def _log_range(curves) -> dict:
    """A log axis spanning the panel's nonzero variances.

    Some variances are exactly zero: the coupled measure-valued estimate of d/dmu at k = mu
    (a cost symmetric about mu gives f(mu + sigma W) = f(mu - sigma W)) comes out as 1e-31 of
    rounding, and an automatic range would squash every other curve into the top tenth to show
    it. The axis spans the values above ``ZERO_BELOW`` x the largest; a zero dives off the
    bottom edge, which is what it is.
    """
    values = np.concatenate([np.asarray(c, dtype=float) for c in curves])
    values = values[np.isfinite(values) & (values > 0)]
    if not values.size:
        return {}
    top = float(values.max())
    floor = float(values[values > top * ZERO_BELOW].min())
    return {"range": [np.log10(floor) - 0.25, np.log10(top) + 0.25], "exponentformat": "power"}


def explorer_mean_figure(result) -> dict:
    """Each estimator's mean estimate against k with its Monte Carlo error (bars: 2 standard
    errors), over the exact gradient: every estimator here is unbiased, and this shows it."""
    layout = base_layout("Mean of the estimates ± 2 Monte Carlo standard errors, against the exact gradient",
                          "explorer-mean", height=340)
    _side_by_side(layout, ("d/dmu", "d/dsigma"))
    data = []
    k = np.asarray(result.k)
    spread = 0.012 * (float(k.max() - k.min()) or 1.0)  # side by side at each k, not on top of each other
    names = list(result.mean)
    for j, param in enumerate(("mu", "sigma")):
        data.append({"type": "scatter", "mode": "lines", "name": "exact", "legendgroup": "exact", "showlegend": j == 0,
                     "x": _values(k), "y": _values(result.exact[param]), "xaxis": "x" if j == 0 else "x2",
                     "yaxis": "y" if j == 0 else "y2", "line": {"color": EXACT_COLOR, "dash": "dash", "width": 1.5}})
        for i, estimator in enumerate(names):
            data.append({"type": "scatter", "mode": "markers", "name": estimator, "legendgroup": estimator,
                         "showlegend": j == 0, "x": _values(k + (i - (len(names) - 1) / 2) * spread),
                         "y": _values(result.mean[estimator][param]),
                         "error_y": {"type": "data", "array": _values(2 * result.mean_stderr[estimator][param]), "width": 2},
                         "xaxis": "x" if j == 0 else "x2", "yaxis": "y" if j == 0 else "y2",
                         "marker": {"size": 5, "color": _explorer_color(estimator)}})
    for axis in ("xaxis", "xaxis2"):
        layout[axis]["title"] = {"text": "k"}
    legend_below_axis_title(layout)
    return plotly_figure(data, layout)


def explorer_cost_figure(cost: str, mu: float, sigma: float, ks) -> dict:
    """Fig. 2's lower row: the cost f(x; k) (solid) and its derivative (dashed) for three values
    of k (the smallest, middle and largest asked for), over the region q puts its mass on."""
    from vizvi.variance_lab import cost_curve

    ks = np.asarray(ks, float)
    chosen = sorted({float(ks.min()), float(ks[len(ks) // 2]), float(ks.max())})
    lo = min(mu - 4 * sigma, float(ks.min()) - 1.0)
    hi = max(mu + 4 * sigma, float(ks.max()) + 1.0)
    x = np.linspace(lo, hi, 400)
    layout = base_layout(f"The cost f(x; k) = {cost} and its derivative, for k in {', '.join(f'{k:g}' for k in chosen)}",
                          "explorer-cost", height=300)
    _side_by_side(layout, ("f(x; k)", "df/dx"))
    data = []
    for i, k in enumerate(chosen):
        f, df = cost_curve(cost, x, k)
        color = COLORS[(i + 2) % len(COLORS)]
        data.append({"type": "scatter", "mode": "lines", "name": f"k = {k:g}", "legendgroup": str(k), "x": _values(x),
                     "y": _values(f), "line": {"color": color, "width": 2}})
        data.append({"type": "scatter", "mode": "lines", "name": f"k = {k:g} derivative", "legendgroup": str(k),
                     "showlegend": False, "x": _values(x), "y": _values(df), "xaxis": "x2", "yaxis": "y2",
                     "line": {"color": color, "width": 2, "dash": "dash"}})
    density = np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    for j in range(2):
        data.append({"type": "scatter", "mode": "lines", "name": "q = N(mu, sigma²), scaled", "legendgroup": "q",
                     "showlegend": j == 0, "x": _values(x), "y": _values(density / density.max()),
                     "xaxis": "x" if j == 0 else "x2", "yaxis": "y" if j == 0 else "y2",
                     "line": {"color": "#9ca3af", "width": 1}, "fill": "tozeroy", "fillcolor": "rgba(156,163,175,0.15)"})
    for axis in ("xaxis", "xaxis2"):
        layout[axis]["title"] = {"text": "x"}
    legend_below_axis_title(layout)
    return plotly_figure(data, layout)
