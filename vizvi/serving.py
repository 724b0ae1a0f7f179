"""One server for a room full of people: admission of trainers, closed tabs, programs built early.

- ``Admission``: at most ``limit`` trainers train at once, process-wide; the others wait in
  arrival order and their pages say so (a queue, rather than everyone slowing down together:
  on two cores, ten flat-out trainers each get a tenth of the machine and their charts crawl).
- ``SessionWatch``: a trainer belongs to a browser session; once Streamlit no longer counts
  that session as connected (the tab was closed, or its network dropped) for ``GRACE_S``, the
  trainer is suspended (paused, its thread ended, its admission freed). A session that
  reconnects finds its run paused where it was.
- ``warm_up``: the default run and the presets' comparisons compiled in the background when
  the server starts (``python -m vizvi.serve``), so that the first Start finds them built.
- ``yield_to_other_programs``: the server's process, training included, gives way to the other
  programs of the machine that want the CPU, the browser drawing its charts first among them.
- ``server_status``: what the server is doing right now (runs training and queued, live trainer
  threads, the warm-up, memory), which ``python -m vizvi.serve`` answers as JSON at
  ``STATUS_PATH`` for whoever runs the server (a glance during a class, a load balancer's health
  check, the load test's check that closed tabs leave no trainer thread behind).

The limit comes from ``--max-training N`` after ``--`` on the dashboard's command line, else
the ``VIZVI_MAX_TRAINING`` environment variable, else ``DEFAULT_MAX_TRAINING``.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import weakref
from typing import Callable, NamedTuple, Optional, Sequence

from vizvi.errors import ConfigError

# Four trainers per core: on 2 cores (bench/load.py) eight sessions training flat out share the
# training fairly (1.02-1.12x) in bounded memory; their charts' rate is then limited by the
# browsers drawing them, 0.8-1.3 updates/s each with all eight Chromium pages on the same two
# cores (3.1-4.2 served to each when the pages do not draw).
DEFAULT_MAX_TRAINING = 4 * (os.cpu_count() or 1)
ENV_MAX_TRAINING = "VIZVI_MAX_TRAINING"
GRACE_S = 5.0  # a session disconnected this long has closed its tab (a reload reconnects within a second or two)
WATCH_EVERY_S = 1.0
SERVER_NICE = 5  # the server's scheduling group's niceness (``yield_to_other_programs``)
ENV_SERVER_NICE = "VIZVI_SERVER_NICE"
WARM_UP_DONE = "vizvi: warm-up done"  # the server log's line when the warm-up has ended (``WarmUp``)
_log = logging.getLogger(__name__)


class Admission:
    """At most ``limit`` holders at once; the others queue first come, first served.

    A trainer asks ``admit(self)`` before each chunk (True: it holds a place, or was given
    one) and ``release(self)`` when it stops training. Holders are weakly referenced, so a
    trainer that is garbage-collected never keeps a place.
    """

    def __init__(self, limit: int):
        self._lock = threading.Lock()
        self._holders: "weakref.WeakSet" = weakref.WeakSet()
        self._queue: list = []  # weak references, in arrival order
        self.limit = 0
        self.set_limit(limit)

    def set_limit(self, limit: int) -> None:
        """Change the limit (holders above a lowered limit keep their places until they stop)."""
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigError("max-training", f"must be a whole number of at least 1, got {limit!r}")
        with self._lock:
            self.limit = limit

    def _prune(self) -> None:
        self._queue = [r for r in self._queue if r() is not None]

    def admit(self, who) -> bool:
        """True if ``who`` may train now (it holds a place, or takes a free one as the first in
        line); else it is (or stays) queued and False."""
        with self._lock:
            if who in self._holders:
                return True
            self._prune()
            if not any(r() is who for r in self._queue):
                self._queue.append(weakref.ref(who))
            if len(self._holders) < self.limit and self._queue[0]() is who:
                self._queue.pop(0)
                self._holders.add(who)
                return True
            return False

    def release(self, who) -> None:
        """``who`` stops training (or waiting): its place or its turn goes to the next."""
        with self._lock:
            self._holders.discard(who)
            self._queue = [r for r in self._queue if r() is not None and r() is not who]

    def position(self, who) -> Optional[int]:
        """1 for the first in line, 2 for the next...; None when ``who`` is not waiting."""
        with self._lock:
            self._prune()
            for i, r in enumerate(self._queue):
                if r() is who:
                    return i + 1
            return None

    def counts(self) -> tuple:
        """(training, waiting) right now."""
        with self._lock:
            self._prune()
            return len(self._holders), len(self._queue)


def limit_from(argv: Sequence[str], environ=os.environ) -> int:
    """The limit of concurrently training trainers: ``--max-training N`` in ``argv``, else the
    ``VIZVI_MAX_TRAINING`` environment variable, else ``DEFAULT_MAX_TRAINING``. Raises
    ConfigError naming the option for a value that is not a whole number of at least 1."""
    value, source = None, None
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--max-training":
            if i + 1 >= len(args):
                raise ConfigError("max-training", "needs a number after it")
            value, source = args[i + 1], "--max-training"
        elif arg.startswith("--max-training="):
            value, source = arg.split("=", 1)[1], "--max-training"
    if value is None and environ.get(ENV_MAX_TRAINING):
        value, source = environ[ENV_MAX_TRAINING], ENV_MAX_TRAINING
    if value is None:
        return DEFAULT_MAX_TRAINING
    try:
        limit = int(value)
    except ValueError:
        raise ConfigError("max-training", f"{source} must be a whole number of at least 1, got {value!r}") from None
    if limit < 1:
        raise ConfigError("max-training", f"{source} must be a whole number of at least 1, got {value!r}")
    return limit


ADMISSION = Admission(DEFAULT_MAX_TRAINING)  # the process's; the dashboard sets its limit at start
TRAINER_THREAD = "vizvi-trainer"  # the name of every trainer's thread (``vizvi.worker``), counted by ``server_status``


class SessionWatch:
    """Suspends the trainers of sessions that are no longer connected (see the module).

    ``is_connected(session_id)`` answers for a session; a trainer is watched with
    ``watch(trainer, session_id)`` and suspended (``trainer.suspend()``) once its session has
    been disconnected for ``grace_s``. One daemon thread, started with the first watch.
    """

    def __init__(self, is_connected: Callable[[str], bool], grace_s: float = GRACE_S, every_s: float = WATCH_EVERY_S):
        self._is_connected = is_connected
        self.grace_s, self.every_s = grace_s, every_s
        self._lock = threading.Lock()
        self._watched: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # trainer -> session id
        self._gone_since: dict = {}  # session id -> when first seen disconnected
        self._thread: Optional[threading.Thread] = None

    def watch(self, trainer, session_id: str) -> None:
        """Suspend ``trainer`` once ``session_id`` has been disconnected for ``grace_s``."""
        with self._lock:
            self._watched[trainer] = session_id
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="vizvi-session-watch", daemon=True)
                self._thread.start()

    def check(self, now: Optional[float] = None) -> list:
        """Look at every watched session once; suspend the trainers of those gone for
        ``grace_s``, and return them."""
        now = time.monotonic() if now is None else now
        with self._lock:
            watched = list(self._watched.items())
        suspended, seen = [], set()
        for trainer, sid in watched:
            seen.add(sid)
            try:
                connected = self._is_connected(sid)
            except Exception:  # noqa: BLE001 - a runtime shutting down: check again next time
                continue
            if connected:
                self._gone_since.pop(sid, None)
                continue
            since = self._gone_since.setdefault(sid, now)
            if now - since >= self.grace_s and trainer.suspend():
                suspended.append(trainer)
        for sid in list(self._gone_since):
            if sid not in seen:
                del self._gone_since[sid]
        return suspended

    def _loop(self) -> None:
        while True:
            time.sleep(self.every_s)
            self.check()


def _streamlit_session_connected(session_id: str) -> bool:
    """Whether Streamlit counts ``session_id`` as a connected session (True without a
    Streamlit server, e.g. under ``AppTest``: nothing to watch there)."""
    from streamlit import runtime

    if not runtime.exists():
        return True
    return runtime.get_instance().is_active_session(session_id)


SESSIONS = SessionWatch(_streamlit_session_connected)


# -- the server gives way to the programs of the machine that want the CPU --------------------------
_AUTOGROUP = "/proc/self/autogroup"


def server_nice_from(environ=os.environ) -> int:
    """The niceness of ``yield_to_other_programs``: ``VIZVI_SERVER_NICE`` (0 to 19; 0 leaves the
    server's priority alone), else ``SERVER_NICE``. ConfigError naming the variable otherwise."""
    value = environ.get(ENV_SERVER_NICE)
    if value is None or value == "":
        return SERVER_NICE
    try:
        nice = int(value)
    except ValueError:
        nice = -1
    if not 0 <= nice <= 19:
        raise ConfigError("server-nice", f"{ENV_SERVER_NICE} must be a whole number from 0 to 19, got {value!r}")
    return nice


def yield_to_other_programs(nice: int = SERVER_NICE, autogroup: str = _AUTOGROUP) -> Optional[Callable[[], None]]:
    """Lower the CPU share of this process's scheduling group (Linux's autogroup: the process's
    session) to ``nice``; return the call that puts the old niceness back (None if nothing changed).

    Why: Linux shares the CPU equally between sessions that want it, whatever the niceness of
    their threads, so a server training flat out kept a whole core of two from the browser on
    the same machine (a user's ``make run``; the benches), whose page then drew fewer chart
    updates than its drawing alone allowed: Chromium's main thread waited for the CPU 25-30% of
    the time. In ``make bench`` (two runs each way, alternated), the group at nice 5 took the
    slowest built-in model from 3.3-5.4 chart updates/s to 7.1-8.3 and the reference problem
    from 9.1-10.2 to 10.2-11.2, while training while live went from 0.73-0.82x of the headless
    engine to 0.63-0.68x (nice 10 gave the browser a little more and training 0.55x). Training
    is the work that can wait; on a server of its own nothing else wants the CPU and nothing
    changes. The threads' own niceness stays: a niced trainer that holds the GIL while the OS
    leaves it waiting would stall the server's other threads (see ``WarmUp._work``); the whole
    group's lower share has no such inversion.
    """
    if nice <= 0:
        return None
    try:
        with open(autogroup) as f:
            before = int(f.read().rsplit("nice", 1)[1])
        if before >= nice:
            return None
        _set_group_nice(autogroup, nice)
    except (OSError, ValueError, IndexError) as e:  # no autogroup (not Linux, or a kernel without it)
        _log.info("vizvi: the server keeps its CPU priority (%s: %s)", autogroup, e)
        return None
    _log.info("vizvi: the server gives way to other programs wanting the CPU (scheduling group nice %d)", nice)

    def restore() -> None:
        # The group is the session's: under a terminal's `make run`, the shell's too, so it gets
        # its niceness back when the server ends.
        try:
            _set_group_nice(autogroup, before)
        except OSError:
            pass

    return restore


def _set_group_nice(autogroup: str, nice: int, tries: int = 5) -> None:
    """Write ``nice`` to the autogroup file; the kernel takes one change every 0.1 s, machine-wide
    (EAGAIN otherwise: several servers starting at once), so a refused write is tried again."""
    for attempt in range(tries):
        try:
            with open(autogroup, "w") as f:
                f.write(str(nice))
            return
        except OSError as e:
            if e.errno != errno.EAGAIN or attempt == tries - 1:
                raise
            time.sleep(0.12)


# -- programs built when the server starts ------------------------------------------------------
class WarmUp:
    """The default run and the presets' comparisons, compiled one after another in a daemon
    thread; ``done``, ``current`` and ``built`` say how far it is."""

    def __init__(self, jobs: Sequence[tuple]):
        self.jobs = list(jobs)  # (what, make) pairs: make() returns something with compile()
        self.built: list = []
        self.failed: list = []
        self.current: Optional[str] = None
        self.seconds = 0.0
        self._done = threading.Event()
        threading.Thread(target=self._work, name="vizvi-warm-up", daemon=True).start()

    def _work(self) -> None:
        # Not niced: a lower-priority thread that holds the GIL while the OS leaves it waiting
        # stalls every other thread of the server (measured: a niced trainer froze 8 sessions).
        t0 = time.perf_counter()
        try:
            for what, make in self.jobs:
                self.current = what
                try:
                    make().compile()
                    self.built.append(what)
                except Exception as e:  # noqa: BLE001 - a preset that cannot build is built on demand instead
                    self.failed.append(f"{what}: {type(e).__name__}: {e}")
        finally:
            self.current = None
            self.seconds = time.perf_counter() - t0
            self._done.set()
            _log.info("%s in %.1f s: %d built%s", WARM_UP_DONE, self.seconds, len(self.built),
                      "".join(f"; failed {f}" for f in self.failed))

    @property
    def done(self) -> bool:
        """True once every job has been tried."""
        return self._done.is_set()

    def wait(self, seconds: float) -> bool:
        """True once done; waits at most ``seconds``."""
        return self._done.wait(seconds)


def warm_up_jobs() -> list:
    """What the server builds at start: the run page's default run (its preview program first,
    traced in a second, then the compiled one), then each preset's comparison."""
    from vizvi.compare import RunSet
    from vizvi.engine import Run, RunConfig
    from vizvi.presets import PRESETS

    jobs = [("the default run's preview", lambda: _Preview(Run(RunConfig()))), ("the default run", lambda: Run(RunConfig()))]
    for name, preset in PRESETS.items():
        jobs.append((f"preset {name}", lambda p=preset: RunSet(p.configs())))
    return jobs


class _Preview:
    """A run whose ``compile()`` traces its uncompiled preview program (``Run.compute_chunk``
    with ``preview``): a Start during the compiled build then draws its first steps at once."""

    def __init__(self, run):
        self.run = run

    def compile(self) -> None:
        """Trace the preview program by computing no steps with it."""
        self.run.compute_chunk(0, preview=True)


_WARM_UP: Optional[WarmUp] = None
_WARM_UP_LOCK = threading.Lock()


def warm_up() -> WarmUp:
    """Start building the default run and the presets' programs in the background (once per
    process); returns the warm-up."""
    global _WARM_UP
    with _WARM_UP_LOCK:
        if _WARM_UP is None:
            _WARM_UP = WarmUp(warm_up_jobs())
        return _WARM_UP


# -- what the server is doing ---------------------------------------------------------------------
STATUS_PATH = "/vizvi/status"


class ServerStatus(NamedTuple):
    """What the server is doing right now (``server_status``; JSON at ``STATUS_PATH``)."""

    training: int  # runs holding a place to train (``Admission``)
    queued: int  # runs waiting for a place
    max_training: int  # the limit of runs training at once
    trainer_threads: int  # live trainer threads: one per session whose trainer is not suspended or closed
    threads: int  # the process's Python threads in all
    warm_up: str  # "not started", "building <what>" or "done in N s"
    resident_mib: Optional[float]  # the process's resident memory (None where /proc is missing)


def _warm_up_state() -> str:
    warm = _WARM_UP
    if warm is None:
        return "not started"
    if warm.done:
        return f"done in {warm.seconds:.1f} s" + (f", {len(warm.failed)} failed" if warm.failed else "")
    return f"building {warm.current}" if warm.current else "starting"


def _resident_mib(status_file: str = "/proc/self/status") -> Optional[float]:
    try:
        with open(status_file) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def server_status(admission: Optional[Admission] = None) -> ServerStatus:
    """What this process's server is doing now, with ``admission`` (default: the process's)."""
    admission = ADMISSION if admission is None else admission
    training, queued = admission.counts()
    threads = threading.enumerate()
    return ServerStatus(training=training, queued=queued, max_training=admission.limit,
                        trainer_threads=sum(t.name == TRAINER_THREAD for t in threads), threads=len(threads),
                        warm_up=_warm_up_state(), resident_mib=_resident_mib())


async def status_endpoint(request):
    """``GET STATUS_PATH``: ``server_status()`` as JSON, never cached."""
    from starlette.responses import JSONResponse

    return JSONResponse(server_status()._asdict(), headers={"Cache-Control": "no-store"})
