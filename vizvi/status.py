"""Where a run, and the trainer that drives it, stands: one enum every module reads."""

from __future__ import annotations

import enum


class Status(str, enum.Enum):
    """Where a run (and the trainer that drives it) stands."""

    READY = "ready"
    COMPILING = "compiling"
    QUEUED = "queued"  # waiting for a place to train on a busy server (``vizvi.serving.Admission``)
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    DIVERGED = "diverged"
    ERROR = "error"

    @property
    def over(self) -> bool:
        """True when the run will take no more steps."""
        return self in (Status.FINISHED, Status.DIVERGED, Status.ERROR)

    def __str__(self) -> str:
        return self.value
