"""``BackgroundCall``: one function called in a daemon thread, its result or error kept.

Used wherever work must not block a page's script run or a command (preparing a run, a
comparison's recompile, an MCMC reference); ``wait_all`` lets a process end only after such
threads (exiting inside an XLA compile can abort in TensorFlow's C++ teardown).
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Optional

from vizvi.errors import ConfigError


class BackgroundCall:
    """``fn()`` called once in a daemon thread; its result, or its error as a message.

    A ConfigError is the user's (its message names the setting); any other exception is kept
    as "<failure>: <type>: <message>", never lost in the thread. An exception of a type in
    ``quiet`` (a cancellation) leaves both result and error None.
    """

    _threads: "weakref.WeakSet" = weakref.WeakSet()  # every call's thread, for ``wait_all``

    def __init__(self, fn, name: str, failure: str, quiet: tuple = ()):
        self.result = None
        self.error: Optional[str] = None
        self._fn, self._failure, self._quiet = fn, failure, quiet
        self._done = threading.Event()
        thread = threading.Thread(target=self._call, name=name, daemon=True)
        BackgroundCall._threads.add(thread)
        thread.start()

    @classmethod
    def wait_all(cls, seconds: float) -> None:
        """Wait (at most ``seconds`` in all) for every call still running: a process that exits
        while a daemon thread is inside an XLA compile can abort in TensorFlow's C++ teardown."""
        deadline = time.monotonic() + seconds
        for thread in list(cls._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def _call(self) -> None:
        try:
            self.result = self._fn()
        except ConfigError as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - reported by the caller, never lost in a thread
            if not isinstance(e, self._quiet):
                self.error = f"{self._failure}: {type(e).__name__}: {e}"
        finally:
            self._done.set()

    def wait(self, seconds: float) -> bool:
        """True once the call has returned or failed; waits at most ``seconds``."""
        return self._done.wait(seconds)

    @property
    def done(self) -> bool:
        """True once the call has returned or failed."""
        return self._done.is_set()
