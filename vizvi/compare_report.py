"""The compare page's stall report: per run and parameter, where it stands and what would fix it.

One row per (run, parameter): the stall detector's verdict (``vizvi.diagnostics``), the
distance to the exact or reference optimum where one is known, the steps since the parameter
last made real progress (``steps_since_progress``), and the diagnosis's suggested fix with the
settings of the run that applies it (``fixed_config``). The rows are plain dicts (a table on
the page, a CSV download); no Streamlit here.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from typing import Optional

import numpy as np

from vizvi.engine import RunConfig, validate
from vizvi.settings import SETTING

PROGRESS = 0.01  # changes smaller than this (relative) are no progress
FLOOR = 0.1  # relative changes of values smaller than this are taken relative to it instead

COLUMNS = ("run", "label", "parameter", "status", "value", "optimum", "distance", "relative distance",
           "steps since progress", "suggestion", "fix settings")


def steps_since_progress(steps, values, optimum: Optional[float]) -> Optional[int]:
    """Steps since the parameter's last real progress (None before its first recorded step).

    With a known optimum, the last progress is the first step at which the parameter came
    within ``PROGRESS`` (1%) of the closest it has ever been to its optimum: how long it has
    been getting no closer. A parameter creeping toward its optimum counts the steps it took to
    close the last 1% of its remaining distance (a step-limited Gamma concentration: hundreds);
    one whose noise keeps it hovering short of its optimum, or one held at it, counts up from
    the step it first got that close. Comparing with the closest ever, not with the last step,
    makes the noise of single steps no progress.

    Without an optimum, the last progress is the step after the value last differed from its
    current value by more than ``PROGRESS`` of its size (at least ``FLOOR``): how long it has
    held still. The history is thinned in its older part, so steps there are those of the
    nearest recorded row.
    """
    steps, values = np.asarray(steps), np.asarray(values, dtype=float)
    ok = np.isfinite(values)
    steps, values = steps[ok], values[ok]
    if not len(steps):
        return None
    if optimum is not None:
        distance = np.abs(values - optimum)
        since = int(np.argmax(distance <= distance.min() * (1.0 + PROGRESS)))
    else:
        moved = np.nonzero(np.abs(values - values[-1]) > PROGRESS * max(abs(values[-1]), FLOOR))[0]
        since = int(moved[-1]) + 1 if len(moved) else 0
    return int(steps[-1] - steps[since])


def fixed_config(config, changes: dict) -> RunConfig:
    """The settings of ``config`` (a RunConfig or its dict) with a suggestion's ``changes``
    applied (``lr`` None: the new optimizer's default), validated: ConfigError naming a setting
    the fix cannot take."""
    base = RunConfig(**config) if isinstance(config, dict) else config
    fixed = dataclasses.replace(base, **changes)
    if "optimizer" in changes and "lr" not in changes:
        fixed.lr = None
    return validate(fixed)


def describe_changes(changes: Optional[dict]) -> str:
    """A suggestion's settings as ``flag=value`` (``lr=default`` when the optimizer's own)."""
    if not changes:
        return ""
    return ", ".join(f"{SETTING[k].flag}={'default' if v is None else (f'{v:g}' if isinstance(v, float) else v)}"
                     for k, v in changes.items())


def _entries(source) -> list:
    """SetEntries of a ``SetSnapshot`` (taken with diagnosis) or of a ``RunSet``."""
    if hasattr(source, "entries"):
        return source.entries
    from vizvi.worker import set_entries

    return set_entries(source.runs, source.labels)


def stall_report(source) -> list:
    """One row per run and parameter of a ``RunSet`` or a ``SetSnapshot``, in the set's order
    and each run's verdict order (the parameter farthest from its optimum first).

    Each row has the ``COLUMNS`` (``fix settings`` as text) plus ``fix``: the suggestion's
    setting changes (a dict, or None when the verdict suggests nothing) and ``fixed``: the
    whole fixed config (``fixed_config``), or None (also when the fix is no valid run).
    """
    rows = []
    for e in _entries(source):
        steps = np.asarray(e.series.get("step", []))
        theta = np.asarray(e.series.get("theta", np.zeros((0, len(e.names)))))
        for name, verdict in e.diagnosis.items():
            k = e.names.index(name)
            value = float(e.params[name])
            optimum = float(e.optimum[k]) if e.optimum is not None else None
            distance = abs(value - optimum) if optimum is not None else None
            suggestion = verdict.get("suggestion")
            changes = suggestion["config"] if suggestion else None
            try:
                fixed = fixed_config(e.config, changes) if changes else None
            except Exception:  # noqa: BLE001 - a fix that is no valid run is offered as text only
                fixed = None
            rows.append({
                "run": e.number, "label": e.label, "parameter": name, "status": str(verdict["status"]),
                "value": value, "optimum": optimum, "distance": distance,
                "relative distance": distance / max(abs(optimum), 1e-12) if distance is not None else None,
                "steps since progress": steps_since_progress(steps, theta[:, k], optimum) if len(steps) else None,
                "suggestion": suggestion["text"] if suggestion else "",
                "fix settings": describe_changes(changes), "fix": changes, "fixed": fixed,
            })
    return rows


def report_csv(rows: list) -> str:
    """The report as CSV text: the ``COLUMNS``, one line per row (empty cells for unknowns)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS})
    return out.getvalue()
