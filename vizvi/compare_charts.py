"""Pure Plotly figure builders for the compare page: a worker ``SetSnapshot`` in, figure dicts out.

Every run has one colour (its ``SetEntry.color`` slot, kept while other runs come and go) on
every chart, and its number and label (what sets it apart) in the ELBO chart's legend and in
every hover. Runs may differ in anything, model and family included, so a parameter chart
has one panel per parameter name any run has, and a run draws in the panels of its own
parameters. Reference lines (log evidence, optimum) shared by every run that has them are
drawn once in black; where runs differ (other data, another model) each run's is drawn
dashed in its colour. Figures are plain dicts built with the helpers of ``vizvi.charts``
(series thinned to ``POINTS`` each, float32 arrays that the live chart sends as typed arrays).
"""

from __future__ import annotations

import numpy as np

from vizvi.charts import (
    COLORS, EXACT_COLOR, base_layout, density_figure, log_evidence, log_scalable, plotly_figure, smooth, stack_axes,
    step_numbers, thin, wire_values,
)
from vizvi.focus import AUTO_SHOWN, MAX_SHOWN

# One colour per run: the dashboard's six, then orange and fuchsia for runs 7 and 8.
RUN_COLORS = COLORS + ["#ea580c", "#c026d3"]
POINTS = 300  # per trace: eight runs draw up to 48 series per update


def run_color(slot: int) -> str:
    """The colour of a run's slot, the same on every compare chart."""
    return RUN_COLORS[slot % len(RUN_COLORS)]


def run_name(entry) -> str:
    """A run as legends and hovers name it: its number and what sets it apart."""
    return f"#{entry.number} {entry.label}" if entry.label else f"#{entry.number}"


def _axis(k: int) -> str:
    return "" if k == 0 else str(k + 1)


def _line(entry, x, y, axis: int = 0, showlegend: bool = False, width: float = 2.0, dash: str = "solid") -> dict:
    return {"type": "scatter", "mode": "lines", "name": run_name(entry), "legendgroup": f"run-{entry.number}",
            "showlegend": showlegend, "x": x, "y": y, "xaxis": f"x{_axis(axis)}", "yaxis": f"y{_axis(axis)}",
            "line": {"color": run_color(entry.color), "width": width, "dash": dash}}


def _span(entries, key: str = "series"):
    """(first, last) step drawn over every run's ``key`` series, or None when nothing is."""
    steps = [np.asarray(getattr(e, key).get("step", [])) for e in entries]
    steps = [s for s in steps if len(s)]
    return (min(int(s[0]) for s in steps), max(int(s[-1]) for s in steps)) if steps else None


def _reference_lines(entries, values, axis: int, name: str, span, showlegend: bool) -> list:
    """Horizontal reference lines: one black line when every run has the same ``values[i]``
    (None: the run has none), else one dashed line per run in its colour."""
    known = [(e, v) for e, v in zip(entries, values) if v is not None and np.isfinite(v)]
    if not known or span is None:
        return []
    base = {"type": "scatter", "mode": "lines", "x": list(span), "xaxis": f"x{_axis(axis)}", "yaxis": f"y{_axis(axis)}",
            "legendgroup": "reference", "showlegend": showlegend}
    if len({round(v, 12) for _, v in known}) == 1:
        v = known[0][1]
        return [{**base, "name": name, "y": [v, v], "line": {"color": EXACT_COLOR, "dash": "dash", "width": 1.5}}]
    return [{**base, "name": f"{name} of #{e.number}", "showlegend": False, "y": [v, v],
             "line": {"color": run_color(e.color), "dash": "dash", "width": 1.2}} for e, v in known]


def _panels(snap) -> list:
    """Every parameter name any run has, in the order the runs name them; of a run with many
    (a model file's), its first ``AUTO_SHOWN``: tens of panels per chart and run would be
    unreadable (the stall report lists them all)."""
    names: list = []
    for e in snap.entries:
        names += [n for n in (e.names if len(e.names) <= MAX_SHOWN else e.names[:AUTO_SHOWN]) if n not in names]
    return names


def elbo_figure(snap, method: str = "ema", span: int = 50) -> dict:
    """Each run's smoothed ELBO, with the log evidence (exact, or the grid reference's)."""
    data, lo, hi = [], np.inf, -np.inf
    for e in snap.entries:
        steps = np.asarray(e.series.get("step", []))
        if not len(steps):
            continue
        smoothed = smooth(np.asarray(e.series["elbo"], dtype=float), method, span)
        idx = thin(steps, POINTS)
        data.append(_line(e, step_numbers(steps, idx), wire_values(smoothed[idx]), showlegend=True))
        tail = smoothed[len(smoothed) // 10:]
        if np.isfinite(tail).any():
            lo, hi = min(lo, float(np.nanmin(tail))), max(hi, float(np.nanmax(tail)))
    label = "EMA" if method == "ema" else "moving average"
    layout = base_layout(f"ELBO per run ({label}, span {span})", "cmp-elbo", height=340)
    # None where a run's log evidence is unknown (a model file's: no closed form, MCMC gives none).
    evidence = [log_evidence(e.reference) for e in snap.entries]
    kinds = {("exact" if e.reference.kind == "exact" else "grid") for e, v in zip(snap.entries, evidence) if v is not None}
    data += _reference_lines(snap.entries, evidence, 0, f"log evidence ({'/'.join(sorted(kinds))})", _span(snap.entries),
                             showlegend=True)
    if np.isfinite(lo):
        hi = max([hi] + [v for v in evidence if v is not None])
        pad = 0.08 * max(hi - lo, 1e-6)
        layout["yaxis"] = {"range": [lo - pad, hi + pad], "title": {"text": "nats"}}
    return plotly_figure(data, layout)


def _per_parameter(snap, key: str, title: str, panel_title, values, source: str = "series") -> tuple:
    """A figure with one stacked panel per parameter and one line per run: ``values(entry,
    series, k, idx)`` the run's y values of parameter ``k`` at rows ``idx`` of its ``source``
    series (``series``: every step; ``variance``: the variance measurements)."""
    names = _panels(snap)
    layout = base_layout(title, f"cmp-{key}-{'-'.join(names)}", height=max(300, 160 * len(names)))
    stack_axes(layout, len(names))
    data = []
    for e in snap.entries:
        series = getattr(e, source)
        steps = np.asarray(series.get("step", []))
        idx = thin(steps, POINTS)
        for k, name in enumerate(e.names):
            if len(idx) and name in names:
                data.append(_line(e, step_numbers(steps, idx), wire_values(values(e, series, k, idx)), axis=names.index(name),
                                  width=1.8))
    for k, name in enumerate(names):
        layout[f"yaxis{_axis(k)}"]["title"] = {"text": panel_title(name), "font": {"size": 11}}
    layout["showlegend"] = False  # the ELBO chart's legend names the colours; hovers name each line
    return data, layout, names


def params_figure(snap, log_axes: bool = False) -> dict:
    """Each variational parameter, one panel each, one line per run, with its exact or
    reference optimum dashed; ``log_axes`` puts the panels of positive parameters on log axes
    (a concentration stalled at 5 under an optimum of 219 is then no flat line at 0)."""
    data, layout, names = _per_parameter(
        snap, "params", "Variational parameters per run (dashed: the optimum)", lambda n: n,
        lambda e, s, k, idx: np.asarray(s["theta"])[idx, k])
    span = _span(snap.entries)
    for k, name in enumerate(names):
        having = [e for e in snap.entries if name in e.names]
        optima = [float(e.optimum[e.names.index(name)]) if e.optimum is not None else None for e in having]
        data += _reference_lines(having, optima, k, "optimum", span, showlegend=False)
        values = np.concatenate([t["y"] for t in data if t["yaxis"] == f"y{_axis(k)}"] or [np.zeros(0)])
        if log_axes and log_scalable(np.asarray(values, dtype=float), None):
            layout[f"yaxis{_axis(k)}"].update({"type": "log", "autorange": True})
            layout[f"yaxis{_axis(k)}"]["title"]["text"] = f"{name} (log)"
    if log_axes:
        layout["uirevision"] += "-log"  # a zoom kept from a linear panel would be read as powers of ten
    return plotly_figure(data, layout)


def grads_figure(snap, span: int = 50) -> dict:
    """|d ELBO / d u| per parameter and run (EMA), log axes."""
    data, layout, names = _per_parameter(
        snap, "grads", f"|gradient| of the optimised (unconstrained) values per run, EMA span {span}",
        lambda n: f"|grad {n}|",
        lambda e, s, k, idx: np.maximum(smooth(np.abs(np.asarray(s["grad"])[:, k]), "ema", span)[idx], 1e-300))
    for k in range(len(names)):
        layout[f"yaxis{_axis(k)}"]["type"] = "log"
    return plotly_figure(data, layout)


def snr_figure(snap) -> dict:
    """Each parameter's gradient signal-to-noise ratio |mean|/sd per run (one estimate), log axes."""
    data, layout, names = _per_parameter(
        snap, "snr", "Gradient signal-to-noise ratio |mean|/sd per run (below 0.1: noise drowns the signal)",
        lambda n: f"{n} SNR", lambda e, s, k, idx: np.asarray(s["grad_snr"])[idx, k], source="variance")
    for k in range(len(names)):
        layout[f"yaxis{_axis(k)}"]["type"] = "log"
    return plotly_figure(data, layout)


def density_figures(snap) -> dict:
    """For runs with a 2-D latent: q against the posterior, one chart per run, q in its colour."""
    out = {}
    for e in snap.entries:
        if e.density.get("kind") != "2d":
            continue
        fig = density_figure(e)
        color = run_color(e.color)
        q = fig["data"][1]
        q["line"] = dict(q["line"], color=color)
        q["name"] = f"q of #{e.number}"
        fig["layout"]["title"]["text"] = f"#{e.number}: q against the posterior"
        fig["layout"]["uirevision"] = f"cmp-q-{e.number}"
        fig["layout"]["height"] = 320
        out[f"cmp-q-{e.number}"] = fig
    return out


def compare_figures(snap, method: str = "ema", span: int = 50, log_axes: bool = False) -> dict:
    """Every compare chart, keyed by its chart key: ELBO, parameters, |gradient|, SNR, and one
    q-against-posterior chart per run with a 2-D latent."""
    return {"cmp-elbo": elbo_figure(snap, method, span), "cmp-params": params_figure(snap, log_axes),
            "cmp-grads": grads_figure(snap, span), "cmp-snr": snr_figure(snap), **density_figures(snap)}


def bands(figures: dict) -> list:
    """The arrangement of ``compare_figures`` for ``live_charts``: the ELBO across the page,
    parameters beside |gradient|, the SNR, then the q charts three to a row."""
    out = [[["cmp-elbo"]], [["cmp-params"], ["cmp-grads"]], [["cmp-snr"]]]
    q = [k for k in figures if k.startswith("cmp-q-")]
    out += [[[k] for k in q[i:i + 3]] for i in range(0, len(q), 3)]
    return out
