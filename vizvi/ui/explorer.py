"""The variance explorer's side of the lab page: its controls, its computation, its figures.

The computation (``vizvi.variance_lab.compute``) runs in a background thread, so a long one
never blocks the page: the page shows its progress, any control can be changed meanwhile, and a
change cancels it and starts the new one. The figure of the last finished computation stays up
until the new one is done. The thread never calls Streamlit.
"""

from __future__ import annotations

import threading
import time
from typing import Optional

import streamlit as st

from vizvi import charts, variance_lab
from vizvi.errors import ConfigError
from vizvi.background import BackgroundCall
from vizvi.settings import LAB_RUN_SETTINGS, LAB_SETTING, LAB_SETTINGS, Kind
from vizvi.ui import controls, keys

POLL_S = 0.25  # how often the page looks at a computation's progress
IDLE_S = 120.0  # a computation nobody has looked at for this long stops (a closed tab, another page)


class LabJob:
    """A variance computation in a background thread, with its progress and outcome."""

    def __init__(self, config, previous: Optional[variance_lab.VarianceResult]):
        self.config = config
        self.previous = previous  # the last finished result, shown until this one is done
        self.fraction = 0.0
        self.started = self.seen = time.monotonic()
        self.cancel = threading.Event()
        self._call = BackgroundCall(lambda: variance_lab.compute(config, progress=self._progress, cancel=self.cancel),
                                    "vizvi-variance", "the computation failed", quiet=(variance_lab.Cancelled,))

    def _progress(self, fraction: float) -> None:
        self.fraction = fraction
        if time.monotonic() - self.seen > IDLE_S:
            self.cancel.set()  # nobody is watching: stop at the next batch

    @property
    def result(self) -> Optional[variance_lab.VarianceResult]:
        """The finished computation (None until then, or if it failed or was cancelled)."""
        return self._call.result

    @property
    def error(self) -> Optional[str]:
        """Why it failed, if it did."""
        return self._call.error

    @property
    def done(self) -> bool:
        """True once the result (or its error) is in."""
        return self._call.done

    def wait(self, seconds: float) -> bool:
        """True once done; waits at most ``seconds``."""
        return self._call.wait(seconds)

    @property
    def shown(self) -> Optional[variance_lab.VarianceResult]:
        """The result to draw: this one's once done, else the last finished one."""
        return self.result or self.previous


def _job() -> Optional[LabJob]:
    return st.session_state.get(keys.LAB_JOB)


def sidebar_controls() -> None:
    """The explorer's controls, drawn from its settings table."""
    sb = st.sidebar
    sb.header("q = N(mu, sigma²)")
    c1, c2 = sb.columns(2)
    controls.draw(c1, "mu", group=keys.LAB)
    controls.draw(c2, "sigma", group=keys.LAB)
    sb.header("The cost f(x; k)")
    controls.draw(sb, "cost", style="radio", group=keys.LAB, horizontal=True,
                  format_func=lambda c: f"{c}: {variance_lab.COSTS[variance_lab.Cost(c)].formula}")
    controls.draw(sb, "k", group=keys.LAB, help=LAB_SETTING["k"].describe() + " (the range, then how many values)")
    sb.header("Monte Carlo")
    controls.draw(sb, "samples", group=keys.LAB)
    controls.draw(sb, "replicates", group=keys.LAB, step=10_000)
    controls.draw(sb, "seed", group=keys.LAB)
    sb.header("View")
    controls.draw(sb, "log_y", group=keys.LAB)


def config_from_widgets():
    """The LabConfig the widgets describe (not yet validated)."""
    values = {}
    for s in LAB_RUN_SETTINGS:
        value = controls.widget_value(s.name, s.ui_default, group=keys.LAB)
        values[s.name] = s.parse(str(value).strip()) if s.kind is Kind.FLOAT else value
    return variance_lab.LabConfig(**values)


def settings_for_url() -> dict:
    """Every explorer setting as the URL query writes it."""
    out = {}
    for s in LAB_SETTINGS:
        v = controls.widget_value(s.name, s.ui_default, group=keys.LAB)
        out[s.flag] = v if isinstance(v, str) else s.to_text(v)
    return out


def load_query(query) -> list:
    """Take the explorer's settings from a URL ``query`` into its widgets; messages for bad ones."""
    errors = []
    values = controls.query_values(LAB_SETTINGS, query, errors)
    try:
        variance_lab.parse_k(values["k"])
    except ConfigError as e:
        errors.append(f"URL query: k={values['k']!r} ignored: {e.message}")
        values["k"] = LAB_SETTING["k"].ui_default
    for name, value in values.items():
        controls.set_widget(name, value, group=keys.LAB)
    return errors


def keep_computing(errors: list) -> None:
    """Start a computation for the widgets' settings unless the current one is for them; a bad
    setting goes to ``errors`` and leaves the current figure and computation alone."""
    try:
        config = variance_lab.validate_lab(config_from_widgets())
    except ConfigError as e:
        errors.append(f"{e} (the figure keeps the last good settings)")
        return
    job = _job()
    if job is not None and job.config == config and not job.cancel.is_set():
        return
    if job is not None:
        job.cancel.set()
    st.session_state[keys.LAB_JOB] = fresh = LabJob(config, job.shown if job is not None else None)
    fresh.wait(POLL_S)  # a small computation is drawn at once, without a progress bar first


def stop() -> None:
    """Stop the session's computation, if one is running (the page shows something else now)."""
    job = _job()
    if job is not None and not job.done:
        job.cancel.set()


def _progress_poll() -> None:
    job = _job()
    if job is None or job.done:
        st.rerun(scope="app")
    job.seen = time.monotonic()
    st.progress(job.fraction, text=f"Computing {job.config.replicates:,} replicates × {len(variance_lab.parse_k(job.config.k))} "
                                   f"values of k × 5 estimators… {job.fraction:.0%} ({time.monotonic() - job.started:.1f} s; "
                                   f"the first computation of a cost compiles it)")


def panel() -> None:
    """Progress while computing, then the figures: variance against k, the means against the
    exact gradient, and the cost with its derivative."""
    job = _job()
    if job is None:
        return
    job.seen = time.monotonic()
    if job.error:
        st.error(job.error)
    if not job.done:
        st.fragment(_progress_poll, run_every=POLL_S)()
    result = job.shown
    if result is None:
        return
    log_y = bool(controls.widget_value("log_y", True, group=keys.LAB))
    st.plotly_chart(charts.explorer_variance_figure(result, log_y), key="explorer-variance")
    st.caption(f"{result.replicates:,} independent estimates per point, computed in {result.seconds:.2f} s. "
               + _reading(result) + " Baseline of score-baseline: "
               + variance_lab.LAB_ESTIMATORS[variance_lab.LabEstimator.SCORE_BASELINE].baseline + ".")
    st.plotly_chart(charts.explorer_cost_figure(result.config["cost"], result.config["mu"], result.config["sigma"], result.k),
                    key="explorer-cost")
    st.plotly_chart(charts.explorer_mean_figure(result), key="explorer-mean")
    with st.expander("The estimators", expanded=False):
        for name, spec in variance_lab.LAB_ESTIMATORS.items():
            line = f"**{name.value}**: {spec.description}; {spec.evaluations} evaluations of f per sample for both parameters."
            if spec.baseline:
                line += f" Baseline: {spec.baseline}."
            st.markdown(line)
        st.markdown("Coupling (common random numbers) mirrors the Rayleigh draw for mu and draws the Normal part as "
                    "Maxwell × uniform for sigma. For sigma it lowers the variance broadly; for mu it lowers it where the "
                    "cost is symmetric around mu and can raise it where the cost is monotone over q's mass: watch "
                    "`measure-valued` against `measure-valued-coupled` as k moves away from mu.")


def _reading(result) -> str:
    """One sentence on what the figure shows: the quietest estimator for each parameter at
    the k values' ends and middle, computed from this result (never typed in)."""
    k = result.k
    picks = sorted({0, len(k) // 2, len(k) - 1})
    parts = []
    for param in ("mu", "sigma"):
        best = [min(result.variance, key=lambda e: result.variance[e][param][i]) for i in picks]
        parts.append(f"d/d{param}: " + ", ".join(f"k = {k[i]:g}: {b}" for i, b in zip(picks, best)))
    return "Lowest variance per estimate — " + "; ".join(parts) + "."
