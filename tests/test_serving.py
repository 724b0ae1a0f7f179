"""Serving many sessions: admission (a queue beyond the limit), suspended trainers of closed tabs,
the uncompiled preview while a program builds (recomputed to the compiled run), the warm-up."""

import asyncio
import errno
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from vizvi import engine, serving
from vizvi.engine import Run, RunConfig
from vizvi.errors import ConfigError
from vizvi.serving import Admission, SessionWatch, limit_from
from vizvi.status import Status
from vizvi.worker import MAX_SPEED, Trainer
from tests.test_worker import _wait

CONFIG = dict(model="poisson-gamma", steps=1_000_000, variance_every=50)


class Holder:
    """Anything weakly referable can hold a place."""


def test_admission_is_first_come_first_served_up_to_the_limit():
    adm = Admission(2)
    a, b, c, d = Holder(), Holder(), Holder(), Holder()
    assert adm.admit(a) and adm.admit(b)
    assert not adm.admit(c) and not adm.admit(d)
    assert (adm.position(c), adm.position(d), adm.position(a)) == (1, 2, None)
    assert adm.counts() == (2, 2)
    assert not adm.admit(d)  # d is behind c: a free place goes to c first
    adm.release(a)
    assert not adm.admit(d) and adm.admit(c)
    assert adm.position(d) == 1 and adm.counts() == (2, 1)
    adm.release(b)
    assert adm.admit(d) and adm.counts() == (2, 0)


def test_admission_forgets_holders_that_are_gone():
    adm = Admission(1)
    a, b = Holder(), Holder()
    assert adm.admit(a) and not adm.admit(b)
    del a  # a trainer dropped without releasing never keeps its place
    assert adm.admit(b)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_admission_refuses_a_bad_limit(bad):
    with pytest.raises(ConfigError, match="max-training"):
        Admission(bad)


def test_the_limit_comes_from_the_arguments_then_the_environment():
    assert limit_from(["--max-training", "3"], environ={}) == 3
    assert limit_from(["--model-file", "a.py", "--max-training=5"], environ={"VIZVI_MAX_TRAINING": "2"}) == 5
    assert limit_from([], environ={"VIZVI_MAX_TRAINING": "2"}) == 2
    assert limit_from([], environ={}) == serving.DEFAULT_MAX_TRAINING
    with pytest.raises(ConfigError, match="--max-training must be a whole number of at least 1, got 'lots'"):
        limit_from(["--max-training", "lots"], environ={})
    with pytest.raises(ConfigError, match="VIZVI_MAX_TRAINING must be a whole number of at least 1, got '0'"):
        limit_from([], environ={"VIZVI_MAX_TRAINING": "0"})
    with pytest.raises(ConfigError, match="needs a number"):
        limit_from(["--max-training"], environ={})


def test_the_server_nice_comes_from_the_environment():
    assert serving.server_nice_from({}) == serving.SERVER_NICE
    assert serving.server_nice_from({"VIZVI_SERVER_NICE": "0"}) == 0
    assert serving.server_nice_from({"VIZVI_SERVER_NICE": "19"}) == 19
    for bad in ("20", "-1", "low"):
        with pytest.raises(ConfigError, match=f"VIZVI_SERVER_NICE must be a whole number from 0 to 19, got '{bad}'"):
            serving.server_nice_from({"VIZVI_SERVER_NICE": bad})


def test_the_server_lowers_its_scheduling_group_and_puts_it_back(tmp_path):
    group = tmp_path / "autogroup"  # the format of Linux's /proc/<pid>/autogroup
    group.write_text("/autogroup-42 nice 0\n")
    restore = serving.yield_to_other_programs(10, autogroup=str(group))
    assert group.read_text() == "10"
    restore()
    assert group.read_text() == "0"
    group.write_text("/autogroup-42 nice 12\n")  # already lower: left alone
    assert serving.yield_to_other_programs(10, autogroup=str(group)) is None
    assert group.read_text() == "/autogroup-42 nice 12\n"
    assert serving.yield_to_other_programs(0, autogroup=str(group)) is None  # VIZVI_SERVER_NICE=0
    assert serving.yield_to_other_programs(10, autogroup=str(tmp_path / "missing")) is None  # no autogroup: unchanged


def test_a_change_the_kernel_refuses_for_now_is_tried_again(tmp_path, monkeypatch):
    # Linux takes one autogroup change every 0.1 s, machine-wide: a second server starting at
    # the same moment gets EAGAIN, and must not keep its priority for that.
    group = tmp_path / "autogroup"
    group.write_text("/autogroup-42 nice 0\n")
    refusals = []

    def opened(path, mode="r", *args, **kwargs):
        if "w" in mode and len(refusals) < 2:
            refusals.append(path)
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(serving, "open", opened, raising=False)
    assert serving.yield_to_other_programs(5, autogroup=str(group)) is not None
    assert len(refusals) == 2 and group.read_text() == "5"


@pytest.mark.skipif(not os.path.exists("/proc/self/autogroup"), reason="the kernel has no autogroup (not Linux)")
def test_a_server_process_really_lowers_its_own_group():
    # In a session of its own (its own group), as the benches start the server: pytest's group is not touched.
    code = ("from vizvi import serving; serving.yield_to_other_programs(10); "
            "print(open('/proc/self/autogroup').read().split()[-1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         start_new_session=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "10"


class FakeTrainer:
    def __init__(self):
        self.suspended = 0

    def suspend(self):
        self.suspended += 1
        return True


def test_a_session_gone_for_the_grace_period_has_its_trainer_suspended():
    connected = {"a": True, "b": True}
    watch = SessionWatch(lambda sid: connected[sid], grace_s=5.0, every_s=3600)
    ta, tb = FakeTrainer(), FakeTrainer()
    watch.watch(ta, "a")
    watch.watch(tb, "b")
    connected["a"] = False
    assert watch.check(now=100.0) == []  # just gone: maybe a reload
    assert watch.check(now=104.0) == []
    assert watch.check(now=105.5) == [ta]
    assert (ta.suspended, tb.suspended) == (1, 0)
    connected["b"] = False
    watch.check(now=106.0)
    connected["b"] = True  # reconnected within the grace period: kept
    assert watch.check(now=120.0) == [ta] and tb.suspended == 0


@pytest.fixture
def trainers():
    made = []

    def make(admission, speed=MAX_SPEED, **changes):
        run = Run(RunConfig(**{**CONFIG, **changes}))
        run.compile()
        t = Trainer(run, steps_per_update=speed, admission=admission)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def test_beyond_the_limit_a_trainer_queues_and_trains_when_a_place_frees(trainers):
    adm = Admission(1)
    first, second = trainers(adm), trainers(adm)
    first.start()
    _wait(lambda: first.run.step > 0, what="the first trainer")
    second.start()
    _wait(lambda: second.queue_position() == 1, what="the second to queue")
    assert second.status() is Status.QUEUED and second.busy
    time.sleep(0.3)
    assert second.run.step == 0  # queued: not a step
    first.pause()  # a paused trainer gives its place up
    _wait(lambda: second.run.step > 0, what="the queued trainer to train")
    assert second.queue_position() is None and second.status() is Status.RUNNING
    first.start()
    _wait(lambda: first.queue_position() == 1, what="the first to queue behind the second")
    third = trainers(adm)
    third.start()
    _wait(lambda: third.queue_position() == 2, what="a third in line")
    third.pause()  # a paused one leaves the line, and its page stops refreshing
    assert not third.busy and third.status() is Status.READY  # it never took a step
    _wait(lambda: adm.counts() == (1, 1), what="the third to leave the line")
    second.close()  # a closed trainer gives its place up too
    step = first.run.step
    _wait(lambda: first.run.step > step, what="the first to train again")


def test_a_suspended_trainer_ends_its_thread_and_goes_on_when_started(trainers):
    t = trainers(Admission(4))
    t.start()
    _wait(lambda: t.run.step > 0, what="training")
    assert t.suspend() is True
    _wait(lambda: not t.alive, timeout=10, what="the thread to end")
    step = t.run.step
    time.sleep(0.3)
    assert t.run.step == step and t.status() is Status.PAUSED
    assert t.suspend() is False  # nothing to suspend
    t.start()
    assert t.alive
    _wait(lambda: t.run.step > step, what="training again")
    # A step resumes a suspended trainer as well.
    t.suspend()
    _wait(lambda: not t.alive, timeout=10, what="the thread to end")
    step = t.run.step
    t.step(100)
    _wait(lambda: t.run.step == step + 100, what="the step")


def test_the_server_status_counts_runs_training_queued_and_trainer_threads(trainers):
    # Trainer threads are counted process-wide, and those of earlier tests may still be ending
    # (never starting): hence bounds rather than a count taken before.
    adm = Admission(1)
    before = serving.server_status(adm)
    assert (before.training, before.queued, before.max_training) == (0, 0, 1)
    first, second = trainers(adm), trainers(adm)
    first.start()
    _wait(lambda: first.run.step > 0, what="the first trainer")
    second.start()
    _wait(lambda: second.queue_position() == 1, what="the second to queue")
    now = serving.server_status(adm)
    assert (now.training, now.queued) == (1, 1)
    assert now.trainer_threads >= 2 and now.threads >= now.trainer_threads
    assert now.resident_mib is None or now.resident_mib > 0
    first.suspend()  # what a closed tab's session gets (SessionWatch): its thread ends
    second.close()
    _wait(lambda: not first.alive and not second.alive, timeout=10, what="the trainer threads to end")
    after = serving.server_status(adm)
    assert after.trainer_threads <= now.trainer_threads - 2
    assert (after.training, after.queued) == (0, 0)


def test_the_status_route_answers_json_never_cached():
    import json

    response = asyncio.run(serving.status_endpoint(None))
    body = json.loads(response.body)
    assert set(body) == set(serving.ServerStatus._fields)
    assert body["max_training"] == serving.ADMISSION.limit and response.headers["cache-control"] == "no-store"
    assert body["warm_up"] == serving.server_status().warm_up


def test_a_trainer_started_before_its_program_is_built_previews_then_becomes_the_compiled_run():
    # A structure no other test compiles (samples=7), so its program is not built in this process.
    config = RunConfig(model="normal-mean", family="normal", samples=7, steps=3000, seed=3)
    run = Run(config)
    assert not run.is_compiled
    trainer = Trainer(run, steps_per_update=MAX_SPEED, admission=Admission(4))
    try:
        trainer.start()
        _wait(lambda: run.step > 0, what="the first preview steps")
        assert run.preview_steps == run.step  # uncompiled steps, counted
        _wait(lambda: not trainer.busy, timeout=120, what="the run to finish and be recomputed")
        assert trainer.error is None and run.status is Status.FINISHED
        assert run.preview_steps == 0 and trainer.recomputed_steps > 0 and run.is_compiled
        assert trainer.record()["preview_steps"] == 0
    finally:
        trainer.close()
    compiled = Run(config)
    compiled.compile()
    compiled.advance(3000)
    a, b = run.history.series(), compiled.history.series()
    for field in ("elbo", "theta", "grad"):
        np.testing.assert_array_equal(a[field], b[field], err_msg=field)


def test_a_preview_paused_before_its_program_is_built_stays_paused_while_recomputed(monkeypatch):
    # The user paused: while the build finishes and the preview steps are recomputed, the page
    # says "paused" at the step it stopped at (not "compiling"), and keeps refreshing until the
    # recomputed steps are in.
    config = RunConfig(model="normal-mean", family="normal", samples=11, steps=1_000_000, seed=3)
    run = Run(config)
    assert not run.is_compiled
    built, recomputing, recomputed = threading.Event(), threading.Event(), threading.Event()
    compile_run, recompute_run = Run.compile, Run.recomputed

    def gated_compile(self):
        assert built.wait(60)
        return compile_run(self)

    def gated_recompute(self):
        recomputing.set()
        assert recomputed.wait(60)
        return recompute_run(self)

    monkeypatch.setattr(Run, "compile", gated_compile)
    monkeypatch.setattr(Run, "recomputed", gated_recompute)
    trainer = Trainer(run, steps_per_update=200, admission=Admission(4))
    try:
        trainer.start()
        _wait(lambda: trainer.compile_progress() is not None and run.step > 0, what="the preview and its build")
        trainer.pause()
        step = run.step
        built.set()
        assert recomputing.wait(60), "the preview was not recomputed"
        assert trainer.status() is Status.PAUSED and trainer.busy and run.step == step
        assert trainer.uncompiled_steps_kept() == 0  # no setting changed: they are being recomputed
        recomputed.set()
        _wait(lambda: not trainer.busy, timeout=60, what="the recomputed steps")
        assert trainer.status() is Status.PAUSED and run.step == step
        assert run.preview_steps == 0 and trainer.recomputed_steps == step
    finally:
        built.set()
        recomputed.set()
        trainer.close()


def test_a_setting_changed_during_the_preview_keeps_its_steps_and_says_so(monkeypatch):
    config = RunConfig(model="normal-mean", family="normal", samples=9, steps=1_000_000, seed=3)
    run = Run(config)
    assert not run.is_compiled
    built = threading.Event()
    compile_run = Run.compile

    def slow_compile(self):  # the build waits until the setting has changed
        assert built.wait(60)
        return compile_run(self)

    monkeypatch.setattr(Run, "compile", slow_compile)
    trainer = Trainer(run, steps_per_update=200, admission=Admission(4))
    try:
        trainer.start()
        _wait(lambda: trainer.compile_progress() is not None, what="the build to start")
        assert trainer.compile_progress().preview_steps > 0
        assert trainer.uncompiled_steps_kept() == 0  # still to be recomputed
        trainer.update_settings(lr=0.01)
        built.set()
        _wait(lambda: run.step > run.preview_steps, timeout=120, what="compiled steps after the preview")
        assert run.preview_steps > 0 and trainer.recomputed_steps == 0
        assert trainer.record()["preview_steps"] == run.preview_steps == trainer.uncompiled_steps_kept()
    finally:
        built.set()
        trainer.close()


def test_the_warm_up_builds_the_default_and_the_presets_programs(monkeypatch):
    jobs = serving.warm_up_jobs()
    whats = [what for what, _ in jobs]
    assert whats[:2] == ["the default run's preview", "the default run"]
    assert len(whats) == 2 + len(__import__("vizvi.presets", fromlist=["PRESETS"]).PRESETS)
    made = []
    fake = [(what, lambda what=what: made.append(what) or _Compiles(what == "broken")) for what in ("a", "broken", "b")]
    warm = serving.WarmUp(fake)
    assert warm.wait(30) and warm.done
    assert warm.built == ["a", "b"] and warm.failed == ["broken: RuntimeError: cannot build"]
    assert made == ["a", "broken", "b"] and warm.current is None


class _Compiles:
    def __init__(self, broken):
        self.broken = broken

    def compile(self):
        if self.broken:
            raise RuntimeError("cannot build")


def test_the_default_run_is_compiled_by_the_warm_up():
    # The real first job pair: after it the default run's program counts as built.
    jobs = dict(serving.warm_up_jobs())
    jobs["the default run's preview"]().compile()
    jobs["the default run"]().compile()
    assert Run(RunConfig()).is_compiled
    assert engine.COMPILED.typical_seconds() is not None


def test_compiled_programs_are_shared_and_hold_no_session_state():
    # Two sessions' runs of one structure (different seeds, rates, starting points) share the
    # compiled function; what the process remembers of it is its structure and data shapes.
    a = Run(RunConfig(seed=1, lr=0.05, init="concentration=1,rate=1"))
    b = Run(RunConfig(seed=2, lr=0.01, init="concentration=3,rate=2"))
    assert a._fn is b._fn and a.program == b.program
    a.compile()
    assert b.is_compiled
    key, shapes = a.program
    assert isinstance(key, engine.StructuralKey) and all(isinstance(n, str) and isinstance(s, tuple) for n, s in shapes)
    u_b = b.state.u.numpy().copy()
    a.advance(500)
    np.testing.assert_array_equal(b.state.u.numpy(), u_b)  # one run's training leaves the other alone
    assert b.step == 0 and a.step == 500


@pytest.mark.parametrize("model, follows", [("poisson-gamma", False), ("banana", False), ("eight-schools", True)])
def test_fed_charts_rerun_their_fragment_only_for_a_view_that_follows_the_run(model, follows):
    # Served with the chart feed, the chart fragment's periodic rerun (all six figures built,
    # sent and drawn once more) is kept only where the view changes by itself: the parameters
    # drawn of a family with many (eight schools' non-centred file: 10 latents) and the
    # coordinates drawn of a latent in R^d.
    from vizvi.model_file import register_model_files
    from vizvi.ui.panels import view_follows_the_run

    if model == "eight-schools":
        model = register_model_files(["examples/eight_schools_noncentered.py"])[0].name
    trainer = Trainer(Run(RunConfig(model=model, steps=10)))
    try:
        assert view_follows_the_run(trainer) is follows
    finally:
        trainer.close()
