"""The session's run: its background ``Trainer``, made, replaced and changed from the page.

Per-user state lives in ``st.session_state`` (``keys``); the compiled chunk functions are
process-wide and shared by every session (``engine.get_chunk_fn``); nothing per-user is ever
cached across sessions.

A new run is *prepared* in a background thread (data, reference posterior): on a slow target
(a grid reference) that takes seconds, and a script run that waited for it would be cut short
by the next click, losing the Reset while the old run went on under the new settings. The page
waits for it briefly (a fast target is ready at once, as if made in the script) and otherwise
shows that it is preparing, with the old run paused; a Start meanwhile starts the new run
when it is ready.
"""

from __future__ import annotations

import threading
from typing import Optional

import streamlit as st

from vizvi.engine import Run, RunConfig, validate
from vizvi.errors import ConfigError
from vizvi.models import MODELS
from vizvi.settings import Role
from vizvi.ui import controls, keys
from vizvi.worker import SPEEDS, Trainer

PREPARE_WAIT_S = 3.0  # a script run waits this long for a new run before showing it as preparing


def _ss():
    return st.session_state


def trainer() -> Optional[Trainer]:
    """The session's trainer, if it has a run."""
    return _ss().get(keys.TRAINER)


def speed() -> int:
    """Steps per update the speed control asks for."""
    return SPEEDS[str(controls.widget_value("speed", "200"))]


class Preparation:
    """A Run being made in a background thread from a validated config."""

    def __init__(self, config: RunConfig, csv_text: Optional[str], settings: dict, start: bool):
        self.config = config
        self.csv_text = csv_text
        self.settings = settings  # the URL-form settings it was made from
        self.start_when_ready = start
        self.run: Optional[Run] = None
        self.error: Optional[str] = None
        self._done = threading.Event()
        threading.Thread(target=self._make, name="vizvi-prepare", daemon=True).start()

    def _make(self) -> None:
        try:
            self.run = Run(self.config, csv_text=self.csv_text)
        except ConfigError as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - shown on the page, never lost in a thread
            self.error = f"preparing the run failed: {type(e).__name__}: {e}"
        finally:
            self._done.set()

    def wait(self, seconds: float) -> bool:
        """True once the run (or its error) is ready; waits at most ``seconds``."""
        return self._done.wait(seconds)

    @property
    def done(self) -> bool:
        """True once the run (or its error) is ready."""
        return self._done.is_set()


def preparing() -> Optional[Preparation]:
    """The run being prepared, if any."""
    return _ss().get(keys.PREPARING)


def request_new_run(start: bool) -> Optional[str]:
    """Prepare a fresh run from the widgets (Reset, or "Try this" with ``start``).

    Returns an error message naming the setting at fault (the current run is then untouched),
    else None: the run is installed, or is being prepared.
    """
    ss = _ss()
    if controls.upload_rejected():
        return (f"data: {controls.upload_rejected()} was rejected (see above); fix it, or remove it from the uploader "
                f"to use simulated data")
    try:
        config = validate(controls.config_from_widgets())
    except ConfigError as e:
        return str(e)
    csv_text = ss.get(keys.CSV_TEXT) if MODELS[config.model].csv_columns else None
    ss[keys.PREPARING] = prep = Preparation(config, csv_text, controls.current_settings(), start)
    prep.wait(PREPARE_WAIT_S)
    error = collect_prepared()
    if preparing() is not None and trainer() is not None:
        trainer().pause()  # nothing keeps training under settings it does not have
    return error


def collect_prepared() -> Optional[str]:
    """Install a prepared run once it is ready; returns its error, if it failed."""
    ss = _ss()
    prep = preparing()
    if prep is None or not prep.done:
        return None
    del ss[keys.PREPARING]
    if prep.error:
        return prep.error
    fresh = Trainer(prep.run, steps_per_update=speed())
    old = trainer()
    if old is not None:
        old.close()
    ss[keys.TRAINER] = fresh
    ss[keys.RUN_SETTINGS] = prep.settings
    ss[keys.RUN_CSV_TEXT] = prep.csv_text
    if prep.start_when_ready:
        fresh.start()
    return None


def start() -> None:
    """Start the run, or the run being prepared as soon as it is ready."""
    prep = preparing()
    if prep is not None:
        prep.start_when_ready = True
    elif trainer() is not None:
        trainer().start()


def _structural_problem() -> Optional[str]:
    """What is wrong with a changed structural setting (n, seed, init...), said as it is typed
    rather than only when Reset is pressed; None when they are fine. (A bad live setting is
    reported where it is applied.)"""
    try:
        validate(controls.config_from_widgets())
    except ConfigError as e:
        if controls.role_of(e.argument) is Role.STRUCTURAL:
            return str(e)
    return None


def apply_setting_changes(errors: list) -> Optional[str]:
    """Apply live-setting changes to the running run; name the structural ones that wait for Reset.

    A bad value is appended to ``errors`` and leaves the run as it is.
    """
    ss = _ss()
    t = trainer()
    if t is None:
        return None
    now = controls.current_settings()
    then = ss.get(keys.RUN_SETTINGS, now)
    structural = controls.differing(then, now, Role.STRUCTURAL)
    if ss.get(keys.CSV_TEXT) != ss.get(keys.RUN_CSV_TEXT):
        structural.append("data")
    if structural:
        problem = _structural_problem()
        if problem:
            errors.append(f"{problem} (press Reset once it is fixed; the current run continues unchanged)")
    live = controls.differing(then, now, Role.LIVE)
    if "optimizer" in live and "lr" not in live:
        # The run takes the learning rate the sidebar shows, never one of its own choosing: the
        # optimizer's callback sets the lr widget to the new default, but a fragment rerun can
        # carry the browser's old lr back over it, and the run then disagreed with the sidebar.
        live.append("lr")
    if live and not errors:
        try:
            config = controls.config_from_widgets()
            t.update_settings(**{flag.replace("-", "_"): getattr(config, flag.replace("-", "_")) for flag in live})
            ss[keys.RUN_SETTINGS] = {**then, **{flag: now[flag] for flag in live}}
        except ConfigError as e:
            errors.append(f"{e} (the current run continues unchanged)")
    return ", ".join(structural) if structural else None
