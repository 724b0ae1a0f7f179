"""The background trainer: start, pause (at once), step, snapshots, faults, idle and close."""

import threading
import time

import numpy as np
import pytest

from vizvi import worker
from vizvi.engine import Run, RunConfig
from vizvi.worker import MAX_SPEED, Trainer, density_data

CONFIG = dict(model="poisson-gamma", steps=100_000, variance_every=50)


def _wait(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class GatedChunks:
    """Makes ``run.compute_chunk`` wait at a gate, so a test can act while a chunk is in flight."""

    def __init__(self, run: Run):
        self.entered = threading.Event()
        self.release = threading.Event()
        self._compute = run.compute_chunk
        run.compute_chunk = self

    def __call__(self, n):
        self.entered.set()
        assert self.release.wait(60), "test never released the chunk"
        return self._compute(n)


@pytest.fixture
def make_trainer():
    made = []

    def make(speed=200, **changes):
        run = Run(RunConfig(**{**CONFIG, **changes}))
        run.compile()
        t = Trainer(run, steps_per_update=speed)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def test_start_trains_and_pause_discards_the_chunk_in_flight(make_trainer):
    trainer = make_trainer(speed=MAX_SPEED)
    gate = GatedChunks(trainer.run)
    trainer.start()
    assert gate.entered.wait(60)
    assert trainer.status() == "running" and trainer.busy
    trainer.pause()
    gate.release.set()
    time.sleep(0.5)  # the thread finishes the chunk and must drop it
    assert trainer.run.step == 0 and trainer.status() == "ready" and not trainer.busy


def test_resuming_after_a_discarded_chunk_matches_an_uninterrupted_run(make_trainer):
    trainer = make_trainer(speed=100)
    gate = GatedChunks(trainer.run)
    trainer.start()
    assert gate.entered.wait(60)
    trainer.pause()
    gate.release.set()
    trainer.step(300)
    _wait(lambda: not trainer.busy, what="the Step to finish")
    assert trainer.run.step == 300 and trainer.status() == "paused"
    reference = Run(RunConfig(**CONFIG))
    reference.advance(300)
    np.testing.assert_array_equal(trainer.run.history.series()["elbo"], reference.history.series()["elbo"])
    np.testing.assert_array_equal(trainer.run.theta, reference.theta)


def test_step_advances_one_update_and_stops(make_trainer):
    trainer = make_trainer(speed=50)
    trainer.step()
    _wait(lambda: not trainer.busy, what="the Step")
    assert trainer.run.step == 50
    time.sleep(0.3)
    assert trainer.run.step == 50


def test_snapshot_parts_and_the_density_prepared_by_the_trainer(make_trainer):
    trainer = make_trainer(speed=100)
    trainer.step(200)
    _wait(lambda: not trainer.busy, what="the Step")
    light = trainer.snapshot(diagnosis=False, density=False)
    assert light.diagnosis == {} and light.density == {} and light.step == 200
    full = trainer.snapshot()
    assert set(full.diagnosis) == set(full.names)
    expected = density_data(trainer.run)
    assert full.density["kind"] == "1d"
    np.testing.assert_allclose(full.density["q"], expected["q"])
    np.testing.assert_allclose(full.density["z"], expected["z"])
    # A state the trainer did not evaluate (a settings change replaces it) is evaluated on demand.
    trainer.update_settings(optimizer="sgd", lr=1e-4)
    np.testing.assert_allclose(trainer.snapshot().density["q"], density_data(trainer.run)["q"])


def test_an_exception_in_the_thread_is_kept_and_shown(make_trainer):
    trainer = make_trainer()

    def broken(n):
        raise RuntimeError("sampler exploded")

    trainer.run.compute_chunk = broken
    trainer.start()
    _wait(lambda: trainer.status() == "error", what="the error status")
    assert "RuntimeError: sampler exploded" in trainer.snapshot().error
    assert not trainer.busy
    trainer.start()  # a failed run does not restart
    assert not trainer.running


def test_an_unwatched_run_pauses_itself(make_trainer, monkeypatch):
    monkeypatch.setattr(worker, "IDLE_PAUSE_S", 0.3)
    trainer = make_trainer(speed=MAX_SPEED)
    trainer.start()
    _wait(lambda: trainer.run.step > 0, what="training")
    _wait(lambda: not trainer.running, timeout=10, what="the idle pause")
    step = trainer.run.step
    time.sleep(0.4)
    assert trainer.run.step == step


def test_close_ends_the_thread(make_trainer):
    trainer = make_trainer(speed=MAX_SPEED)
    trainer.start()
    _wait(lambda: trainer.run.step > 0, what="training")
    thread = trainer._thread
    trainer.close()
    thread.join(10)
    assert not thread.is_alive() and not trainer.alive
    assert trainer.snapshot().step == trainer.run.step  # still readable
    trainer.start()  # closed for good: no new thread
    assert not trainer.alive and not trainer.running
