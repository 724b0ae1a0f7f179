"""The dashboard's Streamlit side: everything a page shares, one concern a module.

- ``keys``: every ``st.session_state`` key, named once.
- ``runtime``: the process-wide patches of Streamlit's runtime (called by ``dashboard.py``).
- ``model_files``: ``dashboard.py``'s ``--model-file`` arguments, loaded once per process, a
  bad file's message kept for every page.
- ``controls``: widgets drawn from the settings registry, the URL query, and the RunConfig
  the widgets describe.
- ``session``: the session's run (its background ``Trainer``): make, replace, prepare in the
  background, apply live changes.
- ``panels``: the run page's parts: buttons, status line, diagnosis banners, the reference
  posterior (a model file's MCMC progress and diagnostics), the view of many parameters, live
  charts, export.

Pages (``app_pages/*.py``) compose these; no module here trains, and none calls Streamlit from a
thread.
"""
