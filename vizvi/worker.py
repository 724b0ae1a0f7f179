"""A background trainer: one thread per live run, so the UI never trains in its own script.

Streamlit reruns the page script to update it; training inside that script would block the
reruns (and the Pause button). Instead a ``Trainer`` owns the ``Run`` in a daemon thread that
advances it chunk by chunk while ``running`` and the UI's fragment only takes ``snapshot()``s.
The thread never calls Streamlit. A lock makes every read of the run consistent; the thread
computes a chunk outside it and holds it only to commit the result, so a snapshot never waits
for XLA. A chunk computed while the user changed a setting is dropped (``Run.commit_chunk``).

A model file's run starts without a posterior reference: its trainer takes the file's own
moments, or starts the shared background MCMC job (``vizvi.mcmc``) and attaches its result
under the lock, as it commits a chunk, once it is done (``Trainer._take_reference``).

Faults stop cleanly: a diverged run pauses itself; an exception in the thread is kept and
shown, never lost; an abandoned session's thread pauses after ``IDLE_PAUSE_S`` without a
snapshot, and ``close()`` ends it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import NamedTuple, Optional

import numpy as np
from vizvi._tf import tf

from vizvi import diagnostics, engine, focus, mcmc, serving
from vizvi.compare import MAX_RUNS, RunSet
from vizvi.background import BackgroundCall
from vizvi.engine import CHUNK_STEPS, Run
from vizvi.errors import ConfigError
from vizvi.history import to_record
from vizvi.parameterizations import DTYPE
from vizvi.status import Status

IDLE_PAUSE_S = 120.0
MAX_SPEED = 0  # steps_per_update value meaning "as fast as the machine goes"
SPEEDS = {"10": 10, "50": 50, "200": 200, "1000": 1000, "max": MAX_SPEED}  # the speed control's steps per update
# A preview's chunks (uncompiled, ~5x slower per step) stay small: the first one is on screen
# about a second after Start (mostly its trace), the next ones every few tens of milliseconds.
PREVIEW_CHUNK = 256
ADMISSION_POLL_S = 0.25  # how often a queued trainer asks again for a place to train
TICK_S = 0.12  # pacing interval for a finite speed (about the chart update period)
# At maximum speed a chunk is sized to take about this long: short enough that the charts get
# fresh steps at their update rate, long enough that per-call overhead stays small (a fast
# target does 1024 steps in ~10 ms, where the overhead would be half the time).
TARGET_CHUNK_S = 0.08
MIN_CHUNK = 256
DENSITY_EVERY_S = 0.05  # the trainer re-evaluates q's density at most this often while running


@dataclasses.dataclass
class Snapshot:
    """A consistent copy of everything the charts and banners read."""

    step: int
    status: Status
    config: dict
    names: tuple
    series: dict
    variance: dict
    params: dict
    optimum: Optional[np.ndarray]
    reference: object
    events: list
    divergence: Optional[dict]
    diagnosis: dict
    density: dict
    steps_per_s: Optional[float]
    compile_s: float
    error: Optional[str]
    kl_kind: Optional[str]
    model_title: str
    dim: int
    # For many parameters (``vizvi.focus``): each parameter's latent coordinate, and the
    # family's parameters moment-matched to a reference with moments of the latent vector
    # (theta, per-parameter posterior sd), None without one.
    param_coordinates: tuple = ()
    reference_match: Optional[tuple] = None
    # q as a whole against the target (``diagnostics.posterior_check``): k-hat and the latent
    # moments against the reference, with its lines; {} unless asked with the diagnosis.
    posterior_check: dict = dataclasses.field(default_factory=dict)


_DENSITY_FNS: dict = {}
_DENSITY_LOCK = threading.Lock()


def _density_fn(model, family):
    """One traced function per (model, family) evaluating q and the posterior on points.

    Eager TFP rebuilds distribution objects in Python on every call (milliseconds of GIL per
    chart update, taken from the trainer thread); traced once, an update is one call.
    """
    key = (model.name, family.name)
    with _DENSITY_LOCK:
        if key not in _DENSITY_FNS:
            def evaluate(theta, points, data, log_evidence):
                q = family.build(theta)
                post = model.exact_posterior(data)
                exact = post.prob(points) if post is not None else tf.exp(model.log_joint(points, data) - log_evidence)
                return q.prob(points), exact

            _DENSITY_FNS[key] = tf.function(evaluate, reduce_retracing=True)
        return _DENSITY_FNS[key]


def _has_density(ref) -> bool:
    """Whether there is a reference whose posterior density can be evaluated."""
    return ref is not None and ref.has_density


def drawn_from_moments(run: Run) -> bool:
    """Whether q against the posterior is drawn from q's moments (``density_data``'s
    "gaussian" kind): a latent in R^d without a posterior density to draw beside q (any
    d > 2, or a model file's 2-D latent)."""
    return run.family.dim > 1 and not (run.family.dim == 2 and _has_density(run.reference))


def density_data(run: Run, points: int = 300, grid: int = 60) -> dict:
    """q against the posterior, as the density chart draws it.

    A 1-D latent: q's density on a grid ("1d"), with the exact posterior's where known (an
    MCMC reference's draws are in the reference itself). A 2-D latent with an exact or grid
    reference: both densities on a 2-D grid ("2d"). Any other latent in R^d (a model file's):
    q's mean and covariance ("gaussian"; the families on R^d are Gaussian), from which the
    chart draws the marginals or the pair it is asked for, against the reference's draws.
    """
    theta = run.theta
    ref = run.reference
    mean, sd = run.family.moments(theta)
    if drawn_from_moments(run):
        return {"kind": "gaussian", "mean": np.asarray(mean, dtype=np.float64), "cov": run.family.covariance(theta),
                "coordinates": tuple(run.model.coordinates), "latent": run.model.latent_name}
    fn = _density_fn(run.model, run.family)
    log_z = tf.constant(ref.log_evidence if _has_density(ref) else 0.0, DTYPE)
    if run.family.dim == 1:
        centres = [(mean[0], sd[0])]
        if ref is not None and ref.mean is not None:
            centres.append((float(np.ravel(ref.mean)[0]), float(np.sqrt(np.ravel(ref.cov)[0]))))
        edge_lo, edge_hi = run.model.support.interval  # densities are drawn strictly inside it
        lo = max(min(c - 5 * s for c, s in centres), edge_lo + 1e-9)
        hi = min(max(c + 5 * s for c, s in centres), edge_hi - 1e-9)
        z = np.linspace(lo, hi, points)
        q, exact = fn(tf.constant(theta, DTYPE), tf.constant(z, DTYPE), run.data, log_z)
        return {"kind": "1d", "z": z, "q": q.numpy(), "latent": run.model.latent_name,
                "exact": exact.numpy() if ref is not None and ref.kind == "exact" else None}
    r_sd = np.sqrt(np.diag(ref.cov))
    lo = np.minimum(mean - 4 * sd, ref.mean - 4 * r_sd)
    hi = np.maximum(mean + 4 * sd, ref.mean + 4 * r_sd)
    xs, ys = np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid)
    X, Y = np.meshgrid(xs, ys)  # rows follow y, as Plotly's contour z expects
    pts = tf.constant(np.stack([X.ravel(), Y.ravel()], -1), DTYPE)
    q, exact = fn(tf.constant(theta, DTYPE), pts, run.data, log_z)
    return {"kind": "2d", "x": xs, "y": ys, "q": q.numpy().reshape(X.shape), "exact": exact.numpy().reshape(X.shape),
            "exact_is_grid": ref.kind != "exact", "latent": run.model.latent_name}


class CompileProgress(NamedTuple):
    """The compiled program being built while a preview trains (``Trainer.compile_progress``)."""

    seconds: float  # since the build started
    typical_seconds: Optional[float]  # what builds have taken in this process (None: none yet)
    preview_steps: int  # steps the preview has taken, to be recomputed with the compiled program


class Trainer:
    """Runs one ``Run`` in a background thread, paced by ``steps_per_update``."""

    def __init__(self, run: Run, steps_per_update: int = 200, admission: Optional["serving.Admission"] = None):
        self.run = run
        self.steps_per_update = steps_per_update
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._running = False
        self._pending_steps = 0
        self._density = None  # (state, density data) for the latest state evaluated
        self._density_at = 0.0
        self._max_speed_chunk = 1024  # steps per chunk at maximum speed; adapts to the target's pace
        self._commands = 0  # bumped by pause(): a chunk computed across a pause is not committed
        self._computing, self._computing_for = False, 0  # a chunk in flight, and under which commands
        self._closed = False  # for good (``close``)
        self._stopping = False  # the thread is to end (``close``, ``suspend``)
        self._queued = False  # waiting for a place to train (``serving.Admission``)
        self._build: Optional[BackgroundCall] = None  # the compiled program built while a preview trains
        self._build_started = 0.0
        self.recomputed_steps = 0  # preview steps last recomputed with the compiled program
        self.admission = admission if admission is not None else serving.ADMISSION
        self._compiled = None  # the run (or set) compiled for: a set whose runs change compiles again
        self._compiling = False
        self._settling = False  # a paused run's preview steps being recomputed (``_settle_preview``)
        self.error: Optional[str] = None
        self._last_seen = time.monotonic()
        self._live_steps = 0
        self._live_seconds = 0.0
        self._match = (None, None)  # (the reference, focus.reference_match of it): computed once per reference
        self.reference_job = self._start_reference()  # before the thread: it may attach a reference
        self._thread: Optional[threading.Thread] = None
        with self._lock:
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        """Start the thread unless it runs (caller holds the lock); a suspended trainer gets a
        new one."""
        self._stopping = False
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._loop, name=serving.TRAINER_THREAD, daemon=True)
            self._thread.start()

    # -- commands (UI thread) -------------------------------------------------------------
    def start(self) -> None:
        """Train continuously until paused, finished or diverged."""
        with self._lock:
            if self.run.status.over or self.error or self._closed:
                return
            self._running = True
            self._ensure_thread()
            self._wake.notify_all()

    def pause(self) -> None:
        """Stop now: the chunk being computed is discarded, so nothing changes after the click.

        Resuming recomputes those steps bit for bit (seeds are per step), so nothing is lost.
        """
        with self._lock:
            self._running = False
            self._pending_steps = 0
            self._commands += 1

    def step(self, steps: Optional[int] = None) -> None:
        """Advance one update's worth of steps (``steps_per_update``) while paused."""
        with self._lock:
            if self._closed:
                return
            self._running = False
            self._pending_steps += steps or self.steps_per_update or self._max_speed_chunk
            self._ensure_thread()
            self._wake.notify_all()

    def wait_for_steps(self, seconds: float) -> bool:
        """Wait at most ``seconds`` for the run to move past the step it is at (a page that has
        just pressed Start on a compiled program draws its first chunk in the same script
        run); True if it moved."""
        deadline = time.monotonic() + seconds
        with self._lock:
            step = self.run.step
            while self.run.step == step and self._wants_steps() and self.error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(timeout=left)
            return self.run.step != step

    def update_settings(self, **changes) -> list:
        """Change numeric settings; applies from the next step. Raises ConfigError, run intact."""
        with self._lock:
            return self.run.update_settings(**changes)

    def set_speed(self, steps_per_update: int) -> None:
        """Steps per update; ``MAX_SPEED`` (0) trains flat out."""
        with self._lock:
            self.steps_per_update = steps_per_update

    def close(self) -> None:
        """End the thread for good (the run object stays readable)."""
        with self._lock:
            self._closed = True
        self.suspend()

    def suspend(self) -> bool:
        """Pause, end the thread and give up any place to train (its session has gone); a
        later ``start`` or ``step`` goes on from here. True if it was training or waiting."""
        with self._lock:
            was = self._wants_steps() or self._queued
            self._running = False
            self._pending_steps = 0
            self._commands += 1
            self._stopping = True
            self._queued = False
            self._wake.notify_all()
        self.admission.release(self)
        return was

    @property
    def alive(self) -> bool:
        """True while the trainer's thread exists (it ends on ``close`` and ``suspend``)."""
        with self._lock:
            return self._thread is not None

    def queue_position(self) -> Optional[int]:
        """Where the trainer waits for a place to train (1: next), None when not waiting."""
        with self._lock:
            queued = self._queued and self._wants_steps()
        return self.admission.position(self) if queued else None

    def compile_progress(self) -> Optional["CompileProgress"]:
        """While a preview trains and the compiled program builds: how far that is."""
        with self._lock:
            build, started = self._build, self._build_started
            preview_steps = getattr(self.run, "preview_steps", 0)
        if build is None or build.done:
            return None
        return CompileProgress(time.monotonic() - started, engine.COMPILED.typical_seconds(), preview_steps)

    def uncompiled_steps_kept(self) -> int:
        """Preview steps that stay in the run for good: a live setting changed before the
        compiled program could recompute them, so their draws are not those of a fresh run of
        the page's URL. 0 while they are still to be recomputed (the program building, or a
        paused run's steps being recomputed once it is built)."""
        with self._lock:
            run = self.run
            kept = getattr(run, "preview_steps", 0)
            return kept if kept and getattr(run, "settings_version", 0) else 0

    @property
    def running(self) -> bool:
        """True while training continuously."""
        with self._lock:
            return self._running and self.error is None and not self.run.status.over

    @property
    def busy(self) -> bool:
        """True while compiling or with steps still to take (the UI should keep refreshing),
        including a chunk being computed, unless a pause has already discarded it."""
        with self._lock:
            in_flight = self._computing and self._computing_for == self._commands
            return (self.running or self._pending_steps > 0 or self._compiling or self._settling or in_flight
                    or (self._queued and self._wants_steps()) or self._preview_unsettled())

    def live_steps_per_s(self) -> Optional[float]:
        """Training throughput measured while live (steps over wall time spent training)."""
        with self._lock:
            return self._live_steps / self._live_seconds if self._live_seconds > 0 else None

    # -- the posterior reference of a model file -------------------------------------------
    def _start_reference(self) -> Optional["mcmc.McmcJob"]:
        """For a run without a posterior reference (a model file's): the file's own moments,
        attached at once, or else the shared background MCMC job that computes one (attached
        by ``_take_reference`` once done); None when the run has its reference."""
        run = self.run
        if run.reference is not None:
            return None
        given = mcmc.given_reference(run.model)
        if given is not None:
            run.attach_reference(given)
            return None
        return mcmc.reference_job(run.model, run.dataset)

    def _take_reference(self) -> None:
        """Attach the MCMC reference once its job is done (caller holds the lock, as for a
        chunk's commit: readers see the run with it or without it, never half of it)."""
        job = self.reference_job
        if job is not None and job.done and job.result is not None and self.run.reference is None:
            self.run.attach_reference(job.result)
            self._density = None  # evaluated against no reference: evaluate again

    def reference_state(self) -> tuple:
        """(the run's reference, the MCMC job computing it or None), the reference attached first
        if its job has just finished."""
        with self._lock:
            self._take_reference()
            return self.run.reference, self.reference_job

    def _reference_match(self) -> Optional[tuple]:
        """``focus.reference_match`` of the run's reference (caller holds the lock)."""
        ref = self.run.reference
        if self._match[0] is not ref:
            self._match = (ref, focus.reference_match(self.run.family, ref))
        return self._match[1]

    # -- the thread -----------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while self._turn():
                pass
        finally:
            self.admission.release(self)

    def _wants_steps(self) -> bool:
        """Whether there is training to do (caller holds the lock)."""
        return self._running or self._pending_steps > 0

    def _turn(self) -> bool:
        """One turn of the thread: wait for work, a place to train (``serving.Admission``),
        then compute and commit one chunk. False when the thread is to end."""
        with self._lock:
            if not self._wants_steps():
                self._queued = False
                self.admission.release(self)  # a paused trainer holds no place, nor a turn in line
            while not self._stopping and not self._wants_steps() and not self._preview_unsettled():
                self._wake.wait(timeout=1.0)
            if self._stopping:
                self._thread = None  # decided under the lock: start() makes a new thread from now on
                return False
            if self._running and time.monotonic() - self._last_seen > IDLE_PAUSE_S:
                self._running = False  # nobody is watching: an abandoned tab
                return True
            settle = not self._wants_steps()
        if settle:  # a preview that stopped (finished, paused) before its program was built
            self._settle_preview()
            return True
        if not self.admission.admit(self):
            with self._lock:
                self._queued = True
                self._wake.wait(timeout=ADMISSION_POLL_S)
            return True
        with self._lock:
            self._queued = False
            speed = self.steps_per_update
            commands = self._commands
            self._computing, self._computing_for = True, commands
            if self._pending_steps > 0:
                n = self._pending_steps
                self._pending_steps = 0
            else:
                n = speed if speed != MAX_SPEED else self._max_speed_chunk
            run = self.run  # a SetTrainer may replace it (add, drop) while this chunk is computed
            preview = False
            if self._compiled is not run:
                # A fresh run whose program is not built yet takes its first steps uncompiled
                # (``Run.compute_chunk(preview=True)``) while XLA builds it in the background.
                preview = self._previewing(run)
                self._compiling = not preview
        t0 = time.perf_counter()
        try:
            if self._compiled is not run and not preview:
                run.compile()  # reads nothing the UI changes; no lock
                with self._lock:
                    self._compiled, self._compiling = run, False
                    self._build = None
                t0 = time.perf_counter()
                self._recompute_preview(run)
            with self._lock:
                n = min(n, self._steps_left(run), PREVIEW_CHUNK if preview else n)
            if n > 0:
                pending = run.compute_chunk(n, preview=True) if preview else run.compute_chunk(n)
                if preview and self._build is None:
                    # After the preview's own trace (both traces want the interpreter): now XLA.
                    self._build = BackgroundCall(run.compile, "vizvi-compile", "compiling the run failed")
                    self._build_started = time.monotonic()
                with self._lock:
                    paused_meanwhile = commands != self._commands
                    done = 0 if paused_meanwhile else self.run.commit_chunk(pending)
                    self._take_reference()
                    more = self._running or self._pending_steps > 0
                    if done and (not more or time.monotonic() - self._density_at >= DENSITY_EVERY_S):
                        self._prepare_density()
                    self._wake.notify_all()  # wait_for_steps
                if done and pending.seconds > 0 and not preview:
                    rate = done / pending.seconds
                    self._max_speed_chunk = int(min(CHUNK_STEPS, max(MIN_CHUNK, rate * TARGET_CHUNK_S)))
                with self._lock:
                    self._live_steps += done
                    self._live_seconds += time.perf_counter() - t0
                    if not self._running and n > done and not paused_meanwhile:
                        self._pending_steps += n - done  # rest of a Step longer than one chunk
            with self._lock:
                if self.run.status.over:
                    self._running = False
                    self._pending_steps = 0
        except Exception as e:  # noqa: BLE001 - the thread must never die silently
            self._fail(f"{type(e).__name__}: {e}")
        finally:
            with self._lock:
                self._computing = False
        if speed != MAX_SPEED:
            # Pace a finite speed to about one chunk of `speed` steps per chart update.
            elapsed = time.perf_counter() - t0
            time.sleep(max(0.0, TICK_S - elapsed))
        return True

    def _previewing(self, run) -> bool:
        """Whether the next chunk of ``run`` is a preview (caller holds the lock): a fresh run
        (step 0, or steps that are all previews) whose compiled program is not built yet, or
        is being built by this trainer; when that build has ended, the run is compiled."""
        if not getattr(run, "can_preview", False) or run.step != run.preview_steps or run.settings_version:
            return False
        if self._build is not None:
            if not self._build.done:
                return True
            return False  # built (or failed: the caller's compile() then raises the error itself)
        return not run.is_compiled

    def _preview_unsettled(self) -> bool:
        """Whether the run has preview steps that its compiled program, built or being built
        by this trainer, is still to recompute (caller holds the lock)."""
        return (self._build is not None and self._compiled is not self.run
                and getattr(self.run, "preview_steps", 0) > 0 and not self.run.settings_version)

    def _settle_preview(self) -> None:
        """Wait a little for the compiled program; once built, recompute the preview steps.

        The run stays paused meanwhile (its status says so, not "compiling": the user paused
        it, and its step does not change), but busy, so the page redraws the recomputed steps.
        """
        if not self._build.wait(ADMISSION_POLL_S):
            return
        with self._lock:
            run = self.run
            self._settling = True
        try:
            run.compile()  # built: returns at once (or raises the build's error)
            with self._lock:
                self._compiled, self._build = run, None
            self._recompute_preview(run)
        except Exception as e:  # noqa: BLE001 - the thread must never die silently
            self._fail(f"{type(e).__name__}: {e}")
        finally:
            with self._lock:
                self._settling = False

    def _recompute_preview(self, run) -> None:
        """Once the compiled program is built: recompute a run's preview steps with it and take
        those in their place (``Run.recomputed``), so the run is exactly the one its URL makes.
        The recomputation runs outside the lock (a paused run is recomputed too: its steps are
        the same steps); a settings change meanwhile keeps the preview steps (and the run then
        says how many it has)."""
        if not getattr(run, "preview_steps", 0) or run.settings_version:
            return
        fresh = run.recomputed()
        with self._lock:
            if self.run is run and run.adopt(fresh):
                self._density = None
                self.recomputed_steps = fresh.step

    def _steps_left(self, run) -> int:
        """Steps the run has still to take (caller holds the lock)."""
        return run.config.steps - run.step

    def _prepare_density(self) -> None:
        """Evaluate q's density for the state just committed, here in the trainer thread, in
        the commit's critical section (caller holds the lock).

        Called from the page, the traced density function can wait for TensorFlow's one
        executor thread while it runs a chunk: tens of milliseconds that hold back a chart
        update. Here it costs a millisecond or so every ``DENSITY_EVERY_S``, taken from
        training, and a reader waits that long for the lock. Under the lock, no reader sees
        the new step with the previous step's density: a chart update built in between would
        redraw every chart but that one (measured: one update in ten).
        """
        self._density_at = time.monotonic()
        self._density = (self.run.state, density_data(self.run))

    def _density_shown(self, cached: Optional[tuple], run) -> tuple:
        """(state, q's density) for the page (caller holds the lock): while training, the
        trainer's latest ``cached`` (at most ``DENSITY_EVERY_S`` behind); at rest, exactly the
        current state's, evaluated now if need be."""
        fresh = cached is not None and cached[0] is run.state
        in_motion = cached is not None and (self._running or self._computing) and self.error is None
        return cached if fresh or in_motion else (run.state, density_data(run))

    def _density_now(self) -> dict:
        """q's density for the page (caller holds the lock); see ``_density_shown``."""
        self._density = self._density_shown(self._density, self.run)
        return self._density[1]

    def _fail(self, message: str) -> None:
        with self._lock:
            self.error = message
            self._running = False
            self._compiling = False

    # -- reading (UI thread) --------------------------------------------------------------
    def status(self) -> Status:
        """Where the run stands, as the page shows it (PAUSED and COMPILING are the trainer's)."""
        with self._lock:
            if self.error:
                return Status.ERROR
            if self._compiling:
                return Status.COMPILING
            if self._queued and self._wants_steps():
                return Status.QUEUED
            if self.run.status.over:
                return self.run.status
            if self._running:
                return Status.RUNNING
            return Status.PAUSED if self.run.step > 0 else Status.READY

    def record(self) -> dict:
        """The run's record (the CLI's JSON schema), read consistently under the lock."""
        with self._lock:
            self._take_reference()
            return to_record(self.run)

    def snapshot(self, *, diagnosis: bool = True, density: bool = True) -> Snapshot:
        """A consistent copy of the run for drawing; ``diagnosis`` and ``density`` (each a few
        milliseconds under the lock) can be left out (empty) by a reader that shows neither."""
        with self._lock:
            self._last_seen = time.monotonic()
            self._take_reference()
            run = self.run
            return Snapshot(
                step=run.step,
                status=self.status(),
                config=run.config.to_dict(),
                names=run.family.param_names,
                series=run.history.series(),
                variance=run.history.variance_series(),
                params=run.params(),
                optimum=run.optimum,
                reference=run.reference,
                events=list(run.events),
                divergence=run.divergence,
                diagnosis=run.diagnose() if diagnosis else {},
                density=self._density_now() if density else {},
                steps_per_s=self.live_steps_per_s(),
                compile_s=run.compile_s,
                error=self.error,
                kl_kind=run.kl_kind,
                model_title=run.model.title,
                dim=run.family.dim,
                param_coordinates=run.family.parameter_coordinates,
                reference_match=self._reference_match(),
                posterior_check=diagnostics.posterior_check(run) if diagnosis else {},
            )


@dataclasses.dataclass
class MemberSnapshot:
    """One run of several trained together (a race's entrant, a comparison's run), as charts
    and tables read it."""

    status: Status
    step: int
    names: tuple
    config: dict
    events: list
    series: dict
    variance: dict
    params: dict
    divergence: Optional[dict]
    diagnosis: dict


@dataclasses.dataclass
class EntrantSnapshot(MemberSnapshot):
    """One entrant of a race, as the race charts and its table read it."""

    estimator: str


@dataclasses.dataclass
class RaceSnapshot:
    """A consistent copy of a race for drawing."""

    step: int
    status: Status
    config: dict
    names: tuple
    entries: list  # EntrantSnapshot per entrant, in estimator order
    refused: dict  # {estimator: why it is not in the race}
    optimum: Optional[np.ndarray]
    reference: object
    steps_per_s: Optional[float]
    compile_s: float
    error: Optional[str]
    model_title: str


class RaceTrainer(Trainer):
    """Drives a ``vizvi.race.Race`` with the same thread, pacing and commands as a single run;
    its snapshots hold every entrant (no density panel: the race compares estimators)."""

    def _prepare_density(self) -> None:
        """A race draws no density."""

    def _start_reference(self) -> None:
        """A race's entrants share the reference their data came with (none for a model file)."""
        return None

    def record(self) -> dict:
        """{estimator: the entrant's record}, read consistently under the lock."""
        with self._lock:
            return self.run.records()

    def snapshot(self, *, diagnosis: bool = True, density: bool = False) -> RaceSnapshot:
        """A consistent copy of the race; ``diagnosis`` adds each entrant's stall verdicts."""
        with self._lock:
            self._last_seen = time.monotonic()
            race = self.run
            entries = [EntrantSnapshot(
                estimator=e.value, status=run.status, step=run.step, names=run.family.param_names,
                config=run.config.to_dict(), events=list(run.events), series=run.history.series(),
                variance=run.history.variance_series(), params=run.params(), divergence=run.divergence,
                diagnosis=run.diagnose() if diagnosis else {},
            ) for e, run in race.entrants.items()]
            return RaceSnapshot(
                step=race.step, status=self.status(), config=race.config.to_dict(), names=race.family.param_names,
                entries=entries, refused={e.value: why for e, why in race.refused.items()}, optimum=race.optimum,
                reference=race.reference, steps_per_s=self.live_steps_per_s(), compile_s=race.compile_s,
                error=self.error, model_title=race.model.title,
            )


# -- a comparison: a RunSet ---------------------------------------------------------------------
@dataclasses.dataclass
class SetEntry(MemberSnapshot):
    """One run of a comparison, as the compare charts, its status table and its stall report read it."""

    number: int  # the run's number on the page (kept while others come and go)
    color: int  # its colour slot (kept while others come and go)
    label: str  # what sets it apart from the others (``RunSet.labels``)
    optimum: Optional[np.ndarray]
    reference: object
    density: dict


@dataclasses.dataclass
class SetSnapshot:
    """A consistent copy of a comparison for drawing."""

    step: int
    status: Status
    entries: list  # SetEntry per run, in the set's order
    runs: int
    groups: int
    batched: int  # runs that share a vectorized step with others
    steps_per_s: Optional[float]
    compile_s: float
    compiling_s: Optional[float]  # seconds spent compiling so far, while compiling
    error: Optional[str]
    full: bool  # the set holds its maximum of runs


def set_entries(runs: list, labels: list, *, numbers=None, colors=None, diagnosis: bool = True,
                density=None) -> list:
    """SetEntry per run (``numbers`` and ``colors`` default to the runs' positions; ``density(run)``
    gives a run's q-against-posterior data, else none)."""
    numbers = numbers or list(range(1, len(runs) + 1))
    colors = colors or list(range(len(runs)))
    return [SetEntry(
        number=number, color=color, label=label, status=run.status, step=run.step, names=run.family.param_names,
        config=run.config.to_dict(), events=list(run.events), series=run.history.series(),
        variance=run.history.variance_series(), params=run.params(), optimum=run.optimum, reference=run.reference,
        divergence=run.divergence, diagnosis=run.diagnose() if diagnosis else {},
        density=density(run) if density else {},
    ) for run, label, number, color in zip(runs, labels, numbers, colors)]


class SetTrainer(Trainer):
    """Drives a ``vizvi.compare.RunSet`` with the thread, pacing and commands of a single run.

    ``add`` and ``drop`` change the set while the other runs go on. The trainer then works on
    a new ``RunSet`` holding the same ``Run`` objects (made outside the lock, swapped in under
    it): a chunk in flight was computed from the old set and is dropped (as a pause drops it,
    so the swap never races the thread reading the old set), and the new layout compiles
    before the next chunk (at once when that layout was compiled before). Each run keeps its
    number and colour while others come and go. Runs whose family has a 2-D latent carry
    q's density against the posterior (the mean-field story).
    """

    def __init__(self, run_set, steps_per_update: int = 200):
        self._numbers: dict = {}  # Run -> its number on the page
        self._colors: dict = {}  # Run -> its colour slot
        self._next_number = 1
        self._densities: dict = {}  # Run -> (its state evaluated, density data)
        self._compile_seen: Optional[float] = None
        self._change: Optional[BackgroundCall] = None  # the last add / drop, compiled in the background
        for r in run_set.runs:
            self._enrol(r)
        super().__init__(run_set, steps_per_update=steps_per_update)

    def _start_reference(self) -> None:
        """A comparison's runs keep the references they were made with (none for a model file)."""
        return None

    def _enrol(self, run) -> None:
        self._numbers[run] = self._next_number
        self._next_number += 1
        taken = set(self._colors.values())
        self._colors[run] = next(c for c in range(len(taken) + 1) if c not in taken)

    def _steps_left(self, run_set) -> int:
        """Steps the member furthest from its end still has to take (a run added later starts at 0)."""
        return max([r.config.steps - r.step for r in run_set.runs if not r.status.over] or [0])

    # -- changing the set (UI thread) -------------------------------------------------------
    def _swap(self, make) -> object:
        """Change the set: ``make(copy of the set)`` here (a ConfigError leaves the set as it
        was), then the copy's new layout compiles in the background while the current set
        trains on, and is swapped in under the lock. Returns what ``make`` made."""
        with self._lock:
            if self.changing:
                raise ConfigError("runs", "the comparison is still taking its last change in (compiling its new "
                                          "layout while the runs go on); try again when it shows")
            current = self.run
        fresh = current.copy()
        made = make(fresh)

        def compile_and_swap():
            fresh.compile()  # a layout compiled before is fetched at once
            with self._lock:
                if self.run is not current:
                    raise RuntimeError("the comparison changed while it was being changed")
                for r in fresh.runs:
                    if r not in self._numbers:
                        self._enrol(r)
                for r in list(self._numbers):
                    if r not in fresh.runs:
                        del self._numbers[r], self._colors[r]
                        self._densities.pop(r, None)
                was_over = current.status.over
                self.run = fresh
                self._commands += 1  # the chunk in flight was computed for the old set: dropped
                if was_over and not fresh.status.over and self.error is None:
                    self._running = True  # a run added to a finished comparison trains at once
                self._wake.notify_all()

        self._change = BackgroundCall(compile_and_swap, "vizvi-set-change", "changing the comparison failed")
        return made

    @property
    def busy(self) -> bool:
        """As a trainer's, and also while a change compiles (the page keeps refreshing)."""
        return super().busy or self.changing

    @property
    def changing(self) -> bool:
        """True while a change's new layout compiles (the runs go on meanwhile)."""
        return self._change is not None and not self._change.done

    @property
    def change_error(self) -> Optional[str]:
        """Why the last change failed, if it did."""
        return self._change.error if self._change is not None else None

    def add(self, config):
        """Add a run (from step 0) while the others go on; returns it. Raises ConfigError (a
        bad setting, or a full comparison), the set unchanged."""
        return self._swap(lambda s: s.add(config))

    def drop(self, number: int):
        """Remove the run numbered ``number`` while the others go on; returns it. Raises
        ConfigError for the last run, the set unchanged."""
        with self._lock:
            index = next((i for i, r in enumerate(self.run.runs) if self._numbers.get(r) == number), None)
        if index is None:
            raise ConfigError("runs", f"there is no run #{number} in this comparison")
        return self._swap(lambda s: s.drop(index))

    def number_of(self, run) -> int:
        """The page's number of a member."""
        with self._lock:
            return self._numbers[run]

    # -- density of 2-D latents -------------------------------------------------------------
    def _prepare_density(self) -> None:
        """q's density for every member with a 2-D latent, here in the trainer thread (caller
        holds the lock, see ``Trainer._prepare_density``)."""
        self._density_at = time.monotonic()
        self._densities.update({r: (r.state, density_data(r)) for r in self.run.runs if r.family.dim > 1})

    def _density_of(self, run) -> dict:
        """q's density of a member with a 2-D latent for the page (caller holds the lock)."""
        if run.family.dim < 2:
            return {}
        self._densities[run] = self._density_shown(self._densities.get(run), run)
        return self._densities[run][1]

    # -- reading (UI thread) ----------------------------------------------------------------
    def record(self) -> dict:
        """{"runs": every member's record, in order}, read consistently under the lock."""
        with self._lock:
            return {"runs": self.run.records(), "labels": self.run.labels}

    def snapshot(self, *, diagnosis: bool = True, density: bool = True) -> SetSnapshot:
        """A consistent copy of the comparison; ``diagnosis`` adds every member's stall
        verdicts, ``density`` the q-against-posterior data of 2-D latents."""
        with self._lock:
            self._last_seen = time.monotonic()
            s = self.run
            status = self.status()
            if status is Status.COMPILING:
                self._compile_seen = self._compile_seen or time.monotonic()
            else:
                self._compile_seen = None
            entries = set_entries(s.runs, s.labels, numbers=[self._numbers[r] for r in s.runs],
                                  colors=[self._colors[r] for r in s.runs], diagnosis=diagnosis,
                                  density=self._density_of if density else None)
            groups = s.layout.groups
            return SetSnapshot(
                step=s.step, status=status, entries=entries, runs=len(s.runs), groups=len(groups),
                batched=sum(len(g.members) for g in groups if g.vectorized), steps_per_s=self.live_steps_per_s(),
                compile_s=s.compile_s, compiling_s=time.monotonic() - self._compile_seen if self._compile_seen else None,
                error=self.error, full=len(s.runs) >= MAX_RUNS,
            )
