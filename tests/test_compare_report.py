"""The compare page's stall report (``vizvi.compare_report``) on a small comparison.

The Gamma-stall preset shortened to 1,500 steps (one compiled set for the module): softplus +
Adam leaves the concentration step-limited with a suggested fix (the natural gradient), the
natural-gradient runs converge, and the runs from concentration 0.001 diverge at their first
step. Also the definition of "steps since progress" on hand-made histories.
"""

from __future__ import annotations

import csv
import dataclasses
import io

import numpy as np
import pytest

from vizvi.compare import RunSet
from vizvi.compare_report import COLUMNS, fixed_config, report_csv, stall_report, steps_since_progress
from vizvi.engine import validate
from vizvi.presets import get_preset

STEPS = 1500


@pytest.fixture(scope="module")
def gamma_set():
    configs = [dataclasses.replace(c, steps=STEPS) for c in get_preset("gamma-stall").configs()]
    return RunSet(configs).run()


@pytest.fixture(scope="module")
def rows(gamma_set):
    return stall_report(gamma_set)


def _row(rows, run: int, parameter: str) -> dict:
    (row,) = [r for r in rows if r["run"] == run and r["parameter"] == parameter]
    return row


def test_one_row_per_run_and_parameter_in_the_sets_order(gamma_set, rows):
    assert len(rows) == len(gamma_set.runs) * 2
    assert [r["run"] for r in rows] == [i for i in range(1, len(gamma_set.runs) + 1) for _ in range(2)]
    assert {r["label"] for r in rows} == set(gamma_set.labels)
    assert all(set(COLUMNS) <= set(r) for r in rows)


def test_softplus_adam_concentration_is_stalled_with_the_natural_gradient_as_fix(gamma_set, rows):
    labels = gamma_set.labels
    stalled = [i + 1 for i, label in enumerate(labels)
               if "parameterization=softplus" in label and "optimizer=adam" in label and "concentration=0.001" not in label]
    assert len(stalled) == 2, labels
    for run in stalled:
        row = _row(rows, run, "concentration")
        assert row["status"] == "stalled (step-limited)", row
        # The concentration (optimum 219) is still far: the distance is |theta - optimum|.
        assert row["optimum"] == pytest.approx(gamma_set.runs[run - 1].optimum[0])
        assert row["distance"] == pytest.approx(abs(row["value"] - row["optimum"]))
        assert row["relative distance"] == pytest.approx(row["distance"] / row["optimum"]) and row["relative distance"] > 0.9
        assert 0 <= row["steps since progress"] <= STEPS
        assert "natural" in row["suggestion"]
        assert row["fix"] == {"optimizer": "natural", "lr": None, "schedule": "robbins-monro"}
        assert row["fix settings"] == "optimizer=natural, lr=default, schedule=robbins-monro"
        fixed = row["fixed"]
        original = gamma_set.runs[run - 1].config
        assert fixed == validate(fixed)  # a valid run
        assert (fixed.optimizer, fixed.schedule) == ("natural", "robbins-monro") and fixed.lr == 0.1  # natural's default
        same = {k: v for k, v in original.to_dict().items() if k not in ("optimizer", "lr", "schedule")}
        assert {k: fixed.to_dict()[k] for k in same} == same  # nothing else changes


def test_natural_gradient_runs_converge_at_the_exact_optimum(gamma_set, rows):
    natural = [i + 1 for i, label in enumerate(gamma_set.labels) if "optimizer=natural" in label]
    assert len(natural) == 2
    for run in natural:
        for parameter in ("concentration", "rate"):
            row = _row(rows, run, parameter)
            assert row["status"] == "converged", row
            assert row["relative distance"] < 0.05
            assert row["suggestion"] == "" and row["fix"] is None and row["fixed"] is None


def test_runs_that_diverged_at_once_have_no_history_to_judge(gamma_set, rows):
    diverged = [i + 1 for i, run in enumerate(gamma_set.runs) if str(run.status) == "diverged"]
    assert diverged, gamma_set.labels
    for run in diverged:
        row = _row(rows, run, "concentration")
        assert row["status"] == "diverged" and row["steps since progress"] is None
        # The suggestion (a run that fails at its first step: start elsewhere) makes a valid run.
        assert row["fix"] and row["fixed"] == validate(row["fixed"])
        assert all(getattr(row["fixed"], k) == v for k, v in row["fix"].items()), (row["fix"], row["fixed"])


def test_csv_has_every_column_and_a_line_per_row(rows):
    text = report_csv(rows)
    table = list(csv.DictReader(io.StringIO(text)))
    assert tuple(table[0].keys()) == COLUMNS
    assert len(table) == len(rows)
    assert [int(r["run"]) for r in table] == [r["run"] for r in rows]
    assert table[2]["status"] == rows[2]["status"]
    assert all(r["steps since progress"] == "" for r, row in zip(table, rows) if row["steps since progress"] is None)


def test_steps_since_progress_with_an_optimum():
    steps = np.arange(1, 1001)
    # Creeping toward 100 by 0.01 per step: the last 1% of the remaining gap (~0.9) took ~90 steps.
    creeping = 10 + 0.01 * steps
    assert 80 <= steps_since_progress(steps, creeping, 100.0) <= 100
    # Reached the optimum at step 200 and held there: no progress for 800 steps.
    held = np.minimum(steps, 200) / 2.0
    assert steps_since_progress(steps, held, 100.0) == 800
    # Hovering at a fixed distance, noise only: no progress since its first row of that closeness.
    rng = np.random.default_rng(0)
    hover = 50 + rng.uniform(-0.1, 0.1, len(steps))
    assert steps_since_progress(steps, hover, 100.0) > 0
    assert steps_since_progress(steps[:0], creeping[:0], 100.0) is None


def test_steps_since_progress_without_an_optimum():
    steps = np.arange(1, 1001)
    moved_until_300 = np.minimum(steps, 300) * 1.0
    # The last value more than 1% (3) from 300 is 296 (step 296): still since step 297.
    assert steps_since_progress(steps, moved_until_300, None) == 1000 - 297
    assert steps_since_progress(steps, np.full(len(steps), 5.0), None) == 999


def test_fixed_config_names_a_fix_that_is_no_valid_run():
    from vizvi.engine import RunConfig
    from vizvi.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        fixed_config(RunConfig(model="normal-mean").to_dict(), {"samples": 0})
    assert e.value.argument == "samples"
