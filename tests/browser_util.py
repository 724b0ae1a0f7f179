"""Helpers for real-browser tests of Streamlit apps: server, browser and a DOM sampler.

Everything here is bounded in time: the server start waits at most ``timeout`` seconds and
the server is killed on failure; Playwright calls carry explicit timeouts. Chromium is
Debian's (``/usr/bin/chromium``, ``apt-get install chromium``); Playwright never downloads
a browser of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-gpu",
]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class StreamlitServer:
    """A ``streamlit run`` subprocess; use :func:`start_streamlit` to create one."""

    proc: subprocess.Popen
    port: int
    log_path: Path
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}/"

    def log(self) -> str:
        """Return what the server has printed so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM to its process group, then SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def _health_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
            return r.status == 200 and r.read().decode().strip() == "ok"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_streamlit(script: str | os.PathLike[str], *, timeout: float = 60.0,
                    extra_args: Sequence[str] = (), serve: bool = False, env: Optional[dict] = None) -> StreamlitServer:
    """Start ``streamlit run script`` on a free port and wait until it is healthy.

    Runs ``<this python> -m streamlit`` with cwd = repository root (so ./.streamlit/config.toml
    applies) in its own process group; with ``serve``, ``python -m vizvi.serve`` instead (the
    same server, warming up the default and the presets' programs from the start). ``env``
    adds environment variables. Raises ``RuntimeError`` with the server log if it exits or is
    not healthy within ``timeout`` seconds, after killing it.
    """
    port = free_port()
    fd, log_name = tempfile.mkstemp(prefix="streamlit-", suffix=".log")
    launcher = ["vizvi.serve"] if serve else ["streamlit", "run"]
    cmd = [sys.executable, "-m", *launcher, str(script),
           "--server.port", str(port), "--server.address", "127.0.0.1",
           "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", *extra_args]
    with os.fdopen(fd, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, **(env or {})})
    server = StreamlitServer(proc=proc, port=port, log_path=Path(log_name))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}:\n{server.log()}")
        if _health_ok(port):
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"streamlit not healthy after {timeout:.0f} s:\n{server.log()}")


@contextlib.contextmanager
def streamlit_app(script: str | os.PathLike[str], **kwargs) -> Iterator[StreamlitServer]:
    """Context manager around :func:`start_streamlit` that always stops the server."""
    server = start_streamlit(script, **kwargs)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def chromium(*, headless: bool = True, timeout_ms: int = 30_000):
    """Yield a Playwright Chromium browser (Debian's binary) and close it afterwards."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=headless,
                                     args=CHROMIUM_ARGS, timeout=timeout_ms)
        try:
            yield browser
        finally:
            browser.close()


# ------------------------------------------------------------------------------------------
# In-page sampler: every 20 ms, are ALL charts visible, and how many updates happened?
# ------------------------------------------------------------------------------------------
_SAMPLER_JS = r"""
([selector, expected, ms, minSamples, minFrames, capMs]) => new Promise((resolve) => {
  const visible = (el) => {
    if (!el || !el.isConnected) return false;
    const r = el.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0) return false;
    const svg = el.querySelector(".main-svg");
    if (!svg) return false;
    const cs = getComputedStyle(svg);
    if (cs.display === "none" || cs.visibility === "hidden") return false;
    const sr = svg.getBoundingClientRect();
    return sr.width > 0 && sr.height > 0;
  };
  const first = new Map();  // chart key -> [element, data-updates] at first sight
  const last = new Map();
  let samples = 0, allVisible = 0, remounts = 0, maxGap = 0, prev = performance.now();
  const t0 = prev;
  const tick = () => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - prev);
    prev = now;
    const els = Array.from(document.querySelectorAll(selector));
    samples += 1;
    if (els.length >= expected && els.every(visible)) allVisible += 1;
    for (const el of els) {
      const key = el.getAttribute("data-vizvi-chart");
      const n = Number(el.getAttribute("data-updates") || 0);
      if (!first.has(key)) first.set(key, [el, n]);
      const seen = last.get(key);
      // A new chart element, or the same one moved into a new Streamlit element (adopted).
      if (seen && (seen[0] !== el || seen[2] !== el.parentElement)) remounts += 1;
      last.set(key, [el, n, el.parentElement]);
    }
  };
  // Also check at every rendering opportunity (just before paint): what a person could see.
  let frames = 0, framesVisible = 0, running = true;
  const frame = () => {
    if (!running) return;
    const els = Array.from(document.querySelectorAll(selector));
    frames += 1;
    if (els.length >= expected && els.every(visible)) framesVisible += 1;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  // The window lasts ms, and longer (up to capMs) until it holds minSamples timer samples
  // and minFrames animation frames: a page busy drawing gets fewer of both per second.
  let id = null;
  const finish = () => {
    running = false;
    clearInterval(id);
    tick();
    const seconds = (performance.now() - t0) / 1000;
    const updates = {};
    for (const [key, [el0, n0]] of first) {
      const [el1, n1] = last.get(key);
      // A remounted element restarts its counter; count only what one element saw.
      updates[key] = el0 === el1 ? n1 - n0 : n1;
    }
    resolve({samples, allVisible, visibleFraction: samples ? allVisible / samples : 0,
             seconds, updates, remounts, maxGapMs: maxGap, charts: first.size,
             frames, frameVisibleFraction: frames ? framesVisible / frames : 0});
  };
  const every20ms = () => {
    tick();
    const elapsed = performance.now() - t0;
    if ((elapsed >= ms && samples >= minSamples && frames >= minFrames) || elapsed >= capMs) finish();
  };
  tick();
  id = setInterval(every20ms, 20);
})
"""


@dataclass
class SampleResult:
    """What :func:`sample_charts` measured over its window."""

    samples: int
    visible_fraction: float
    seconds: float
    updates: dict[str, int]
    remounts: int
    max_gap_ms: float
    charts: int
    frames: int
    frame_visible_fraction: float

    def updates_per_second(self) -> dict[str, float]:
        """Updates per second for each chart key."""
        return {k: n / self.seconds for k, n in self.updates.items()}


def start_sampling(page, *, expected: int, seconds: float = 4.0,
                   selector: str = "[data-vizvi-chart]", min_samples: int = 0,
                   min_frames: int = 0, max_seconds: Optional[float] = None) -> None:
    """Start the sampler of :func:`sample_charts` in the page without waiting for it.

    Lets the test act (click, zoom) while sampling; collect with :func:`finish_sampling`.
    """
    cap = max_seconds if max_seconds is not None else seconds
    page.evaluate("([src, a]) => { window.__vizviSampling = eval(src)(a); }",
                  [_SAMPLER_JS, [selector, expected, int(seconds * 1000), min_samples, min_frames,
                                 int(max(cap, seconds) * 1000)]])


def finish_sampling(page) -> SampleResult:
    """Wait for the sampler started by :func:`start_sampling` and return its result."""
    return _to_result(page.evaluate("() => window.__vizviSampling"))


def _to_result(r: dict) -> SampleResult:
    return SampleResult(samples=r["samples"], visible_fraction=r["visibleFraction"],
                        seconds=r["seconds"], updates=dict(r["updates"]),
                        remounts=r["remounts"], max_gap_ms=r["maxGapMs"], charts=r["charts"],
                        frames=r["frames"], frame_visible_fraction=r["frameVisibleFraction"])


def sample_charts(page, *, expected: int, seconds: float = 4.0,
                  selector: str = "[data-vizvi-chart]", min_samples: int = 0,
                  min_frames: int = 0, max_seconds: Optional[float] = None) -> SampleResult:
    """Sample the page every 20 ms for ``seconds``, and on until the window holds
    ``min_samples`` timer samples and ``min_frames`` animation frames (at most ``max_seconds``).

    A sample counts as visible only if at least ``expected`` charts match ``selector`` and
    every one is connected, has a nonzero box, and contains a displayed, nonzero
    ``.main-svg``. Updates are increments of each chart's ``data-updates``; ``remounts``
    counts samples where a chart key was found on a different element, or in a different
    parent element, than in the previous sample.

    Timers wait while the page's main thread is busy (e.g. drawing), so a loaded page takes
    fewer than ``seconds / 0.02`` samples; ``max_gap_ms`` says how late they ran. The same
    visibility check also runs on every animation frame (``frames``,
    ``frame_visible_fraction``), i.e. on each state the browser could paint.
    """
    start_sampling(page, expected=expected, seconds=seconds, selector=selector,
                   min_samples=min_samples, min_frames=min_frames, max_seconds=max_seconds)
    return finish_sampling(page)


class PageBytesMeter:
    """Counts bytes the page receives for its live updates: over its websockets (Streamlit's
    protobuf stream) and from the chart feed (``vizvi.live_feed``: each response's
    Content-Length, as sent, compressed or not).

    Attach with ``meter = PageBytesMeter(page)`` before ``page.goto``; read ``snapshot()``.
    """

    def __init__(self, page) -> None:
        self.received = 0
        self.frames = 0
        page.on("websocket", self._on_ws)
        page.on("response", self._on_response)

    def _on_ws(self, ws) -> None:
        ws.on("framereceived", self._on_frame)

    def _on_frame(self, payload) -> None:
        self.frames += 1
        self.received += len(payload if isinstance(payload, (bytes, bytearray))
                             else payload.encode("utf-8"))

    def _on_response(self, response) -> None:
        if "/vizvi/feed/" in response.url:
            self.frames += 1
            self.received += int(response.headers.get("content-length") or 0)

    def snapshot(self) -> tuple[int, int]:
        """Return ``(bytes, messages)`` received so far."""
        return self.received, self.frames


def wait_for(page, js: str, *, timeout_ms: int = 20_000, arg: Optional[object] = None) -> None:
    """Wait until the JS predicate ``js`` (a function source) is truthy in the page.

    A predicate that throws counts as not yet true: Streamlit unmounts and remounts elements
    during a rerun, so a graph a predicate reads can be missing (null) for a moment, and
    Playwright would fail the wait at once on that. A timeout names the predicate's last error.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    tolerant = (f"(arg) => {{ try {{ return ({js})(arg); }} "
                f"catch (e) {{ window.__vizviWaitError = String(e && e.message || e); return false; }} }}")
    try:
        page.wait_for_function(tolerant, arg=arg, timeout=timeout_ms, polling=50)
    except PlaywrightTimeoutError as e:
        error = page.evaluate("() => window.__vizviWaitError || null")
        raise PlaywrightTimeoutError(f"{e}\n(the predicate's last error: {error})" if error else str(e)) from None
