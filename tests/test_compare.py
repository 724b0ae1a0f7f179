"""Sets of runs: grouping, one compiled call, batched runs equal to the same runs one by one."""

import dataclasses
import json

import numpy as np
import pytest

from vizvi import compare
from vizvi.cli import main
from vizvi.compare import MAX_RUNS, RunSet, get_set_fn, parse_vary, plan, vary
from vizvi.engine import Run, RunConfig
from vizvi.errors import ConfigError
from vizvi.status import Status


def _alone(config: RunConfig) -> Run:
    return Run(config).run()


def _assert_same_run(member: Run, alone: Run, rtol: float = 1e-10):
    assert (member.status, member.step) == (alone.status, alone.step)
    assert member.divergence == alone.divergence
    got, want = member.history.series(), alone.history.series()
    assert set(got) == set(want)
    for field in want:
        np.testing.assert_allclose(got[field], want[field], rtol=rtol, atol=1e-12, err_msg=field)
    gv, wv = member.history.variance_series(), alone.history.variance_series()
    for field in wv:
        np.testing.assert_allclose(gv[field], wv[field], rtol=rtol, atol=1e-12, err_msg=field)


# Numbers only differ inside each case (initial values, learning rate, schedule, seed, steps),
# plus one member that diverges and one that stops early: each must match its run alone.
CASES = {
    "normal, vectorized": (RunConfig(model="normal-mean", samples=4, steps=400, variance_every=7, replicates=6), [
        {}, {"lr": 0.01, "seed": 3}, {"schedule": "robbins-monro", "init": "loc=3,scale=0.2"}, {"steps": 150},
        {"optimizer": "adam", "lr": 5e4},  # diverges, alone too
    ]),
    "full-rank, vectorized": (RunConfig(model="correlated-gaussian", family="full-rank-normal", samples=4, steps=300,
                                        variance_every=11, replicates=4), [{}, {"lr": 0.02, "seed": 5}, {"init": "random"}]),
    "gamma, mapped": (RunConfig(model="poisson-gamma", family="gamma", n=50, samples=4, steps=300, variance_every=9,
                                replicates=4), [{"init": "concentration=0.1,rate=1"}, {"lr": 0.2, "seed": 1}]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_set_gives_the_numbers_of_its_runs_one_by_one(case):
    base, overrides = CASES[case]
    configs = [dataclasses.replace(base, **o) for o in overrides]
    runs = RunSet(configs)
    runs.run()
    assert runs.status in (Status.FINISHED, Status.DIVERGED)
    # full rank: a vectorized triangular solve rounds differently in the last bit
    rtol = 1e-7 if "full-rank" in case else 1e-10
    for member, config in zip(runs.runs, configs):
        _assert_same_run(member, _alone(config), rtol)


def test_runs_of_one_structure_are_one_vectorized_group_and_rejection_samplers_are_mapped():
    normal = RunSet([RunConfig(model="normal-mean", lr=lr) for lr in (0.01, 0.1)]
                    + [RunConfig(model="normal-mean", estimator="score")])
    assert [(g.members, g.vectorized) for g in normal.layout.groups] == [((0, 1), True), ((2,), False)]
    assert normal.batched
    gamma = plan([Run(RunConfig(model="poisson-gamma", family="gamma", lr=lr)) for lr in (0.01, 0.1)])
    assert [(g.members, g.vectorized) for g in gamma.groups] == [((0, 1), False)]
    # Different numbers of observations: different data shapes, so separate groups.
    shapes = plan([Run(RunConfig(model="logistic-regression", n=n)) for n in (10, 20)])
    assert len(shapes.groups) == 2


def test_runs_of_one_data_set_share_it():
    runs = RunSet([RunConfig(model="normal-mean", lr=lr) for lr in (0.01, 0.1)] + [RunConfig(model="normal-mean", seed=4)])
    assert runs.runs[0].dataset is runs.runs[1].dataset and runs.runs[0].reference is runs.runs[1].reference
    assert runs.runs[2].dataset is not runs.runs[0].dataset


def test_new_numbers_of_the_same_layout_never_retrace():
    first = RunSet([RunConfig(model="normal-mean", steps=50, lr=lr) for lr in (0.01, 0.1)])
    first.run()
    fn = get_set_fn(first.layout.shape)
    traces = fn.experimental_get_tracing_count()
    other = RunSet([RunConfig(model="normal-mean", steps=80, seed=7, init="loc=1,scale=2", schedule="robbins-monro", lr=lr)
                    for lr in (0.3, 0.003)])
    assert get_set_fn(other.layout.shape) is fn
    other.run()
    assert fn.experimental_get_tracing_count() == traces == 1


def test_add_and_drop_leave_the_other_runs_as_they_were():
    base = RunConfig(model="normal-mean", samples=4, steps=300, variance_every=10, replicates=4)
    runs = RunSet([base, dataclasses.replace(base, lr=0.01)])
    runs.advance(120)
    added = runs.add(dataclasses.replace(base, lr=0.02, seed=2))
    assert added.step == 0 and len(runs.runs) == 3
    runs.run()
    for member, config in zip(runs.runs, [base, dataclasses.replace(base, lr=0.01), dataclasses.replace(base, lr=0.02, seed=2)]):
        _assert_same_run(member, _alone(config))
    dropped = runs.drop(0)
    assert dropped.config.lr == base.filled(dropped.model).lr and len(runs.runs) == 2
    with pytest.raises(ConfigError, match="no run 5"):
        runs.drop(4)
    runs.drop(0)
    with pytest.raises(ConfigError, match="at least one run"):
        runs.drop(0)


def test_a_stale_chunk_is_not_committed_after_the_set_changed():
    runs = RunSet([RunConfig(model="normal-mean", steps=100, lr=lr) for lr in (0.01, 0.1)])
    pending = runs.compute_chunk(50)
    runs.add(RunConfig(model="normal-mean", steps=100))
    assert runs.commit_chunk(pending) == 0 and runs.step == 0


def test_at_most_eight_runs():
    configs = [RunConfig(model="normal-mean", seed=s) for s in range(MAX_RUNS)]
    runs = RunSet(configs)
    with pytest.raises(ConfigError, match="at most 8"):
        runs.add(RunConfig(model="normal-mean"))
    assert len(runs.runs) == MAX_RUNS


def test_vary_makes_the_product_and_labels_say_what_differs():
    base = RunConfig(model="poisson-gamma", family="gamma")
    configs = vary(base, [parse_vary("parameterization=softplus,exp"),
                          parse_vary("init=concentration=0.1,rate=1;concentration=1,rate=1")])
    assert [(c.parameterization, c.init) for c in configs] == [
        ("softplus", "concentration=0.1,rate=1"), ("softplus", "concentration=1,rate=1"),
        ("exp", "concentration=0.1,rate=1"), ("exp", "concentration=1,rate=1")]
    assert compare.differences(configs)[3] == "parameterization=exp, init=concentration=1,rate=1"
    # Varying the optimizer gives each its own default learning rate.
    assert [c.lr for c in vary(base, [parse_vary("optimizer=adam,natural")])] == [None, None]
    with pytest.raises(ConfigError, match="9 runs") as err:
        vary(base, [parse_vary("seed=1,2,3"), parse_vary("lr=0.1,0.2,0.3")])
    assert err.value.argument == "vary"


@pytest.mark.parametrize("text, argument, message", [
    ("lr", "vary", "SETTING=V1"),
    ("speed=1,2", "vary", "not a setting of a run"),
    ("colour=red", "vary", "unknown setting 'colour'"),
    ("lr=0.1,", "vary", "none empty"),
    ("lr=0.1,fast", "lr", "not a number"),
    ("samples=0", "samples", "out of range"),
    ("optimizer=adam,nesterov", "optimizer", "unknown optimizer 'nesterov'"),
])
def test_a_bad_vary_names_what_was_wrong(text, argument, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_vary(text)
    assert err.value.argument == argument


def test_cli_compare_writes_one_record_per_run(tmp_path):
    out = tmp_path / "set.json"
    code = main(["compare", "--vary", "lr=0.01,0.05", "--vary", "schedule=constant,robbins-monro", "--model", "normal-mean",
                 "--steps", "200", "--seed", "4", "--json", str(out), "--quiet"])
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result) == {"runs", "batched", "elapsed_s", "config"}
    assert result["batched"] is True and result["elapsed_s"] > 0
    assert len(result["runs"]) == 4
    assert [(r["config"]["lr"], r["config"]["schedule"]) for r in result["runs"]] == [
        (0.01, "constant"), (0.01, "robbins-monro"), (0.05, "constant"), (0.05, "robbins-monro")]
    for record in result["runs"]:
        assert record["steps"] == 200 and record["config"]["seed"] == 4 and record["config"]["model"] == "normal-mean"
        assert len(record["history"]["elbo"]) == 200 and set(record["final"]["params"]) == {"loc", "scale"}
    assert result["config"]["layout"] == [{"runs": [0, 1, 2, 3], "vectorized": True, "structure": {
        "model": "normal-mean", "family": "normal", "parameterization": "softplus", "estimator": "pathwise",
        "optimizer": "adam", "samples": 16, "replicates": 16}}]


def test_cli_compare_preset_applies_the_options_given(tmp_path):
    out = tmp_path / "preset.json"
    assert main(["compare", "--preset", "robbins-monro", "--steps", "150", "--seed", "2", "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["config"]["preset"] == "robbins-monro"
    assert [(r["config"]["schedule"], r["steps"], r["config"]["seed"]) for r in result["runs"]] == [
        ("constant", 150, 2), ("robbins-monro", 150, 2)]


@pytest.mark.parametrize("args, argument", [
    (["--preset", "nope"], "--preset"),
    (["--vary", "lr=1,2,3", "--vary", "seed=1,2,3"], "--vary"),
    (["--vary", "lr=x"], "--lr"),
    (["--vary", "lr=0.1", "--samples", "0"], "--samples"),
    (["--preset", "gamma-stall", "--vary", "lr=0.1"], "--vary"),
    ([], "--preset"),
])
def test_cli_compare_bad_arguments_exit_2_naming_the_argument(args, argument, tmp_path, capsys):
    try:
        code = main(["compare", *args, "--json", str(tmp_path / "x.json")])
    except SystemExit as e:  # argparse's own errors (one line, status 2)
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and argument in err, err


def test_list_names_the_presets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("gamma-stall", "score-vs-pathwise", "mean-field-vs-full-rank", "robbins-monro"):
        assert name in out
