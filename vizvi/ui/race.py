"""The estimator race's side of the lab page: the estimators chosen, the race made and driven
from the run settings' widgets, its standings and its live charts.

The race is kept in its own session slot (``session.RACE``) beside the run page's run; the
settings' widgets are the run page's own (one set per session), so the race starts from the
configuration the user built there, and the other way round.
"""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np
import streamlit as st

from vizvi import charts, estimators, focus
from vizvi.engine import validate
from vizvi.errors import ConfigError
from vizvi.live_chart import live_charts
from vizvi.race import Race, entrants
from vizvi.ui import controls, keys, panels, session

CHART_BANDS = [[["race-elbo"]], [["race-params"], ["race-snr"]]]
ALL = [e.value for e in estimators.EstimatorName]


def chosen() -> list:
    """The estimators the user chose to race (default: all of them)."""
    return list(st.session_state.get(keys.RACE_ESTIMATORS) or ALL)


def estimator_choice(sb) -> None:
    """The race's stand-in for the estimator select box: which estimators race, and which
    cannot on this family and sample count, and why."""
    if keys.RACE_ESTIMATORS not in st.session_state:
        st.session_state[keys.RACE_ESTIMATORS] = ALL
    sb.multiselect("Estimators racing", ALL, key=keys.RACE_ESTIMATORS, persist_state="session",
                   format_func=lambda e: f"{e}: {estimators.spec(e).description}",
                   help="every one chosen trains the same configuration side by side; those that cannot run on "
                        "this family or sample count sit out, and the page says why")
    refused = estimators.unavailable(controls.widget_family(), controls.widget_value("samples"))
    for e in chosen():
        if estimators.EstimatorName(e) in refused:
            sb.caption(f"Sits out: {refused[estimators.EstimatorName(e)]}.")


def load_query(query) -> list:
    """Take the race's estimators from a URL ``query`` (``estimators=a,b``); messages for bad ones."""
    if "estimators" not in query:
        return []
    names = [e.strip() for e in str(query["estimators"]).split(",") if e.strip()]
    unknown = [e for e in names if e not in ALL]
    if unknown:
        return [f"URL query: estimators={query['estimators']!r} ignored: unknown estimator {unknown[0]!r}; "
                f"choose from: {', '.join(ALL)}"]
    st.session_state[keys.RACE_ESTIMATORS] = names or ALL
    return []


def settings_for_url() -> dict:
    """The race's settings as the URL query writes them (the run settings and the estimators)."""
    return {**controls.current_settings(), "estimators": ",".join(chosen())}


def _check(config):
    """The race's config validated: every entrant's own check happens as the race is made;
    here the estimator setting is set to one that can race, so the others are checked."""
    racing, refused = entrants(config, chosen())
    if not racing:
        raise ConfigError("estimator", "no chosen estimator can race on this configuration: " + "; ".join(refused.values()))
    config.estimator = racing[0].value
    return validate(config)


def request_new_race(start: bool) -> Optional[str]:
    """Prepare a race from the widgets; an error message naming the setting, else None."""
    # The estimators are read here, in the script: the race is made in a background thread,
    # which must not touch st.session_state.
    make = functools.partial(Race, estimators=chosen())
    return session.request_new_run(start, session.RACE, make=make, config_check=_check)


def trainer():
    """The session's race trainer, if it has a race."""
    return session.trainer(session.RACE)


def _standings(snap) -> None:
    """One row per entrant: where it stands, and what the stall detector says of it."""
    optimum = snap.optimum
    rows = []
    for entry in snap.entries:
        elbo = np.asarray(entry.series.get("elbo", []), dtype=float)
        theta = np.asarray(list(entry.params.values()))
        row = {"estimator": entry.estimator, "status": str(entry.status), "steps": entry.step,
               "ELBO (last 100)": float(np.mean(elbo[-100:])) if len(elbo) else None}
        if optimum is not None:
            row["max relative distance to optimum"] = float(np.max(np.abs(theta - optimum) / np.maximum(np.abs(optimum), 1e-12)))
        row["target evaluations per step"] = estimators.spec(entry.estimator).evaluations_per_sample(len(entry.names)) * int(entry.config["samples"])
        row["diagnosis"] = "; ".join(f"{name}: {verdict['status']}" for name, verdict in entry.diagnosis.items()
                                     if str(verdict["status"]) not in ("converging", "converged")) or "no stall"
        rows.append(row)
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "ELBO (last 100)": st.column_config.NumberColumn(format="%.4g"),
        "max relative distance to optimum": st.column_config.NumberColumn(format="%.3g"),
    })
    for name, why in snap.refused.items():
        st.caption(f"{name} sits out: {why}.")


def standings_panel() -> None:
    """The standings table (a fragment refreshing while the race runs).

    In a fixed container: messages come and go above the table, and an element whose place
    in the element tree shifts is remounted by Streamlit (a stale copy was left beside it).
    """
    with st.container():
        _standings_now(trainer().snapshot(diagnosis=True))


def _standings_now(snap) -> None:
    if snap.error:
        st.error(f"The race stopped on an internal error: {snap.error}. Press Reset to start again.")
    if str(snap.status) == "compiling":
        st.info("Compiling every entrant into one XLA program (first time for this configuration; shared by all sessions)…",
                icon="⏳")
    for entry in snap.entries:
        if entry.divergence:
            st.warning(f"{entry.estimator}: {entry.divergence['message']} The others race on.", icon="🛑")
    _standings(snap)


def chart_panel() -> None:
    """The race's live charts: ELBO, parameters and gradient SNR, one colour per estimator."""
    snap = trainer().snapshot(diagnosis=False)
    span = controls.widget_value("span", panels.DEFAULT_SPAN)
    span = span if isinstance(span, int) and span >= 1 else panels.DEFAULT_SPAN
    # A model file's many parameters: the first few (the race compares estimators, not parameters).
    figures = charts.race_figures(snap, controls.widget_value("smoothing", "ema"), span,
                                  per_evaluation=controls.widget_value("variance_per", "estimate") == "evaluation",
                                  focus=focus.shown(snap.names))
    if controls.widget_value("present", False):
        for fig in figures.values():
            fig["layout"]["font"] = {"size": 18}
    live_charts(figures, key="race", bands=CHART_BANDS)


def live_panels() -> None:
    """Status line, standings and charts, each refreshing at its own rate while the race runs."""
    t = trainer()
    busy = t.busy
    st.session_state[keys.LIVE_REFRESH] = busy
    st.fragment(panels.status_panel, run_every=panels.STATUS_S if busy else None)(session.RACE)
    st.fragment(standings_panel, run_every=panels.BANNER_S if busy else None)()
    st.fragment(chart_panel, run_every=panels.UPDATE_S if busy else None)()
