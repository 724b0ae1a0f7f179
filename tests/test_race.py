"""The estimator race: entrants, one compiled call, the same numbers as runs one by one."""

import time

import numpy as np
import plotly.graph_objects as go
import pytest

from vizvi import charts
from vizvi.engine import Run, RunConfig
from vizvi.errors import ConfigError
from vizvi.estimators import EstimatorName
from vizvi.compare import get_set_fn
from vizvi.race import Race, entrants
from vizvi.status import Status
from vizvi.worker import RaceTrainer

THREE = ["pathwise", "score-baseline", "measure-valued"]


def test_entrants_are_the_estimators_the_family_and_samples_allow():
    racing, refused = entrants(RunConfig(model="poisson-gamma", samples=1))
    assert EstimatorName.MEASURE_VALUED in refused and "weak derivative" in refused[EstimatorName.MEASURE_VALUED]
    assert EstimatorName.SCORE_BASELINE in refused and "2 samples" in refused[EstimatorName.SCORE_BASELINE]
    assert set(racing) == {EstimatorName.PATHWISE, EstimatorName.SCORE, EstimatorName.STL}
    racing, refused = entrants(RunConfig(model="normal-mean"))
    assert set(racing) == set(EstimatorName) and not refused
    racing, refused = entrants(RunConfig(model="normal-mean"), ["score", "pathwise"])
    assert racing == [EstimatorName.SCORE, EstimatorName.PATHWISE] and not refused


def test_a_race_nobody_can_run_is_refused_naming_the_estimator():
    with pytest.raises(ConfigError, match="no estimator can race.*weak derivative") as err:
        Race(RunConfig(model="poisson-gamma", family="gamma"), ["measure-valued"])
    assert err.value.argument == "estimator"


def test_race_equals_its_runs_one_by_one_and_never_retraces():
    config = RunConfig(model="normal-mean", steps=700, samples=4, seed=3, variance_every=50, replicates=8)
    race = Race(config, THREE)
    race.compile()
    assert race.advance(700) == 700 and race.status is Status.FINISHED
    for estimator, run in race.entrants.items():
        alone = Run(RunConfig(**{**config.to_dict(), "estimator": estimator.value}))
        alone.run()
        # Bit for bit: the same compiled step, the same per-step seeds, whatever the batching.
        np.testing.assert_array_equal(run.history.series()["theta"], alone.history.series()["theta"])
        np.testing.assert_array_equal(run.history.variance_series()["grad_snr"], alone.history.variance_series()["grad_snr"])
        assert run.dataset is race.entrants[EstimatorName.PATHWISE].dataset  # one data set, made once
        assert run.reference is race.entrants[EstimatorName.PATHWISE].reference  # and one reference
    fn = get_set_fn(race.layout.shape)
    traces = fn.experimental_get_tracing_count()
    # New numbers (seed, learning rate, initial values, steps): the same compiled race.
    other = Race(RunConfig(model="normal-mean", steps=300, samples=4, seed=9, lr=0.01, init="loc=1,scale=0.5",
                           variance_every=50, replicates=8), THREE)
    other.compile()
    other.advance(300)
    assert fn.experimental_get_tracing_count() == traces == 1


def test_an_entrant_that_diverges_stops_alone():
    # Plain SGD at this rate: the score function's noise throws it out within a few dozen
    # steps, while the pathwise estimator trains on to the end.
    race = Race(RunConfig(model="normal-mean", optimizer="sgd", lr=0.003, steps=1500, samples=2, seed=0), ["pathwise", "score"])
    race.compile()
    race.advance(1500)
    score, pathwise = race.entrants[EstimatorName.SCORE], race.entrants[EstimatorName.PATHWISE]
    assert score.status is Status.DIVERGED and score.step < 200 and "diverged at step" in score.divergence["message"]
    assert pathwise.status is Status.FINISHED and pathwise.step == 1500
    assert race.status is Status.FINISHED and race.step == 1500


def test_race_settings_change_for_every_entrant_but_the_estimator_stays():
    race = Race(RunConfig(model="normal-mean", steps=100), ["pathwise", "score"])
    race.update_settings(lr=0.01)
    assert all(run.config.lr == 0.01 for run in race.entrants.values())
    with pytest.raises(ConfigError, match="a race runs every estimator"):
        race.update_settings(estimator="score")
    with pytest.raises(ConfigError):
        race.update_settings(lr=-1.0)
    assert all(run.config.lr == 0.01 for run in race.entrants.values())
    # A change one entrant refuses changes none of them.
    mixed = Race(RunConfig(model="normal-mean", steps=100, samples=4), ["pathwise", "score-baseline"])
    with pytest.raises(ConfigError, match="needs at least 2 samples"):
        mixed.update_settings(samples=1)
    assert [run.config.samples for run in mixed.entrants.values()] == [4, 4]


def test_race_trainer_snapshots_feed_the_race_charts():
    race = Race(RunConfig(model="correlated-gaussian", steps=400, samples=4, variance_every=20), THREE)
    trainer = RaceTrainer(race, steps_per_update=0)
    try:
        trainer.start()
        deadline = time.monotonic() + 120
        while trainer.busy and time.monotonic() < deadline:
            time.sleep(0.05)
        snap = trainer.snapshot()
    finally:
        trainer.close()
    assert snap.status is Status.FINISHED and [e.estimator for e in snap.entries] == THREE
    assert all(e.step == 400 for e in snap.entries)
    figures = charts.race_figures(snap, per_evaluation=True)
    assert set(figures) == {"race-elbo", "race-params", "race-snr"}
    for fig in figures.values():
        go.Figure(fig)
    elbo_names = [t["name"] for t in figures["race-elbo"]["data"]]
    assert elbo_names[:3] == THREE and "log evidence (exact)" in elbo_names
    # 4 parameters, each with a line per entrant; measure-valued's SNR per evaluation is its
    # SNR over sqrt(4 samples x 8 evaluations per sample).
    assert len([t for t in figures["race-params"]["data"] if t["legendgroup"] in THREE]) == 12
    mv = next(e for e in snap.entries if e.estimator == "measure-valued")
    snr = [t for t in figures["race-snr"]["data"] if t["name"] == "measure-valued"][0]["y"]
    np.testing.assert_allclose(snr, mv.variance["grad_snr"][:, 0] / np.sqrt(32), rtol=1e-6)
    assert set(trainer.record()) == set(THREE)
