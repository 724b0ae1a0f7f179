"""The compare page in a real browser (Debian's Chromium via Playwright).

Opens ``?preset=robbins-monro`` (two batched runs, fast): the live charts draw both runs on
every chart, the status column shows the stall detector's verdicts, and nothing raised. Then
opens ``?preset=gamma-stall`` once (its eight unbatchable Gamma runs take ~15 s to compile on
a fresh server) and checks all eight runs train and show. Saves screenshots to test-artifacts/.
"""

from __future__ import annotations

from tests.browser_util import REPO_ROOT, chromium, streamlit_app, wait_for

ARTIFACTS = REPO_ROOT / "test-artifacts"
CHARTS = ("cmp-elbo", "cmp-params", "cmp-grads", "cmp-snr")
# Per live chart: the runs drawn (legend groups of run lines) and the points of each.
RUNS_DRAWN = """(keys) => keys.map(k => {
  const gd = document.querySelector(`[data-vizvi-chart='${k}'] .js-plotly-plot`);
  if (!gd || !gd.data) return [k, []];
  const runs = new Set(gd.data.filter(t => (t.legendgroup || '').startsWith('run-') && t.x && t.x.length > 1)
                              .map(t => t.legendgroup));
  return [k, [...runs].sort()];
})"""


def _no_exception(page) -> None:
    found = page.locator("[data-testid='stException']")
    assert found.count() == 0, found.all_inner_texts()
    assert "Traceback" not in page.inner_text("body")


def _all_charts_draw(page, runs: int, timeout_ms: int) -> None:
    wait_for(page, f"() => ({RUNS_DRAWN})({list(CHARTS)!r}).every(([k, r]) => r.length === {runs})",
             timeout_ms=timeout_ms)


def test_compare_presets_in_chromium(hard_timeout):
    ARTIFACTS.mkdir(exist_ok=True)
    with streamlit_app(REPO_ROOT / "dashboard.py") as server, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(f"{server.url}compare?preset=robbins-monro")
        _all_charts_draw(page, 2, timeout_ms=120_000)
        wait_for(page, "() => document.body.innerText.includes('finished · step 4,000')", timeout_ms=120_000)
        _no_exception(page)
        drawn = dict(page.evaluate(RUNS_DRAWN, list(CHARTS)))
        assert all(r == ["run-1", "run-2"] for r in drawn.values()), drawn
        names = page.evaluate("""() => document.querySelector("[data-vizvi-chart='cmp-elbo'] .js-plotly-plot")
                                 .data.map(t => t.name)""")
        assert names[:2] == ["#1 schedule=constant", "#2 schedule=robbins-monro"], names
        body = page.inner_text("body")
        assert "Robbins-Monro vs constant step." in body  # the story
        assert "loc: converged" in body or "loc: converging" in body, body[:2000]  # the status column
        assert "Stall report" in body
        nav = page.locator("[data-testid='stSidebarNav']").inner_text()
        assert "Compare runs" in nav, nav
        page.screenshot(path=str(ARTIFACTS / "compare-robbins-monro.png"), full_page=True)

        page.goto(f"{server.url}compare?preset=gamma-stall&speed=50")
        wait_for(page, "() => document.body.innerText.includes('8 runs in')", timeout_ms=60_000)
        _all_charts_draw(page, 6, timeout_ms=180_000)  # the two runs from 0.001 stop at their first step
        _no_exception(page)
        body = page.inner_text("body")
        for number in range(1, 9):
            assert f"#{number} " in body, number
        assert "stalled (step-limited)" in body or "warming up" in body or "converging" in body
        page.screenshot(path=str(ARTIFACTS / "compare-gamma-stall.png"), full_page=True)
