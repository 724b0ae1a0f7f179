"""The run page's parts: buttons, status line, diagnosis banners, live charts, export.

The page refreshes in three fragments at three rates (``live_panels``): every fragment run
costs the browser a React pass per message (about five for the run itself, one per element),
and its main thread is what limits the chart rate, so text that changes slowly refreshes
slowly. Fragments read the trainer through ``snapshot()`` only.
"""

from __future__ import annotations

import enum
from typing import Optional

import streamlit as st

from vizvi import charts
from vizvi.history import to_csv, to_json
from vizvi.live_chart import live_charts
from vizvi.status import Status
from vizvi.ui import controls, keys, session
from vizvi.worker import Trainer

UPDATE_S = 0.1  # chart fragment period while training; a busy browser settles at a lower rate
STATUS_S = 0.5  # status line fragment period: text needs no animation rate
BANNER_S = 2.0  # diagnosis fragment period: verdicts look at the last thousand steps anyway
PREPARE_POLL_S = 0.3  # how often the page looks whether a run being prepared is ready
CHART_BANDS = [[["elbo", "params"], ["density", "grads"]], [["variance"]]]
DEFAULT_SPAN = 50


class Action(enum.Enum):
    """What the buttons (or a "Try this") ask the page to do."""

    START = "start"
    PAUSE = "pause"
    STEP = "step"
    RESET = "reset"
    RESET_AND_START = "reset-and-start"


def _ss():
    return st.session_state


def presentation_css(enabled: bool) -> None:
    """Bigger type and no sidebar, for talks."""
    if enabled:
        st.html(
            "<style>"
            "section[data-testid='stSidebar']{display:none}"
            "html, .stMarkdown p, .stAlert p {font-size:1.25rem !important}"
            "h1{font-size:2.6rem !important}"
            "</style>"
        )


def presentation_toggle() -> None:
    """With the sidebar hidden, a toggle on the page to leave presentation mode."""
    if controls.widget_value("present"):
        st.toggle("Presentation mode", key=keys.PRESENT_MAIN, value=True,
                  on_change=lambda: controls.set_widget("present", False))


def _on_pause(slot: session.Slot) -> None:
    t = session.trainer(slot)
    if t is not None:
        t.pause()


def action_buttons(slot: session.Slot = session.RUN, reset_help: str = "a fresh run with the current settings") -> Optional[Action]:
    """Start / Pause / Step / Reset of the trainer in ``slot``; returns the action asked for (a
    "Try this" counts)."""
    cols = st.columns([1, 1, 1, 1, 4])
    action = None
    if cols[0].button("Start", type="primary", width="stretch"):
        action = Action.START
    # Pause acts in its callback, before the rerun redraws the page: the charts stop at the
    # click rather than one script run later.
    if cols[1].button("Pause", width="stretch", on_click=_on_pause, args=(slot,)):
        action = Action.PAUSE
    if cols[2].button("Step", width="stretch", help="advance one update's worth of steps"):
        action = Action.STEP
    if cols[3].button("Reset", width="stretch", help=reset_help):
        action = Action.RESET
    pending = _ss().pop(keys.PENDING_ACTION, None)
    return Action(pending) if pending else action


def _on_try_suggestion(changes: dict) -> None:
    controls.apply_suggestion(changes)
    _ss()[keys.PENDING_ACTION] = Action.RESET_AND_START.value


def _status_line(snap, trainer: Trainer) -> None:
    parts = [f"**{snap.status}**", f"step {snap.step:,}"]
    if snap.steps_per_s:
        parts.append(f"{snap.steps_per_s:,.0f} steps/s")
    if snap.compile_s:
        parts.append(f"compiled in {snap.compile_s:.1f} s")
    parts.append(f"data: {trainer.run.dataset.source}")
    st.markdown(" · ".join(parts))


def _banners(snap) -> None:
    if snap.error:
        st.error(f"The run stopped on an internal error: {snap.error}. Press Reset to start again.")
    if snap.status is Status.COMPILING:
        st.info("Compiling this configuration with XLA (first time only; the compiled program is shared by all sessions)…", icon="⏳")
    if snap.divergence:
        st.error(f"Run paused: {snap.divergence['message']}", icon="🛑")
    offered = {}  # suggestion config -> the parameter whose banner offers it
    for name, verdict in snap.diagnosis.items():
        if not verdict["status"].stalled:
            continue
        suggestion = verdict.get("suggestion")
        same = offered.get(repr(suggestion["config"])) if suggestion else None
        if same:  # one fix for several parameters: said and offered once, on the first banner
            st.warning(f"**{name}: {verdict['status']}.** {verdict['text']} **Try:** the same as for {same}.", icon="⚠️")
            continue
        if suggestion:
            offered[repr(suggestion["config"])] = name
        cols = st.columns([5, 1])
        cols[0].warning(f"**{name}: {verdict['status']}.** {verdict['text']}" + (f" **Try:** {suggestion['text']}." if suggestion else ""), icon="⚠️")
        if suggestion and cols[1].button("Try this", key=keys.try_suggestion(name), on_click=_on_try_suggestion,
                                         args=(suggestion["config"],), help="apply the suggestion to a fresh run", width="stretch"):
            # The click reran only this fragment; the new run is made by a full rerun.
            st.rerun(scope="app")
    if snap.status is Status.FINISHED:
        st.success(f"Finished {snap.step:,} steps.")


def status_panel(slot: session.Slot = session.RUN) -> None:
    """The status line (a fragment refreshing every ``STATUS_S`` while training)."""
    t = session.trainer(slot)
    _status_line(t.snapshot(diagnosis=False, density=False), t)
    # The fragments cannot change their own refresh periods: when training stops on its own
    # (finished, diverged, a Step done), one full rerun settles the page.
    if _ss().get(keys.LIVE_REFRESH, False) and not t.busy:
        _ss()[keys.LIVE_REFRESH] = False
        st.rerun(scope="app")


def banner_panel() -> None:
    """Errors, diagnosis and "Try this" (a fragment refreshing every ``BANNER_S`` while training).

    A fixed container: banners come and go, and an element whose position in the element tree
    shifts is remounted by Streamlit; inside the container nothing after it shifts.
    """
    with st.container():
        _banners(session.trainer().snapshot(density=False))


def chart_panel() -> None:
    """The live charts (a fragment refreshing every ``UPDATE_S`` while training).

    All five charts are one element: each update is then a single delta, one React pass in
    the browser instead of five (see ``live_charts``), and every figure is built before any
    of it is sent, so the update arrives in one piece rather than trickling out between the
    trainer thread's turns at the interpreter.
    """
    snap = session.trainer().snapshot(diagnosis=False)
    span = controls.widget_value("span", DEFAULT_SPAN)
    if not isinstance(span, int) or span < 1:
        st.error(f"span: smoothing span must be a whole number of at least 1, got {span!r}; drawing with {DEFAULT_SPAN}")
        span = DEFAULT_SPAN
    figures = charts.all_figures(snap, controls.widget_value("smoothing", "ema"), span,
                                 log_axes=controls.widget_value("log_axes", False),
                                 per_evaluation=controls.widget_value("variance_per", "estimate") == "evaluation")
    if controls.widget_value("present", False):
        for fig in figures.values():
            fig["layout"]["font"] = {"size": 18}
    live_charts(figures, key="live", bands=CHART_BANDS)


def live_panels(trainer: Trainer) -> None:
    """Status line, banners and charts, each refreshing at its own rate while the run is busy."""
    busy = trainer.busy
    _ss()[keys.LIVE_REFRESH] = busy
    st.fragment(status_panel, run_every=STATUS_S if busy else None)()
    st.fragment(banner_panel, run_every=BANNER_S if busy else None)()
    st.fragment(chart_panel, run_every=UPDATE_S if busy else None)()


def _preparing_poll(slot: session.Slot) -> None:
    if session.preparing(slot) is None or session.preparing(slot).done:
        st.rerun(scope="app")


def preparing_panel(slot: session.Slot = session.RUN, what: str = "run") -> None:
    """While a new run (or ``what``) is prepared in the background: say so, and look every
    ``PREPARE_POLL_S``."""
    prep = session.preparing(slot)
    if prep is None:
        return
    then = " It starts as soon as it is ready." if prep.start_when_ready else " Press Start to start it as soon as it is ready."
    st.info(f"Preparing a new {what} ({prep.config.model}, {prep.config.family}): data and the reference posterior…"
            f"{then} The previous {what} is paused.", icon="⏳")
    st.fragment(_preparing_poll, run_every=PREPARE_POLL_S)(slot)


def export_panel(trainer: Trainer) -> None:
    """Downloads of the run as CSV and JSON (the CLI's schema), generated on click, running or not."""
    with st.expander("Export and share"):
        c1, c2 = st.columns(2)
        c1.download_button("Download CSV", data=lambda: to_csv(trainer.record()), file_name="vizvi-run.csv", mime="text/csv")
        c2.download_button("Download JSON", data=lambda: to_json(trainer.record()), file_name="vizvi-run.json",
                           mime="application/json")
        st.caption("Every setting is in this page's URL: copy it to share a demo that reproduces exactly (seed included). "
                   "Each chart's camera icon saves a PNG. A download taken while the run trains holds its steps so far.")
