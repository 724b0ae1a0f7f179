"""The run page: pick a target, a family, an estimator and an optimizer, and watch it train."""

from vizvi import ui

ui.render_run_page()
