"""Compare runs: up to eight runs that differ in any setting, trained together and watched side by side.

Presets -> the runs to compare (the sidebar's settings as their base, varied settings, a
table of runs) -> buttons -> a comparison made or driven -> errors -> the URL -> the preset's
story -> status, the status column, live charts, duplicate-and-edit, the stall report.
"""

import streamlit as st

from vizvi.ui import compare, controls, panels, session
from vizvi.ui.panels import Action

messages = compare.query_messages()
st.sidebar.caption("The base of every run in the comparison: each run takes these settings, except those varied "
                   "on the page.")
errors = controls.sidebar_controls()
panels.presentation_css(controls.widget_value("present", False))
panels.presentation_toggle()
st.title("Compare runs")
compare.preset_buttons()
errors += compare.messages()
errors += compare.definition_panel()
action = compare.take_autostart(panels.action_buttons(session.COMPARE, reset_help="a fresh comparison of the runs above"))
prepared_error = session.collect_prepared(session.COMPARE)
if prepared_error:
    errors.append(prepared_error)
had_set = compare.trainer() is not None
if action is Action.RESET or (action is Action.START and not (had_set or session.preparing(session.COMPARE))):
    error = compare.request_new_set(start=action is Action.START)
    if error:
        errors.append(f"{error} (the current comparison continues unchanged)" if had_set else error)
elif compare.changed_since_start():
    st.info("The runs above differ from the comparison below: press **Reset** to compare them. "
            "The current comparison continues unchanged.", icon="🔄")
trainer = session.drive(session.COMPARE, action)
for message in messages + errors:
    st.error(message)
st.query_params.from_dict(compare.settings_for_url())
compare.story()
panels.preparing_panel(session.COMPARE, what="comparison")
if trainer is not None:
    compare.live_panels()
elif session.preparing(session.COMPARE) is None:
    st.info("Press **Start** to train the runs above together, or pick a preset.")
