"""The dashboard's Streamlit side: everything a page shares, one concern a module.

- ``keys``: every ``st.session_state`` key, named once.
- ``runtime``: the process-wide patches of Streamlit's runtime (called by ``dashboard.py``).
- ``controls``: widgets drawn from the settings registry, the URL query, and the RunConfig
  the widgets describe.
- ``session``: the session's run (its background ``Trainer``): make, replace, prepare in the
  background, apply live changes.
- ``panels``: the run page's parts: buttons, status line, diagnosis banners, live charts, export.

Pages (``app_pages/*.py``) compose these; no module here trains, and none calls Streamlit from a
thread.
"""
