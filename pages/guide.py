"""The guide page: what every choice means and how to read the charts."""

from vizvi import ui

ui.render_guide_page()
