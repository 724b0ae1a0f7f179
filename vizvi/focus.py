"""Which variational parameters the live charts draw when a family has many of them.

A model file's latent can have tens of coordinates, and a family over it tens to hundreds of
parameters: one chart panel per parameter would be unreadable and slow. The parameter and
gradient charts then draw a handful (``AUTO_SHOWN``), chosen by the user or automatically,
and an overview heatmap shows every parameter at once (``vizvi.latent_charts``).

The automatic choice looks at what is wrong: with a posterior reference that has moments of
the latent vector (an MCMC reference), the parameters farthest from the reference's moment
match, in posterior standard deviations of their coordinate; without one, the stalled
parameters first (``vizvi.diagnostics``), then those still moving. It is sticky (a parameter
stays while it is still among the worst), so that panels do not swap at every refresh.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from vizvi.diagnostics import Verdict

MAX_SHOWN = 6  # a family with at most this many parameters has them all drawn (every built-in one)
AUTO_SHOWN = 4  # of a family with more, the parameters drawn unasked (each panel costs the browser per update)
MAX_CHOSEN = 12  # panels a user may ask for (each costs the browser drawing time per update)
STICKY = 2  # a shown parameter stays while it ranks within STICKY x the number shown


def reference_match(family, reference) -> Optional[tuple]:
    """(theta, scale) for a posterior ``reference`` with moments of the latent vector (exact,
    grid or MCMC): ``theta`` the family's parameters moment-matched to its mean and
    covariance, ``scale`` per parameter the posterior sd of the coordinate it belongs to
    (``Family.parameter_coordinates``). None without such moments (no reference yet, or a
    model file's own moments, which are in the model's coordinates, not the latent vector's)."""
    if reference is None or reference.mean is None or reference.cov is None:
        return None
    mean = np.atleast_1d(np.asarray(reference.mean, dtype=np.float64))
    cov = np.atleast_2d(np.asarray(reference.cov, dtype=np.float64))
    if len(mean) != family.dim or not np.all(np.isfinite(cov)):
        return None
    try:
        theta = np.asarray(family.moment_match(mean, cov), dtype=np.float64)
    except (np.linalg.LinAlgError, ValueError, ZeroDivisionError):
        return None  # a covariance the family cannot match (not positive definite): no gap to show
    sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
    scale = np.maximum(sd[list(family.parameter_coordinates)], 1e-12)
    return theta, scale


def gap(theta, match: Optional[tuple]) -> Optional[np.ndarray]:
    """|theta - the reference's match| in posterior sds, per parameter (rows of ``theta`` [..., P]
    alike); None without a match."""
    if match is None:
        return None
    target, scale = match
    return np.abs(np.asarray(theta, dtype=np.float64) - target) / scale


def _ranking(names: Sequence[str], gaps: Optional[np.ndarray], diagnosis: Optional[dict]) -> list:
    """Parameter indices, the most in need of a look first."""
    if gaps is not None:
        g = np.where(np.isfinite(gaps), gaps, np.inf)
        return [int(i) for i in np.argsort(-g, kind="stable")]
    if diagnosis:
        def rank(i):
            verdict = diagnosis.get(names[i])
            if verdict is None:
                return 2
            status = verdict["status"]
            return 0 if status.stalled else (2 if status is Verdict.CONVERGED else 1)
        order = list(diagnosis)  # farthest from the optimum first where one is known
        position = {n: k for k, n in enumerate(order)}
        return sorted(range(len(names)), key=lambda i: (rank(i), position.get(names[i], len(order))))
    return list(range(len(names)))


def auto_focus(names: Sequence[str], *, gaps: Optional[np.ndarray] = None, diagnosis: Optional[dict] = None,
               previous: Sequence[str] = (), limit: int = AUTO_SHOWN) -> list:
    """The names to draw unasked, in the family's order: all of them for a family of at most
    ``MAX_SHOWN``; else the ``limit`` ranked highest by ``gaps`` (in posterior sds) or else by
    the ``diagnosis`` (stalled first), keeping those of ``previous`` still ranked within
    ``STICKY * limit``."""
    names = list(names)
    if len(names) <= MAX_SHOWN:
        return names
    ranked = _ranking(names, gaps, diagnosis)
    near_top = set(ranked[:STICKY * limit])
    keep = [names.index(n) for n in previous if n in names and names.index(n) in near_top][:limit]
    chosen = keep + [i for i in ranked if i not in keep][:limit - len(keep)]
    return [names[i] for i in sorted(chosen)]


def shown(names: Sequence[str], chosen: Sequence[str] = (), auto: Sequence[str] = (), limit: int = AUTO_SHOWN) -> list:
    """Indices of the parameters to draw: the user's ``chosen`` ones (at most ``MAX_CHOSEN``),
    else the ``auto`` ones, else the first ``limit``; all of them for a family of at most
    ``MAX_SHOWN``. Names not in ``names`` (another run's) are ignored."""
    names = list(names)
    if len(names) <= MAX_SHOWN:
        return list(range(len(names)))
    for pick, cap in ((chosen, MAX_CHOSEN), (auto, limit)):
        valid = sorted({names.index(n) for n in pick if n in names})
        if valid:
            return valid[:cap]
    return list(range(limit))
