"""Real-browser test of vizvi.live_chart: four live charts in headless Chromium.

Starts ``tests/apps/live_chart_demo.py`` with ``streamlit run``, clicks Start and checks,
from inside the page, that the charts never disappear (sampled every 20 ms), keep updating,
grow, keep a user zoom across updates, keep the toolbar's PNG download, and stop after
Pause (rates and latency are measured here and held to their goals by ``make bench``).
Measurements go to test-artifacts/live_chart_metrics.json, and a
screenshot to test-artifacts/live_chart_demo.png.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

# browser_util sits next to this file; importable whether or not tests/ is a package.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_util import (  # noqa: E402
    REPO_ROOT,
    PageBytesMeter,
    chromium,
    finish_sampling,
    sample_charts,
    start_sampling,
    streamlit_app,
    wait_for,
)

APP = REPO_ROOT / "tests" / "apps" / "live_chart_demo.py"
ARTIFACTS = REPO_ROOT / "test-artifacts"
KEYS = [f"walk{i}" for i in range(4)]

GRAPH = "(k) => document.querySelector(`[data-vizvi-chart='${k}'] .js-plotly-plot`)"


def _updates(page) -> dict[str, int]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
        '[data-vizvi-chart]')].map(e => [e.dataset.vizviChart, Number(e.dataset.updates)]))""")


def _lengths(page) -> dict[str, int]:
    return page.evaluate(f"""(keys) => Object.fromEntries(keys.map(k => {{
        const g = ({GRAPH})(k);
        return [k, g && g.data && g.data[0] ? g.data[0].x.length : -1];
    }}))""", KEYS)


def test_live_charts_flicker_free_in_chromium(hard_timeout):
    ARTIFACTS.mkdir(exist_ok=True)
    metrics: dict[str, object] = {}
    with streamlit_app(APP) as server, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.on("console", lambda m: errors.append(f"console: {m.text}")
                if m.type == "error" and "vizvi" in m.text else None)
        meter = PageBytesMeter(page)

        page.goto(server.url, timeout=30_000)
        # Paused app: the four charts mount once (plotly.js fetched from the app itself).
        wait_for(page, "() => { const c = document.querySelectorAll('[data-vizvi-chart]');"
                       " return c.length === 4 && [...c].every(e => e.querySelector('.main-svg')); }",
                 timeout_ms=30_000)
        page.evaluate("() => { window.__vizviMounted = [...document.querySelectorAll("
                      "'[data-vizvi-chart]')]; }")

        # --- running: visibility, rate, growth ------------------------------------------
        page.get_by_role("button", name="Start", exact=True).click()
        wait_for(page, "() => [...document.querySelectorAll('[data-vizvi-chart]')]"
                       ".every(e => Number(e.dataset.updates) >= 4)", timeout_ms=15_000)
        len0 = _lengths(page)
        bytes0, frames0 = meter.snapshot()
        result = sample_charts(page, expected=4, seconds=4.0, min_samples=50, min_frames=40,
                               max_seconds=30.0)
        bytes1, frames1 = meter.snapshot()
        len1 = _lengths(page)
        rates = result.updates_per_second()
        chart_updates = sum(result.updates.values())
        metrics.update(
            samples=result.samples, visible_fraction=result.visible_fraction,
            frames=result.frames, frame_visible_fraction=result.frame_visible_fraction,
            max_sample_gap_ms=result.max_gap_ms, remounts=result.remounts,
            updates_per_second=rates, points_before=len0, points_after=len1,
            ws_bytes=bytes1 - bytes0, ws_frames=frames1 - frames0,
            ws_bytes_per_chart_update=(bytes1 - bytes0) / max(chart_updates, 1),
        )
        print("\nlive_chart metrics:", json.dumps(metrics, indent=1))

        assert result.charts == 4, result
        # The sampler must actually have run: 20 ms nominal -> 200 samples in 4 s, fewer
        # while the page's main thread is busy drawing (timers wait, so does painting).
        assert result.samples >= 50 and result.frames >= 40, result
        assert result.visible_fraction >= 0.98, result
        assert result.frame_visible_fraction >= 0.98, result
        assert result.remounts == 0, result
        assert set(rates) == set(KEYS)
        # Rates are measured, not asserted to a speed target here (CI machines vary): the
        # >= 5 updates/s goal is checked by `make bench` (bench/dashboard.py). Here: every chart
        # keeps updating, several times in the window.
        stalled = {k: r for k, r in rates.items() if r < 1.0}
        assert not stalled, f"charts not updating: {stalled}"
        for k in KEYS:
            assert len1[k] > len0[k] > 0, (k, len0, len1)

        # --- zoom survives updates (layout.uirevision) -----------------------------------
        page.evaluate(f"(k) => Plotly.relayout(({GRAPH})(k), {{'xaxis.range': [10, 20]}})",
                      "walk0")
        u0 = _updates(page)
        wait_for(page, "([k, n]) => Number(document.querySelector("
                       "`[data-vizvi-chart='${k}']`).dataset.updates) >= n",
                 arg=["walk0", u0["walk0"] + 5], timeout_ms=5_000)
        zoom = page.evaluate(f"""(k) => {{
            const g = ({GRAPH})(k);
            return {{range: g._fullLayout.xaxis.range, auto: g._fullLayout.xaxis.autorange}};
        }}""", "walk0")
        assert zoom["range"] == pytest.approx([10, 20]), zoom
        assert not zoom["auto"], zoom
        # ...while an un-zoomed chart keeps autoranging over its growing data.
        other = page.evaluate(f"""(k) => {{
            const g = ({GRAPH})(k), x = g.data[0].x;
            return {{hi: g._fullLayout.xaxis.range[1], last: x[x.length - 1], first: x[0]}};
        }}""", "walk1")
        assert other["hi"] >= other["last"] - 0.05 * (other["last"] - other["first"]), other

        # --- Pause stops updates within 0.5 s --------------------------------------------
        page.evaluate("""() => {
            window.__vizviTimes = [];
            new MutationObserver(() => window.__vizviTimes.push(performance.now())).observe(
                document.body, {subtree: true, attributes: true, attributeFilter: ['data-updates']});
            document.addEventListener('click', (e) => {
                const b = e.target.closest('button');
                if (b && b.innerText.trim() === 'Pause') window.__vizviPauseAt = performance.now();
            }, true);
        }""")
        before_pause = _updates(page)
        # Keep sampling through the click: a button's full-app rerun is where Streamlit may
        # remount elements (reported below, see vizvi/live_chart.js).
        start_sampling(page, expected=4, seconds=2.5)
        time.sleep(0.3)
        page.get_by_role("button", name="Pause", exact=True).click()
        around = finish_sampling(page)
        pause = page.evaluate("() => ({at: window.__vizviPauseAt, times: window.__vizviTimes})")
        assert pause["at"] is not None, "Pause click not seen in the page"
        after = [t - pause["at"] for t in pause["times"] if t > pause["at"]]
        latency_ms = max(after, default=0.0)
        metrics.update(pause_latency_ms=latency_ms, updates_after_pause=len(after),
                       pause_window_visible_fraction=around.visible_fraction,
                       pause_window_frame_visible_fraction=around.frame_visible_fraction,
                       pause_window_remounts=around.remounts)
        # The 0.5 s goal is measured by `make bench`; here updates must stop, with slack for a
        # loaded CI machine.
        assert latency_ms <= 1500, f"updates kept coming {latency_ms:.0f} ms after Pause"
        still = sample_charts(page, expected=4, seconds=1.0)
        assert sum(still.updates.values()) == 0, still
        assert still.visible_fraction == 1.0, still

        # The graphs survived the full-app reruns of Start and Pause: same chart elements
        # (adopted if Streamlit remounted their element), counters never restarted, zoom kept.
        assert page.evaluate("() => { const now = [...document.querySelectorAll("
                             "'[data-vizvi-chart]')]; return now.length === 4 && "
                             "now.every((e, i) => e === window.__vizviMounted[i]); }")
        after_pause = _updates(page)
        assert all(after_pause[k] >= before_pause[k] for k in KEYS), (before_pause, after_pause)
        zoom = page.evaluate(f"(k) => ({GRAPH})(k)._fullLayout.xaxis.range", "walk0")
        assert zoom == pytest.approx([10, 20]), zoom
        metrics["mounts"] = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
            '[data-vizvi-chart]')].map(e => [e.dataset.vizviChart, Number(e.dataset.mounts)]))""")

        # --- the toolbar's PNG download still works ---------------------------------------
        chart = page.locator("[data-vizvi-chart='walk2']")
        chart.hover()
        with page.expect_download(timeout=15_000) as dl:
            chart.locator(".modebar-btn[data-title='Download plot as a PNG']").click()
        png = Path(dl.value.path()).read_bytes()
        metrics.update(png_bytes=len(png), png_name=dl.value.suggested_filename)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
        assert dl.value.suggested_filename == "walk2.png"

        page.screenshot(path=str(ARTIFACTS / "live_chart_demo.png"))
        (ARTIFACTS / "live_chart_metrics.json").write_text(json.dumps(metrics, indent=2))
        print("live_chart metrics:", json.dumps(metrics, indent=1))
        assert not errors, errors
