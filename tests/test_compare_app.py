"""The compare page (``app_pages/compare.py``) through Streamlit's ``AppTest``: no browser.

Each test opens a fresh session on the compare page (``switch_page`` before the first run, so
the session starts there and the page reads the URL). Comparisons train in a background
thread (``compare_trainer``: a ``vizvi.worker.SetTrainer``), so the tests poll with
``wait_until`` (bounded). The fast comparisons are the Robbins-Monro preset's model
(normal-mean, SGD, one sample: batched); the stall report uses two Gamma runs (~5 s to compile
once per process). Every trainer is closed when its test ends.
"""

from __future__ import annotations

import pandas as pd
import pytest

from vizvi.engine import RunConfig
from vizvi.errors import ConfigError
from vizvi.ui import compare as compare_ui

from tests.test_app import (  # noqa: F401 - the fixtures are used by name
    assert_no_exception,
    button,
    chart_payloads,
    errors,
    infos,
    open_app,
    opening_page,
    prepare_within_the_script_run,
    series,
    wait_until,
)

PAGE = "app_pages/compare.py"
DEADLINE_S = 150.0
CHARTS = ["cmp-elbo", "cmp-params", "cmp-grads", "cmp-snr"]
# The Robbins-Monro preset's base (compiled once, shared): long, so it is still running when acted on.
LONG = {"model": "normal-mean", "optimizer": "sgd", "lr": "0.005", "samples": "1", "steps": "1000000", "speed": "10",
        "vary": "schedule=constant,robbins-monro"}


def set_trainer(at):
    return at.session_state["compare_trainer"]


def has_set(at) -> bool:
    return "compare_trainer" in at.session_state


def table(at) -> pd.DataFrame:
    """The table of runs to compare (the first of the page's data frames)."""
    return at.dataframe[0].value


def report(at) -> pd.DataFrame:
    (frame,) = [d.value for d in at.dataframe if "steps since progress" in d.value.columns]
    return frame


def settled(at) -> bool:
    return has_set(at) and not set_trainer(at).busy


@pytest.fixture
def open_compare(open_app):  # noqa: F811 - the fixture imported above
    """``open_compare(query=None)``: a fresh session started on the compare page; its
    comparison's trainer is closed afterwards."""
    yield from opening_page(open_app, PAGE, "Compare runs",
                            lambda at: set_trainer(at).close() if has_set(at) else None)


def test_page_renders_presets_definition_and_buttons(open_compare):
    at = open_compare()
    assert errors(at) == []
    labels = [b.label for b in at.button]
    assert labels[:4] == ["Gamma concentration stall", "Score function vs pathwise", "Mean-field vs full-rank",
                          "Robbins-Monro vs constant step"]
    assert labels[4:8] == ["Start", "Pause", "Step", "Reset"]
    assert at.selectbox(key="w_compare-vary-setting-0").value == "—"
    assert list(table(at)["run"]) == [1]  # the base alone
    assert any("Press **Start**" in m for m in infos(at)), infos(at)
    assert not has_set(at)


def test_a_preset_link_starts_it_and_the_charts_draw_every_run(open_compare):
    at = open_compare({"preset": "robbins-monro"})
    assert errors(at) == []
    assert has_set(at), "a preset link starts its comparison"
    assert any(m.startswith("**Robbins-Monro vs constant step.**") for m in infos(at)), infos(at)
    assert list(table(at)["schedule"]) == ["constant", "robbins-monro"]
    wait_until(at, settled, "the preset to finish", timeout=DEADLINE_S)
    at.run()
    assert_no_exception(at)
    run_set = set_trainer(at).run
    assert [r.step for r in run_set.runs] == [4000, 4000] and run_set.batched
    assert run_set.labels == ["schedule=constant", "schedule=robbins-monro"]
    figs = {k: fig for k, (_, fig) in chart_payloads(at).items()}
    assert sorted(figs) == sorted(CHARTS)
    elbo = series(figs["cmp-elbo"])
    assert [t["name"] for t in elbo] == ["#1 schedule=constant", "#2 schedule=robbins-monro"]
    assert len({t["line"]["color"] for t in elbo}) == 2
    for key in ("cmp-params", "cmp-grads", "cmp-snr"):
        lines = series(figs[key])
        assert len(lines) == 2 * 2, key  # two runs x two parameters (loc, scale)
        assert {t["line"]["color"] for t in lines} == {t["line"]["color"] for t in elbo}, key  # one colour per run
    optima = [t for t in figs["cmp-params"]["data"] if t["name"] == "optimum"]
    assert len(optima) == 2 and all(t["line"]["dash"] == "dash" for t in optima)
    # The status column: each run's verdict per parameter.
    status = [m.value for m in at.markdown if "loc:" in m.value and "scale:" in m.value]
    assert len(status) == 2, [m.value for m in at.markdown]
    rep = report(at)
    assert len(rep) == 4 and set(rep["run"]) == {1, 2}
    assert dict(at.query_params) == {"preset": "robbins-monro"}
    assert errors(at) == []


def test_vary_builds_the_table_and_nine_runs_are_refused_keeping_the_table(open_compare):
    at = open_compare({"model": "normal-mean"})
    at.selectbox(key="w_compare-vary-setting-0").set_value("lr")
    at.text_input(key="w_compare-vary-values-0").set_value("0.01,0.05,0.1").run()
    assert_no_exception(at)
    assert errors(at) == []
    assert list(table(at)["lr"]) == ["0.01", "0.05", "0.1"]
    at.selectbox(key="w_compare-vary-setting-1").set_value("seed")
    at.text_input(key="w_compare-vary-values-1").set_value("0,1").run()
    assert_no_exception(at)
    shown = table(at)
    assert len(shown) == 6 and list(shown.columns) == ["run", "seed", "lr"]
    at.text_input(key="w_compare-vary-values-1").set_value("0,1,2").run()  # 3 x 3 = 9 runs
    assert_no_exception(at)
    errs = errors(at)
    assert len(errs) == 1 and errs[0].startswith("vary: 9 runs") and "at most 8" in errs[0], errs
    assert table(at).equals(shown), "the comparison defined before was lost"
    at.text_input(key="w_compare-vary-values-1").set_value("0,x").run()
    assert_no_exception(at)
    errs = errors(at)
    assert len(errs) == 1 and errs[0].startswith("seed: ") and "'x'" in errs[0], errs
    assert table(at).equals(shown)
    at.text_input(key="w_compare-vary-values-0").set_value("0.01,-1").run()  # out of range
    assert_no_exception(at)
    assert any(e.startswith("lr: ") and "positive" in e for e in errors(at)), errors(at)
    at.text_input(key="w_compare-vary-values-0").set_value("0.01,0.05,0.1")
    at.text_input(key="w_compare-vary-values-1").set_value("3").run()
    assert_no_exception(at)
    assert errors(at) == [] and len(table(at)) == 3
    assert at.query_params["vary"] == ["lr=0.01,0.05,0.1", "seed=3"]  # repeated keys


def test_table_edits_change_a_run_and_bad_cells_are_named():
    configs = [RunConfig(model="normal-mean", lr=0.01), RunConfig(model="normal-mean", lr=0.05)]
    frame = pd.DataFrame([{"run": 1, "lr": "0.01"}, {"run": 2, "lr": "0.05"}])
    assert compare_ui._apply_edits(configs, ["lr"], frame) is None
    frame.loc[1, "lr"] = "0.2"
    edited = compare_ui._apply_edits(configs, ["lr"], frame)
    assert [c.lr for c in edited] == [0.01, 0.2]
    frame.loc[1, "lr"] = "0"
    with pytest.raises(ConfigError) as e:
        compare_ui._apply_edits(configs, ["lr"], frame)
    assert e.value.argument == "lr" and "run 2" in str(e.value)


def test_drop_and_duplicate_while_running(open_compare):
    at = open_compare(LONG)
    assert errors(at) == []
    wait_until(at, lambda a: has_set(a) and min(r.step for r in set_trainer(a).run.runs) > 50, "both runs to train",
               timeout=DEADLINE_S)
    t = set_trainer(at)
    [b for b in at.button if b.key == "cmp-drop-1"][0].click().run()
    assert_no_exception(at)
    # The new layout compiles in the background while the runs go on, then is swapped in.
    wait_until(at, lambda a: not t.changing, "the drop to be taken in", timeout=DEADLINE_S)
    assert t.change_error is None
    assert [r.config.schedule for r in t.run.runs] == ["robbins-monro"] and t.busy
    survivor = t.run.runs[0]
    before = survivor.step
    wait_until(at, lambda a: survivor.step > before, "the other run to go on", timeout=DEADLINE_S)
    at.selectbox(key="w_compare-duplicate-run").set_value(2)
    at.selectbox(key="w_compare-duplicate-setting").set_value("lr")
    at.text_input(key="w_compare-duplicate-value").set_value("0.001")
    button(at, "Add copy").click().run()
    assert_no_exception(at)
    assert errors(at) == []
    wait_until(at, lambda a: not t.changing, "the copy to be taken in", timeout=DEADLINE_S)
    copy = t.run.runs[1]
    assert (copy.config.lr, copy.config.schedule) == (0.001, "robbins-monro") and t.run.runs[0] is survivor
    assert t.run.labels == ["lr=0.005", "lr=0.001"]
    wait_until(at, lambda a: copy.step > 0, "the copy to train", timeout=DEADLINE_S)
    assert survivor.step > copy.step and t.busy
    # A bad value is named and the comparison goes on unchanged.
    at.text_input(key="w_compare-duplicate-value").set_value("-3")
    button(at, "Add copy").click().run()
    assert_no_exception(at)
    errs = errors(at)
    assert len(errs) == 1 and "lr: " in errs[0] and "continues unchanged" in errs[0], errs
    assert len(t.run.runs) == 2
    charts = {k: fig for k, (_, fig) in chart_payloads(at).items()}
    assert [t_["name"] for t_ in series(charts["cmp-elbo"])] == ["#2 lr=0.005", "#3 lr=0.001"]


def test_stall_report_offers_a_fix_that_joins_the_comparison(open_compare):
    at = open_compare({"model": "poisson-gamma", "family": "gamma", "steps": "1500", "speed": "max",
                       "vary": "init=concentration=0.1,rate=1;concentration=1,rate=1"})
    assert errors(at) == []
    wait_until(at, settled, "the Gamma runs to finish", timeout=DEADLINE_S)
    at.run()
    assert_no_exception(at)
    rep = report(at)
    stalled = rep[rep["status"] == "stalled (step-limited)"]
    assert set(stalled["parameter"]) == {"concentration"} and set(stalled["run"]) == {1, 2}, rep
    assert all("natural" in s for s in stalled["suggestion"])
    assert (stalled["relative distance"] > 0.9).all()
    assert [d.label for d in at.get("download_button")] == ["Download the stall report (CSV)"]
    fixes = [b for b in at.button if b.label.startswith("Add #1 fixed")]
    assert len(fixes) == 1 and "optimizer=natural" in fixes[0].label
    t = set_trainer(at)
    fixes[0].click().run()
    assert_no_exception(at)
    assert errors(at) == []
    wait_until(at, lambda a: not t.changing, "the fixed run to be taken in", timeout=DEADLINE_S)
    assert len(t.run.runs) == 3
    fixed = t.run.runs[2]
    assert (fixed.config.optimizer, fixed.config.schedule, fixed.config.init) == (
        "natural", "robbins-monro", "concentration=0.1,rate=1")
    wait_until(at, lambda a: fixed.status.over, "the fixed run to finish", timeout=DEADLINE_S)
    at.run()
    rep = report(at)
    assert set(rep[rep["run"] == 3]["status"]) == {"converged"}, rep
    assert not [b for b in at.button if b.label.startswith("Add #1 fixed") and not b.disabled], "offered twice"


def test_url_restores_a_comparison_of_base_settings_and_varied_ones(open_compare):
    at = open_compare({"model": "normal-mean", "steps": "600", "speed": "max", "seed": "4",
                       "vary": "lr=0.01,0.02"})
    assert errors(at) == []
    assert at.selectbox(key="w_compare-vary-setting-0").value == "lr"
    assert at.text_input(key="w_compare-vary-values-0").value == "0.01,0.02"
    assert list(table(at)["lr"]) == ["0.01", "0.02"]
    wait_until(at, settled, "the comparison to finish", timeout=DEADLINE_S)
    runs = set_trainer(at).run.runs
    assert [(r.config.model, r.config.seed, r.config.lr, r.step) for r in runs] == [
        ("normal-mean", 4, 0.01, 600), ("normal-mean", 4, 0.02, 600)]
    qp = at.query_params
    assert qp["model"] == "normal-mean" and qp["seed"] == "4" and qp["steps"] == "600"
    assert qp["vary"] == "lr=0.01,0.02"


def test_bad_url_is_named(open_compare):
    at = open_compare({"preset": "nope"})
    errs = errors(at)
    assert len(errs) == 1 and errs[0].startswith("URL query: preset='nope' ignored: unknown preset"), errs
    assert not has_set(at)


def test_mean_field_preset_shows_q_against_the_posterior_per_run(open_compare):
    at = open_compare({"preset": "mean-field-vs-full-rank", "speed": "max"})
    assert errors(at) == []
    wait_until(at, settled, "the preset to finish", timeout=DEADLINE_S)
    at.run()
    assert_no_exception(at)
    payloads = chart_payloads(at)
    assert sorted(payloads) == sorted(CHARTS + ["cmp-q-1", "cmp-q-2"])
    for number in (1, 2):
        (_, fig) = payloads[f"cmp-q-{number}"]
        q = [t for t in fig["data"] if t["name"] == f"q of #{number}"]
        assert len(q) == 1 and q[0]["type"] == "scatter" and len(q[0]["x"]) > 0  # q's level lines
    # Mean-field q is too narrow: its marginal sd is below the posterior's (the story).
    mean_field, full_rank = set_trainer(at).run.runs
    assert mean_field.config.family == "mean-field-normal" and full_rank.config.family == "full-rank-normal"
    assert at.query_params["preset"] == "mean-field-vs-full-rank" and at.query_params["speed"] == "max"
