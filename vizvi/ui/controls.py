"""Widgets drawn from the settings registry, the URL query, and the RunConfig they describe.

Every setting has a widget keyed ``keys.widget(flag)`` and a URL query key named like its CLI
flag, so a link reproduces a demo exactly, seed included. Bad values (typed or from the URL)
are reported naming the setting and never touch the current run.
"""

from __future__ import annotations

from typing import Optional

import streamlit as st

from vizvi import estimators, optimizers
from vizvi.engine import RunConfig
from vizvi.errors import ConfigError
from vizvi.families import FAMILIES, families_for, get_family, parse_init_spec
from vizvi.models import MODELS
from vizvi.parameterizations import PARAMETERIZATIONS
from vizvi.settings import LAB_SETTING, LANDSCAPE_SETTING, RUN_SETTINGS, SETTING, URL_SETTINGS, Kind, Role, Setting
from vizvi.ui import keys

INIT_MODES = {"values": "set", "prior": "prior", "random": "random"}  # mode -> its label
# Up to this many parameters each initial value has its own field; a family with more (a model
# file's latent: 20 to hundreds) has one field of the values that differ from its defaults.
MAX_INIT_FIELDS = 12


def _ss():
    return st.session_state


REGISTRIES = {"": SETTING, keys.LAB: LAB_SETTING, keys.LANDSCAPE: LANDSCAPE_SETTING}  # widget group -> its settings table


def widget_value(name: str, default=None, group: str = ""):
    """The current value of a setting's widget (``default`` if it has none yet)."""
    return _ss().get(keys.widget(name, group), default)


def widget_family():
    """The family the widgets name, sized for the widgets' model (a vector family's parameters
    are named after the model's coordinates); the registry's prototype while it does not fit
    that model (the sidebar then resets it to the model's default)."""
    model = MODELS.get(widget_value("model")) or MODELS[SETTING["model"].ui_default]
    name = widget_value("family") or model.default_family
    try:
        return get_family(name, model)
    except ConfigError:
        return FAMILIES[name]


def _stored(setting: Setting, value):
    """The value a setting's widget holds: learning rates are typed text (so a typo can be
    reported rather than refused by the widget), the rest hold their value."""
    return setting.to_text(value) if setting.kind is Kind.FLOAT else value


def set_widget(name: str, value, group: str = "") -> None:
    """Set a setting's widget (from a callback or before the widget is drawn)."""
    _ss()[keys.widget(name, group)] = _stored(REGISTRIES[group][name], value)


def draw(container, name: str, style: str = "", group: str = "", **kwargs):
    """The widget of registry setting ``name`` in ``container`` (the sidebar or a column).

    The kind picks the widget: a choice is a select box (``style`` "radio" or "slider" for the
    other two), a whole number a number input, a learning rate a text input, a switch a toggle.
    Extra ``kwargs`` (``options``, ``format_func``, ``on_change``...) go to the widget. ``group``
    names the settings table (``REGISTRIES``).
    """
    s = REGISTRIES[group][name]
    common = {"key": keys.widget(s.flag, group), "persist_state": "session", "help": kwargs.pop("help", s.describe())}
    if s.kind is Kind.CHOICE:
        options = kwargs.pop("options", s.options())
        if style == "radio":
            return container.radio(s.label, options, **common, **kwargs)
        if style == "slider":
            return container.select_slider(s.label, options, **common, **kwargs)
        return container.selectbox(s.label, options, **common, **kwargs)
    if s.kind is Kind.INT:
        return container.number_input(s.label, step=kwargs.pop("step", 1), **common, **kwargs)
    if s.kind is Kind.BOOL:
        return container.toggle(s.label, **common, **kwargs)
    return container.text_input(s.label, **common, **kwargs)


# -- the URL query ----------------------------------------------------------------------------
def query_messages() -> list:
    """What was wrong with the URL query; on a session's first run it is read into the widgets."""
    ss = _ss()
    if not ss.get(keys.QUERY_LOADED):
        ss[keys.QUERY_MESSAGES] = load_query_params()
        ss[keys.QUERY_LOADED] = True
    return list(ss.get(keys.QUERY_MESSAGES, []))


def query_values(settings, query, errors: list) -> dict:
    """{name: value} of ``settings`` from a URL ``query`` (defaults where absent or bad); bad
    values and unknown keys are reported in ``errors``."""
    values = {s.name: s.ui_default for s in settings}
    for s in settings:
        if s.flag in query:
            raw = query[s.flag]
            try:
                values[s.name] = s.parse(raw) if s.kind is not Kind.TEXT else raw
            except ConfigError as e:
                errors.append(f"URL query: {s.flag}={raw!r} ignored: {e.message}")
    for extra in sorted(set(query.keys()) - {s.flag for s in settings}):
        errors.append(f"URL query: unknown setting {extra!r} ignored")
    return values


def load_query_params(query=None) -> list:
    """Take every run setting from the URL ``query`` (default: this page's) into the widgets;
    return messages for bad ones."""
    errors = []
    values = query_values(URL_SETTINGS, st.query_params if query is None else query, errors)
    model = MODELS[values["model"]]
    fits = families_for(model)
    if values["family"] is None:
        values["family"] = model.default_family
    elif values["family"] not in fits:
        errors.append(f"URL query: family={values['family']!r} does not fit model {model.name!r} (fits: {', '.join(fits)}); "
                      f"using {model.default_family}")
        values["family"] = model.default_family
    if values["n"] is None:
        values["n"] = model.default_n if model.csv_columns else 0
    if values["lr"] is None:
        values["lr"] = optimizers.default_lr(values["optimizer"])
    family = get_family(values["family"], model)
    init = (values.pop("init") or "").strip()
    init_mode, init_values = "values", {}
    if init in INIT_MODES and init != "values":
        init_mode = init
    elif init:
        try:
            parsed = parse_init_spec(init)
            unknown = [k for k in parsed if k not in family.param_names]
            if unknown:
                raise ConfigError("init", f"family {family.name!r} has no parameter {unknown[0]!r}")
            init_values = parsed
        except ConfigError as e:
            errors.append(f"URL query: init={init!r} ignored: {e.message}")
    for name, value in values.items():
        set_widget(name, value)
    _ss()[keys.INIT_MODE] = init_mode
    _set_init_widgets(family, model.name, init_values)
    return errors


def _set_init_widgets(family, model: str, values: dict) -> None:
    """The initial-value widgets of ``family`` (over ``model``) set to ``values`` (name -> value),
    the family's defaults for the others."""
    if family.size > MAX_INIT_FIELDS:
        _ss()[keys.init_overrides(family.name, model)] = ",".join(f"{name}={v:g}" for name, v in values.items())
        return
    for name, default in zip(family.param_names, family.defaults):
        _ss()[keys.init_value(family.name, name)] = f"{values.get(name, default):g}"


def current_settings() -> dict:
    """Every URL setting as the query writes it (every one, so a link is complete)."""
    out = {}
    for s in URL_SETTINGS:
        if s.name == "init":
            out[s.flag] = init_spec_from_widgets()
        else:
            v = widget_value(s.name, s.ui_default)
            out[s.flag] = v if isinstance(v, str) else s.to_text(v)
    return out


def init_spec_from_widgets() -> str:
    """The init setting as the CLI writes it: 'prior', 'random' or 'name=value,...'."""
    ss = _ss()
    mode = ss.get(keys.INIT_MODE, "values")
    if mode != "values":
        return mode
    family = widget_family()
    if family.size > MAX_INIT_FIELDS:
        # Only what differs from the defaults: hundreds of values would make no link.
        return str(ss.get(keys.init_overrides(family.name, widget_value("model")), "")).strip()
    return ",".join(f"{name}={str(ss.get(keys.init_value(family.name, name), f'{default:g}')).strip()}"
                    for name, default in zip(family.param_names, family.defaults))


def config_from_widgets() -> RunConfig:
    """A RunConfig from the widgets (ranges not yet checked: ``engine.validate`` names anything wrong)."""
    model = MODELS[widget_value("model")]
    csv_text = _ss().get(keys.CSV_TEXT) if model.csv_columns else None
    values = {}
    for s in RUN_SETTINGS:
        if not s.url:
            continue
        if s.name == "init":
            values[s.name] = init_spec_from_widgets()
        elif s.kind is Kind.FLOAT:
            values[s.name] = s.parse(str(widget_value(s.name)).strip())
        else:
            values[s.name] = widget_value(s.name)
    values["n"] = values["n"] if model.csv_columns and not csv_text else None
    return RunConfig(**values)


def role_of(flag: str) -> Optional[Role]:
    """The role of the setting a ConfigError names (None for an argument that is no setting)."""
    setting = SETTING.get(flag.replace("-", "_"))
    return setting.role if setting else None


def differing(then: dict, now: dict, role: Role) -> list:
    """Flags of the URL settings of ``role`` whose values differ between two ``current_settings``."""
    return [s.flag for s in URL_SETTINGS if s.role is role and str(then.get(s.flag)) != str(now.get(s.flag))]


# -- callbacks (run before the script, where widget state may be set) -------------------------
def apply_suggestion(changes: dict) -> None:
    """Set the widgets to a diagnosis suggestion's settings (``lr`` None: the optimizer's default)."""
    for name, value in changes.items():
        if name == "init":
            _ss()[keys.INIT_MODE] = value if value in INIT_MODES else "values"
        elif name != "lr":
            set_widget(name, value)
    if "lr" in changes or "optimizer" in changes:
        lr = changes.get("lr")
        set_widget("lr", lr if lr is not None else optimizers.default_lr(widget_value("optimizer")))


def _on_model_change() -> None:
    model = MODELS[widget_value("model")]
    if widget_value("family") not in families_for(model):
        set_widget("family", model.default_family)
    if model.csv_columns and not widget_value("n"):
        set_widget("n", model.default_n)
    _ss().pop(keys.CSV_TEXT, None)


def _on_optimizer_change() -> None:
    set_widget("lr", optimizers.default_lr(widget_value("optimizer")))


# -- the sidebar ------------------------------------------------------------------------------
def _data_controls(sb, model) -> list:
    """Observations and the CSV upload of a model that takes data; returns error messages."""
    errors = []
    ss = _ss()
    draw(sb, "n", help="size of the simulated data set")
    upload = sb.file_uploader(f"…or upload a CSV ({', '.join(model.csv_columns)})", type=["csv", "txt"],
                              key=keys.upload(model.name))
    ss.pop(keys.UPLOAD_REJECTED, None)
    if upload is None:
        ss.pop(keys.CSV_TEXT, None)
        return errors
    try:
        text = upload.getvalue().decode("utf-8")
        model.parse_csv(text, source=upload.name)
        ss[keys.CSV_TEXT] = text
    except UnicodeDecodeError:
        errors.append(f"data: {upload.name} is not a UTF-8 text file")
    except ConfigError as e:
        errors.append(str(e))
    if keys.CSV_TEXT not in ss or errors:
        ss.pop(keys.CSV_TEXT, None)
        ss[keys.UPLOAD_REJECTED] = upload.name
    return errors


def upload_rejected() -> Optional[str]:
    """The name of an uploaded file that was rejected and is still in the uploader, if any."""
    return _ss().get(keys.UPLOAD_REJECTED)


def _init_controls(sb, family, model: str) -> None:
    ss = _ss()
    sb.radio("Initial values", list(INIT_MODES), key=keys.INIT_MODE, persist_state="session", horizontal=True,
             format_func=INIT_MODES.get,
             help="set: exactly these constrained values; prior: moment-matched to the prior; random: seeded")
    if ss[keys.INIT_MODE] != "values":
        return
    if family.size > MAX_INIT_FIELDS:
        defaults = ", ".join(f"{n}={d:g}" for n, d in zip(family.param_names, family.defaults))
        sb.text_input(f"Values that differ from the defaults ({family.size} parameters)",
                      key=keys.init_overrides(family.name, model), persist_state="session",
                      placeholder=f"name=value,... e.g. {family.param_names[0]}=0.5",
                      help=f"name=value pairs of the parameters that start elsewhere than the family's default; "
                           f"the defaults: {defaults}")
        return
    cols = sb.columns(2)
    for i, (name, default) in enumerate(zip(family.param_names, family.defaults)):
        key = keys.init_value(family.name, name)
        if key not in ss:
            ss[key] = f"{default:g}"
        cols[i % 2].text_input(name, key=key, persist_state="session")


def _estimator_choice(sb) -> None:
    """The estimator select box, offering what the family and sample count allow, and its cost."""
    samples = widget_value("samples")
    family = widget_family()
    refused = estimators.unavailable(family, samples)
    allowed = [e.value for e in estimators.EstimatorName if e not in refused]
    if widget_value("estimator") not in allowed:
        set_widget("estimator", SETTING["estimator"].default)
    draw(sb, "estimator", options=allowed, format_func=lambda e: f"{e}: {estimators.spec(e).description}")
    for e, why in refused.items():
        sb.caption(f"Not offered: {why}.")
    chosen = estimators.spec(widget_value("estimator"))
    per_sample = chosen.evaluations_per_sample(family.size)
    per_parameter = f" ({chosen.evaluations_per_parameter} per parameter and sample)" if chosen.evaluations_per_parameter else ""
    sb.caption(f"Cost: {per_sample} target evaluation{'s' if per_sample > 1 else ''} per sample, "
               f"{per_sample * samples:,} per step{per_parameter}.")


def sidebar_controls(estimator_choice=None) -> list:
    """Draw every control in the sidebar; return error messages for bad values.

    ``estimator_choice(sidebar)`` replaces the estimator select box (the lab's race picks
    several estimators instead of one).
    """
    errors = []
    sb = st.sidebar
    sb.header("Target")
    draw(sb, "model", format_func=lambda m: f"{m}: {MODELS[m].title}", on_change=_on_model_change)
    model = MODELS[widget_value("model")]
    sb.caption(model.description)
    if model.csv_columns:
        errors += _data_controls(sb, model)
    draw(sb, "seed")

    sb.header("Variational family")
    fits = families_for(model)
    if widget_value("family") not in fits:
        set_widget("family", model.default_family)
    draw(sb, "family", options=fits, format_func=lambda f: FAMILIES[f].title)
    missing = [f for f in FAMILIES if f not in fits]
    if missing:
        sb.caption(f"Not offered: {', '.join(missing)}: their support does not match this model's latent, "
                   f"which lives in {model.support_text}.")
    _init_controls(sb, widget_family(), model.name)
    draw(sb, "parameterization", help="\n".join(f"{k.value}: {v}" for k, v in PARAMETERIZATIONS.items()))

    sb.header("Gradient estimator")
    draw(sb, "samples")
    (estimator_choice or _estimator_choice)(sb)
    c1, c2 = sb.columns(2)
    draw(c1, "replicates")
    draw(c2, "variance_every")

    sb.header("Optimizer")
    draw(sb, "optimizer", on_change=_on_optimizer_change, format_func=lambda o: f"{o}: {optimizers.spec(o).description}")
    c1, c2 = sb.columns(2)
    draw(c1, "lr")
    draw(c2, "schedule")
    draw(sb, "steps", step=1000)

    sb.header("View")
    draw(sb, "speed", style="slider")
    c1, c2 = sb.columns(2)
    draw(c1, "smoothing", style="radio")
    draw(c2, "span", step=5)
    draw(sb, "variance_per", style="radio", horizontal=True,
         format_func={"estimate": "gradient estimate", "evaluation": "target evaluation"}.get)
    draw(sb, "log_axes")
    draw(sb, "present")
    return errors
