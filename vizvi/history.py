"""Bounded run history and its JSON / CSV export.

A run of a million steps must not grow memory without bound, yet the charts want every recent
step. ``DecimatingBuffer`` keeps the newest ``recent`` rows at full resolution and older rows
in an archive thinned by a stride that doubles whenever the archive fills: total rows never
exceed ``recent + archive`` and old history stays evenly spread over the whole run.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Optional

import numpy as np

from vizvi import diagnostics

RECENT_ROWS = 4000
ARCHIVE_ROWS = 4000


class DecimatingBuffer:
    """Columns of equal length; full resolution for the newest rows, thinned archive before."""

    def __init__(self, recent: int = RECENT_ROWS, archive: int = ARCHIVE_ROWS):
        self.recent_cap, self.archive_cap = recent, archive
        self.stride = 1
        self._recent: Optional[dict] = None
        self._archive: Optional[dict] = None
        self._seen = 0  # rows ever moved to the archive; the archive keeps those with index % stride == 0

    def __len__(self) -> int:
        return sum(len(next(iter(p.values()))) for p in (self._recent, self._archive) if p)

    def append(self, rows: dict) -> None:
        """Append a block of rows: a dict of arrays with equal first dimension."""
        rows = {k: np.asarray(v) for k, v in rows.items()}
        if self._recent is None:
            self._recent = rows
        else:
            self._recent = {k: np.concatenate([self._recent[k], rows[k]]) for k in self._recent}
        n = len(next(iter(self._recent.values())))
        if n > self.recent_cap:
            cut = n - self.recent_cap
            old = {k: v[:cut] for k, v in self._recent.items()}
            self._recent = {k: v[cut:] for k, v in self._recent.items()}
            self._to_archive(old, cut)

    def _to_archive(self, old: dict, count: int) -> None:
        index = self._seen + np.arange(count)
        self._seen += count
        keep = index % self.stride == 0
        old = {k: v[keep] for k, v in old.items()}
        old["_index"] = index[keep]
        if self._archive is None:
            self._archive = old
        else:
            self._archive = {k: np.concatenate([self._archive[k], old[k]]) for k in self._archive}
        while len(self._archive["_index"]) > self.archive_cap:
            self.stride *= 2
            keep = self._archive["_index"] % self.stride == 0
            self._archive = {k: v[keep] for k, v in self._archive.items()}

    def columns(self) -> dict:
        """All kept rows, oldest first, as a dict of arrays."""
        parts = [p for p in (self._archive, self._recent) if p]
        if not parts:
            return {}
        keys = [k for k in parts[-1] if k != "_index"]
        return {k: np.concatenate([p[k] for p in parts]) for k in keys}

    def recent(self) -> dict:
        """Only the full-resolution rows."""
        return dict(self._recent) if self._recent else {}


STEP_FIELDS = ("step", "elbo", "kl", "lr", "theta", "u", "grad", "grad_theta", "update")
VARIANCE_FIELDS = ("step", "grad_variance", "grad_snr", "khat")


class History:
    """The telemetry of one run: per-step series and the sparser variance series."""

    def __init__(self, param_names, recent: int = RECENT_ROWS, archive: int = ARCHIVE_ROWS):
        self.param_names = tuple(param_names)
        self.steps = DecimatingBuffer(recent, archive)
        self.variance = DecimatingBuffer(recent // 4, archive // 4)

    def append(self, telemetry: dict) -> None:
        """Append one chunk's telemetry (numpy arrays keyed by ``engine.Telemetry`` fields)."""
        self.steps.append({k: telemetry[k] for k in STEP_FIELDS})
        mask = telemetry["has_variance"]
        if mask.any():
            self.variance.append({
                "step": telemetry["step"][mask],
                "grad_variance": telemetry["grad_variance"][mask],
                "grad_snr": telemetry["grad_snr"][mask],
                "khat": telemetry["khat"][mask],
            })

    def __len__(self) -> int:
        return len(self.steps)

    def series(self) -> dict:
        """Per-step arrays (``step``, ``elbo``, ``theta`` [N, D], ...)."""
        return self.steps.columns()

    def variance_series(self) -> dict:
        """Variance-step arrays (``step``, ``grad_variance`` [M, D], ``grad_snr`` [M, D], ``khat`` [M])."""
        return self.variance.columns()


def _clean(x):
    """JSON-safe: non-finite floats become None."""
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    return x


def _per_param(names, arr) -> dict:
    arr = np.asarray(arr)
    if arr.size == 0:
        return {n: [] for n in names}
    return {n: arr[:, i].tolist() for i, n in enumerate(names)}


def to_record(run) -> dict:
    """The CLI's JSON schema for a Run (every setting, status, final state, exact, history)."""
    names = run.family.param_names
    s, v = run.history.series(), run.history.variance_series()
    diagnosis = run.diagnose()
    last_elbo = float(np.mean(s["elbo"][-min(len(s["elbo"]), 100):])) if len(s.get("elbo", [])) else None
    latent_mean, latent_sd = run.model.latent_moments(run.family, run.theta)
    khat = np.asarray(v.get("khat", np.zeros(0)), dtype=np.float64)
    ref = run.reference
    exact = None
    if ref is not None and ref.kind == "exact":
        exact = {
            "distribution": ref.distribution,
            "params": ref.params,
            "log_evidence": ref.log_evidence,
            "optimal_q": dict(zip(names, run.optimum.tolist())) if run.optimum is not None else None,
        }
    record = {
        "config": run.config.to_dict(),
        "status": run.status.value,
        "steps": run.step,
        "elapsed_s": run.compute_s + run.compile_s,
        "compile_s": run.compile_s,
        "steps_per_s": run.step / run.compute_s if run.compute_s > 0 else None,
        # Steps taken by the uncompiled preview and not recomputed with the compiled program
        # (a live setting changed meanwhile): their random draws differ from the URL's run.
        "preview_steps": getattr(run, "preview_steps", 0),
        "final": {
            "elbo": last_elbo,
            "elbo_note": "mean of the last 100 ELBO estimates",
            "params": run.params(),
            "kl_to_exact": run.kl_to_exact(),
            "projections": dict(zip(names, run.state.projections.numpy().tolist())),
            "latent_mean": latent_mean,
            "latent_sd": latent_sd,
            "khat": float(khat[-1]) if len(khat) else None,
        },
        "exact": exact,
        "reference": reference_record(run.model, ref),
        "divergence": run.divergence,
        "stalled": [n for n, d in diagnosis.items() if d["status"].stalled],
        "diagnosis": {n: d["text"] for n, d in diagnosis.items()},
        "diagnosis_detail": diagnosis,
        "posterior_check": diagnostics.posterior_check(run),
        "events": run.events,
        "kl_kind": run.kl_kind,
        "data": {"source": run.dataset.source, "n": run.dataset.n},
        "history": {
            "step": s.get("step", np.zeros(0)).tolist(),
            "elbo": s.get("elbo", np.zeros(0)).tolist(),
            "kl": s.get("kl", np.zeros(0)).tolist(),
            "lr": s.get("lr", np.zeros(0)).tolist(),
            "params": _per_param(names, s.get("theta", [])),
            "unconstrained": _per_param(names, s.get("u", [])),
            "grads": _per_param(names, s.get("grad", [])),
            "grads_constrained": _per_param(names, s.get("grad_theta", [])),
            "updates": _per_param(names, s.get("update", [])),
            "variance_step": v.get("step", np.zeros(0)).tolist(),
            "grad_variance": _per_param(names, v.get("grad_variance", [])),
            "grad_snr": _per_param(names, v.get("grad_snr", [])),
            "khat": khat.tolist(),
        },
    }
    return _clean(record)


def reference_record(model, ref) -> Optional[dict]:
    """The record's ``reference``: its kind, the moments of the latent vector (the space q is
    fitted in), and ``latent_mean`` / ``latent_sd`` in the model's own coordinates; None when
    there is no reference."""
    if ref is None:
        return None
    latent_mean, latent_sd = model.reference_moments(ref)
    out = {
        "kind": ref.kind,
        "mean": ref.mean.tolist() if ref.mean is not None else None,
        "cov": ref.cov.tolist() if ref.cov is not None else None,
        "log_evidence": ref.log_evidence,
        "latent_mean": latent_mean,
        "latent_sd": latent_sd,
    }
    if ref.mcmc is not None:
        out["mcmc"] = ref.mcmc
    return out


def to_json(record: dict) -> str:
    """Strict JSON (no NaN tokens)."""
    return json.dumps(record, allow_nan=False, indent=1)


def to_csv(record: dict) -> str:
    """One row per recorded step; variance columns are filled at the steps they were measured."""
    h = record["history"]
    names = list(h["params"])
    var_at = {st: i for i, st in enumerate(h["variance_step"])}
    header = ["step", "elbo", "kl", "lr"]
    for group in ("params", "unconstrained", "grads", "updates", "grad_variance", "grad_snr"):
        header += [f"{group}.{n}" for n in names]
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(header)

    def fmt(x):
        return "" if x is None else repr(x)

    for i, st in enumerate(h["step"]):
        row = [st, fmt(h["elbo"][i]), fmt(h["kl"][i]), fmt(h["lr"][i])]
        for group in ("params", "unconstrained", "grads", "updates"):
            row += [fmt(h[group][n][i]) for n in names]
        j = var_at.get(st)
        for group in ("grad_variance", "grad_snr"):
            row += [fmt(h[group][n][j]) if j is not None else "" for n in names]
        w.writerow(row)
    return out.getvalue()
