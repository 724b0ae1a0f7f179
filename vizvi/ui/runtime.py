"""Process-wide adjustments of Streamlit's runtime for a page that trains beside it.

``dashboard.py`` calls them before routing; each says why it exists.
"""

from __future__ import annotations

import sys


def fragment_rerun() -> bool:
    """Whether the script run in progress reruns fragments only (not the whole page).

    Streamlit says so only in its script-run context (``fragment_ids_this_run``, Streamlit
    1.67): a fragment that asks for a full rerun must not do it from a full run, where it
    would run again and again.
    """
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    return bool(ctx is not None and ctx.fragment_ids_this_run)


def share_the_interpreter_with_the_trainer() -> None:
    """Shorten the GIL switch interval from 5 ms to 0.5 ms for the dashboard process.

    The trainer thread hands the GIL back and forth about twenty times per chunk (arguments,
    the compiled call, reading the telemetry); each time it wants it back while the page's
    script thread is busy in Python it waits up to the switch interval. Measured here: a busy
    Python thread cut training to 0.29x of its solo speed at 5 ms and to 0.62x at 0.5 ms, with
    no cost to the Python thread.
    """
    sys.setswitchinterval(0.0005)


def keep_tensorflow_state_across_reruns() -> None:
    """Stop Streamlit from resetting TensorFlow after every script run.

    After each run Streamlit 1.67 calls ``keras.backend.clear_session()`` when ``keras`` is
    imported (TensorFlow and TFP import it). On TensorFlow that resets the default graph and
    clears the eager kernel cache, several times a second while the page is live, underneath
    the trainer thread: a compile in progress never finishes, and compiled kernels are thrown
    away. vizvi keeps no Keras state, so the hook (a private function, checked to exist by
    ``tests/test_app.py``) is replaced with one that leaves TensorFlow alone.
    """
    from streamlit.runtime.scriptrunner import script_runner

    if getattr(script_runner, "_clean_problem_modules", None) is not leave_tensorflow_alone:
        script_runner._clean_problem_modules = leave_tensorflow_alone


def leave_tensorflow_alone() -> None:
    """Streamlit's per-run clean-up, minus the Keras/TensorFlow reset (matplotlib only)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close("all")


def end_closed_websockets_quietly() -> None:
    """Let Streamlit's websocket loop end cleanly when a tab closes while the page is live.

    A tab that closes while an update is being sent fails the send: Starlette (1.10) then marks
    the socket disconnected and raises ``WebSocketDisconnect`` in the sending task. Streamlit's
    receive loop (1.67, ``starlette_websocket._websocket_endpoint``) next calls
    ``receive_bytes``, which on a disconnected socket raises ``WebSocketDisconnected``, a
    ``RuntimeError``; Streamlit takes any ``RuntimeError`` there for a text frame, calls
    ``close()`` on the closed socket, which raises again, and a two-part traceback lands in
    the server's log, with a class that was just closing its laptops: seen about one closed
    tab in ten while charts update. Here ``receive_bytes`` on a socket that is already
    disconnected raises ``WebSocketDisconnect`` (code 1006, "abnormal closure"), which is
    what the loop expects of a client that went away, and which it ends on. Nothing else
    about the socket changes.
    """
    from starlette import websockets

    if getattr(websockets.WebSocket.receive_bytes, "_vizvi_quiet_close", False):
        return
    receive_bytes = websockets.WebSocket.receive_bytes

    async def receive_bytes_or_disconnect(self) -> bytes:
        if self.application_state == websockets.WebSocketState.DISCONNECTED:
            raise websockets.WebSocketDisconnect(code=1006)
        return await receive_bytes(self)

    receive_bytes_or_disconnect._vizvi_quiet_close = True
    websockets.WebSocket.receive_bytes = receive_bytes_or_disconnect


def configure_serving(argv=None) -> list:
    """Set the process's limit of concurrently training trainers from ``--max-training N`` in
    the dashboard's arguments (or ``VIZVI_MAX_TRAINING``); returns error messages for a bad
    value, which then leaves the limit as it was (the server keeps serving)."""
    from vizvi import serving
    from vizvi.errors import ConfigError

    try:
        serving.ADMISSION.set_limit(serving.limit_from(sys.argv[1:] if argv is None else argv))
    except ConfigError as e:
        return [f"{e} (training sessions are limited to {serving.ADMISSION.limit} at once)"]
    return []
