"""A model file on the dashboard in a real browser (Debian's Chromium via Playwright).

Starts ``streamlit run dashboard.py -- --model-file examples/eight_schools_noncentered.py
--model-file <a broken file>``, opens the eight schools' run page, presses Start and checks
from inside the page: the charts go live, the MCMC reference arrives and is drawn against q
(its arrival settles the page with one full rerun), then all seven charts (with k-hat and the
overview of the 20 parameters) stay visible and are never remounted while the per-step charts
update, and the broken file's message is on the page. A second browser
context then trains a built-in model on the same server, the message shown there too.
Saves screenshots to test-artifacts/.
"""

from __future__ import annotations

import time

from tests.browser_util import REPO_ROOT, chromium, sample_charts, streamlit_app, wait_for

ARTIFACTS = REPO_ROOT / "test-artifacts"
MODEL = "eight-schools-noncentered"
KEYS = ("elbo", "params", "density", "grads", "variance", "khat", "overview")
PER_STEP = ("elbo", "params", "grads")  # redrawn at every update (the others about every 0.5 s)
GRAPH = "(k) => document.querySelector(`[data-vizvi-chart='${k}'] .js-plotly-plot`)"


def _traces(page, key):
    return page.evaluate(f"""(k) => {{ const gd = ({GRAPH})(k); if (!gd || !gd.data) return null;
        return gd.data.map(t => ({{name: t.name, type: t.type, n: t.x ? t.x.length : 0, rows: t.y ? t.y.length : 0,
                                   last: t.x && t.x.length ? Number(t.x[t.x.length - 1]) : null}})); }}""", key)


def _mounts(page) -> dict:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-vizvi-chart]')]
        .map(e => [e.dataset.vizviChart, e.dataset.mounts]))""")


def _alerts(page) -> list:
    return page.locator("[data-testid='stAlert']").all_inner_texts()


def _wait_live(page, keys):
    wait_for(page, "(keys) => keys.every(k => { const e = document.querySelector(`[data-vizvi-chart='${k}']`);"
                   " return e && +e.dataset.updates >= 3; })", arg=list(keys), timeout_ms=150_000)


def test_a_model_file_trains_live_in_chromium_beside_a_broken_one(hard_timeout, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    broken = tmp_path / "broken_model.py"
    broken.write_text("import numpy as np\n\njoint = np.array([1.0])\nobserved = {}\n")
    args = ["--", "--model-file", "examples/eight_schools_noncentered.py", "--model-file", str(broken)]
    with streamlit_app("dashboard.py", timeout=120, extra_args=args) as server, chromium() as browser:
        url = f"http://127.0.0.1:{server.port}/"
        a = browser.new_context(viewport={"width": 1500, "height": 1300}).new_page()
        page_errors = []
        a.on("pageerror", lambda e: page_errors.append(str(e)))
        # Steps enough to be still training when the MCMC reference arrives, sampled after it.
        a.goto(url + f"?model={MODEL}&speed=max&variance-every=20&steps=1000000", timeout=90_000)
        wait_for(a, "() => [...document.querySelectorAll(\"[data-testid='stAlert']\")]"
                    ".some(e => e.innerText.includes('Model file not loaded'))", timeout_ms=60_000)
        assert any(f"{broken}:3:" in t and "not a tfd.JointDistribution" in t for t in _alerts(a)), _alerts(a)
        a.get_by_role("button", name="Start", exact=True).click()
        _wait_live(a, KEYS)

        # --- the MCMC reference arrives (in the background, the charts live meanwhile) and is drawn
        # against q; its arrival settles the page with one full rerun, so the sampling below
        # (steady state: never remounted) starts after it --------------------------------------
        wait_for(a, "() => [...document.querySelectorAll(\"[data-testid='stAlert']\")]"
                    ".some(e => e.innerText.includes('Reference posterior by MCMC: NUTS'))", timeout_ms=120_000)
        wait_for(a, f"() => ({GRAPH})('density').data.some(t => t.name === 'reference posterior (MCMC draws)')",
                 timeout_ms=30_000)
        assert any("bulk ESS" in t and "R-hat" in t for t in _alerts(a)), _alerts(a)
        # The alert and the reference's trace can be drawn by fragment runs just before the settling
        # full rerun lands (it may remount the charts once): sample once their mounts have held
        # still for 2 s while they update.
        deadline = time.monotonic() + 60
        mounts, still_since = _mounts(a), time.monotonic()
        while time.monotonic() - still_since < 2.0:
            assert time.monotonic() < deadline, f"the charts kept remounting: {_mounts(a)}"
            time.sleep(0.25)
            now = _mounts(a)
            if now != mounts:
                mounts, still_since = now, time.monotonic()
        # --- live: every chart visible, never remounted; the per-step charts move ----------------
        before = _traces(a, "elbo")
        result = sample_charts(a, expected=len(KEYS), seconds=4.0, min_samples=20, min_frames=20,
                               max_seconds=30.0)
        after = _traces(a, "elbo")
        assert result.charts == len(KEYS) and result.remounts == 0, result
        assert result.visible_fraction >= 0.98, result
        slow = {k: r for k, r in result.updates_per_second().items() if r < (1.0 if k in PER_STEP else 0.25)}
        assert not slow, f"charts not updating: {slow}"
        assert after[0]["last"] > before[0]["last"] > 0, (before, after)
        params = [t["name"] for t in _traces(a, "params") if t["n"] > 2]
        assert len(params) == 4 and all("[" in n for n in params), params  # 4 of the 20, by name
        (heat,) = _traces(a, "overview")
        assert heat["type"] == "heatmap" and heat["rows"] == 20
        assert _traces(a, "khat")[0]["n"] >= 5

        a.screenshot(path=str(ARTIFACTS / "model_file.png"), full_page=True)
        a.get_by_role("button", name="Pause", exact=True).click()  # the cores to the second session

        # --- the same server: a built-in model trains, the broken file named there too -----------
        b = browser.new_context(viewport={"width": 1500, "height": 1300}).new_page()
        b.goto(url + "?speed=max", timeout=90_000)
        b.get_by_role("button", name="Start", exact=True).click()
        _wait_live(b, KEYS[:-1])
        names = [t["name"] for t in _traces(b, "params")]
        assert "concentration" in names and "rate" in names, names
        assert not b.query_selector("[data-vizvi-chart='overview']")  # two parameters: no overview
        assert any("Model file not loaded" in t for t in _alerts(b)), _alerts(b)
        # Loaded with the first page's first run: said on the terminal once, whatever the sessions.
        assert server.log().count(f"model file not loaded: {broken}:3:") == 1, server.log()
        b.get_by_role("button", name="Pause", exact=True).click()
        assert not page_errors, page_errors
