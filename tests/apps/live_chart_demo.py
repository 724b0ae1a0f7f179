"""Demo and browser-test app: four live charts fed by a growing random walk.

Run from the repository root: ``streamlit run tests/apps/live_chart_demo.py``.
``Start`` makes an ``st.fragment`` rerun every 0.1 s, each rerun appending points to four
random walks kept in ``st.session_state``; ``Pause`` stops the fragment's timer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import streamlit as st

# `streamlit run` puts this script's folder, not the repository root, on sys.path.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from vizvi.live_chart import live_chart  # noqa: E402

N_CHARTS = 4
POINTS_PER_TICK = 5
MAX_POINTS = 5_000  # rolling window so a long-running demo stays bounded
COLORS = ["#4f46e5", "#059669", "#d97706", "#dc2626"]

st.set_page_config(page_title="vizvi live charts", layout="wide")
ss = st.session_state
if "walk" not in ss:
    ss.rng = np.random.default_rng(0)
    ss.step = np.arange(1, dtype=np.float64)
    ss.walk = np.zeros((N_CHARTS, 1))
    ss.running = False


def _set_running(value: bool) -> None:
    ss.running = value


def _advance() -> None:
    """Append POINTS_PER_TICK steps to every walk, keeping at most MAX_POINTS."""
    steps = ss.rng.normal(size=(N_CHARTS, POINTS_PER_TICK))
    new = ss.walk[:, -1:] + np.cumsum(steps, axis=1)
    start = ss.step[-1] + 1
    ss.step = np.concatenate([ss.step, start + np.arange(POINTS_PER_TICK)])[-MAX_POINTS:]
    ss.walk = np.concatenate([ss.walk, new], axis=1)[:, -MAX_POINTS:]


def _figure(i: int) -> dict:
    # A plain dict (no plotly template) keeps each update small.
    return {
        "data": [{"type": "scatter", "mode": "lines",
                  "x": ss.step, "y": ss.walk[i], "name": f"walk {i}",
                  "line": {"color": COLORS[i % len(COLORS)], "width": 1.5}}],
        "layout": {"title": {"text": f"Random walk {i}"},
                   "margin": {"l": 50, "r": 10, "t": 40, "b": 35},
                   "xaxis": {"title": {"text": "step"}}, "showlegend": False},
    }


st.title("vizvi live charts")
with st.container(horizontal=True):
    st.button("Start", on_click=_set_running, args=(True,), type="primary")
    st.button("Pause", on_click=_set_running, args=(False,))


# The timer exists only while running, so a paused app sends nothing.
@st.fragment(run_every=0.1 if ss.running else None)
def _live() -> None:
    if ss.running:
        _advance()
    st.caption(f"{'running' if ss.running else 'paused'} · {ss.step.size} points per chart")
    cols = st.columns(2)
    for i in range(N_CHARTS):
        with cols[i % 2]:
            live_chart(_figure(i), key=f"walk{i}", height=280)


_live()
