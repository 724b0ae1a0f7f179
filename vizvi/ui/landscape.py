"""The ELBO landscape page's widgets, state and panels.

The session keeps one ``LandscapeState``: the target (model, data, family, start) of the last
good settings, one background ``Trainer`` per optimizer (``vizvi.worker``: the page never trains
in its script, the threads never touch Streamlit), and the grid, computed in a background call.
Settings that change the paths (model, family, start, parameterization, optimizers, learning
rates, steps, seed) replace the target and drop the paths; the others (coordinates, grid,
ELBO method, samples, speed) only redraw or recompute the grid. A bad value is named and the
page keeps drawing the last good settings.

Every setting is in the URL (``LANDSCAPE_SETTINGS``), read on the page's first run in a session.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, NamedTuple, Optional

import numpy as np
import streamlit as st

from vizvi import landscape, landscape_charts, optimizers
from vizvi.engine import Run
from vizvi.errors import ConfigError
from vizvi.families import FAMILIES, explicit_init, families_for, get_family
from vizvi.models import MODELS
from vizvi.parameterizations import PARAMETERIZATIONS
from vizvi.settings import LANDSCAPE_SETTING, LANDSCAPE_SETTINGS, Kind, Role
from vizvi.ui import controls, keys
from vizvi.ui.panels import Action
from vizvi.background import BackgroundCall
from vizvi.worker import SPEEDS, Trainer

GROUP, STATE = keys.LANDSCAPE, keys.LANDSCAPE_STATE
QUERY_LOADED, QUERY_MESSAGES, REFRESHING = keys.LANDSCAPE_QUERY_LOADED, keys.LANDSCAPE_QUERY_MESSAGES, keys.LANDSCAPE_REFRESHING

POLL_S = 0.25  # the panel's refresh period while paths train or the grid computes
GRID_WAIT_S = 3.0  # a script run waits this long for a grid before drawing "computing"
STRUCTURAL = tuple(s.name for s in LANDSCAPE_SETTINGS if s.role is Role.STRUCTURAL)


# -- state ------------------------------------------------------------------------------------------
class GridRequest(NamedTuple):
    """Everything a grid depends on (the target is named by its settings)."""

    target: tuple
    coordinates: str
    box: landscape.Box
    resolution: int
    method: str
    samples: int
    seed: int


class GridJob(BackgroundCall):
    """A grid computed in a background call: its ``result`` is the Grid, once computed."""

    def __init__(self, target: landscape.Target, request: GridRequest):
        self.request = request
        super().__init__(lambda: landscape.compute_grid(target, request.coordinates, request.box, request.resolution,
                                                        request.method, request.samples, request.seed),
                         "vizvi-landscape-grid", "computing the landscape failed")


@dataclasses.dataclass
class LandscapeState:
    """The session's landscape: its target, its paths' trainers and its grids."""

    key: Optional[tuple] = None  # the structural settings of the target and the paths
    config: Optional[landscape.LandscapeConfig] = None  # the last good settings
    target: Optional[landscape.Target] = None
    trainers: Dict[str, Trainer] = dataclasses.field(default_factory=dict)
    job: Optional[GridJob] = None  # the latest grid asked for
    shown: Optional[GridJob] = None  # the latest finished grid (drawn while a newer one computes)

    def close(self) -> None:
        """End every path's thread."""
        for t in self.trainers.values():
            t.close()
        self.trainers = {}

    @property
    def busy(self) -> bool:
        """True while a path trains or compiles, or a grid computes."""
        return any(t.busy for t in self.trainers.values()) or (self.job is not None and not self.job.done)


def state() -> LandscapeState:
    """The session's landscape state (made on first use)."""
    if STATE not in st.session_state:
        st.session_state[STATE] = LandscapeState()
    return st.session_state[STATE]


# -- widgets ---------------------------------------------------------------------------------------
def value(name: str):
    """The current value of a landscape setting's widget (its dashboard default if none yet)."""
    if name == "init":
        return st.session_state.get(_init_key(value("family")), "")
    v = controls.widget_value(name, LANDSCAPE_SETTING[name].ui_default, group=GROUP)
    if name == "optimizers" and isinstance(v, str):  # before the multiselect holds its list
        v = [o.strip() for o in v.split(",") if o.strip()]
    return v


def _init_key(family: Optional[str]) -> str:
    """One start widget per family: its parameters differ, and each keeps what was typed."""
    return keys.widget(f"init-{family}", GROUP)


def _set_family_default() -> None:
    model = MODELS[value("model")]
    if value("family") not in families_for(model):
        controls.set_widget("family", model.default_family, group=GROUP)


def sidebar_controls() -> None:
    """The landscape's controls in the sidebar, from its settings table (coordinates are on the page)."""
    sb = st.sidebar
    sb.header("Target")
    controls.draw(sb, "model", group=GROUP, options=landscape.builtin_models(), format_func=lambda m: f"{m}: {MODELS[m].title}",
                  on_change=_set_family_default)
    sb.caption(f"A landscape needs a 1-D latent with a 2-parameter family: {', '.join(landscape.landscape_models())}.")
    _set_family_default()
    model = MODELS[value("model")]
    controls.draw(sb, "family", group=GROUP, options=families_for(model), format_func=lambda f: FAMILIES[f].title)
    family = get_family(value("family"), model)
    key = _init_key(family.name)
    if key not in st.session_state:
        st.session_state[key] = landscape.default_init(family)
    sb.text_input(LANDSCAPE_SETTING["init"].label, key=key, persist_state="session", help=LANDSCAPE_SETTING["init"].describe())
    controls.draw(sb, "seed", group=GROUP)
    sb.header("Paths")
    options = LANDSCAPE_SETTING["optimizers"].options()
    opt_key = keys.widget("optimizers", GROUP)
    if opt_key not in st.session_state:
        st.session_state[opt_key] = list(landscape.parse_optimizers(LANDSCAPE_SETTING["optimizers"].default))
    sb.multiselect(LANDSCAPE_SETTING["optimizers"].label, options, key=opt_key, persist_state="session",
                   format_func=lambda o: f"{o}: {optimizers.spec(o).description}", help=LANDSCAPE_SETTING["optimizers"].help)
    controls.draw(sb, "lr", group=GROUP, placeholder="adam:0.05,natural:0.1")
    try:
        rates = landscape.parse_learning_rates(value("lr"), value("optimizers") or [])
        sb.caption("Learning rates: " + ", ".join(f"{o} {r:g}" for o, r in rates.items()) + " (the defaults unless set).")
    except ConfigError:
        pass  # named with the other errors on the page
    controls.draw(sb, "parameterization", group=GROUP, help="\n".join(f"{k.value}: {v}" for k, v in PARAMETERIZATIONS.items()))
    c1, c2 = sb.columns(2)
    controls.draw(c1, "samples", group=GROUP)
    controls.draw(c2, "steps", group=GROUP, step=1000)
    controls.draw(sb, "speed", style="slider", group=GROUP)
    sb.caption("Every path: pathwise gradients, the same data, start, samples and seed.")
    sb.header("Landscape")
    controls.draw(sb, "elbo", style="radio", group=GROUP, horizontal=True,
                  format_func={"exact": "exact (closed form)", "mc": "Monte Carlo, common random numbers"}.get)
    c1, c2 = sb.columns(2)
    controls.draw(c1, "grid", group=GROUP, step=10)
    controls.draw(c2, "mc_samples", group=GROUP, step=64)


def coordinates_switch() -> None:
    """The coordinates of the plane, on the page above the figure (the view one switches most)."""
    controls.draw(st, "coordinates", style="radio", group=GROUP, horizontal=True,
                  format_func=lambda c: c, help="\n".join(f"{c.value}: {s.description}" for c, s in landscape.COORDINATES.items()))


def config_from_widgets() -> landscape.LandscapeConfig:
    """The settings the widgets describe (not yet validated)."""
    values = {s.name: value(s.name) for s in LANDSCAPE_SETTINGS}
    values["optimizers"] = ",".join(values["optimizers"] or [])
    return landscape.LandscapeConfig(**values)


def settings_for_url() -> dict:
    """Every landscape setting as the URL query writes it."""
    out = {}
    for s in LANDSCAPE_SETTINGS:
        v = value(s.name)
        if s.name == "optimizers":
            v = ",".join(v or [])
        out[s.flag] = v if isinstance(v, str) else s.to_text(v)
    return out


def query_messages() -> list:
    """On the page's first run in a session, read its URL into the widgets; what was wrong with it."""
    ss = st.session_state
    if not ss.get(QUERY_LOADED):
        if not ss.get(keys.QUERY_LOADED):
            # The session starts here: the run page's widgets take their defaults, not this URL.
            controls.load_query_params({})
            ss[keys.QUERY_LOADED] = True
        ss[QUERY_MESSAGES] = load_query({k: st.query_params[k] for k in st.query_params.keys()})
        ss[QUERY_LOADED] = True
    return list(ss.get(QUERY_MESSAGES, []))


def load_query(query) -> list:
    """Take the landscape's settings from a URL ``query`` into its widgets; messages for bad ones
    (each bad value is ignored for its default)."""
    errors = []
    values = controls.query_values(LANDSCAPE_SETTINGS, query, errors)
    if values["model"] not in landscape.builtin_models():
        errors.append(f"URL query: model={values['model']!r} ignored: the landscape draws the built-in models only")
        values["model"] = LANDSCAPE_SETTING["model"].ui_default
    model = MODELS[values["model"]]
    try:
        get_family(values["family"] or model.default_family, model)
    except ConfigError as e:
        errors.append(f"URL query: family={values['family']!r} ignored: {e.message}")
        values["family"] = None
    values["family"] = values["family"] or model.default_family
    family = get_family(values["family"], model)
    init = values.pop("init")
    try:
        explicit_init(family, init) if init else None
    except ConfigError as e:
        errors.append(f"URL query: init={init!r} ignored: {e.message}")
        init = None
    st.session_state[_init_key(family.name)] = init or landscape.default_init(family)
    try:
        chosen = landscape.parse_optimizers(values["optimizers"])
    except ConfigError as e:
        errors.append(f"URL query: optimizers={values['optimizers']!r} ignored: {e.message}")
        chosen = landscape.parse_optimizers(LANDSCAPE_SETTING["optimizers"].default)
    st.session_state[keys.widget("optimizers", GROUP)] = list(chosen)
    del values["optimizers"]
    try:
        landscape.parse_learning_rates(values["lr"], chosen)
    except ConfigError as e:
        errors.append(f"URL query: lr={values['lr']!r} ignored: {e.message}")
        values["lr"] = ""
    for name, v in values.items():
        controls.set_widget(name, v, group=GROUP)
    return errors


# -- buttons and the paths ---------------------------------------------------------------------------
def action_buttons() -> Optional[Action]:
    """Start / Pause / Reset of the paths; the action asked for."""
    cols = st.columns([1, 1, 1, 5])
    if cols[0].button("Start", type="primary", width="stretch", help="train every optimizer's path (or resume them)"):
        return Action.START
    if cols[1].button("Pause", width="stretch", on_click=_pause):
        return Action.PAUSE
    if cols[2].button("Reset", width="stretch", help="drop the paths (Start trains new ones)"):
        return Action.RESET
    return None


def _pause() -> None:
    for t in state().trainers.values():
        t.pause()


def _speed() -> int:
    return SPEEDS[str(value("speed"))]


def sync(action: Optional[Action], errors: list) -> None:
    """Bring the session's state to the widgets' settings and apply ``action``; a bad setting goes
    to ``errors`` and leaves the state (and what is drawn) at the last good settings."""
    s = state()
    try:
        config = landscape.validate_landscape(config_from_widgets())
        key = tuple(getattr(config, name) for name in STRUCTURAL)
        if key != s.key:
            target = landscape.make_target(config.model, config.family, config.init, config.seed)
            s.close()
            s.key, s.target = key, target
        s.config = config
    except ConfigError as e:
        errors.append(f"{e} (the landscape keeps the last good settings)" if s.config is not None else str(e))
        if action is Action.START:
            return  # no paths from settings that are wrong
    if s.target is None:
        return
    if action is Action.RESET:
        s.close()
    elif action is Action.START:
        if not s.trainers:
            _make_trainers(s, errors)
        for t in s.trainers.values():
            t.start()
    for t in s.trainers.values():
        t.set_speed(_speed())


def _make_trainers(s: LandscapeState, errors: list) -> None:
    """One Run and Trainer per optimizer, sharing the target's data and reference."""
    try:
        runs = {o: Run(landscape.run_config(s.config, o), dataset=s.target.dataset, reference=s.target.reference)
                for o in s.config.optimizers.split(",")}
    except ConfigError as e:
        errors.append(str(e))
        return
    s.trainers = {o: Trainer(run, steps_per_update=_speed()) for o, run in runs.items()}


def paths(s: LandscapeState) -> list:
    """Every optimizer's path so far (from consistent snapshots of its trainer)."""
    out = []
    for o, t in s.trainers.items():
        snap = t.snapshot(diagnosis=False, density=False)
        out.append(landscape.path_from_history(o, snap.config["lr"], str(snap.status), t.run.theta0, snap.series))
    return out


# -- the panel ---------------------------------------------------------------------------------------
def _grid_for(s: LandscapeState, views: list, anchors: np.ndarray) -> Optional[landscape.Grid]:
    """The grid to draw under the paths: the latest finished one for these settings and
    coordinates. A new one is asked for when a setting of it changed or a path left its box."""
    c = s.config
    box = landscape.grid_box(s.target.family, c.coordinates, anchors, [v.points for v in views])
    wanted = GridRequest(s.key, c.coordinates, box, c.grid, c.elbo, c.mc_samples, c.seed)
    job = s.job
    same = job is not None and job.request._replace(box=box) == wanted
    clipped = [np.clip(v.points, [box.x[0], box.y[0]], [box.x[1], box.y[1]]) for v in views]
    if not same or not job.request.box.contains(np.vstack([anchors] + clipped)):
        s.job = job = GridJob(s.target, wanted)
        job.wait(GRID_WAIT_S)  # a fast grid is drawn at once, without "computing" first
    if job.done and job.result is not None:
        s.shown = job
    shown = s.shown
    if shown is not None and shown.request._replace(box=box) == wanted._replace(box=box):
        return shown.result
    return None


def panel() -> None:
    """The landscape with its paths, and how they went (a fragment refreshing while busy)."""
    s = state()
    if s.target is None:
        return
    _grid_for(s, *_views(s))  # asked for here, so that a grid still computing counts as busy below
    busy = s.busy
    st.session_state[REFRESHING] = busy
    st.fragment(_panel_now, run_every=POLL_S if busy else None)()


def _views(s: LandscapeState) -> tuple:
    """(every path as drawn, the (optimum, start) anchors) in the current coordinates."""
    c, target = s.config, s.target
    views = [landscape.view_path(p, target.family, c.coordinates) for p in paths(s)]
    anchors = landscape.coordinates_of(target.family, np.vstack([
        target.optimum if target.optimum is not None else target.start, target.start]), c.coordinates)
    return views, anchors


def _panel_now() -> None:
    s = state()
    c, target = s.config, s.target
    family = target.family
    views, anchors = _views(s)
    grid = _grid_for(s, views, anchors)
    if s.job is not None and s.job.error:
        st.error(s.job.error)
    titles = landscape.axis_titles(family, c.coordinates)
    if grid is None:
        st.info(f"Computing the landscape in {c.coordinates} coordinates…", icon="⏳")
    else:
        fig = landscape_charts.landscape_figure(
            grid, target.reference.log_evidence, titles, views, anchors[1], anchors[0] if target.optimum is not None else None,
            f"ELBO landscape: {family.title} q on {target.model.name}, {c.coordinates} coordinates",
            key=f"landscape-{c.coordinates}-{target.model.name}-{family.name}")
        st.plotly_chart(fig, key="landscape", width="stretch")
        st.caption(_grid_caption(grid))
        if grid.se is not None:
            with st.expander("Standard error of the Monte Carlo estimate"):
                st.plotly_chart(landscape_charts.se_figure(grid, titles, key="landscape-se"), key="landscape-se",
                                width="stretch")
    _path_table(s, views, anchors)
    # The fragment cannot change its own refresh period: once nothing is busy any more, one full
    # rerun draws the page at rest.
    if st.session_state.get(REFRESHING) and not s.busy:
        st.session_state[REFRESHING] = False
        st.rerun(scope="app")


def _grid_caption(grid: landscape.Grid) -> str:
    n = len(grid.x)
    text = f"{n} × {n} grid, computed in one call in {grid.seconds:.2f} s: "
    if grid.se is None:
        text += "the exact ELBO (closed form)."
    else:
        largest, median = grid.se_summary()
        text += (f"a Monte Carlo estimate, {grid.samples:,} common random numbers per point (the same draws everywhere, "
                 f"through each q's quantile function); standard error: median {median:.3g}, largest {largest:.3g} "
                 f"(hover a point for its own).")
    if grid.note:
        text += f" ({grid.note}.)"
    return text + " Blank: no valid parameters there."


def exact_caption() -> str:
    """Which models and families have an exact landscape, computed from the code."""
    pairs = landscape.exact_pairs()
    exact = "; ".join(f"{m} with {', '.join(fs)}" for m, fs in pairs.items() if fs)
    return (f"Exact (E_q[log p(x, z)] in closed form, plus q's entropy) for: {exact}. Any other pair is drawn from the "
            f"Monte Carlo estimate.")


def _path_table(s: LandscapeState, views: list, anchors: np.ndarray) -> None:
    if not views:
        if s.target.optimum is not None:
            st.caption("Press **Start** to train the paths.")
        return
    rows = []
    for view in views:
        p = view.path
        full = landscape.coordinates_of(s.target.family, p.theta, s.config.coordinates)
        stats = landscape.path_stats(full, p.steps, anchors[0], scale=np.abs(anchors[1] - anchors[0]))
        rows.append({"optimizer": p.optimizer, "lr": p.lr, "status": p.status, "step": stats.steps,
                     "distance left": stats.remaining,
                     "within 5% at step": stats.arrived,
                     "straightness": stats.straightness})
    st.markdown(" · ".join(f"**{r['optimizer']}**: {r['status']}, step {r['step']:,}" for r in rows))
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "lr": st.column_config.NumberColumn(format="%g"),
        "distance left": st.column_config.NumberColumn(format="percent", help="distance to the exact optimum in these "
                                                       "coordinates (each axis scaled by the start's distance), as a "
                                                       "fraction of the start's"),
        "straightness": st.column_config.NumberColumn(format="%.2f", help="chord / length of the path until it came "
                                                      "within 5% of the optimum (or until now): 1 is a straight line"),
    })
