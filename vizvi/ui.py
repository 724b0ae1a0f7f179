"""The one vizvi module that touches Streamlit state and widgets.

Per-user state lives in ``st.session_state``: the widget values, the current run's
``Trainer`` (a background thread that trains; see ``vizvi.worker``) and the last errors. The
compiled chunk functions are process-wide and shared by every session (``engine.get_chunk_fn``
caches them); nothing per-user is ever cached across sessions.

Every setting has a URL query parameter named like the CLI flag, so a link reproduces a demo
exactly, seed included. Bad values (typed or from the URL) are reported with ``st.error``
naming the setting and never touch the current run.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import streamlit as st

from vizvi import charts
from vizvi.engine import MAX_LR, Run, RunConfig
from vizvi.errors import ConfigError
from vizvi.estimators import ESTIMATORS, EstimatorName
from vizvi.families import FAMILIES, families_for, parse_init_spec
from vizvi.history import to_csv, to_json, to_record
from vizvi.live_chart import live_charts
from vizvi.models import MODELS
from vizvi.optimizers import DEFAULT_LR, OPTIMIZERS, OptimizerName
from vizvi.parameterizations import PARAMETERIZATIONS, Parameterization
from vizvi.worker import MAX_SPEED, Trainer

def share_the_interpreter_with_the_trainer() -> None:
    """Shorten the GIL switch interval from 5 ms to 0.5 ms for the dashboard process.

    The trainer thread hands the GIL back and forth about twenty times per chunk (arguments,
    the compiled call, reading the telemetry); each time it wants it back while the page's
    script thread is busy in Python it waits up to the switch interval. Measured here: a busy
    Python thread cut training to 0.29x of its solo speed at 5 ms and to 0.62x at 0.5 ms, with
    no cost to the Python thread.
    """
    import sys

    sys.setswitchinterval(0.0005)


def keep_tensorflow_state_across_reruns() -> None:
    """Stop Streamlit from resetting TensorFlow after every script run.

    After each run Streamlit 1.67 calls ``keras.backend.clear_session()`` when ``keras`` is
    imported (TensorFlow and TFP import it). On TensorFlow that resets the default graph and
    clears the eager kernel cache, several times a second while the page is live, underneath
    the trainer thread: a compile in progress never finishes, and compiled kernels are thrown
    away. vizvi keeps no Keras state, so the hook (a private function, checked to exist by
    ``tests/test_app.py``) is replaced with one that leaves TensorFlow alone.
    """
    from streamlit.runtime.scriptrunner import script_runner

    if getattr(script_runner, "_clean_problem_modules", None) is not _leave_tensorflow_alone:
        script_runner._clean_problem_modules = _leave_tensorflow_alone


def _leave_tensorflow_alone() -> None:
    """Streamlit's per-run clean-up, minus the Keras/TensorFlow reset (matplotlib only)."""
    import sys

    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close("all")


UPDATE_S = 0.1  # chart fragment period while training; a busy browser settles at a lower rate
STATUS_S = 0.5  # status line fragment period: text needs no animation rate
BANNER_S = 2.0  # diagnosis fragment period: verdicts look at the last thousand steps anyway
SPEEDS = {"10": 10, "50": 50, "200": 200, "1000": 1000, "max": MAX_SPEED}
INIT_MODES = ("values", "prior", "random")
STRUCTURAL = ("model", "n", "seed", "family", "parameterization", "init")
NUMERIC = ("estimator", "samples", "optimizer", "lr", "schedule", "variance_every", "replicates", "steps")
DEFAULT_STEPS = 1_000_000


@dataclasses.dataclass
class Setting:
    """One control: its query-parameter name, default and parser (text -> value)."""

    name: str
    default: object
    parse: callable


def _int(text):
    v = float(text)
    if not math.isfinite(v) or v != int(v):
        raise ValueError(f"{text!r} is not a whole number")
    return int(v)


def _float(text):
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"{text!r} is not a finite number")
    return v


def _span(text):
    v = _int(text)
    if v < 1:
        raise ValueError(f"smoothing span must be at least 1, got {v}")
    return v


def _choice(options):
    def parse(text):
        if text not in options:
            raise ValueError(f"{text!r} is not one of: {', '.join(options)}")
        return text

    return parse


SETTINGS = [
    Setting("model", "poisson-gamma", _choice(list(MODELS))),
    Setting("n", None, _int),
    Setting("seed", 0, _int),
    Setting("family", None, _choice(list(FAMILIES))),
    Setting("parameterization", "softplus", _choice([p.value for p in Parameterization])),
    Setting("init", "", str),
    Setting("estimator", "pathwise", _choice([e.value for e in EstimatorName])),
    Setting("samples", 16, _int),
    Setting("optimizer", "adam", _choice([o.value for o in OptimizerName])),
    Setting("lr", None, _float),
    Setting("schedule", "constant", _choice(["constant", "robbins-monro"])),
    Setting("variance-every", 100, _int),
    Setting("replicates", 16, _int),
    Setting("steps", DEFAULT_STEPS, _int),
    Setting("speed", "200", _choice(list(SPEEDS))),
    Setting("smoothing", "ema", _choice(list(charts.SMOOTHERS))),
    Setting("span", 50, _span),
    Setting("present", "0", _choice(["0", "1"])),
]
SETTING = {s.name: s for s in SETTINGS}


# -- state ------------------------------------------------------------------------------------
def _ss():
    return st.session_state


def _w(name: str) -> str:
    return f"w_{name}"


def _init_key(family: str, param: str) -> str:
    return f"w_init_{family}_{param}"


def load_query_params() -> list:
    """On a session's first run, take every setting from the URL; return messages for bad ones."""
    errors = []
    values = {s.name: s.default for s in SETTINGS}
    qp = st.query_params
    for s in SETTINGS:
        if s.name in qp:
            raw = qp[s.name]
            try:
                values[s.name] = s.parse(raw)
            except (ValueError, TypeError) as e:
                errors.append(f"URL query: {s.name}={raw!r} ignored: {e}")
    known = {s.name for s in SETTINGS}
    for extra in sorted(set(qp.keys()) - known):
        errors.append(f"URL query: unknown setting {extra!r} ignored")
    model = MODELS[values["model"]]
    fits = families_for(model)
    if values["family"] is None:
        values["family"] = model.default_family
    elif values["family"] not in fits:
        errors.append(f"URL query: family={values['family']!r} does not fit model {model.name!r} (fits: {', '.join(fits)}); using {model.default_family}")
        values["family"] = model.default_family
    if values["n"] is None:
        values["n"] = model.default_n if model.csv_columns else 0
    if values["lr"] is None:
        values["lr"] = DEFAULT_LR[OptimizerName(values["optimizer"])]
    family = FAMILIES[values["family"]]
    init = values["init"].strip() if isinstance(values["init"], str) else ""
    init_mode, init_values = "values", dict(zip(family.param_names, family.defaults))
    if init in ("prior", "random"):
        init_mode = init
    elif init:
        try:
            parsed = parse_init_spec(init)
            unknown = [k for k in parsed if k not in family.param_names]
            if unknown:
                raise ConfigError("init", f"family {family.name!r} has no parameter {unknown[0]!r}")
            init_values.update(parsed)
        except ConfigError as e:
            errors.append(f"URL query: init={init!r} ignored: {e.message}")
    ss = _ss()
    for s in SETTINGS:
        if s.name != "init":
            ss[_w(s.name)] = values[s.name] if s.name not in ("lr",) else f"{values['lr']:g}"
    ss[_w("present")] = values["present"] == "1"
    ss[_w("init_mode")] = init_mode
    for name, v in init_values.items():
        ss[_init_key(family.name, name)] = f"{v:g}"
    return errors


def current_settings() -> dict:
    """The settings as strings, for the URL (every one, so a link is complete)."""
    ss = _ss()
    out = {}
    for s in SETTINGS:
        if s.name == "init":
            continue
        v = ss.get(_w(s.name), s.default)
        if s.name == "present":
            v = "1" if v else "0"
        out[s.name] = str(v)
    out["init"] = init_spec_from_widgets()
    return out


def init_spec_from_widgets() -> str:
    """The init setting as the CLI writes it: 'prior', 'random' or 'name=value,...'."""
    ss = _ss()
    mode = ss.get(_w("init_mode"), "values")
    if mode != "values":
        return mode
    family = FAMILIES[ss[_w("family")]]
    parts = []
    for name, default in zip(family.param_names, family.defaults):
        parts.append(f"{name}={str(ss.get(_init_key(family.name, name), f'{default:g}')).strip()}")
    return ",".join(parts)


def config_from_widgets() -> RunConfig:
    """A RunConfig from the widgets (unvalidated; ``validate`` names anything wrong)."""
    ss = _ss()
    lr_text = str(ss[_w("lr")]).strip()
    try:
        lr = float(lr_text)
    except ValueError:
        raise ConfigError("lr", f"learning rate {lr_text!r} is not a number") from None
    if math.isfinite(lr) and lr > MAX_LR:
        raise ConfigError("lr", f"learning rate {lr:g} is absurdly large (limit {MAX_LR:g})")
    model = MODELS[ss[_w("model")]]
    csv_text = ss.get("csv_text") if model.csv_columns else None
    return RunConfig(
        model=model.name, family=ss[_w("family")], parameterization=ss[_w("parameterization")],
        init=init_spec_from_widgets(), estimator=ss[_w("estimator")], samples=ss[_w("samples")],
        optimizer=ss[_w("optimizer")], lr=lr, schedule=ss[_w("schedule")], steps=ss[_w("steps")], seed=ss[_w("seed")],
        n=(ss[_w("n")] if model.csv_columns and not csv_text else None),
        variance_every=ss[_w("variance-every")], replicates=ss[_w("replicates")],
    )


def new_trainer(config: RunConfig) -> Trainer:
    """A fresh run (validated; raises ConfigError) wrapped in its background trainer."""
    ss = _ss()
    csv_text = ss.get("csv_text") if MODELS[config.model].csv_columns else None
    run = Run(config, csv_text=csv_text)
    return Trainer(run, steps_per_update=SPEEDS[str(ss.get(_w("speed"), "200"))])


def replace_trainer(trainer: Trainer) -> None:
    """Install ``trainer`` as the session's run, closing the previous one's thread."""
    ss = _ss()
    old = ss.get("trainer")
    if old is not None:
        old.close()
    ss["trainer"] = trainer
    ss["run_settings"] = current_settings()


# -- callbacks (run before the script, where widget state may be set) -------------------------
def _on_try_suggestion(changes: dict) -> None:
    ss = _ss()
    for k, v in changes.items():
        key = {"variance_every": "variance-every"}.get(k, k)
        if k == "init":
            ss[_w("init_mode")] = v if v in INIT_MODES else "values"
        elif k == "lr":
            ss[_w("lr")] = f"{(v if v is not None else DEFAULT_LR[OptimizerName(ss[_w('optimizer')])]):g}"
        else:
            ss[_w(key)] = v
    if "optimizer" in changes and changes.get("lr") is None:
        ss[_w("lr")] = f"{DEFAULT_LR[OptimizerName(ss[_w('optimizer')])]:g}"
    ss["pending_action"] = "reset-and-start"


def _on_model_change() -> None:
    ss = _ss()
    model = MODELS[ss[_w("model")]]
    if ss[_w("family")] not in families_for(model):
        ss[_w("family")] = model.default_family
    if model.csv_columns and not ss.get(_w("n")):
        ss[_w("n")] = model.default_n
    ss.pop("csv_text", None)


def _on_optimizer_change() -> None:
    ss = _ss()
    ss[_w("lr")] = f"{DEFAULT_LR[OptimizerName(ss[_w('optimizer')])]:g}"


# -- page parts -------------------------------------------------------------------------------
def sidebar_controls() -> list:
    """Draw every control in the sidebar; return error messages for bad values."""
    ss = _ss()
    errors = []
    sb = st.sidebar
    sb.header("Target")
    sb.selectbox("Model", list(MODELS), key=_w("model"), persist_state="session", format_func=lambda m: f"{m}: {MODELS[m].title}", on_change=_on_model_change)
    model = MODELS[ss[_w("model")]]
    sb.caption(model.description)
    if model.csv_columns:
        sb.number_input("Observations (simulated)", step=1, key=_w("n"), persist_state="session", help="size of the simulated data set")
        upload = sb.file_uploader(f"…or upload a CSV ({', '.join(model.csv_columns)})", type=["csv", "txt"], key=f"w_upload_{model.name}")
        if upload is not None:
            try:
                text = upload.getvalue().decode("utf-8")
                model.parse_csv(text, source=upload.name)
                ss["csv_text"] = text
            except UnicodeDecodeError:
                errors.append(f"data: {upload.name} is not a UTF-8 text file")
                ss.pop("csv_text", None)
            except ConfigError as e:
                errors.append(str(e))
                ss.pop("csv_text", None)
        else:
            ss.pop("csv_text", None)
    sb.number_input("Seed (data and Monte Carlo draws)", step=1, key=_w("seed"), persist_state="session")

    sb.header("Variational family")
    fits = families_for(model)
    if ss[_w("family")] not in fits:
        ss[_w("family")] = model.default_family
    sb.selectbox("Family", fits, key=_w("family"), persist_state="session", format_func=lambda f: FAMILIES[f].title)
    missing = [f for f in FAMILIES if f not in fits]
    if missing:
        sb.caption(f"Not offered: {', '.join(missing)}: their support does not match this model's latent, "
                   f"which lives in {model.support.describe}.")
    family = FAMILIES[ss[_w("family")]]
    sb.radio("Initial values", INIT_MODES, key=_w("init_mode"), persist_state="session", horizontal=True,
             format_func=lambda m: {"values": "set", "prior": "prior", "random": "random"}[m],
             help="set: exactly these constrained values; prior: moment-matched to the prior; random: seeded")
    if ss[_w("init_mode")] == "values":
        cols = sb.columns(2)
        for i, (name, default) in enumerate(zip(family.param_names, family.defaults)):
            key = _init_key(family.name, name)
            if key not in ss:
                ss[key] = f"{default:g}"
            cols[i % 2].text_input(name, key=key, persist_state="session")
    sb.selectbox("Parameterization of positive parameters", [p.value for p in Parameterization], key=_w("parameterization"), persist_state="session",
                 help="\n".join(f"{k.value}: {v}" for k, v in PARAMETERIZATIONS.items()))

    sb.header("Gradient estimator")
    sb.number_input("Monte Carlo samples per step", step=1, key=_w("samples"), persist_state="session")
    allowed = [e.value for e in EstimatorName if ss[_w("samples")] >= ESTIMATORS[e].min_samples]
    if ss[_w("estimator")] not in allowed:
        ss[_w("estimator")] = "pathwise"
    sb.selectbox("Estimator", allowed, key=_w("estimator"), persist_state="session", format_func=lambda e: f"{e}: {ESTIMATORS[EstimatorName(e)].description}")
    if len(allowed) < len(EstimatorName):
        sb.caption("score-baseline needs at least 2 samples (its baseline leaves one sample out).")
    c1, c2 = sb.columns(2)
    c1.number_input("Variance replicates", step=1, key=_w("replicates"), persist_state="session")
    c2.number_input("Variance every K steps", step=1, key=_w("variance-every"), persist_state="session")

    sb.header("Optimizer")
    sb.selectbox("Optimizer", [o.value for o in OptimizerName], key=_w("optimizer"), persist_state="session", on_change=_on_optimizer_change,
                 format_func=lambda o: f"{o}: {OPTIMIZERS[OptimizerName(o)]}")
    c1, c2 = sb.columns(2)
    c1.text_input("Learning rate", key=_w("lr"), persist_state="session")
    c2.selectbox("Schedule", ["constant", "robbins-monro"], key=_w("schedule"), persist_state="session")
    sb.number_input("Stop after (steps)", step=1000, key=_w("steps"), persist_state="session")

    sb.header("View")
    sb.select_slider("Speed (steps per update)", list(SPEEDS), key=_w("speed"), persist_state="session")
    c1, c2 = sb.columns(2)
    c1.radio("ELBO smoothing", charts.SMOOTHERS, key=_w("smoothing"), persist_state="session")
    c2.number_input("Smoothing span", step=5, key=_w("span"), persist_state="session")
    sb.toggle("Presentation mode", key=_w("present"), persist_state="session")
    return errors


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


def _diff(old: dict, new: dict, names) -> list:
    return [n for n in names if str(old.get(n)) != str(new.get(n))]


def handle_setting_changes(trainer: Optional[Trainer], errors: list) -> Optional[str]:
    """Apply numeric changes to the live run; say which structural changes wait for Reset."""
    ss = _ss()
    if trainer is None:
        return None
    now = current_settings()
    then = ss.get("run_settings", now)
    structural = _diff(then, now, STRUCTURAL)
    if ss.get("csv_text") != ss.get("run_csv_text"):
        structural.append("data")
    numeric = [n for n in _diff(then, now, [x.replace("_", "-") for x in NUMERIC])]
    if numeric and not errors:
        try:
            config = config_from_widgets()
            changes = {n.replace("-", "_"): getattr(config, n.replace("-", "_")) for n in numeric}
            trainer.update_settings(**changes)
            ss["run_settings"] = {**then, **{n: now[n] for n in numeric}}
        except ConfigError as e:
            errors.append(f"{e} (the current run continues unchanged)")
    return ", ".join(structural) if structural else None


def _on_pause() -> None:
    trainer = _ss().get("trainer")
    if trainer is not None:
        trainer.pause()


def action_buttons(trainer: Optional[Trainer]) -> Optional[str]:
    """Start / Pause / Step / Reset; returns the action taken."""
    cols = st.columns([1, 1, 1, 1, 4])
    action = None
    if cols[0].button("Start", type="primary", width="stretch"):
        action = "start"
    # Pause acts in its callback, before the rerun redraws the page: the charts stop at the
    # click rather than one script run later.
    if cols[1].button("Pause", width="stretch", on_click=_on_pause):
        action = "pause"
    if cols[2].button("Step", width="stretch", help="advance one update's worth of steps"):
        action = "step"
    if cols[3].button("Reset", width="stretch", help="a fresh run with the current settings"):
        action = "reset"
    return action


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
    if snap.status == "compiling":
        st.info("Compiling this configuration with XLA (first time only; the compiled program is shared by all sessions)…", icon="⏳")
    if snap.divergence:
        st.error(f"Run paused: {snap.divergence['message']}", icon="🛑")
    for name, verdict in snap.diagnosis.items():
        if not verdict["status"].startswith("stalled"):
            continue
        suggestion = verdict.get("suggestion")
        cols = st.columns([5, 1])
        cols[0].warning(f"**{name}: {verdict['status']}.** {verdict['text']}" + (f" **Try:** {suggestion['text']}." if suggestion else ""), icon="⚠️")
        if suggestion and cols[1].button("Try this", key=f"try_{name}", on_click=_on_try_suggestion, args=(suggestion["config"],),
                                         help="apply the suggestion to a fresh run", width="stretch"):
            # The click reran only this fragment; the new run is made by a full rerun.
            st.rerun(scope="app")
    if snap.status == "finished":
        st.success(f"Finished {snap.step:,} steps.")


# The page refreshes in three fragments at three rates: every fragment run costs the browser
# a React pass per message (about five for the run itself, one per element), and its main
# thread is what limits the chart rate, so text that changes slowly refreshes slowly.
def status_panel() -> None:
    """The status line (a fragment refreshing every ``STATUS_S`` while training)."""
    ss = _ss()
    trainer: Trainer = ss["trainer"]
    snap = trainer.snapshot(diagnosis=False, density=False)
    _status_line(snap, trainer)
    # The fragments cannot change their own refresh periods: when training stops on its own
    # (finished, diverged, a Step done), one full rerun settles the page.
    was_live = ss.get("live_refresh", False)
    if was_live and not trainer.busy:
        ss["live_refresh"] = False
        st.rerun(scope="app")


def banner_panel() -> None:
    """Errors, diagnosis and "Try this" (a fragment refreshing every ``BANNER_S`` while training).

    A fixed container: banners come and go, and an element whose position in the element tree
    shifts is remounted by Streamlit; inside the container nothing after it shifts.
    """
    with st.container():
        _banners(_ss()["trainer"].snapshot(density=False))


CHART_BANDS = [[["elbo", "params"], ["density", "grads"]], [["variance"]]]


def chart_panel() -> None:
    """The live charts (a fragment refreshing every ``UPDATE_S`` while training).

    All five charts are one element: each update is then a single delta, one React pass in
    the browser instead of five (see ``live_charts``), and every figure is built before any
    of it is sent, so the update arrives in one piece rather than trickling out between the
    trainer thread's turns at the interpreter.
    """
    ss = _ss()
    trainer: Trainer = ss["trainer"]
    snap = trainer.snapshot(diagnosis=False)
    span = ss.get(_w("span"), 50)
    if not isinstance(span, int) or span < 1:
        st.error(f"span: smoothing span must be a whole number of at least 1, got {span!r}; drawing with 50")
        span = 50
    figures = charts.all_figures(snap, ss.get(_w("smoothing"), "ema"), span)
    if ss.get(_w("present"), False):
        for fig in figures.values():
            fig["layout"]["font"] = {"size": 18}
    live_charts(figures, key="live", bands=CHART_BANDS)


def export_panel(trainer: Trainer) -> None:
    """Downloads of the run as CSV and JSON (the CLI's schema), generated on click."""
    with st.expander("Export and share"):
        record = lambda: to_record_locked(trainer)  # noqa: E731
        c1, c2 = st.columns(2)
        c1.download_button("Download CSV", data=lambda: to_csv(record()), file_name="vizvi-run.csv", mime="text/csv")
        c2.download_button("Download JSON", data=lambda: to_json(record()), file_name="vizvi-run.json", mime="application/json")
        st.caption("Every setting is in this page's URL: copy it to share a demo that reproduces exactly (seed included). "
                   "Each chart's camera icon saves a PNG.")


def to_record_locked(trainer: Trainer) -> dict:
    """The run's record, read under the trainer's lock."""
    with trainer._lock:
        return to_record(trainer.run)


def render_run_page() -> None:
    """The run page: controls, buttons, diagnosis, live charts, export."""
    ss = _ss()
    messages = []
    if not ss.get("qp_loaded"):
        messages += load_query_params()
        ss["qp_loaded"] = True
        ss["qp_messages"] = messages
    else:
        messages += ss.get("qp_messages", [])
    errors = sidebar_controls()
    presentation_css(ss.get(_w("present"), False))
    if ss.get(_w("present")):
        st.toggle("Presentation mode", key="w_present_main", value=True,
                  on_change=lambda: ss.__setitem__(_w("present"), False))
    st.title("vizvi: watch variational inference run")
    trainer: Optional[Trainer] = ss.get("trainer")
    action = action_buttons(trainer)
    pending = ss.pop("pending_action", None)
    if pending == "reset-and-start":
        action = "reset-and-start"
    if trainer is None or action in ("reset", "reset-and-start"):
        try:
            with st.spinner("Preparing data and the reference posterior…"):
                fresh = new_trainer(config_from_widgets())
            replace_trainer(fresh)
            ss["run_csv_text"] = ss.get("csv_text")
            trainer = fresh
            if action == "reset-and-start":
                trainer.start()
        except ConfigError as e:
            errors.append(f"{e} (the current run continues unchanged)" if trainer is not None else str(e))
    else:
        waiting = handle_setting_changes(trainer, errors)
        if waiting:
            st.info(f"Changed {waiting}: these change the run's structure; press **Reset** to start a run with them. "
                    f"The current run continues unchanged.", icon="🔄")
    if trainer is not None:
        trainer.set_speed(SPEEDS[str(ss.get(_w("speed"), "200"))])
        if action == "start":
            trainer.start()
        elif action == "pause":
            trainer.pause()
        elif action == "step":
            trainer.step()
    for m in messages + errors:
        st.error(m)
    st.query_params.from_dict(current_settings())
    if trainer is None:
        st.warning("Fix the settings above to start a run.")
        return
    busy = trainer.busy
    ss["live_refresh"] = busy
    st.fragment(status_panel, run_every=STATUS_S if busy else None)()
    st.fragment(banner_panel, run_every=BANNER_S if busy else None)()
    st.fragment(chart_panel, run_every=UPDATE_S if busy else None)()
    if not busy:
        export_panel(trainer)


def render_guide_page() -> None:
    """Every model, family, estimator, optimizer and parameterization, from the registries."""
    st.title("Guide")
    st.markdown(
        "vizvi maximises the ELBO, **E_q[log p(x, z) − log q(z)]**, by stochastic gradient ascent on the parameters "
        "of q and shows every quantity as it changes. The **ELBO** chart approaches the log evidence from below; the "
        "gap is KL(q ‖ posterior). The **parameter** panels show each parameter in its own units with the KL-optimal "
        "value (where it has a closed form) as a dashed line. The **gradient** chart shows |∂ELBO/∂u| for the "
        "unconstrained value the optimizer moves, and the **estimator** chart the variance and signal-to-noise "
        "ratio of one gradient estimate, measured from independent replicates every K steps."
    )
    st.subheader("Models")
    st.table({"model": list(MODELS), "what": [m.description for m in MODELS.values()],
              "families": [", ".join(families_for(m)) for m in MODELS.values()]})
    st.subheader("Variational families")
    st.table({"family": list(FAMILIES), "what": [f.title for f in FAMILIES.values()],
              "parameters": [f.describe_params() for f in FAMILIES.values()]})
    st.subheader("Gradient estimators")
    st.table({"estimator": [e.value for e in ESTIMATORS], "what": [s.description for s in ESTIMATORS.values()]})
    st.subheader("Optimizers")
    st.table({"optimizer": [o.value for o in OPTIMIZERS], "what": list(OPTIMIZERS.values()),
              "default learning rate": [DEFAULT_LR[o] for o in OPTIMIZERS]})
    st.subheader("Parameterizations of positive parameters")
    st.table({"parameterization": [p.value for p in PARAMETERIZATIONS], "what": list(PARAMETERIZATIONS.values())})
    st.subheader("Diagnosis")
    st.markdown(
        "- **stalled (step-limited)**: the gradient keeps one sign window after window but the parameter moves too "
        "little to arrive soon: the optimizer's step is the bottleneck (try `natural`, or the `exp` parameterization).\n"
        "- **stalled (noise-limited)**: no window shows a reliable gradient direction: the estimator's noise drowns "
        "the signal (try `pathwise`, `stl`, more samples, or a Robbins-Monro schedule).\n"
        "- **diverged**: a non-finite ELBO, gradient or parameter stopped the run; the last finite state is kept."
    )
