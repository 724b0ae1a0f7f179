"""The estimator lab: how noisy is each gradient estimator, and what does the noise do to training?

The view switch -> the variance explorer (Fig. 2 of Mohamed et al. 2020, computed in the
background: its controls, progress, figures) or the estimator race (the run settings in the
sidebar, buttons, every chosen estimator training the same configuration live) -> errors ->
the URL.
"""

import streamlit as st

from vizvi.ui import controls, explorer, lab, panels, race, session
from vizvi.ui.panels import Action

messages = lab.query_messages()
st.title("Estimator lab")
view = lab.view_switch()

if view is lab.View.EXPLORER:
    st.caption("The variance of Monte Carlo estimates of d/dmu and d/dsigma of E[f(x; k)] under x ~ N(mu, sigma²), "
               "as k moves: Figure 2 of Mohamed, Rosca, Figurnov and Mnih (2020), computed from independent replicates.")
    explorer.sidebar_controls()
    errors = []
    explorer.keep_computing(errors)
    for message in messages + errors:
        st.error(message)
    st.query_params.from_dict(lab.settings_for_url(view))
    explorer.panel()
else:
    explorer.stop()  # nothing computes for a view nobody sees
    st.caption("One configuration (the run settings in the sidebar, shared with the Run page) trained with every chosen "
               "estimator side by side, all in one compiled call: the same data, initial values, optimizer and seed.")
    errors = controls.sidebar_controls(estimator_choice=race.estimator_choice)
    panels.presentation_css(controls.widget_value("present", False))
    action = panels.action_buttons(session.RACE, reset_help="a new race with the current settings")
    prepared_error = session.collect_prepared(session.RACE)
    if prepared_error:
        errors.append(prepared_error)
    had_race = race.trainer() is not None
    if action is Action.RESET or (action is Action.START and not (had_race or session.preparing(session.RACE))):
        error = race.request_new_race(start=action is Action.START)
        if error:
            errors.append(f"{error} (the current race continues unchanged)" if had_race else error)
    else:
        waiting = session.apply_setting_changes(errors, session.RACE)
        if waiting:
            st.info(f"Changed {waiting}: press **Reset** for a race with them. The current race continues unchanged.", icon="🔄")
    trainer = session.drive(session.RACE, action)
    for message in messages + errors:
        st.error(message)
    st.query_params.from_dict(lab.settings_for_url(view))
    panels.preparing_panel(session.RACE, what="race")
    if trainer is not None:
        race.live_panels()
    elif session.preparing(session.RACE) is None:
        st.info("Press **Start** to race the chosen estimators on this configuration.")
