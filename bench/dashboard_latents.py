"""The live dashboard on a model file with many variational parameters, in a real browser.

Starts ``streamlit run dashboard.py -- --model-file examples/breast_cancer_logistic.py`` (31
latent coefficients: 62 parameters with the mean-field family), opens it in Debian's Chromium
(Playwright), waits for the MCMC reference (so the window measures the steady state, not
NUTS sharing the two cores), presses Start at maximum speed and measures over a window: chart
updates per second of every chart (each one's applied ``Plotly.react`` count), the fraction of
20 ms samples with every chart visible, websocket bytes per update, and training throughput
while live.

With many parameters the page redraws the per-step charts (ELBO, parameters, gradients) at
every update and the others (variance and k-hat, measured every K steps; q's marginals; the
overview heatmap) one at a time, each about every ``vizvi.ui.panels.SLOW_S`` (the browser's
main thread limits the rate: ``panels._hold_slow``); both rates are reported.

Goal (issue 11): >= 5 chart updates per second at 50+ variational parameters (the per-step charts).
"""

from __future__ import annotations

from bench.dashboard import start_and_measure
from tests.browser_util import PageBytesMeter, chromium, streamlit_app, wait_for
from vizvi.ui.panels import SLOW_CHARTS, SLOW_S

MODEL_FILE = "examples/breast_cancer_logistic.py"
MODEL = "breast-cancer-logistic"
CHARTS = 7  # ELBO, parameters, q against the posterior, gradients, variance, k-hat, the overview heatmap
_REFERENCE_SHOWN = ("() => [...document.querySelectorAll('[data-testid=\"stAlert\"]')]"
                    ".some(e => e.innerText.includes('Reference posterior by MCMC'))")


def main(seconds: float = 6.0, family: str = "mean-field-normal") -> dict:
    """Measure the live dashboard on ``MODEL_FILE`` with ``family``; returns the figures."""
    with streamlit_app("dashboard.py", timeout=120, extra_args=["--", "--model-file", MODEL_FILE]) as server, \
            chromium() as browser:
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        meter = PageBytesMeter(page)
        page.goto(f"http://127.0.0.1:{server.port}/?model={MODEL}&family={family}&speed=max", timeout=90_000)
        wait_for(page, _REFERENCE_SHOWN, timeout_ms=180_000)
        parameters = page.evaluate("""() => { const g = document.querySelector("[data-vizvi-chart='overview'] .js-plotly-plot");
            return g && g.data && g.data[0] ? g.data[0].y.length : 0; }""")
        window = start_and_measure(page, meter, CHARTS, seconds)
    sample = window["sample"]
    rates = sample.updates_per_second()
    per_step = [r for k, r in rates.items() if k not in SLOW_CHARTS]
    slow = [r for k, r in rates.items() if k in SLOW_CHARTS]
    return {
        "parameters": parameters,
        "charts": sample.charts,
        "updates_per_s_min": min(per_step) if per_step else 0.0,
        "slow_updates_per_s_min": min(slow) if slow else 0.0,
        "updates_per_s": rates,
        "visible_fraction": sample.visible_fraction,
        "remounts": sample.remounts,
        "bytes_per_update": window["bytes_per_update"],
        "live_steps_per_s": window["live_steps_per_s"],
    }


def report(f: dict) -> str:
    """Human-readable table with the goal."""
    return "\n".join([
        f"live dashboard in Chromium, many parameters ({MODEL_FILE}: {f['parameters']} variational parameters, "
        f"{f['charts']} charts, speed max)",
        f"  per-step charts: updates/s (slowest) {f['updates_per_s_min']:>6.1f}     (goal >= 5)",
        f"  every-K-steps and summary charts     {f['slow_updates_per_s_min']:>6.1f}     (each about every "
        f"{SLOW_S:g} s, one at a time)",
        f"  all charts visible (20 ms samples) {f['visible_fraction']:>8.1%}",
        f"  bytes received per chart update    {f['bytes_per_update']:>8,.0f}",
        f"  training while live                {f['live_steps_per_s']:>8,.0f} steps/s",
    ])


if __name__ == "__main__":
    print(report(main()))
