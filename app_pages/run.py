"""The run page: pick a target, a family, an estimator and an optimizer, and watch it train.

Sidebar controls (from the settings registry, restored from the URL) -> buttons -> a run made,
changed or prepared -> errors -> the URL -> status, diagnosis, the reference posterior (a model
file's by MCMC, in the background) and live charts -> what the charts mean -> export.
"""

import streamlit as st

from vizvi.ui import controls, keys, panels, session
from vizvi.ui.panels import Action

messages = controls.query_messages()
errors = controls.sidebar_controls()
panels.presentation_css(controls.widget_value("present", False))
panels.presentation_toggle()
st.title("vizvi: watch variational inference run")
action = panels.action_buttons(fast_start=True)

prepared_error = session.collect_prepared()  # a run prepared in the background is ready
if prepared_error:
    errors.append(prepared_error)
had_run = session.trainer() is not None
if action in (Action.RESET, Action.RESET_AND_START) or not (had_run or session.preparing()):
    error = session.request_new_run(start=action is Action.RESET_AND_START)
    if error:
        errors.append(f"{error} (the current run continues unchanged)" if had_run else error)
else:
    waiting = session.apply_setting_changes(errors)
    if waiting:
        st.info(f"Changed {waiting}: these change the run's structure; press **Reset** to start a run with them. "
                f"The current run continues unchanged.", icon="🔄")

trainer = session.trainer()
if trainer is not None:
    trainer.set_speed(session.speed())
started_early = st.session_state.pop(keys.STARTED_EARLY, False)
if action is Action.START:
    session.start()
    if trainer is not None and trainer.run.is_compiled and not started_early:
        trainer.wait_for_steps(panels.FIRST_CHUNK_WAIT_S)  # this script run then draws the first steps
elif trainer is not None and action is Action.PAUSE:
    trainer.pause()
elif trainer is not None and action is Action.STEP:
    trainer.step()

for message in messages + errors:
    st.error(message)
st.query_params.from_dict(controls.current_settings())
panels.preparing_panel()
if trainer is not None:
    panels.live_panels(trainer)
    panels.chart_notes(trainer)
    panels.export_panel(trainer)
elif session.preparing() is None:
    st.warning("Fix the settings above to start a run.")
