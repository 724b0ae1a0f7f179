"""The lab page's two views and its URL: which view is shown, and the settings a link carries.

A lab link restores its view (``view=race``; the explorer is the default) and that view's
settings: the explorer's own (``mu``, ``sigma``, ``k``...) or, for the race, the run settings
and ``estimators``. The URL is read once per session, on the session's first page, whichever
page that is; the run settings' widgets are shared with the run page.
"""

from __future__ import annotations

import enum

import streamlit as st

from vizvi.ui import controls, explorer, keys, race


class View(str, enum.Enum):
    """What the lab page shows."""

    EXPLORER = "explorer"
    RACE = "race"

    @property
    def title(self) -> str:
        """The view's name on its switch."""
        return {View.EXPLORER: "Variance explorer", View.RACE: "Estimator race"}[self]


def query_messages() -> list:
    """On the lab's first run in a session, read its URL into the widgets; what was wrong with it."""
    ss = st.session_state
    if not ss.get(keys.LAB_QUERY_LOADED):
        query = {k: st.query_params[k] for k in st.query_params.keys()}
        errors = []
        raw_view = query.pop("view", View.EXPLORER.value)
        try:
            view = View(raw_view)
        except ValueError:
            errors.append(f"URL query: view={raw_view!r} ignored: choose one of: {', '.join(v.value for v in View)}")
            view = View.EXPLORER
        if view is View.RACE:
            errors += race.load_query(query)
            query.pop("estimators", None)
        run_query, lab_query = (query, {}) if view is View.RACE else ({}, query)
        if not ss.get(keys.QUERY_LOADED):  # the session starts here: the run settings' widgets too
            errors += controls.load_query_params(run_query)
            ss[keys.QUERY_LOADED] = True
        errors += explorer.load_query(lab_query)
        ss[keys.LAB_VIEW] = view.value
        ss[keys.LAB_QUERY_MESSAGES] = errors
        ss[keys.LAB_QUERY_LOADED] = True
    return list(ss.get(keys.LAB_QUERY_MESSAGES, []))


def view_switch() -> View:
    """The switch between the two views; returns the one chosen."""
    st.segmented_control("View", [v.value for v in View], key=keys.LAB_VIEW, persist_state="session", required=True,
                         format_func=lambda v: View(v).title, label_visibility="collapsed")
    return View(st.session_state.get(keys.LAB_VIEW) or View.EXPLORER.value)


def settings_for_url(view: View) -> dict:
    """The URL query of the lab page as it stands."""
    if view is View.RACE:
        return {"view": View.RACE.value, **race.settings_for_url()}
    return explorer.settings_for_url()
