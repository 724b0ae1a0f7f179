"""The ELBO landscape page in a real browser (Debian's Chromium via Playwright).

Opens the page from a link with settings, checks the contour renders in the link's coordinates,
presses Start and checks that the Adam, SGD and natural-gradient paths are drawn on it and grow
to their last step; then switches coordinates and checks the same paths are redrawn. Saves
screenshots to test-artifacts/.
"""

from __future__ import annotations

from tests.browser_util import REPO_ROOT, chromium, streamlit_app, wait_for

ARTIFACTS = REPO_ROOT / "test-artifacts"
GD = "() => document.querySelector('[data-testid=\"stPlotlyChart\"] .js-plotly-plot')"
PATHS = ("adam (lr 0.05)", "sgd (lr 0.001)", "natural (lr 0.1)")


def _no_exception(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, page.locator("[data-testid='stException']").all_inner_texts()


def _traces(page) -> dict:
    """{trace name: (type, number of x values, last x)} of the landscape figure as plotly.js holds it."""
    rows = page.evaluate(f"""() => {{ const gd = ({GD})();
        return gd.data.map(t => [t.name, t.type, t.x ? t.x.length : 0, t.x ? t.x[t.x.length - 1] : null]); }}""")
    return {name: (kind, n, last) for name, kind, n, last in rows}


def _paths_done(n_min: int) -> str:
    names = ", ".join(f"'{p}'" for p in PATHS)
    return f"""() => {{ const gd = ({GD})(); if (!gd || !gd.data) return false;
        const want = [{names}];
        return want.every(w => gd.data.some(t => t.name === w && t.x && t.x.length >= {n_min}))
            && want.every(w => document.body.innerText.includes(w.split(' ')[0] + ': finished')); }}"""


def test_landscape_page_draws_the_contour_and_the_paths_in_chromium(hard_timeout):
    ARTIFACTS.mkdir(exist_ok=True)
    with streamlit_app(REPO_ROOT / "dashboard.py") as server, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(f"{server.url}landscape?steps=600&speed=max&coordinates=log&grid=50")
        wait_for(page, f"() => {{ const gd = ({GD})(); return gd && gd.data && gd.data.some(t => t.type === 'contour'); }}",
                 timeout_ms=150_000)
        _no_exception(page)
        nav = page.locator("[data-testid='stSidebarNav']").inner_text()
        assert "ELBO landscape" in nav and "Estimator lab" in nav, nav
        traces = _traces(page)
        assert traces["log10 KL(q‖p)"][:2] == ("contour", 50)  # grid=50 from the link
        assert {"start", "exact optimum"} <= set(traces)
        title = page.evaluate(f"() => ({GD})().layout.xaxis.title.text")
        assert title == "log(concentration)", title  # coordinates=log from the link

        page.get_by_role("button", name="Start", exact=True).click()
        wait_for(page, _paths_done(20), timeout_ms=150_000)
        _no_exception(page)
        traces = _traces(page)
        for name in PATHS:
            kind, n, last = traces[name]
            assert kind == "scatter" and n >= 20, (name, traces[name])
        page.screenshot(path=str(ARTIFACTS / "landscape-log.png"), full_page=True)
        log_last = {name: traces[name][2] for name in PATHS}

        page.get_by_text("natural", exact=True).first.click()  # the coordinates switch
        wait_for(page, f"() => ({GD})().layout.xaxis.title.text.startsWith('η1')", timeout_ms=60_000)
        wait_for(page, _paths_done(20), timeout_ms=60_000)
        _no_exception(page)
        traces = _traces(page)
        for name in PATHS:
            assert traces[name][1] >= 20 and traces[name][2] != log_last[name], (name, traces[name])
        page.screenshot(path=str(ARTIFACTS / "landscape-natural.png"), full_page=True)
