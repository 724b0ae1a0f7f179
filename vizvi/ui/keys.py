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
STARTED_EARLY = "started_early"  # Start started the trainer in the buttons' fragment: the full run need not wait for a chunk
LIVE_REFRESH = "live_refresh"  # the fragments were drawn refreshing (a stop then needs a full rerun)
PREPARING = "preparing"  # a run being prepared in the background (Reset on a slow target)
INIT_MODE = "w_init_mode"  # the initial-values mode widget
PRESENT_MAIN = "w_present_main"  # the presentation toggle shown on the page while the sidebar is hidden


LAB = "lab"  # the widget group of the variance explorer's settings (their flags reuse run flags' names)
LAB_QUERY_LOADED = "lab_qp_loaded"  # the lab page's URL query has been read (first lab run of a session)
LAB_QUERY_MESSAGES = "lab_qp_messages"  # what was wrong with it
LAB_VIEW = "w_lab-view"  # the lab page's view: the variance explorer or the estimator race
LAB_JOB = "lab_job"  # the variance computation in the background (its progress and result)
RACE_TRAINER = "race_trainer"  # the session's estimator race (a RaceTrainer)
RACE_PREPARING = "race_preparing"  # a race being prepared in the background
RACE_ESTIMATORS = "w_race-estimators"  # the estimators chosen to race
RACE_SETTINGS = "race_settings"  # the URL-form settings the current race was made with
RACE_CSV_TEXT = "race_csv_text"  # the CSV text the current race was made with

COMPARE_TRAINER = "compare_trainer"  # the session's comparison (a SetTrainer)
COMPARE_PREPARING = "compare_preparing"  # a comparison being prepared in the background
COMPARE_SETTINGS = "compare_settings"  # the URL-form base settings the current comparison was made with
COMPARE_CSV_TEXT = "compare_csv_text"  # the CSV text the current comparison was made with
COMPARE_QUERY_LOADED = "compare_qp_loaded"  # the compare page's URL query has been read (first visit of a session)
COMPARE_QUERY_MESSAGES = "compare_qp_messages"  # what was wrong with it
COMPARE_AUTOSTART = "compare_autostart"  # a link named a comparison: start it on this run
COMPARE_PRESET = "compare_preset"  # the preset the definition comes from (None: base + varied settings)
COMPARE_PRESET_SIGNATURE = "compare_preset_signature"  # the widgets as the preset set them (a change leaves it)
COMPARE_DRAFT = "compare_draft"  # the runs to compare (RunConfigs), as defined and edited on the page
COMPARE_DRAFT_SIGNATURE = "compare_draft_signature"  # the definition the draft was built from
COMPARE_DRAFT_VERSION = "compare_draft_version"  # bumped whenever the draft changes (a fresh table editor)
COMPARE_STARTED = "compare_started"  # the draft the current comparison was made from
COMPARE_MESSAGES = "compare_messages"  # what a callback (drop, duplicate, fix) has to say on the next run
COMPARE_DUPLICATE_RUN = "w_compare-duplicate-run"  # duplicate-and-edit: which run
COMPARE_DUPLICATE_SETTING = "w_compare-duplicate-setting"  # ... which setting
COMPARE_DUPLICATE_VALUE = "w_compare-duplicate-value"  # ... its new value


def widget(flag: str, group: str = "") -> str:
    """The widget key of a setting (by its flag or name: ``variance-every`` -> ``w_variance-every``);
    a ``group`` keeps apart settings of another table that share a flag (``w_lab-samples``)."""
    flag = flag.replace("_", "-")
    return f"w_{group}-{flag}" if group else f"w_{flag}"


def init_value(family: str, param: str) -> str:
    """The widget key of one initial value of one family's parameter."""
    return f"w_init_{family}_{param}"


def upload(model: str) -> str:
    """The file-uploader key for a model's CSV (one per model: its columns differ)."""
    return f"w_upload_{model}"


def try_suggestion(param: str) -> str:
    """The key of the "Try this" button of a parameter's stall banner."""
    return f"try_{param}"


def compare_vary(row: int, part: str) -> str:
    """The widget key of row ``row`` of the compare page's varied settings (``part``: setting, values)."""
    return f"w_compare-vary-{part}-{row}"


def compare_table(version: int) -> str:
    """The key of the compare page's table editor for draft ``version`` (a new draft: a fresh editor)."""
    return f"compare-table-{version}"

# The ELBO landscape page (vizvi.ui.landscape)
LANDSCAPE = "landscape"  # the widget group of the landscape's settings (their flags reuse run flags' names)
LANDSCAPE_STATE = "landscape_state"  # the session's LandscapeState
LANDSCAPE_QUERY_LOADED = "landscape_qp_loaded"  # the page's URL query has been read (first landscape run of a session)
LANDSCAPE_QUERY_MESSAGES = "landscape_qp_messages"  # what was wrong with it
LANDSCAPE_REFRESHING = "landscape_refreshing"  # the panel was drawn refreshing (a stop then needs a full rerun)

# The run page's view of a run with many parameters (vizvi.focus, vizvi.latent_charts)
FOCUS = "w_focus"  # the parameters the user chose to draw (empty: chosen automatically)
AUTO_FOCUS = "auto_focus"  # (trainer id, the names chosen automatically): refreshed with the diagnosis
OVERVIEW = "w_overview"  # the quantity of the overview heatmap of every parameter
LATENT_MODE = "w_latent-mode"  # q against the posterior: marginals or a pair
LATENT_COORDINATES = "w_latent-coordinates"  # ... the marginals' coordinates (empty: those of the parameters drawn)
LATENT_PAIR = "w_latent-pair"  # ... the pair's two coordinates
REFERENCE_REFRESH = "reference_refresh"  # the reference panel was drawn polling an MCMC job (its end needs a full rerun)
SLOW_FIGURES = "slow_figures"  # panels.SlowChartHold: the slow charts last drawn, shared by the fragment and the feed
CHART_FEED = "chart_feed"  # panels.ChartFeed: the feed the browser fetches chart updates from (vizvi.live_feed)


def init_overrides(family: str, model: str) -> str:
    """The widget key of the initial values (``name=value,...``) of a family too large for a field
    per parameter, over one model (its parameters are named after that model's coordinates)."""
    return f"w_init-overrides_{family}_{model}"
