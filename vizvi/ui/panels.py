"""The run page's parts: buttons, status line, diagnosis banners, the reference posterior, the
view of many parameters, live charts, what they mean, export.

The page refreshes in fragments at their own rates (``live_panels``: the status line, the
banners, the charts, and the reference while MCMC computes it): every fragment run
costs the browser a React pass per message (about five for the run itself, one per element),
and its main thread is what limits the chart rate, so text that changes slowly refreshes
slowly. Fragments read the trainer through ``snapshot()`` only.
"""

from __future__ import annotations

import enum
import threading
import time
from typing import NamedTuple, Optional

import numpy as np
import streamlit as st

from vizvi import charts, focus, latent_charts, live_feed, serving
from vizvi.diagnostics import MIN_STEPS
from vizvi.history import to_csv, to_json
from vizvi.live_chart import app_path, asset_urls, encode_panel, live_charts
from vizvi.psis import KHAT_DRAWS, KHAT_THRESHOLD
from vizvi.status import Status
from vizvi.ui import controls, keys, runtime, session
from vizvi.worker import Trainer, drawn_from_moments

UPDATE_S = 0.1  # chart fragment period while training; a busy browser settles at a lower rate
STATUS_S = 0.5  # status line fragment period: text needs no animation rate
# ... where the charts come from the chart feed, which shows the newest step several times a
# second: every fragment run is a script run on the server and a React pass in the browser.
# Eight sessions on a 2-core server, their pages not drawing (bench/load.py), got 1.5 chart
# updates/s each with the status line every 0.5 s, 1.9 every 1 s and 2.7 every 2 s. There the
# status line and the banners refresh together, one fragment (``status_and_banner_panel``).
FED_STATUS_S = 2.0
BANNER_S = 2.0  # diagnosis fragment period: verdicts look at the last thousand steps anyway
FIRST_CHUNK_WAIT_S = 0.2  # after Start on a compiled program, the script run waits this long at most for the first chunk
# ... and, once the chart feed has sent it, this long before the page's full rerun: the browser
# draws six charts in about 100 ms (2 cores), and the rerun's hundred deltas, arriving first,
# held that drawing back by about 300 ms (measured: the feed's update in at 70 ms, drawn at 460).
FIRST_DRAW_S = 0.15
PREPARE_POLL_S = 0.3  # how often the page looks whether a run being prepared is ready
REFERENCE_POLL_S = 0.5  # how often the reference panel shows an MCMC job's progress
SLOW_S = 0.5  # while training a run with many parameters, its slow charts are redrawn about this often (``SlowChartHold``)
# Of a run with many parameters, the charts of what is measured every K steps and of its
# summaries; the per-step charts (ELBO, parameters, gradients) keep the full rate.
SLOW_CHARTS = ("variance", "khat", "density", "overview")
CHART_BANDS = [[["elbo", "params"], ["density", "grads"]], [["variance"], ["khat"]]]
OVERVIEW_BAND = [[["overview"]]]  # below the others, for a family with more parameters than they draw
DEFAULT_SPAN = 50
MAX_BANNERS = 4  # stall banners in full; more stalled parameters are named in one line
RHAT_OK = 1.01  # an MCMC reference's R-hat above this: its chains disagree (Vehtari et al. 2021)


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


def action_buttons(slot: session.Slot = session.RUN, reset_help: str = "a fresh run with the current settings",
                   fast_start: bool = False) -> Optional[Action]:
    """Start / Pause / Step / Reset of the trainer in ``slot``; returns the action asked for (a
    "Try this" counts).

    With ``fast_start`` (the run page) the buttons are a fragment of their own (see
    ``_fast_buttons``), so that a Start draws its first steps before the page is redrawn.
    """
    if fast_start:
        st.fragment(_fast_buttons)(slot, reset_help)
        pending = _ss().pop(keys.PENDING_ACTION, None)
        return Action(pending) if pending else None
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


def _ask(action: Action, slot: session.Slot) -> None:
    """A button's callback: the action for the next full run; Pause and Start act at once."""
    _ss()[keys.PENDING_ACTION] = action.value
    t = session.trainer(slot)
    if t is None or session.preparing(slot) is not None:
        return  # a Start while preparing starts what is prepared: the full run sees to it
    if action is Action.PAUSE:
        t.pause()
    elif action is Action.START:
        t.set_speed(session.speed())
        t.start()


def _fast_buttons(slot: session.Slot, reset_help: str) -> None:
    """The buttons as a fragment: a click reruns only this, and its callback has already acted.

    A click on a button outside a fragment reruns the whole page before anything else: on a
    compiled program that made Start's first steps wait about 150 ms for the page's script run
    and as long again for the browser's pass over the page (measured, bench/first_data.py).
    Here a Start starts the trainer in its callback, waits for the first chunk, for the charts'
    feed (``vizvi.live_feed``) to send it and for the browser to draw it (``FIRST_DRAW_S``), and
    only then asks for the full run that redraws the rest of the page (the status line, the
    fragments' refresh rates). In a full run (AppTest; a page without fragments) the callbacks'
    action is simply taken by that run.
    """
    cols = st.columns([1, 1, 1, 1, 4])
    cols[0].button("Start", type="primary", width="stretch", on_click=_ask, args=(Action.START, slot))
    cols[1].button("Pause", width="stretch", on_click=_ask, args=(Action.PAUSE, slot))
    cols[2].button("Step", width="stretch", help="advance one update's worth of steps", on_click=_ask,
                   args=(Action.STEP, slot))
    cols[3].button("Reset", width="stretch", help=reset_help, on_click=_ask, args=(Action.RESET, slot))
    if _ss().get(keys.PENDING_ACTION) is None or not runtime.fragment_rerun():
        return
    t = session.trainer(slot)
    if _ss()[keys.PENDING_ACTION] == Action.START.value and t is not None and t.run.is_compiled and t.running:
        if t.wait_for_steps(FIRST_CHUNK_WAIT_S):
            fed = _ss().get(keys.CHART_FEED)
            if fed is not None and fed.trainer_id == id(t):  # the browser asks the feed for the new steps
                if fed.feed.wait_sent(time.monotonic(), FIRST_CHUNK_WAIT_S):
                    time.sleep(FIRST_DRAW_S)
        _ss()[keys.STARTED_EARLY] = True
    st.rerun(scope="app")


def _on_try_suggestion(changes: dict) -> None:
    controls.apply_suggestion(changes)
    _ss()[keys.PENDING_ACTION] = Action.RESET_AND_START.value


class Slots:
    """``count`` placeholders (``st.empty``) filled front to back, the rest left empty.

    A fragment whose elements come and go draws the same number of elements on every run this
    way, so an element that goes is replaced in place by an empty one. Left to Streamlit, an
    element that a fragment run no longer draws is removed by the frontend's stale-element
    cleanup at the end of the run, and that cleanup can miss when several fragments refresh at
    once (streamlit#16708): on the run page the compile progress line stayed, frozen, up to
    20 s after the status line beside it said "compiled in 8.7 s".
    """

    def __init__(self, count: int):
        self._slots = [st.empty() for _ in range(count)]
        self._taken = 0

    def take(self):
        """The next placeholder (IndexError past ``count``: a caller's count is its maximum)."""
        slot = self._slots[self._taken]
        self._taken += 1
        return slot


def _status_line(snap, trainer: Trainer) -> None:
    parts = [f"**{snap.status}**", f"step {snap.step:,}"]
    if snap.steps_per_s:
        parts.append(f"{snap.steps_per_s:,.0f} steps/s")
    if snap.compile_s:
        parts.append(f"compiled in {snap.compile_s:.1f} s")
    parts.append(f"data: {trainer.run.dataset.source}")
    st.markdown(" · ".join(parts))
    serving_notes(trainer)


def serving_notes(trainer: Trainer) -> None:
    """A queued trainer's place in line; a preview's compile progress; preview steps that stay
    (in ``Slots``: each comes and goes while the status fragment refreshes)."""
    notes = Slots(3)
    place = trainer.queue_position()
    if place is not None:
        training, waiting = serving.ADMISSION.counts()
        limit = serving.ADMISSION.limit
        notes.take().info(f"**Queued:** this server trains at most {limit} run{'s' if limit != 1 else ''} at once and "
                          f"{'all are' if limit != 1 else 'it is'} busy "
                          f"({training} training, {waiting} waiting). This run starts by itself when a place is free: "
                          + ("it is next." if place == 1 else f"{place - 1} before it."), icon="⏳")
    progress = trainer.compile_progress()
    if progress is not None:
        of = f" of about {progress.typical_seconds:.0f} s" if progress.typical_seconds else ""
        fraction = min(progress.seconds / progress.typical_seconds, 0.99) if progress.typical_seconds else 0.0
        notes.take().progress(fraction, text=f"Compiling this configuration with XLA in the background: {progress.seconds:.1f} s{of}. "
                                            f"Meanwhile it trains uncompiled ({progress.preview_steps:,} steps so far); when the "
                                            f"compiled program is ready they are recomputed with it, so the run is exactly the one "
                                            f"its URL makes.")
    # Not while a paused run's preview steps are being recomputed (its program just built):
    # those are about to be replaced, and the page said a setting had changed when none had.
    left = trainer.uncompiled_steps_kept()
    if left:
        notes.take().caption(f"The first {left:,} steps ran uncompiled, before the compiled program was ready, and a setting "
                             f"changed before they could be recomputed: their random draws differ from those of a fresh run "
                             f"of this page's URL.")


def _banners(snap) -> None:
    # One slot per banner that can show at once (``Slots``): error, compiling, divergence,
    # MAX_BANNERS stalls, the rest of them, the posterior check, finished.
    slots = Slots(MAX_BANNERS + 6)
    if snap.error:
        slots.take().error(f"The run stopped on an internal error: {snap.error}. Press Reset to start again.")
    if snap.status is Status.COMPILING:
        slots.take().info("Compiling this configuration with XLA (first time only; the compiled program is shared by all sessions)…", icon="⏳")
    if snap.divergence:
        slots.take().error(f"Run paused: {snap.divergence['message']}", icon="🛑")
    offered = {}  # suggestion config -> the parameter whose banner offers it
    stalled = [(name, verdict) for name, verdict in snap.diagnosis.items() if verdict["status"].stalled]
    for name, verdict in stalled[:MAX_BANNERS]:
        suggestion = verdict.get("suggestion")
        same = offered.get(repr(suggestion["config"])) if suggestion else None
        if same:  # one fix for several parameters: said and offered once, on the first banner
            slots.take().warning(f"**{name}: {verdict['status']}.** {verdict['text']} **Try:** the same as for {same}.", icon="⚠️")
            continue
        if suggestion:
            offered[repr(suggestion["config"])] = name
        cols = slots.take().container().columns([5, 1])
        cols[0].warning(f"**{name}: {verdict['status']}.** {verdict['text']}" + (f" **Try:** {suggestion['text']}." if suggestion else ""), icon="⚠️")
        if suggestion and cols[1].button("Try this", key=keys.try_suggestion(name), on_click=_on_try_suggestion,
                                         args=(suggestion["config"],), help="apply the suggestion to a fresh run", width="stretch"):
            # The click reran only this fragment; the new run is made by a full rerun.
            st.rerun(scope="app")
    rest = stalled[MAX_BANNERS:]
    if rest:  # tens of banners (a model file's latent) would push the charts off the page
        slots.take().warning(f"{len(rest)} more stalled: " + ", ".join(f"{name} ({verdict['status']})" for name, verdict in rest)
                             + ". The overview heatmap below shows every parameter.", icon="⚠️")
    if snap.step >= MIN_STEPS:  # before, q is where it started: nothing to judge yet
        _posterior_check(snap.posterior_check, slots.take())
    if snap.status is Status.FINISHED:
        slots.take().success(f"Finished {snap.step:,} steps.")


def _posterior_check(check: dict, slot) -> None:
    """What k-hat and the latent moments against the reference say of q as a whole, in ``slot``
    (a warning when k-hat is above the threshold or a latent is off the reference)."""
    lines = check.get("lines") if check else None
    if not lines:
        return
    bad = (check.get("khat") is not None and check["khat"] > KHAT_THRESHOLD) or bool(check.get("off"))
    text = "**q against the target:** " + " ".join(lines)
    if bad:
        slot.warning(text, icon="🔎")
    else:
        slot.info(text, icon="🔎")


def status_panel(slot: session.Slot = session.RUN) -> None:
    """The status line (a fragment refreshing every ``STATUS_S`` while training)."""
    t = session.trainer(slot)
    with st.container():
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
        snap = session.trainer().snapshot(density=False)
        _banners(snap)
    _choose_focus(snap)


def status_and_banner_panel() -> None:
    """The status line and the banners as one fragment (a page whose charts come from the
    feed, where both refresh every 2 s): one fragment run, so one pass of React over the page,
    every 2 s instead of two. Those passes were about 60 ms a second of one page's main thread
    (a Chromium CPU profile of one of eight pages training, not drawing), and eight such pages
    used 0.56-0.61 cores with both fragments every 20 s against 0.82-0.90 every 2 s
    (bench/load.py's server-only phase); together every 2 s: 0.73-0.81. With the eight pages
    drawing, the gain is within the bench's noise."""
    status_panel()
    banner_panel()


def _choose_focus(snap) -> None:
    """Pick the parameters the charts draw unasked (``focus.auto_focus``), here at the
    diagnosis' rate: picked at every chart update, they would swap panels at every one."""
    if len(snap.names) <= focus.MAX_SHOWN:
        return
    trainer_id, previous = _ss().get(keys.AUTO_FOCUS, (None, ()))
    same_run = trainer_id == id(session.trainer())
    gaps = focus.gap(np.array(list(snap.params.values())), snap.reference_match)
    _ss()[keys.AUTO_FOCUS] = (id(session.trainer()), focus.auto_focus(
        snap.names, gaps=gaps, diagnosis=snap.diagnosis, previous=previous if same_run else ()))


def shown_parameters(snap) -> Optional[list]:
    """Indices of the parameters the charts draw (``focus.shown``): the user's choice, else the
    automatic one; None (all of them) for a family with few."""
    if len(snap.names) <= focus.MAX_SHOWN:
        return None
    trainer_id, auto = _ss().get(keys.AUTO_FOCUS, (None, ()))
    return focus.shown(snap.names, _ss().get(keys.FOCUS) or (), auto if trainer_id == id(session.trainer()) else ())


def latent_view(snap, shown: Optional[list]) -> Optional[latent_charts.LatentView]:
    """What q against the posterior shows of a latent in R^d, from the view's widgets (None for
    a latent drawn whole)."""
    if snap.density.get("kind") != "gaussian":
        return None
    names = list(snap.density["coordinates"])
    chosen = [names.index(c) for c in _ss().get(keys.LATENT_COORDINATES) or () if c in names]
    pair = [names.index(c) for c in _ss().get(keys.LATENT_PAIR) or () if c in names]
    return latent_charts.LatentView(
        mode=_ss().get(keys.LATENT_MODE) or "marginals",
        coordinates=tuple(chosen) or latent_charts.default_coordinates(snap, shown if shown is not None else range(len(snap.names))),
        pair=tuple(pair) if len(pair) == 2 else (0, 1))


class ChartView(NamedTuple):
    """What the chart panel shows of a run besides the run itself: the page's view settings,
    read in the script run, so that a feed (``vizvi.live_feed``) can build the same figures
    in another thread."""

    method: str
    span: int
    log_axes: bool
    per_evaluation: bool
    shown: Optional[tuple]
    latent: Optional[latent_charts.LatentView]
    overview: Optional[str]
    present: bool

    @property
    def bands(self) -> list:
        """The charts' arrangement (``live_charts``)."""
        return CHART_BANDS + (OVERVIEW_BAND if self.overview else [])

    @property
    def slow(self) -> tuple:
        """The charts held between their refreshes (``SlowChartHold``): those of a family with
        many parameters."""
        return SLOW_CHARTS if self.overview else ()

    def figures(self, snap) -> dict:
        """Every chart's figure of ``snap`` in this view."""
        figures = charts.all_figures(snap, self.method, self.span, log_axes=self.log_axes,
                                     per_evaluation=self.per_evaluation,
                                     focus=list(self.shown) if self.shown is not None else None,
                                     latent_view=self.latent, overview=self.overview)
        if self.present:
            for fig in figures.values():
                fig["layout"]["font"] = {"size": 18}
        return figures


def chart_view(snap) -> ChartView:
    """The view settings of the page, for ``snap``'s run (a bad span is named, and the
    default drawn)."""
    span = controls.widget_value("span", DEFAULT_SPAN)
    if not isinstance(span, int) or span < 1:
        st.error(f"span: smoothing span must be a whole number of at least 1, got {span!r}; drawing with {DEFAULT_SPAN}")
        span = DEFAULT_SPAN
    shown = shown_parameters(snap)
    overview = None
    if shown is not None:
        available = latent_charts.overviews_available(snap)
        overview = _ss().get(keys.OVERVIEW) if _ss().get(keys.OVERVIEW) in available else available[0]
    return ChartView(method=controls.widget_value("smoothing", "ema"), span=span,
                     log_axes=controls.widget_value("log_axes", False),
                     per_evaluation=controls.widget_value("variance_per", "estimate") == "evaluation",
                     shown=tuple(shown) if shown is not None else None, latent=latent_view(snap, shown),
                     overview=overview, present=controls.widget_value("present", False))


class ChartFeed(NamedTuple):
    """The page's feed (``vizvi.live_feed.Feed``) of a trainer's charts in a view; ``revision``
    counts the view's changes (an update's stamp is "revision.step")."""

    trainer_id: int
    feed: live_feed.Feed
    view: ChartView
    revision: int


def chart_panel() -> None:
    """The live charts (a fragment refreshing every ``UPDATE_S`` while training; slower where
    the browser fetches the updates from a feed, see ``chart_feed``).

    All the charts are one element: each update is then a single delta, one React pass in the
    browser instead of one per chart (see ``live_charts``), and every figure is built before
    any of it is sent, so the update arrives in one piece rather than trickling out between
    the trainer thread's turns at the interpreter. A family with many parameters draws a few
    of them (``shown_parameters``) and adds the overview of all; its slow charts are held
    between their refreshes (``SlowChartHold``).
    """
    trainer = session.trainer()
    snap = trainer.snapshot(diagnosis=False)
    view = chart_view(snap)
    hold = _slow_hold()
    figures = _held_figures(trainer, snap, view, hold)
    fed = chart_feed(trainer, view, hold) if live_feed.route_installed() else None
    live_charts(figures, key="live", bands=view.bands,
                stamp=f"{fed.revision}.{snap.step}" if fed else None, feed=app_path(fed.feed.path) if fed else None)


def _held_figures(trainer: Trainer, snap, view: ChartView, hold: "SlowChartHold") -> dict:
    """The figures of ``snap`` in ``view``, the slow ones held (all fresh at rest)."""
    return hold.apply(view.figures(snap), view.slow, (id(trainer), id(snap.reference), view), fresh=not trainer.busy)


def chart_feed(trainer: Trainer, view: ChartView, hold: "SlowChartHold") -> ChartFeed:
    """The feed of ``trainer``'s charts in ``view`` (made, or revised when the view changed):
    held in the session state, so that it goes with the session."""
    held = _ss().get(keys.CHART_FEED)
    if held is not None and held.trainer_id == id(trainer) and held.view == view:
        return held
    revision = held.revision + 1 if held is not None and held.trainer_id == id(trainer) else 0
    assets = asset_urls()  # read here, in the script run
    stamp, payload = _feed_functions(trainer, view, hold, revision, assets)
    if held is not None and held.trainer_id == id(trainer):
        held.feed.revise(stamp, payload)
        feed = held.feed
    else:
        feed = live_feed.Feed(stamp, payload)
    fed = ChartFeed(id(trainer), feed, view, revision)
    _ss()[keys.CHART_FEED] = fed
    return fed


def _feed_functions(trainer: Trainer, view: ChartView, hold: "SlowChartHold", revision: int, assets: tuple) -> tuple:
    """The ``stamp`` and ``payload`` functions of a feed (see ``vizvi.live_feed.Feed``); they
    run in the server's worker threads and read the trainer through ``snapshot()`` only."""
    def stamp() -> str:
        return f"{revision}.{trainer.run.step}"

    def payload() -> tuple:
        snap = trainer.snapshot(diagnosis=False)
        figures = _held_figures(trainer, snap, view, hold)
        at = f"{revision}.{snap.step}"
        return at, encode_panel(figures, key="live", bands=view.bands, assets=assets, stamp=at)

    return stamp, payload


def _slow_hold() -> "SlowChartHold":
    """The session's ``SlowChartHold`` (shared by the chart fragment and the chart feed)."""
    hold = _ss().get(keys.SLOW_FIGURES)
    if not isinstance(hold, SlowChartHold):
        hold = _ss()[keys.SLOW_FIGURES] = SlowChartHold()
    return hold


class SlowChartHold:
    """Holds the slow charts of a run with many parameters between their refreshes.

    The browser's main thread limits the chart rate, and every Plotly update costs it 10 to 40
    ms per chart. With tens of parameters, seven charts redrawn ten times a second left each
    at about two updates a second; what is measured every K steps (variance, k-hat) and the
    summaries (q's marginals, the overview) change little within a tenth of a second. A chart
    sent byte-identical is skipped by the browser (``live_chart.js``), so held charts cost it
    nothing, one at a time keeps every update about equally cheap, and the per-step charts
    keep their rate. Thread-safe: a feed builds updates in the server's worker threads.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._signature = None
        self._drawn: dict = {}  # chart key -> (when it was drawn, its figure)

    def apply(self, figures: dict, slow: tuple, signature: tuple, fresh: bool, now: Optional[float] = None) -> dict:
        """``figures`` with those of the ``slow`` charts replaced by the ones last drawn: each
        update redraws at most one of them, the one drawn longest ago, once ``SLOW_S`` has
        passed since (all of them when ``fresh`` asks for it or the view, ``signature``,
        changed)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if fresh or self._signature != signature:
                self._signature = signature
                self._drawn = {k: (now, figures[k]) for k in slow if k in figures}
                return figures
            drawn = self._drawn
            due = [k for k in slow if k in figures and (k not in drawn or now - drawn[k][0] >= SLOW_S)]
            if due:
                oldest = min(due, key=lambda k: drawn[k][0] if k in drawn else -1.0)
                drawn[oldest] = (now, figures[oldest])
            return {**figures, **{k: fig for k, (_, fig) in drawn.items() if k in figures}}


def live_panels(trainer: Trainer) -> None:
    """Status line, banners, the reference posterior and charts, each refreshing at its own rate
    while the run is busy (the reference while MCMC computes it); between the reference and the
    charts, the view's controls of a family with many parameters."""
    busy = trainer.busy
    fed = live_feed.route_installed()
    _ss()[keys.LIVE_REFRESH] = busy
    if fed:
        st.fragment(status_and_banner_panel, run_every=FED_STATUS_S if busy else None)()
    else:
        st.fragment(status_panel, run_every=STATUS_S if busy else None)()
        st.fragment(banner_panel, run_every=BANNER_S if busy else None)()
    _, job = trainer.reference_state()
    polling = job is not None and not job.done
    _ss()[keys.REFERENCE_REFRESH] = polling
    st.fragment(reference_panel, run_every=REFERENCE_POLL_S if polling else None)()
    view_controls(trainer)
    # Fed charts fetch their updates themselves; the fragment then reruns only to follow a view
    # that changes by itself. Each of its runs builds and sends all six figures, which the
    # browser draws once more: every 2 s, with eight sessions on a 2-core server, that cost
    # each a good part of its updates (bench/load.py).
    if fed:
        every = BANNER_S if view_follows_the_run(trainer) else None
    else:
        every = UPDATE_S
    st.fragment(chart_panel, run_every=every if busy else None)()


def view_follows_the_run(trainer: Trainer) -> bool:
    """Whether the chart view can change by itself while the run trains: which parameters a
    family with many draws (chosen with the diagnosis, ``shown_parameters``) and which
    coordinates of a latent in R^d (``latent_view``'s default follows q)."""
    run = trainer.run
    return len(run.family.param_names) > focus.MAX_SHOWN or drawn_from_moments(run)


def reference_panel() -> None:
    """What the run is measured against: the exact or grid posterior, a model file's own
    moments, or its MCMC reference: its progress while NUTS runs in the background (a fragment
    polling every ``REFERENCE_POLL_S``), then its ESS, R-hat and divergences, with a warning
    where they say the reference itself is unreliable."""
    reference, job = session.trainer().reference_state()
    polling = job is not None and not job.done
    with st.container():
        if polling:
            st.progress(min(max(job.progress, 0.0), 1.0),
                        text=f"Reference posterior by MCMC (NUTS, in the background; training does not wait): "
                             f"{job.phase}, {100 * job.progress:.0f}%")
        elif job is not None and job.error:
            st.error(f"The MCMC reference failed: {job.error}. The run trains on without a reference posterior.")
        elif reference is not None:
            _reference_summary(reference)
    # The fragment cannot stop its own polling: when the job ends, one full rerun settles the
    # page (and draws the charts against the reference at once, even while paused).
    if _ss().get(keys.REFERENCE_REFRESH) and not polling:
        _ss()[keys.REFERENCE_REFRESH] = False
        st.rerun(scope="app")


def _reference_summary(reference) -> None:
    """One line on the reference posterior; an MCMC reference's diagnostics, with warnings."""
    if reference.has_density:
        what = f"exact ({reference.distribution})" if reference.kind == "exact" else "computed on a grid"
        st.caption(f"Reference posterior: {what}.")
        return
    if reference.kind != "mcmc" or not reference.mcmc:
        st.info("Reference posterior: the model file's own mean and sd of each latent (in the model's coordinates; "
                "no draws, and no log evidence).", icon="📄")
        return
    m = reference.mcmc
    st.info(f"Reference posterior by MCMC: NUTS, {m['chains']} chains × {m['draws']:,} draws in {m['seconds']:.1f} s. "
            f"Smallest bulk ESS {m['ess_bulk_min']:,.0f}, largest R-hat {m['rhat_max']:.3f}, "
            f"{m['divergences']:,} divergent transitions.", icon="🎯")
    if m["rhat_max"] > RHAT_OK:
        worst = max(m["rhat"], key=m["rhat"].get)
        st.warning(f"R-hat {m['rhat_max']:.3f} > {RHAT_OK} (worst: {worst}): the chains disagree, so the reference "
                   f"has not converged there; read distances to it with care.", icon="⚠️")
    if m["divergences"] > 0:
        st.warning(f"{m['divergences']:,} divergent transitions: NUTS met geometry it could not follow (a funnel, "
                   f"say), so the reference may miss part of the posterior there.", icon="⚠️")
    with st.expander("ESS and R-hat per coordinate"):
        st.dataframe([{"coordinate": c, "bulk ESS": m["ess_bulk"][c], "R-hat": m["rhat"][c]} for c in m["ess_bulk"]],
                     hide_index=True, width="stretch", column_config={
                         "bulk ESS": st.column_config.NumberColumn(format="%.0f"),
                         "R-hat": st.column_config.NumberColumn(format="%.3f")})


def view_controls(trainer: Trainer) -> None:
    """For a run whose family has more parameters than the charts draw: which ones (else the
    automatic choice), the overview heatmap's quantity, and which coordinates of the latent
    q against the posterior shows. Nothing for a family with few parameters."""
    run = trainer.run
    names = list(run.family.param_names)
    moments = drawn_from_moments(run)
    if len(names) <= focus.MAX_SHOWN and not moments:
        return
    ss = _ss()
    coordinates = list(run.model.coordinates)
    for key, options in ((keys.FOCUS, names), (keys.LATENT_COORDINATES, coordinates), (keys.LATENT_PAIR, coordinates)):
        if isinstance(ss.get(key), list):  # another run's choice: keep what this run has
            ss[key] = [v for v in ss[key] if v in options]
    cols = st.columns([3, 2, 3])
    if len(names) > focus.MAX_SHOWN:
        automatic = ("the farthest from the reference's moments" if focus.reference_match(run.family, run.reference)
                     else "stalled ones first")
        cols[0].multiselect(f"Parameters drawn ({len(names)} in all)", names, key=keys.FOCUS, persist_state="session",
                            max_selections=focus.MAX_CHOSEN, placeholder=f"automatic: {focus.AUTO_SHOWN}, {automatic}",
                            help=f"the parameter, gradient and variance charts draw these (at most {focus.MAX_CHOSEN}); "
                                 f"empty: {focus.AUTO_SHOWN} chosen automatically, {automatic}. The overview below "
                                 f"shows every parameter.")
        cols[1].selectbox("Overview of every parameter", list(latent_charts.OVERVIEWS), key=keys.OVERVIEW,
                          persist_state="session", format_func=lambda k: latent_charts.OVERVIEWS[k].label,
                          help="the heatmap's quantity (the distance needs an MCMC reference)")
    if moments:
        with cols[2]:
            mode = st.radio("q against the posterior", latent_charts.MODES, key=keys.LATENT_MODE, horizontal=True,
                            persist_state="session", help="the marginals of some coordinates, or two coordinates jointly")
            if mode == "pair":
                st.multiselect("Pair (two coordinates)", coordinates, key=keys.LATENT_PAIR, persist_state="session",
                               max_selections=2, placeholder=f"{coordinates[0]} and {coordinates[min(1, len(coordinates) - 1)]}")
            else:
                st.multiselect("Coordinates", coordinates, key=keys.LATENT_COORDINATES, persist_state="session",
                               max_selections=focus.MAX_CHOSEN, placeholder="those of the parameters drawn")


def chart_notes(trainer: Trainer) -> None:
    """What the charts cannot say themselves: what k-hat means, and why the ELBO has no line
    to reach where the log evidence is unknown."""
    notes = [f"**k̂** (Pareto-smoothed importance sampling; Yao, Vehtari, Simpson and Gelman 2018, *Yes, but did it "
             f"work?*): the tail shape of the importance weights p(x, z) / q(z) over {KHAT_DRAWS:,} draws of q, measured every "
             f"K steps. Below 0.5 q is close to the posterior where it matters; 0.5–{KHAT_THRESHOLD:g} usable; above "
             f"{KHAT_THRESHOLD:g} the weights' variance is effectively infinite and q is not to be trusted, whatever "
             f"the ELBO says."]
    if charts.log_evidence(trainer.run.reference) is None:
        notes.append("The log evidence of this model is unknown (an MCMC reference gives draws, not the normalising "
                     "constant): the ELBO chart has no line to reach, and **Log axes** shows −ELBO instead of its gap.")
    if drawn_from_moments(trainer.run):
        notes.append("q against the posterior is drawn on the unconstrained latent vector z that q is fitted on "
                     "(positive parts on their log or softplus scale, as the model's default bijector maps them).")
    for note in notes:
        st.caption(note)


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
