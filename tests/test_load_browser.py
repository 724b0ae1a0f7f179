"""Several sessions on one server in a real browser: the small version of ``bench/load.py``.

Three Playwright contexts (three Streamlit sessions) on one server (``python -m vizvi.serve``,
as ``make run`` serves a class) that trains at most two runs at once
(``VIZVI_MAX_TRAINING=2``), each with its own configuration: the first two train and draw,
their charts fetching their updates from the server's chart feed; the third queues and its page says so; a Pause in the first gives its place to
the third, whose run then trains by itself; the first, started again, queues in turn. About
30 s in all, with no traceback in the server's log, no exception on a page and no JS error;
then every tab is closed and the server goes idle (its trainers suspended by
``vizvi.serving.SessionWatch``) within 30 s, its status (``/vizvi/status``) counting no trainer
thread and no run training or queued. The sessions arrive once the server's warm-up has
ended, as a class does at a server started beforehand: idle means the trainers stopped, not
that the warm-up's compiles did. Rates are held to their goals by ``make bench``.
"""

from __future__ import annotations

import time

from bench.load import CLOSE_GOAL_S, open_session, server_status, trainers_gone_after, wait_until_idle
from tests.browser_util import chromium, streamlit_app, wait_for
from vizvi.serving import WARM_UP_DONE

MOVING = "() => [...document.querySelectorAll('[data-vizvi-chart]')].every(e => +e.dataset.updates > 2)"
FEED_REQUESTS = "() => +(document.querySelector('.vizvi-live-panel') || {dataset: {}}).dataset.feedRequests || 0"


def _step(session) -> int:
    return int(session.figures()["step"])


def _advances(session, seconds: float = 60.0) -> None:
    first = _step(session)
    deadline = time.monotonic() + seconds
    while _step(session) <= first:
        assert time.monotonic() < deadline, f"session {session.index} did not train"
        time.sleep(0.2)


def test_three_sessions_two_places_a_queue_and_closed_tabs(hard_timeout):
    with streamlit_app("dashboard.py", timeout=120, serve=True, env={"VIZVI_MAX_TRAINING": "2"}) as server, \
            chromium() as browser:
        deadline = time.monotonic() + 240
        while WARM_UP_DONE not in server.log():
            assert time.monotonic() < deadline, "the warm-up did not end:\n" + server.log()[-3000:]
            time.sleep(0.5)
        sessions = [open_session(browser, server.port, i) for i in range(3)]
        t0 = time.monotonic()
        first, second, third = sessions
        first.click("Start")
        second.click("Start")
        for s in (first, second):
            wait_for(s.page, MOVING, timeout_ms=150_000)
            _advances(s)
            assert s.page.evaluate(FEED_REQUESTS) > 2, "the charts did not fetch from the feed"
        third.click("Start")
        wait_for(third.page, "() => document.body.innerText.includes('Queued:')", timeout_ms=60_000)
        assert "at most 2 runs at once" in third.page.inner_text("body")
        time.sleep(1.0)
        assert _step(third) == 0, "a queued run trained"

        first.click("Pause")
        wait_for(third.page, "() => !document.body.innerText.includes('Queued:')", timeout_ms=60_000)
        _advances(third)
        _advances(second)

        first.click("Start")  # two are training: the first now waits for a place
        wait_for(first.page, "() => document.body.innerText.includes('Queued:')", timeout_ms=60_000)
        step = _step(first)
        while time.monotonic() - t0 < 30.0:  # the two keep drawing while the first waits
            for s in (second, third):
                _advances(s)
            time.sleep(1.0)
        assert _step(first) == step, "a queued run trained"

        for s in sessions:
            figures = s.figures()
            assert figures["exceptions"] == 0, f"session {s.index} shows an exception"
            assert not s.errors, f"session {s.index}: {s.errors[:3]}"
        open_status = server_status(server.port)
        assert (open_status["training"], open_status["queued"], open_status["max_training"]) == (2, 1, 2)
        # One trainer thread per session with a run (a replaced trainer's may still be ending).
        settle = time.monotonic() + 10.0
        while open_status["trainer_threads"] != 3 and time.monotonic() < settle:
            time.sleep(0.5)
            open_status = server_status(server.port)
        assert open_status["trainer_threads"] == 3, open_status
        closed_at = time.monotonic()
        for s in sessions:
            s.context.close()
        idle_after = wait_until_idle(server.proc.pid, timeout=CLOSE_GOAL_S + 10)
        trainers_gone = trainers_gone_after(server.port, closed_at, timeout=CLOSE_GOAL_S + 10)
        closed_status = server_status(server.port)
        log = server.log()
    assert idle_after <= CLOSE_GOAL_S, f"the server still trained {idle_after} s after every tab closed"
    assert trainers_gone <= CLOSE_GOAL_S, f"trainer threads were left {CLOSE_GOAL_S} s after every tab closed: {closed_status}"
    assert (closed_status["training"], closed_status["queued"]) == (0, 0), closed_status
    assert "Traceback" not in log, log[-3000:]
