"""Shared test set-up."""

import os
import signal
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HARD_TIMEOUT_S = 300


@pytest.fixture
def hard_timeout():
    """Abort a browser test (so its server and browser context managers clean up) if stuck."""

    def _expired(signum, frame):
        raise TimeoutError(f"browser test exceeded {HARD_TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(HARD_TIMEOUT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True, scope="module")
def built_in_models_after_each_module():
    """A module that registers model files (``register_model_files`` adds them to the process's
    model list, as the server does) leaves the list as it found it: later modules compare model
    lists with a fresh process's."""
    from vizvi.models import MODELS

    before = dict(MODELS)
    yield
    MODELS.clear()
    MODELS.update(before)


def pytest_sessionfinish(session, exitstatus):
    """Let background calls (a preparation, a comparison's recompile) end before the process
    does: exiting inside an XLA compile can abort the interpreter and fail a passing run."""
    background = sys.modules.get("vizvi.background")
    if background is not None:
        background.BackgroundCall.wait_all(120)
