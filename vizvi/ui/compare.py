"""The compare page's parts: presets, the runs to compare, the set made and driven, its live panels.

**The definition.** The sidebar's run settings (the run page's own widgets, one set per
session) are the *base*; up to ``VARY_ROWS`` varied settings, each over a list of values,
make the runs (their product, ``compare.vary``); a preset sets the base and the varied
settings at once and adds its own extra runs. The runs are the *draft*: a table with one row
per run and a column per setting in which they differ, whose cells edit a run before it
starts. A bad value anywhere (a vary list, a table cell, 9 runs) is named and leaves the
draft as it was.

**The comparison.** Start prepares a ``RunSet`` from the draft in the background (session
slot ``session.COMPARE``) and a ``SetTrainer`` trains it; Pause, Step and Reset act on the
whole set, and Reset makes a fresh one from the draft. While it trains, a run can be dropped,
duplicated with one setting edited, or joined by the fix a stall report row suggests; the
others go on.

**The URL** is ``?preset=NAME`` (with any view setting that is not the default: speed,
presentation mode...) or the base settings and ``vary=SETTING=V1,V2`` (repeated); opening
either starts that comparison. Edits of single table cells stay on the page.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import pandas as pd
import streamlit as st

from vizvi import compare_charts
from vizvi.compare import MAX_RUNS, RunSet, parse_vary, vary
from vizvi.compare_report import COLUMNS, describe_changes, report_csv, stall_report
from vizvi.engine import RunConfig, validate
from vizvi.errors import ConfigError
from vizvi.live_chart import live_charts
from vizvi.presets import PRESETS, get_preset
from vizvi.settings import RUN_SETTINGS, SETTING, URL_SETTINGS, Role
from vizvi.status import Status
from vizvi.ui import controls, keys, panels, session

VARY_ROWS = 3
VARIABLE = [s.flag for s in RUN_SETTINGS if s.url]  # the settings a row of the draft can vary
NONE = "—"
_VIEW_FLAGS = {s.flag for s in URL_SETTINGS if s.role is Role.VIEW}


def _ss():
    return st.session_state


def trainer():
    """The session's comparison trainer, if it has a comparison."""
    return session.trainer(session.COMPARE)


# -- presets and the URL ---------------------------------------------------------------------------
def _view_settings() -> dict:
    settings = controls.current_settings()
    return {s.flag: settings[s.flag] for s in URL_SETTINGS if s.role is Role.VIEW}


def _set_vary_rows(rows: list) -> None:
    """Set the varied-setting widgets to ``rows`` (``[(flag, values text)]``), the rest empty."""
    for i in range(VARY_ROWS):
        flag, values = rows[i] if i < len(rows) else (NONE, "")
        _ss()[keys.compare_vary(i, "setting")] = flag
        _ss()[keys.compare_vary(i, "values")] = values


def apply_preset(name: str) -> list:
    """Set the base settings and the varied settings to preset ``name`` (a callback, or before
    the widgets are drawn); returns messages for what could not be set."""
    preset = get_preset(name)
    query = dict(_view_settings())
    for s in URL_SETTINGS:
        value = getattr(preset.base, s.name, None) if s.role is not Role.VIEW else None
        if value is not None:
            query[s.flag] = value if isinstance(value, str) else s.to_text(value)
    errors = controls.load_query_params(query)
    _set_vary_rows([(SETTING[n].flag, (";" if n == "init" else ",").join(
        v if isinstance(v, str) else SETTING[n].to_text(v) for v in values)) for n, values in preset.variations])
    _ss()[keys.COMPARE_PRESET] = name
    _ss()[keys.COMPARE_PRESET_SIGNATURE] = None  # taken on the next run, from the widgets as set here
    return errors


def _on_preset(name: str) -> None:
    _ss()[keys.COMPARE_MESSAGES] = apply_preset(name)
    _ss()[keys.COMPARE_AUTOSTART] = True  # a preset button opens and starts its comparison


def query_messages() -> list:
    """On the compare page's first run in a session, read its URL (``preset``, or run settings
    and ``vary``); what was wrong with it. A link that names a comparison starts it."""
    ss = _ss()
    if not ss.get(keys.COMPARE_QUERY_LOADED):
        query = {k: st.query_params[k] for k in st.query_params.keys()}
        varied = st.query_params.get_all("vary")
        query.pop("vary", None)
        preset = query.pop("preset", None)
        errors = []
        if not ss.get(keys.QUERY_LOADED):  # the session starts here: the run settings' widgets too
            # With a preset, only the view settings (speed, presentation mode...) come from the link.
            errors += controls.load_query_params({k: v for k, v in query.items() if k in _VIEW_FLAGS} if preset else query)
            ss[keys.QUERY_LOADED] = True
        if preset:
            try:
                errors += apply_preset(preset)
                ss[keys.COMPARE_AUTOSTART] = True
            except ConfigError as e:
                errors.append(f"URL query: preset={preset!r} ignored: {e.message}")
        elif varied:
            rows = []
            for text in varied[:VARY_ROWS]:
                try:
                    name, _ = parse_vary(text)
                    rows.append((SETTING[name].flag, text.split("=", 1)[1]))
                except ConfigError as e:
                    errors.append(f"URL query: vary={text!r} ignored: {e}")
            if len(varied) > VARY_ROWS:
                errors.append(f"URL query: only {VARY_ROWS} settings can be varied; the rest are ignored")
            _set_vary_rows(rows)
            ss[keys.COMPARE_AUTOSTART] = bool(rows)
        ss[keys.COMPARE_QUERY_MESSAGES] = errors
        ss[keys.COMPARE_QUERY_LOADED] = True
    return list(ss.get(keys.COMPARE_QUERY_MESSAGES, []))


def _vary_rows() -> list:
    """[(flag, values text)] of the varied-setting rows that name a setting."""
    out = []
    for i in range(VARY_ROWS):
        flag = _ss().get(keys.compare_vary(i, "setting"), NONE)
        if flag and flag != NONE:
            out.append((flag, str(_ss().get(keys.compare_vary(i, "values"), "")).strip()))
    return out


def settings_for_url() -> dict:
    """The compare page's URL query: the preset, or the base settings and the varied ones."""
    preset = _ss().get(keys.COMPARE_PRESET)
    if preset:  # the preset, and the view settings a talk may want (speed, presentation mode) if not the default
        view = _view_settings()
        return {"preset": preset, **{s.flag: view[s.flag] for s in URL_SETTINGS
                                     if s.role is Role.VIEW and view[s.flag] != SETTING[s.name].to_text(s.ui_default)}}
    return {**controls.current_settings(), "vary": [f"{flag}={values}" for flag, values in _vary_rows()]}


def preset_buttons() -> None:
    """One button per preset: it sets the definition and starts the comparison."""
    cols = st.columns(len(PRESETS))
    current = _ss().get(keys.COMPARE_PRESET)
    for col, preset in zip(cols, PRESETS.values()):
        col.button(preset.title, key=f"cmp-preset-{preset.name}", width="stretch", on_click=_on_preset,
                   args=(preset.name,), type="primary" if preset.name == current else "secondary",
                   help=f"{preset.story} (link: ?preset={preset.name})")


def story() -> None:
    """The preset's story, above the charts."""
    preset = _ss().get(keys.COMPARE_PRESET)
    if preset:
        st.info(f"**{get_preset(preset).title}.** {get_preset(preset).story}", icon="📖")


# -- the draft: the runs to compare ------------------------------------------------------------------
def _signature() -> tuple:
    settings = controls.current_settings()
    return (tuple((s.flag, settings[s.flag]) for s in URL_SETTINGS if s.role is not Role.VIEW),
            tuple(_vary_rows()), _ss().get(keys.CSV_TEXT))


def _definition() -> list:
    """The runs the preset, or the base and the varied settings, define; ConfigError naming
    what is wrong (the varied setting, or the run and its setting)."""
    ss = _ss()
    preset = ss.get(keys.COMPARE_PRESET)
    signature = _signature()
    if preset and ss.get(keys.COMPARE_PRESET_SIGNATURE) is None:
        ss[keys.COMPARE_PRESET_SIGNATURE] = signature
    if preset and ss[keys.COMPARE_PRESET_SIGNATURE] == signature:
        return get_preset(preset).configs()
    ss[keys.COMPARE_PRESET] = None  # changed by hand: a comparison of its own
    if controls.upload_rejected():
        raise ConfigError("data", f"{controls.upload_rejected()} was rejected (see above)")
    variations = []
    for flag, values in _vary_rows():
        if not values:
            raise ConfigError("vary", f"give the values of {flag} (V1,V2,...), or set the row's setting to {NONE}")
        variations.append(parse_vary(f"{flag}={values}"))
    return vary(controls.config_from_widgets(), variations)


def _checked(configs: list) -> list:
    """Every run validated; ConfigError naming the run and the setting."""
    out = []
    for i, c in enumerate(configs):
        try:
            out.append(validate(c))
        except ConfigError as e:
            raise ConfigError(e.argument, f"run {i + 1}: {e.message}") from None
    return out


def _set_draft(configs: list, signature) -> None:
    ss = _ss()
    ss[keys.COMPARE_DRAFT] = configs
    ss[keys.COMPARE_DRAFT_SIGNATURE] = signature
    ss[keys.COMPARE_DRAFT_VERSION] = ss.get(keys.COMPARE_DRAFT_VERSION, 0) + 1


def draft() -> list:
    """The runs to compare (validated RunConfigs), as the page defines them."""
    return list(_ss().get(keys.COMPARE_DRAFT) or [])


def _columns(configs: list, varied: list) -> list:
    """Setting names shown in the table: those in which the runs differ, and those varied."""
    names = [s.name for s in RUN_SETTINGS if len({repr(getattr(c, s.name)) for c in configs}) > 1]
    return names + [SETTING[f.replace("-", "_")].name for f in varied if SETTING[f.replace("-", "_")].name not in names]


def _cell(config, name: str) -> str:
    value = getattr(config, name)
    return "" if value is None else (value if isinstance(value, str) else SETTING[name].to_text(value))


def _apply_edits(configs: list, names: list, edited: pd.DataFrame) -> Optional[list]:
    """The draft with the table's edited cells; None when nothing changed. ConfigError naming
    the run and the setting of a bad cell."""
    changed = False
    out = []
    for i, c in enumerate(configs):
        changes = {}
        for name in names:
            text = str(edited.iloc[i][SETTING[name].flag]).strip()
            if text != _cell(c, name):
                try:
                    changes[name] = text if name in ("init", "data") else SETTING[name].parse(text)
                except ConfigError as e:
                    raise ConfigError(e.argument, f"run {i + 1}: {e.message}") from None
        if changes:
            changed = True
            c = dataclasses.replace(c, **changes)
            if "optimizer" in changes and "lr" not in changes:
                c.lr = None
        out.append(c)
    return _checked(out) if changed else None


def definition_panel() -> list:
    """The varied settings and the table of runs; returns error messages (the draft is then
    the last good one)."""
    ss = _ss()
    count = len(draft())
    with st.expander(f"Runs to compare ({count} run{'s' if count != 1 else ''})" if count else "Runs to compare",
                     expanded=trainer() is None):
        return _definition_widgets()


def _definition_widgets() -> list:
    errors = []
    ss = _ss()
    st.caption("The sidebar's settings are every run's base. Vary settings over lists of values (several make their "
               f"product, at most {MAX_RUNS} runs), then edit single runs in the table; Start (or Reset) runs them.")
    for i in range(VARY_ROWS):
        c1, c2 = st.columns([1, 3])
        c1.selectbox(f"Vary setting {i + 1}", [NONE] + VARIABLE, key=keys.compare_vary(i, "setting"),
                     persist_state="session", label_visibility="collapsed" if i else "visible")
        c2.text_input(f"Values {i + 1}", key=keys.compare_vary(i, "values"), persist_state="session",
                      placeholder="V1,V2,... (init: name=v,...;name=v,...  or  prior,random)",
                      label_visibility="collapsed" if i else "visible")
    signature = _signature()
    if ss.get(keys.COMPARE_DRAFT_SIGNATURE) != signature or keys.COMPARE_DRAFT not in ss:
        try:
            _set_draft(_checked(_definition()), signature)
        except ConfigError as e:
            kept = " (the runs below are kept)" if ss.get(keys.COMPARE_DRAFT) else ""
            errors.append(f"{e}{kept}")
    configs = draft()
    if not configs:
        return errors
    names = _columns(configs, [f for f, _ in _vary_rows()])
    rows = pd.DataFrame([{"run": i + 1, **{SETTING[n].flag: _cell(c, n) for n in names}} for i, c in enumerate(configs)])
    edited = st.data_editor(rows, key=keys.compare_table(ss.get(keys.COMPARE_DRAFT_VERSION, 0)), hide_index=True,
                            width="stretch", num_rows="fixed", disabled=["run"],
                            column_config={SETTING[n].flag: st.column_config.TextColumn(SETTING[n].flag, help=SETTING[n].describe())
                                           for n in names})
    try:
        changed = _apply_edits(configs, names, edited)
        if changed is not None:
            _set_draft(changed, ss[keys.COMPARE_DRAFT_SIGNATURE])
            st.rerun()  # a fresh table holding the edit
    except ConfigError as e:
        errors.append(f"{e} (the run keeps its value)")
    return errors


# -- the comparison -------------------------------------------------------------------------------
def take_autostart(action):
    """Start asked by a link or a preset button (once)."""
    from vizvi.ui.panels import Action

    if _ss().pop(keys.COMPARE_AUTOSTART, False) and action is None and draft():
        if trainer() is None:
            return Action.START
        return Action.RESET if _ss().get(keys.COMPARE_STARTED) != draft() else Action.START
    return action


def request_new_set(start: bool) -> Optional[str]:
    """Prepare a comparison of the draft's runs; an error message, else None."""
    configs = draft()
    if not configs:
        return "runs: no runs to compare; fix the definition above"
    _ss()[keys.COMPARE_STARTED] = configs
    make = functools.partial(_make_set, configs)
    return session.request_new_run(start, session.COMPARE, make=make, config_check=lambda _: configs[0])


def _make_set(configs: list, config: RunConfig, csv_text: Optional[str] = None) -> RunSet:
    return RunSet(configs, csv_text=csv_text)


def changed_since_start() -> bool:
    """True when the draft differs from the runs the current comparison was made from."""
    return trainer() is not None and _ss().get(keys.COMPARE_STARTED) != draft()


def _say(message: str) -> None:
    _ss().setdefault(keys.COMPARE_MESSAGES, []).append(message)


def messages() -> list:
    """What the last callbacks (drop, duplicate, fix) had to say (once)."""
    return _ss().pop(keys.COMPARE_MESSAGES, [])


def _on_drop(number: int) -> None:
    try:
        trainer().drop(number)
    except ConfigError as e:
        _say(str(e))


def _on_add(config, what: str) -> None:
    try:
        trainer().add(config)
    except ConfigError as e:
        _say(f"{what}: {e} (the comparison continues unchanged)")


def _on_duplicate() -> None:
    ss = _ss()
    t = trainer()
    number = ss.get(keys.COMPARE_DUPLICATE_RUN)
    flag = ss.get(keys.COMPARE_DUPLICATE_SETTING)
    text = str(ss.get(keys.COMPARE_DUPLICATE_VALUE, "")).strip()
    entry = next((e for e in t.snapshot(diagnosis=False, density=False).entries if e.number == number), None)
    if entry is None:
        _say(f"runs: run #{number} is no longer in the comparison")
        return
    setting = SETTING[flag.replace("-", "_")]
    try:
        value = text if setting.name in ("init", "data") else setting.parse(text)
        config = dataclasses.replace(RunConfig(**entry.config), **{setting.name: value})
        if setting.name == "optimizer":
            config.lr = None
        config = validate(config)
    except ConfigError as e:
        _say(f"duplicate of #{number}: {e} (the comparison continues unchanged)")
        return
    _on_add(config, f"duplicate of #{number}")


def _status_line(snap) -> None:
    parts = [f"**{snap.status}**", f"step {snap.step:,}", f"{snap.runs} runs in {snap.groups} compiled group"
             f"{'s' if snap.groups > 1 else ''}, {snap.batched} batched"]
    if snap.steps_per_s:
        parts.append(f"{snap.steps_per_s:,.0f} steps/s")
    if snap.compile_s:
        parts.append(f"compiled in {snap.compile_s:.1f} s")
    st.markdown(" · ".join(parts))
    if snap.status is Status.COMPILING:
        so_far = f"{snap.compiling_s:.0f} s so far; " if snap.compiling_s else ""
        st.info(f"Compiling: {snap.runs} runs in {snap.groups} groups, {snap.batched} batched, into one XLA program "
                f"({so_far}a first Gamma comparison takes about 15 s; compiled once per process, shared by every session)…",
                icon="⏳")
    if snap.error:
        st.error(f"The comparison stopped on an internal error: {snap.error}. Press Reset to start again.")


def status_panel() -> None:
    """The status line and compile progress (a fragment refreshing while the set trains)."""
    t = trainer()
    _status_line(t.snapshot(diagnosis=False, density=False))
    panels.serving_notes(t)
    change = panels.Slots(1)  # comes and goes while the fragment refreshes
    if t.changing:
        change.take().info("Taking the change in: compiling the comparison's new layout while the other runs go on…", icon="⏳")
    elif t.change_error:
        change.take().error(f"{t.change_error}; the comparison continues as it was.")
    if _ss().get(keys.LIVE_REFRESH, False) and not t.busy:  # stopped on its own: settle the page
        _ss()[keys.LIVE_REFRESH] = False
        st.rerun(scope="app")


def _swatch(entry) -> str:
    return f"<span style='color:{compare_charts.run_color(entry.color)};font-size:1.3em'>●</span>"


def _verdicts(entry) -> str:
    if not entry.diagnosis:
        return ""
    return " · ".join(f"{name}: **{v['status']}**" if v["status"].stalled or str(v["status"]) == "diverged"
                      else f"{name}: {v['status']}" for name, v in entry.diagnosis.items())


def runs_panel() -> None:
    """The status column: per run its colour, label, status, step and each parameter's verdict,
    with Drop (a fragment refreshing every ``panels.BANNER_S`` while the set trains)."""
    with st.container():
        snap = trainer().snapshot(diagnosis=True, density=False)
        for e in snap.entries:
            c0, c1, c2, c3 = st.columns([4, 1, 4, 1], vertical_alignment="center")
            c0.markdown(f"{_swatch(e)} **#{e.number}** <small>{e.label or 'the base'}</small>", unsafe_allow_html=True)
            c1.markdown(f"{e.status} · {e.step:,}")
            c2.markdown(_verdicts(e) or "—")
            if c3.button("Drop", key=f"cmp-drop-{e.number}", on_click=_on_drop, args=(e.number,),
                         disabled=snap.runs == 1, width="stretch", help="remove this run; the others go on"):
                st.rerun(scope="app")
            divergence = panels.Slots(1)  # comes while the fragment refreshes
            if e.divergence:
                divergence.take().caption(f"#{e.number}: {e.divergence['message']}")


def report_panel() -> None:
    """The stall report: per run and parameter, a CSV download, and a button per suggested fix
    (a fragment refreshing every ``panels.BANNER_S`` while the set trains)."""
    with st.container():
        _stall_report(trainer().snapshot(diagnosis=True, density=False))


def _stall_report(snap) -> None:
    rows = stall_report(snap)
    st.subheader("Stall report")
    st.dataframe([{k: r[k] for k in COLUMNS if k != "label"} for r in rows], hide_index=True, width="stretch",
                 column_config={"value": st.column_config.NumberColumn(format="%.4g"),
                                "optimum": st.column_config.NumberColumn(format="%.4g"),
                                "distance": st.column_config.NumberColumn(format="%.3g"),
                                "relative distance": st.column_config.NumberColumn(format="percent"),
                                "suggestion": st.column_config.TextColumn(width="large")})
    st.download_button("Download the stall report (CSV)", data=report_csv(rows), file_name="vizvi-stall-report.csv",
                       mime="text/csv", key="cmp-report-csv")
    existing = [e.config for e in snap.entries]
    offered = set()
    for r in rows:
        if r["fixed"] is None or (r["run"], r["fix settings"]) in offered:
            continue
        offered.add((r["run"], r["fix settings"]))
        present = r["fixed"].to_dict() in existing
        why = ("already in the comparison" if present else f"the comparison holds {MAX_RUNS} runs: drop one first"
               if snap.full else "add this run; the others go on")
        if st.button(f"Add #{r['run']} fixed ({r['parameter']} {r['status']}): {r['fix settings']}",
                     key=f"cmp-fix-{r['run']}-{r['fix settings']}", on_click=_on_add,
                     args=(r["fixed"], f"fix of #{r['run']}"), disabled=present or snap.full, help=why):
            st.rerun(scope="app")


def chart_panel() -> None:
    """The shared live charts (a fragment refreshing every ``panels.UPDATE_S`` while the set trains)."""
    snap = trainer().snapshot(diagnosis=False)
    span = controls.widget_value("span", panels.DEFAULT_SPAN)
    span = span if isinstance(span, int) and span >= 1 else panels.DEFAULT_SPAN
    figures = compare_charts.compare_figures(snap, controls.widget_value("smoothing", "ema"), span,
                                             log_axes=controls.widget_value("log_axes", False))
    if controls.widget_value("present", False):
        for fig in figures.values():
            fig["layout"]["font"] = {"size": 18}
    live_charts(figures, key="compare", bands=compare_charts.bands(figures))


def duplicate_panel() -> None:
    """Duplicate a run with one setting edited: it starts from step 0 while the others go on."""
    snap = trainer().snapshot(diagnosis=False, density=False)
    with st.expander("Duplicate a run and edit one setting"):
        c1, c2, c3, c4 = st.columns([2, 2, 2, 1], vertical_alignment="bottom")
        numbers = [e.number for e in snap.entries]
        if _ss().get(keys.COMPARE_DUPLICATE_RUN) not in numbers:
            _ss()[keys.COMPARE_DUPLICATE_RUN] = numbers[0]
        labels = {e.number: f"#{e.number} {e.label}".strip() for e in snap.entries}
        c1.selectbox("Run", numbers, key=keys.COMPARE_DUPLICATE_RUN, format_func=labels.get)
        c2.selectbox("Setting", VARIABLE, key=keys.COMPARE_DUPLICATE_SETTING)
        c3.text_input("New value", key=keys.COMPARE_DUPLICATE_VALUE)
        c4.button("Add copy", on_click=_on_duplicate, disabled=snap.full, width="stretch",
                  help=f"the comparison holds {MAX_RUNS} runs: drop one first" if snap.full else
                  "a copy of the run with this setting changed, from step 0; the others go on")


def live_panels() -> None:
    """Status line, status column, charts and stall report, each at its own rate while the set trains."""
    busy = trainer().busy
    _ss()[keys.LIVE_REFRESH] = busy
    st.fragment(status_panel, run_every=panels.STATUS_S if busy else None)()
    st.fragment(chart_panel, run_every=panels.UPDATE_S if busy else None)()
    st.fragment(runs_panel, run_every=panels.BANNER_S if busy else None)()
    duplicate_panel()
    st.fragment(report_panel, run_every=panels.BANNER_S if busy else None)()
