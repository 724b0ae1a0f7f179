"""A room full of people: several browser sessions training at once on one server.

Starts ``python -m vizvi.serve`` (the warm-up included) on 127.0.0.1, opens ``sessions``
Playwright contexts in one Chromium (each its own Streamlit session), gives each a different
configuration of equal cost (the default model, family and estimator; its own seed, learning
rate and initial value, a million steps at maximum speed), presses Start in each and measures
over ``seconds``:

- chart updates per second in every session (the slowest chart of each: its applied
  ``Plotly.react`` count), and training steps per second (the newest step drawn);
- fairness: the fastest session's steps/s over the slowest's;
- the server's memory (peak resident set) and threads;
- errors: a traceback in the server's log, an exception element or a JS error on a page;
- the server's side alone: then the pages stop drawing (``Plotly.react`` does nothing; each
  update is still fetched, decompressed, parsed and decoded) for ``server_only_seconds``, as if
  every browser were on its own machine, and the updates each session then gets are counted:
  what the server holds, apart from what eight pages drawing on its own two cores hold;
- closed tabs: every context is closed and the server's CPU time is watched until it is idle
  (its trainers suspended by ``vizvi.serving.SessionWatch``), which must happen within 30 s,
  and the server's status (``/vizvi/status``) until it has no trainer thread left.

``make bench`` runs 8 sessions for 5 minutes (goals: no error, each >= 2 updates/s, fairness
within 2x, idle within 30 s of the tabs closing); ``tests/test_load_browser.py`` a smaller
version with a queue.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from dataclasses import dataclass, field

from tests.browser_util import chromium, streamlit_app, wait_for

CLOSE_GOAL_S = 30.0
IDLE_CORES = 0.05  # a server using less than this fraction of one core is idle

_PAGE_FIGURES_JS = """() => {
  const charts = [...document.querySelectorAll('[data-vizvi-chart]')];
  const updates = {};
  const missed = {}, received = {};
  for (const c of charts) {
    const k = c.dataset.vizviChart;
    updates[k] = +c.dataset.updates; missed[k] = +(c.dataset.missed || 0); received[k] = +(c.dataset.received || 0);
  }
  const g = document.querySelector("[data-vizvi-chart='elbo'] .js-plotly-plot");
  const x = g && g.data && g.data[0] ? g.data[0].x : [];
  return {updates, missed, received, step: x.length ? x[x.length - 1] : 0,
          exceptions: document.querySelectorAll('[data-testid="stException"]').length,
          queued: document.body.innerText.includes('Queued:')};
}"""


# Each page keeps fetching and decoding its updates but draws none (the server-only phase).
_STOP_DRAWING_JS = "() => { window.Plotly.react = () => Promise.resolve(); }"


def session_query(i: int, steps: int = 1_000_000) -> str:
    """Session ``i``'s configuration as a URL query: equal cost, its own seed, lr and init."""
    lr = (0.05, 0.02, 0.1, 0.03, 0.07, 0.04, 0.06, 0.08)[i % 8]
    concentration = (1, 2, 0.5, 3, 1.5, 4, 0.8, 2.5)[i % 8]
    return f"?speed=max&steps={steps}&seed={i}&lr={lr}&init=concentration%3D{concentration}%2Crate%3D1"


def server_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def browser_cpu_seconds() -> float:
    """User plus system CPU time so far of every Chromium process on the machine (the bench's
    browser: its renderers, GPU and browser processes)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != "chromium":
                    continue
            total += server_cpu_seconds(int(entry))
        except OSError:  # gone meanwhile
            continue
    return total


def server_memory(pid: int) -> dict:
    """Resident set now and at its peak (MiB), and the number of threads, of process ``pid``."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
            elif key == "Threads":
                out[key] = int(value)
    return {"rss_mib": out["VmRSS"], "peak_mib": out["VmHWM"], "threads": out["Threads"]}


def wait_until_idle(pid: int, timeout: float, window: float = 1.0) -> float:
    """Seconds until the process uses less than ``IDLE_CORES`` over two consecutive windows;
    ``inf`` if it is not idle within ``timeout``."""
    t0 = time.monotonic()
    calm = 0
    while time.monotonic() - t0 < timeout:
        c0, w0 = server_cpu_seconds(pid), time.monotonic()
        time.sleep(window)
        cores = (server_cpu_seconds(pid) - c0) / (time.monotonic() - w0)
        calm = calm + 1 if cores < IDLE_CORES else 0
        if calm >= 2:
            return time.monotonic() - t0 - 2 * window
    return float("inf")


def server_status(port: int) -> dict:
    """The server's own account of what it is doing (``vizvi.serving.server_status``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/vizvi/status", timeout=10) as response:
        return json.loads(response.read())


def trainers_gone_after(port: int, since: float, timeout: float) -> float:
    """Seconds from ``since`` (``time.monotonic()``) until the server on ``port`` has no trainer
    thread left; ``inf`` if it still has one ``timeout`` seconds after ``since``."""
    while server_status(port)["trainer_threads"] > 0:
        if time.monotonic() - since > timeout:
            return float("inf")
        time.sleep(0.5)
    return time.monotonic() - since


@dataclass
class Session:
    """One browser session: its context, page and the errors seen on it."""

    index: int
    context: object
    page: object
    errors: list = field(default_factory=list)

    def figures(self) -> dict:
        """Chart update counts, the newest step drawn, exception elements, and the queue note."""
        return self.page.evaluate(_PAGE_FIGURES_JS)

    def click(self, name: str) -> None:
        """Click the button labelled ``name``."""
        self.page.get_by_role("button", name=name, exact=True).click(timeout=60_000)


def open_session(browser, port: int, i: int, steps: int = 1_000_000) -> Session:
    """A new context (a new Streamlit session) on session ``i``'s configuration, its page loaded."""
    context = browser.new_context(viewport={"width": 1400, "height": 1200})
    page = context.new_page()
    s = Session(i, context, page)
    page.on("pageerror", lambda e: s.errors.append(f"page error: {e}"))
    page.on("console", lambda m: s.errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.goto(f"http://127.0.0.1:{port}/{session_query(i, steps)}", timeout=120_000)
    wait_for(page, "() => !!document.querySelector(\"[data-vizvi-chart='elbo'] .js-plotly-plot\")", timeout_ms=180_000)
    return s


def rates(before: dict, after: dict, seconds: float) -> dict:
    """Slowest chart's updates/s and steps/s between two ``Session.figures``."""
    per_chart = [(after["updates"].get(k, 0) - n) / seconds for k, n in before["updates"].items()]
    return {"updates_per_s": min(per_chart) if per_chart else 0.0,
            # New figures that reached the page, drawn or not: what the server delivered.
            "delivered_per_s": max((after["received"].get(k, 0) - n for k, n in before["received"].items()), default=0) / seconds,
            "steps_per_s": (after["step"] - before["step"]) / seconds}


def main(sessions: int = 8, seconds: float = 300.0, max_training: int = 8, every: float = 30.0,
         server_only_seconds: float = 60.0) -> dict:
    """Run the load test; returns its figures (see the module)."""
    env = {"VIZVI_MAX_TRAINING": str(max_training)}
    with streamlit_app("dashboard.py", timeout=180, serve=True, env=env) as server, chromium() as browser:
        pid = server.proc.pid
        # A class arrives at a server that has been up a while: its warm-up (the default run and
        # the presets, ~40 s on 2 cores) is done. The first page load starts the dashboard.
        warm_page = browser.new_page()
        warm_page.goto(server.url, timeout=120_000)
        warm_up_s = wait_until_idle(pid, timeout=300.0)
        warm_page.close()
        opened = [open_session(browser, server.port, i) for i in range(sessions)]
        before_start = server_memory(pid)
        for s in opened:
            s.click("Start")
        for s in opened:  # every session trains and draws before the window opens
            wait_for(s.page, "() => [...document.querySelectorAll('[data-vizvi-chart]')].every(e => +e.dataset.updates > 3)",
                     timeout_ms=180_000)
        time.sleep(5.0)
        first = [s.figures() for s in opened]
        cpu0 = server_cpu_seconds(pid), browser_cpu_seconds()
        t0 = time.monotonic()
        intervals, memory = [], [server_memory(pid)]
        previous, t_prev = first, t0
        while time.monotonic() - t0 < seconds:
            time.sleep(min(every, seconds - (time.monotonic() - t0)))
            now = [s.figures() for s in opened]
            t_now = time.monotonic()
            intervals.append([rates(a, b, t_now - t_prev) for a, b in zip(previous, now)])
            memory.append(server_memory(pid))
            previous, t_prev = now, t_now
        window = time.monotonic() - t0
        # Where the machine's cores went over the window: the server (trainers, script runs,
        # the feed) or the browser drawing the eight pages.
        server_cores = (server_cpu_seconds(pid) - cpu0[0]) / window
        browser_cores = (browser_cpu_seconds() - cpu0[1]) / window
        last = previous
        per_session = [rates(a, b, window) for a, b in zip(first, last)]
        exceptions = sum(f["exceptions"] for f in last)
        window_log = server.log()
        page_errors = [e for s in opened for e in s.errors]
        server_only = server_only_rates(opened, pid, server_only_seconds)
        trainers_open = server_status(server.port)["trainer_threads"]
        closed_at = time.monotonic()
        for s in opened:
            s.context.close()
        idle_after = wait_until_idle(pid, timeout=60.0)
        trainers_gone = trainers_gone_after(server.port, closed_at, timeout=60.0)
        after = server_memory(pid)
        log = server.log()
    steps = [r["steps_per_s"] for r in per_session]
    return {
        "sessions": sessions, "seconds": window, "max_training": max_training, "warm_up_s": warm_up_s,
        "updates_per_s": [r["updates_per_s"] for r in per_session],
        "updates_per_s_min_interval": min(r["updates_per_s"] for iv in intervals for r in iv),
        "delivered_per_s": [r["delivered_per_s"] for r in per_session],
        "tracebacks_while_open": window_log.count("Traceback"),
        "steps_per_s": steps,
        "fairness": max(steps) / min(steps) if min(steps) > 0 else float("inf"),
        "peak_memory_mib": max(m["peak_mib"] for m in memory + [after]),
        "memory_mib": [m["rss_mib"] for m in memory],
        "threads_before_start": before_start["threads"], "threads_peak": max(m["threads"] for m in memory),
        "threads_after_close": after["threads"],
        "idle_after_close_s": idle_after,
        "trainer_threads_open": trainers_open, "trainer_threads_gone_s": trainers_gone,
        "server_cores": server_cores, "browser_cores": browser_cores, "cores": os.cpu_count(),
        "server_only": server_only,
        "tracebacks": log.count("Traceback"),
        "first_traceback": log[log.find("Traceback"):][:3000] if "Traceback" in log else None,
        "exceptions_on_pages": exceptions,
        "page_errors": page_errors[:10],
    }


def server_only_rates(opened: list, pid: int, seconds: float) -> dict:
    """The pages stop drawing (``_STOP_DRAWING_JS``); over ``seconds`` from 5 s later: each
    session's updates/s (fetched and decoded) and the cores the server and the browser used."""
    for s in opened:
        s.page.evaluate(_STOP_DRAWING_JS)
    time.sleep(5.0)
    before, t0 = [s.figures() for s in opened], time.monotonic()
    cpu0 = server_cpu_seconds(pid), browser_cpu_seconds()
    time.sleep(seconds)
    after, window = [s.figures() for s in opened], time.monotonic() - t0
    return {"seconds": window, "updates_per_s": [rates(a, b, window)["updates_per_s"] for a, b in zip(before, after)],
            "server_cores": (server_cpu_seconds(pid) - cpu0[0]) / window,
            "browser_cores": (browser_cpu_seconds() - cpu0[1]) / window}


def machine_ms_per_update(f: dict) -> float:
    """CPU time of the whole machine (the server and every Chromium process) per chart update
    drawn in any session over the window, in ms: what one update of a page's six charts costs
    the two cores when the browsers share them with the server."""
    drawn = sum(f["updates_per_s"])
    return 1000.0 * (f["server_cores"] + f["browser_cores"]) / drawn if drawn > 0 else float("inf")


def report(f: dict) -> str:
    """Human-readable lines with the goals."""
    ups, steps = f["updates_per_s"], f["steps_per_s"]
    per_update = machine_ms_per_update(f)
    return "\n".join([
        f"load: {f['sessions']} browser sessions on one server (max {f['max_training']} training), "
        f"{f['seconds']:.0f} s, equal-cost configurations at maximum speed",
        f"  chart updates/s per session (slowest chart) min {min(ups):.1f}, max {max(ups):.1f}   (goal >= 2)",
        f"  ... in the worst {30:.0f} s interval of any session {f['updates_per_s_min_interval']:.1f}",
        f"  chart updates/s the server sent each session min {min(f['delivered_per_s']):.1f}, "
        f"max {max(f['delivered_per_s']):.1f}",
        f"  training steps/s per session min {min(steps):,.0f}, max {max(steps):,.0f}; "
        f"fastest/slowest {f['fairness']:.2f}x   (goal <= 2x)",
        f"  cores used over the window: server {f['server_cores']:.2f}, browser (all Chromium processes) "
        f"{f['browser_cores']:.2f}, of {f['cores']}",
        f"  ... {per_update:.0f} ms of CPU per chart update drawn: 2 updates/s in each of the {f['sessions']} sessions "
        f"would take {per_update * 2 * f['sessions'] / 1000:.1f} cores at that cost",
        f"  server memory: peak {f['peak_memory_mib']:,.0f} MiB; resident over the window "
        f"{min(f['memory_mib']):,.0f}-{max(f['memory_mib']):,.0f} MiB",
        f"  server threads: {f['threads_before_start']} before Start, peak {f['threads_peak']}, "
        f"{f['threads_after_close']} after the tabs closed",
        *([f"  the server's side alone ({so['seconds']:.0f} s more, the pages fetching and decoding every update but "
           f"drawing none): updates/s per session min {min(so['updates_per_s']):.1f}, max {max(so['updates_per_s']):.1f}; "
           f"cores: server {so['server_cores']:.2f}, browser {so['browser_cores']:.2f}"]
          if (so := f.get("server_only")) and so["updates_per_s"] else []),
        f"  tabs closed -> server idle after {f['idle_after_close_s']:.1f} s; its {f['trainer_threads_open']} trainer threads "
        f"had all ended by {f['trainer_threads_gone_s']:.1f} s after the close   (goal <= {CLOSE_GOAL_S:.0f} s)",
        f"  tracebacks in the server log {f['tracebacks_while_open']} while open, {f['tracebacks']} in all "
        f"(closing tabs), exception elements {f['exceptions_on_pages']}, page errors {len(f['page_errors'])}   (goal 0)",
    ])


if __name__ == "__main__":
    import sys

    args = [float(a) for a in sys.argv[1:]]
    figures = main(int(args[0]), args[1]) if len(args) >= 2 else main()
    print(report(figures))
