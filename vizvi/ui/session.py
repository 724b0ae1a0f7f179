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

from typing import Callable, NamedTuple, Optional

import streamlit as st
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from vizvi import serving

from vizvi.engine import Run, RunConfig, validate
from vizvi.errors import ConfigError
from vizvi.models import MODELS
from vizvi.settings import Role
from vizvi.ui import controls, keys
from vizvi.background import BackgroundCall
from vizvi.worker import SPEEDS, RaceTrainer, SetTrainer, Trainer

PREPARE_WAIT_S = 3.0  # a script run waits this long for a new run before showing it as preparing


def _ss():
    return st.session_state


class Slot(NamedTuple):
    """Where a session keeps one kind of training: its trainer, what is being prepared for
    it, and the settings and data it was made with (the run page's run; the lab's race; the
    compare page's set of runs)."""

    trainer: str  # session-state keys
    preparing: str
    settings: str
    csv_text: str
    trainer_class: Callable  # (made object, steps_per_update=...) -> a Trainer


RUN = Slot(keys.TRAINER, keys.PREPARING, keys.RUN_SETTINGS, keys.RUN_CSV_TEXT, Trainer)
RACE = Slot(keys.RACE_TRAINER, keys.RACE_PREPARING, keys.RACE_SETTINGS, keys.RACE_CSV_TEXT, RaceTrainer)
COMPARE = Slot(keys.COMPARE_TRAINER, keys.COMPARE_PREPARING, keys.COMPARE_SETTINGS, keys.COMPARE_CSV_TEXT, SetTrainer)


def trainer(slot: Slot = RUN) -> Optional[Trainer]:
    """The session's trainer in ``slot``, if it has one."""
    return _ss().get(slot.trainer)


def speed() -> int:
    """Steps per update the speed control asks for."""
    return SPEEDS[str(controls.widget_value("speed", "200"))]


class Preparation:
    """A Run (or what ``make(config, csv_text=...)`` makes, e.g. a Race) being made in a
    background thread from a validated config."""

    def __init__(self, config: RunConfig, csv_text: Optional[str], settings: dict, start: bool, make=Run):
        self.config = config
        self.csv_text = csv_text
        self.settings = settings  # the URL-form settings it was made from
        self.start_when_ready = start
        self._call = BackgroundCall(lambda: make(config, csv_text=csv_text), "vizvi-prepare", "preparing the run failed")

    @property
    def run(self):
        """What was made (None until it is, or if it failed)."""
        return self._call.result

    @property
    def error(self) -> Optional[str]:
        """Why making it failed, if it did."""
        return self._call.error

    def wait(self, seconds: float) -> bool:
        """True once the run (or its error) is ready; waits at most ``seconds``."""
        return self._call.wait(seconds)

    @property
    def done(self) -> bool:
        """True once the run (or its error) is ready."""
        return self._call.done


def preparing(slot: Slot = RUN) -> Optional[Preparation]:
    """What is being prepared for ``slot``, if anything."""
    return _ss().get(slot.preparing)


def request_new_run(start: bool, slot: Slot = RUN, make=Run, config_check=validate) -> Optional[str]:
    """Prepare a fresh run (or what ``make`` makes) from the widgets (Reset, or "Try this" with
    ``start``); ``config_check`` validates the widgets' config.

    Returns an error message naming the setting at fault (the current one is then untouched),
    else None: the new one is installed, or is being prepared.
    """
    ss = _ss()
    if controls.upload_rejected():
        return (f"data: {controls.upload_rejected()} was rejected (see above); fix it, or remove it from the uploader "
                f"to use simulated data")
    try:
        config = config_check(controls.config_from_widgets())
    except ConfigError as e:
        return str(e)
    csv_text = ss.get(keys.CSV_TEXT) if MODELS[config.model].csv_columns else None
    ss[slot.preparing] = prep = Preparation(config, csv_text, controls.current_settings(), start, make=make)
    prep.wait(PREPARE_WAIT_S)
    error = collect_prepared(slot)
    if preparing(slot) is not None and trainer(slot) is not None:
        trainer(slot).pause()  # nothing keeps training under settings it does not have
    return error


def collect_prepared(slot: Slot = RUN) -> Optional[str]:
    """Install what was prepared for ``slot`` once it is ready; returns its error, if it failed."""
    ss = _ss()
    prep = preparing(slot)
    if prep is None or not prep.done:
        return None
    del ss[slot.preparing]
    if prep.error:
        return prep.error
    fresh = slot.trainer_class(prep.run, steps_per_update=speed())
    ctx = get_script_run_ctx()
    if ctx is not None:  # its trainer is suspended once the session's tab is gone
        serving.SESSIONS.watch(fresh, ctx.session_id)
    old = trainer(slot)
    if old is not None:
        old.close()
    ss[slot.trainer] = fresh
    ss[slot.settings] = prep.settings
    ss[slot.csv_text] = prep.csv_text
    if prep.start_when_ready:
        fresh.start()
    return None


def start(slot: Slot = RUN) -> None:
    """Start the trainer in ``slot``, or what is being prepared as soon as it is ready."""
    prep = preparing(slot)
    if prep is not None:
        prep.start_when_ready = True
    elif trainer(slot) is not None:
        trainer(slot).start()


def drive(slot: Slot, action) -> Optional[Trainer]:
    """Give the trainer in ``slot`` the current speed and the buttons' ``action`` (a
    ``panels.Action``: start, pause or step; a Start while preparing starts what is prepared);
    returns the trainer, if there is one."""
    t = trainer(slot)
    if t is not None:
        t.set_speed(speed())
        if action is not None and action.value == "start":
            start(slot)
        elif action is not None and action.value == "pause":
            t.pause()
        elif action is not None and action.value == "step":
            t.step()
    return t


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


def apply_setting_changes(errors: list, slot: Slot = RUN) -> Optional[str]:
    """Apply live-setting changes to the running run; name the structural ones that wait for Reset.

    A bad value is appended to ``errors`` and leaves the run as it is.
    """
    ss = _ss()
    t = trainer(slot)
    if t is None:
        return None
    now = controls.current_settings()
    then = ss.get(slot.settings, now)
    structural = controls.differing(then, now, Role.STRUCTURAL)
    if ss.get(keys.CSV_TEXT) != ss.get(slot.csv_text):
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
            ss[slot.settings] = {**then, **{flag: now[flag] for flag in live}}
        except ConfigError as e:
            errors.append(f"{e} (the current run continues unchanged)")
    return ", ".join(structural) if structural else None
