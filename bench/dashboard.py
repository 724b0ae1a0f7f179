"""The live dashboard in a real browser: update rate, bytes per update, throughput, Pause.

Starts the dashboard as ``make run`` serves it (``python -m vizvi.serve``: its charts fetch
their updates from the chart feed, ``vizvi.live_feed``), waits for the server's warm-up to end,
opens it in Debian's Chromium (Playwright), presses Start at maximum speed on the reference
problem and measures over a window:

- chart updates per second (each chart's applied ``Plotly.react`` count), with nothing else
  running in the page, then the fraction of 20 ms samples in which every chart was visible
  (and the rate while that sampler ran);
- bytes received per chart update (websocket and chart feed);
- training throughput while live, as a ratio to the headless CLI's engine on the same work:
  the page's URL holds every setting under the CLI's names, so the same run is rebuilt from
  it and timed headless over exactly the step range the live window covered (a Gamma
  pathwise step slows as the concentration grows, so any other window would be unfair);
- Pause latency: from the click to the last chart update.

Then it opens every built-in model at maximum speed (its default family), one after the other
in the same server, and measures each one's chart update rate and visibility for a few seconds.

Goals (issue 3): all charts visible in >= 98% of samples, live throughput >= 50% of headless,
Pause stops updates within 0.5 s. Issue 12 ("live for a room full of people"): >= 10 chart
updates/s (the slowest chart) on the reference problem, >= 6 on every built-in model.
"""

from __future__ import annotations

import time

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser_util import PageBytesMeter, chromium, sample_charts, streamlit_app, wait_for

CHARTS = 6  # ELBO, parameters, q against the posterior, gradients, variance, k-hat
REFERENCE_GOAL = 10.0  # chart updates/s of the slowest chart on the reference problem (issue 12)
MODEL_GOAL = 6.0  # ... on every built-in model with its default family
VISIBLE_GOAL = 0.98
_WATCH_UPDATES_JS = """() => {
  window.__lastUpdate = performance.now();
  const obs = new MutationObserver(() => { window.__lastUpdate = performance.now(); });
  document.querySelectorAll('[data-vizvi-chart]').forEach(
    el => obs.observe(el, {attributes: true, attributeFilter: ['data-updates']}));
}"""
_CLICK_PAUSE_JS = """() => {
  const b = [...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Pause');
  window.__pauseAt = performance.now(); b.click(); return true;
}"""


def step_count(page) -> int:
    """The newest step drawn: the last x of the ELBO chart's estimate trace (the status line
    refreshes only twice a second, too coarse to time a few seconds by)."""
    return int(page.evaluate("""() => {
        const g = document.querySelector("[data-vizvi-chart='elbo'] .js-plotly-plot");
        const x = g && g.data && g.data[0] ? g.data[0].x : [];
        return x.length ? x[x.length - 1] : 0;
    }"""))




# The status line says "compiled in" once the run trains on its compiled program; before, it
# may train uncompiled (about five times slower per step, and busier for the interpreter).
_COMPILED_JS = """() => /· compiled in /.test(document.body.innerText)
    && !document.body.innerText.includes('Compiling this configuration')"""


def start_and_measure(page, meter, charts: int, seconds: float) -> dict:
    """Press Start, wait until ``charts`` charts have updated a few times and the status line says
    the run is compiled (until then it may train uncompiled, another load; at most 2 minutes),
    settle 2 s, then sample for ``seconds``: the samples, the steps drawn and the websocket bytes over
    that window."""
    page.get_by_role("button", name="Start").click(timeout=90_000)
    wait_for(page, f"() => [...document.querySelectorAll('[data-vizvi-chart]')].length >= {charts} && "
                   "[...document.querySelectorAll('[data-vizvi-chart]')].every(e => +e.dataset.updates > 3)",
             timeout_ms=120_000)
    try:
        wait_for(page, _COMPILED_JS, timeout_ms=120_000)
    except PlaywrightTimeout:  # a program compiled earlier in this server: no compile to wait for
        pass
    time.sleep(2.0)
    # The update rate is counted with nothing else running in the page: the visibility sampler
    # forces a style and layout pass every 20 ms, a cost no user's page pays (profiled in the
    # page: 6.6 updates/s sampled against 7.7 not). Here the unsampled window comes first: in
    # three bench runs it measured lower than the sampled one after it (8.0/8.9, 5.4/5.7,
    # 4.0/5.3), in the next two, with the charts drawn one per task, higher (6.7/6.0,
    # 9.6/7.4). Runs on this machine differ by up to a third; read the two windows together.
    steps0, t0 = step_count(page), time.perf_counter()
    bytes0, _ = meter.snapshot()
    updates0 = chart_updates(page)
    time.sleep(seconds)
    updates1, t1 = chart_updates(page), time.perf_counter()
    bytes1, _ = meter.snapshot()
    steps1 = step_count(page)
    rates = {k: (updates1[k] - n) / (t1 - t0) for k, n in updates0.items() if k in updates1}
    updates = sum(updates1[k] - n for k, n in updates0.items() if k in updates1) / max(len(rates), 1)
    # ... then, in a window of its own, whether every chart stays visible (and its rate there).
    sample = sample_charts(page, expected=charts, seconds=seconds)
    return {"rates": rates, "sample": sample, "steps": (steps0, steps1), "live_steps_per_s": (steps1 - steps0) / (t1 - t0),
            "bytes_per_update": (bytes1 - bytes0) / max(updates, 1)}


def chart_updates(page) -> dict:
    """Each chart's drawn updates so far (its ``data-updates``), by chart key."""
    return page.evaluate("() => Object.fromEntries([...document.querySelectorAll('[data-vizvi-chart]')]"
                         ".map(e => [e.dataset.vizviChart, +e.dataset.updates]))")


def headless_steps_per_s(url: str, first: int, last: int) -> float:
    """The CLI's engine on the dashboard's run (from its URL) over steps ``first..last``."""
    from urllib.parse import parse_qsl, urlparse

    from vizvi.cli import build_parser, config_from_args
    from vizvi.engine import Run
    from vizvi.settings import by_flag

    argv = ["run", "--json", "unused.json"]
    for name, value in parse_qsl(urlparse(url).query):
        if by_flag(name).cli and value != "":  # the view's settings (speed, span...) are no CLI options
            argv += [f"--{name}", value]
    run = Run(config_from_args(build_parser().parse_args(argv)))
    run.compile()
    run.advance(first)  # untimed: reach the window's start
    t0 = time.perf_counter()
    done = run.advance(last - first)
    return done / (time.perf_counter() - t0)


def measure_model(browser, port: int, model: str, seconds: float) -> dict:
    """One built-in model with its default family at maximum speed, in a fresh page: the slowest
    chart's updates per second, every chart's, the all-visible fraction and bytes per update."""
    page = browser.new_page(viewport={"width": 1500, "height": 1300})
    try:
        meter = PageBytesMeter(page)
        # Long enough not to finish inside the windows: normal-mean trains 84,000 steps/s here,
        # and the dashboard's default of a million steps ended before its second window.
        page.goto(f"http://127.0.0.1:{port}/?model={model}&speed=max&steps=100000000", timeout=90_000)
        window = start_and_measure(page, meter, CHARTS, seconds)
        # Pause before leaving, so the next model does not share the two cores with this run.
        page.get_by_role("button", name="Pause", exact=True).click()
        time.sleep(0.5)
    finally:
        page.close()
    return _rate_figures(window)


def _rate_figures(window: dict) -> dict:
    """A window's update rates (unsampled, and while sampled), visibility and bytes per update."""
    rates, sampled = window["rates"], window["sample"].updates_per_second()
    return {"updates_per_s_min": min(rates.values()) if rates else 0.0, "updates_per_s": rates,
            "sampled_updates_per_s_min": min(sampled.values()) if sampled else 0.0,
            "visible_fraction": window["sample"].visible_fraction, "bytes_per_update": window["bytes_per_update"]}


def main(seconds: float = 6.0, model_seconds: float = 4.0) -> dict:
    """Measure the live dashboard on the reference problem, then on every built-in model for
    ``model_seconds`` each; returns the figures."""
    from vizvi.models import MODELS
    from vizvi.settings import by_flag

    reference_model = by_flag("model").default
    from bench.load import wait_until_idle

    with streamlit_app("dashboard.py", timeout=120, serve=True) as server, chromium() as browser:
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        meter = PageBytesMeter(page)
        page.goto(f"http://127.0.0.1:{server.port}/?speed=max", timeout=90_000)
        # The warm-up (the default run's and the presets' programs, ~40 s on 2 cores) shares the
        # cores with what is measured until it ends: a server a class meets has finished it.
        wait_until_idle(server.proc.pid, timeout=300.0)
        window = start_and_measure(page, meter, CHARTS, seconds)
        page.evaluate(_WATCH_UPDATES_JS)
        page.evaluate(_CLICK_PAUSE_JS)
        time.sleep(2.0)
        pause_latency = page.evaluate("() => Math.max(0, window.__lastUpdate - window.__pauseAt) / 1000")
        url = page.url
        page.close()
        # The reference problem is the default model with its default family: measured above.
        models = {name: measure_model(browser, server.port, name, model_seconds)
                  for name in MODELS if name != reference_model}
    sample, live = window["sample"], window["live_steps_per_s"]
    headless = headless_steps_per_s(url, *window["steps"])
    return {
        "reference_model": reference_model,
        "models": models,
        **_rate_figures(window),
        "frame_visible_fraction": sample.frame_visible_fraction,
        "remounts": sample.remounts,
        "live_steps_per_s": live,
        "headless_steps_per_s": headless,
        "ratio_live_vs_headless": live / headless,
        "pause_latency_s": pause_latency,
    }


def _model_line(name: str, figures: dict, goal: float) -> str:
    """One model's line of the report: its slowest chart's rate and visibility against the goals."""
    ok = figures["updates_per_s_min"] >= goal and figures["visible_fraction"] >= VISIBLE_GOAL
    return (f"  {name:<26} {figures['updates_per_s_min']:>6.2f} updates/s (goal >= {goal:g};"
            f" {figures['sampled_updates_per_s_min']:.2f} sampled)"
            f" {figures['visible_fraction']:>7.1%} visible  {figures['bytes_per_update']:>8,.0f} B/update"
            f"  {'ok' if ok else 'BELOW GOAL'}")


def report(f: dict) -> str:
    """Human-readable table with the goals."""
    reference = f.get("reference_model", "reference")
    lines = [
        f"live dashboard in Chromium (reference problem, speed max, {CHARTS} charts)",
        f"  chart updates per second (slowest) {f['updates_per_s_min']:>8.1f}     (goal >= {REFERENCE_GOAL:g})",
        f"  ... while the visibility sampler ran {f['sampled_updates_per_s_min']:>6.1f}",
        f"  all charts visible (20 ms samples) {f['visible_fraction']:>8.1%}     (goal >= 98%)",
        f"  all charts visible (every frame)   {f['frame_visible_fraction']:>8.1%}",
        f"  bytes received per chart update    {f['bytes_per_update']:>8,.0f}",
        f"  training while live                {f['live_steps_per_s']:>8,.0f} steps/s",
        f"  headless CLI engine, same steps    {f['headless_steps_per_s']:>8,.0f} steps/s",
        f"  live / headless                    {f['ratio_live_vs_headless']:>8.2f}x    (goal >= 0.5x)",
        f"  Pause to last update               {f['pause_latency_s']:>8.2f} s   (goal <= 0.5 s)",
        "  every built-in model, its default family, speed max (slowest chart):",
        _model_line(f"{reference} (reference)", f, REFERENCE_GOAL),
    ]
    lines += [_model_line(name, figures, MODEL_GOAL) for name, figures in f.get("models", {}).items()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(main()))
