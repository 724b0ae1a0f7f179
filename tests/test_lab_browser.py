"""The estimator lab in a real browser (Debian's Chromium via Playwright).

Opens the lab from a link with explorer settings and checks its three figures render with
every estimator's curve, as the link asked; then opens a race link, presses Start and checks
the race's live charts draw every chosen estimator and grow. Saves screenshots to
test-artifacts/.
"""

from __future__ import annotations

from tests.browser_util import REPO_ROOT, chromium, streamlit_app, wait_for

ARTIFACTS = REPO_ROOT / "test-artifacts"
PLOTS = "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .js-plotly-plot')]"


def _no_exception(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, page.locator("[data-testid='stException']").all_inner_texts()


def test_lab_explorer_and_race_in_chromium(hard_timeout):
    ARTIFACTS.mkdir(exist_ok=True)
    with streamlit_app(REPO_ROOT / "dashboard.py") as server, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{server.url}lab?mu=0.5&sigma=2&k=-2:2:5&cost=abs&samples=2&replicates=4000&seed=3&log-y=0")
        wait_for(page, f"() => ({PLOTS})().length >= 3 && ({PLOTS})().every(g => g.data && g.data.length)", timeout_ms=150_000)
        _no_exception(page)
        # Opened by a link on a fresh server, the page still runs under the entry file's
        # navigation (and its runtime patches), not as a page Streamlit found by itself.
        nav = page.locator("[data-testid='stSidebarNav']").inner_text()
        assert "Estimator lab" in nav and "Run" in nav and "dashboard" not in nav, nav
        traces = page.evaluate(f"""() => ({PLOTS})().map(g => ({{title: g.layout.title.text,
            names: g.data.map(t => t.name), n: g.data.map(t => t.x ? t.x.length : 0), ytype: g.layout.yaxis.type}}))""")
        assert len(traces) == 3, traces
        variance = next((t for t in traces if ("Variance" in t["title"])), None)
        assert variance, [t["title"] for t in traces]
        assert set(variance["names"]) == {"score", "score-baseline", "pathwise", "measure-valued", "measure-valued-coupled"}
        assert all(n == 5 for n in variance["n"]), variance  # k = -2:2:5 from the link
        assert "cost abs" in variance["title"] and "4,000 replicates" in variance["title"]
        assert variance["ytype"] == "linear"  # log-y=0 from the link
        assert any(("Mean of the estimates" in t["title"]) for t in traces)
        assert any(("The cost" in t["title"]) for t in traces)
        page.screenshot(path=str(ARTIFACTS / "lab-explorer.png"), full_page=True)

        page.goto(f"{server.url}lab?view=race&model=normal-mean&steps=4000&speed=max&estimators=pathwise,score,measure-valued")
        page.get_by_role("button", name="Start").click()
        wait_for(page, "() => { const c = [...document.querySelectorAll('[data-vizvi-chart]')];"
                       " return c.length === 3 && c.every(e => +e.dataset.updates >= 2); }", timeout_ms=150_000)
        wait_for(page, "() => document.body.innerText.includes('finished')", timeout_ms=150_000)
        _no_exception(page)
        names = page.evaluate("""() => { const gd = document.querySelector("[data-vizvi-chart='race-elbo'] .js-plotly-plot");
            return gd.data.map(t => [t.name, t.x.length]); }""")
        drawn = {name for name, n in names if n > 0}
        assert {"pathwise", "score", "measure-valued"} <= drawn and "stl" not in drawn, names
        page.screenshot(path=str(ARTIFACTS / "lab-race.png"), full_page=True)
        status = [t for t in page.locator("[data-testid='stMarkdownContainer']").all_inner_texts() if "step" in t and "·" in t]
        assert status and status[0].startswith("finished · step 4,000"), status
