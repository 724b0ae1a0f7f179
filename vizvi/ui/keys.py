"""Every ``st.session_state`` key the dashboard uses, named once (no bare string keys elsewhere)."""

from __future__ import annotations

TRAINER = "trainer"  # the session's Trainer (its run and background thread); tests read it by this name
RUN_SETTINGS = "run_settings"  # the URL-form settings the current run was made with
CSV_TEXT = "csv_text"  # the uploaded CSV's text, once it parsed
UPLOAD_REJECTED = "upload_rejected"  # the name of an uploaded file that failed to parse (still in the uploader)
RUN_CSV_TEXT = "run_csv_text"  # the CSV text the current run was made with
QUERY_LOADED = "qp_loaded"  # the URL query has been read into the widgets (first run of a session)
QUERY_MESSAGES = "qp_messages"  # what was wrong with that query, shown until the session ends
PENDING_ACTION = "pending_action"  # an action a callback asks the next full run to take
LIVE_REFRESH = "live_refresh"  # the fragments were drawn refreshing (a stop then needs a full rerun)
PREPARING = "preparing"  # a run being prepared in the background (Reset on a slow target)
INIT_MODE = "w_init_mode"  # the initial-values mode widget
PRESENT_MAIN = "w_present_main"  # the presentation toggle shown on the page while the sidebar is hidden


def widget(flag: str) -> str:
    """The widget key of a setting (by its flag or name: ``variance-every`` -> ``w_variance-every``)."""
    return f"w_{flag.replace('_', '-')}"


def init_value(family: str, param: str) -> str:
    """The widget key of one initial value of one family's parameter."""
    return f"w_init_{family}_{param}"


def upload(model: str) -> str:
    """The file-uploader key for a model's CSV (one per model: its columns differ)."""
    return f"w_upload_{model}"


def try_suggestion(param: str) -> str:
    """The key of the "Try this" button of a parameter's stall banner."""
    return f"try_{param}"
