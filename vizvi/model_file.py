"""A user's own model: a Python file defining a TFP joint distribution and its observed values.

The file defines ``joint`` (a ``tfd.JointDistributionCoroutineAutoBatched``,
``JointDistributionNamed`` or ``JointDistributionSequential``, or any of their relatives) and
``observed`` (observed part name -> values); optionally ``title``, ``description`` and
``reference`` (known posterior moments: ``{"latent_mean": {part: value}, "latent_sd": {...}}``).

The latent space comes from the model itself: the unobserved parts of
``joint.experimental_pin(**observed)``, mapped to unconstrained space by the pinned joint's
``experimental_default_event_space_bijector()`` and flattened into one vector z in R^d; the
target density of z is the pinned log density plus the bijector's log-Jacobian, so the vector
families (mean-field and full-rank Normal) are ADVI on it. A model with a single scalar latent
that is positive or in (0, 1) is instead offered on that latent itself, like the built-in
1-D targets (LogNormal and Gamma, or Beta, fit there).

Models written as TFP's documentation writes them (float32 literals) are evaluated in their
own dtype: the engine's float64 values are cast on the way in and the log density on the way
out. A joint whose log density cannot take a batch of draws at once (a JointDistributionNamed
with un-broadcastable lambdas, say) is evaluated draw by draw under ``tf.vectorized_map``;
which one is found when the file is loaded.

A bad file (a syntax error, an exception, no ``joint``, an ``observed`` name that is not a
part, shapes that do not match, a log density that is not finite at the initial point) raises a
``ModelFileError`` naming the file and the line.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import runpy
import threading
import traceback
import warnings
from typing import Optional

import numpy as np
from vizvi._tf import tf
import tensorflow_probability as tfp

from vizvi.errors import ConfigError
from vizvi.models import MODELS, Dataset, Model, Reference, Support
from vizvi.parameterizations import DTYPE

tfd = tfp.distributions
tfb = tfp.bijectors

PRIOR_DRAWS = 4000  # prior draws moment-matched for init=prior and the "prior" of the unconstrained z
MOMENT_DRAWS = 20_000  # q's draws for latent moments that have no closed form (fixed seed)


class ModelFileError(ConfigError):
    """A model file that cannot be used; the message starts with ``path:line:``."""

    def __init__(self, path: str, line: Optional[int], message: str):
        where = f"{path}:{line}" if line else path
        super().__init__("model-file", f"{where}: {message}")
        self.path, self.line = path, line


@dataclasses.dataclass(frozen=True)
class LatentPart:
    """One unobserved part of the joint: its name, constrained shape, and where its
    unconstrained values sit in z."""

    name: str
    shape: tuple  # the part's event shape (constrained)
    unconstrained_shape: tuple
    start: int  # offset in z
    size: int  # number of unconstrained coordinates

    def coordinate_names(self) -> list:
        """``name`` for a scalar part, ``name[i]`` / ``name[i,j]`` per element otherwise."""
        if not self.unconstrained_shape:
            return [self.name]
        return [f"{self.name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*self.unconstrained_shape)]


class FileModel(Model):
    """A model loaded from a Python file (see the module docstring)."""

    csv_columns = ()
    default_n = 0
    from_file = True

    def __init__(self, path: str, name: str, namespace: dict, lines: dict):
        self.path = path
        self.name = name
        self._lines = lines
        joint = namespace["joint"]
        self.title = str(namespace.get("title") or f"{name} (model file)")
        self.description = str(namespace.get("description") or f"A TFP model from {path}.")
        self.joint = joint
        self.observed = _observed_values(path, lines, joint, namespace["observed"])
        self.pinned = joint.experimental_pin(**self.observed)
        self.bijector = self.pinned.experimental_default_event_space_bijector()
        event_shape = self.pinned.event_shape
        self._structure = event_shape
        names = _part_names(event_shape, joint, self.observed)
        shapes = tf.nest.flatten(event_shape)
        dtypes = tf.nest.flatten(self.pinned.dtype)
        unconstrained = tf.nest.flatten(self.bijector.inverse_event_shape(event_shape))
        for name_, shape in zip(names, shapes):
            if not shape.is_fully_defined():
                raise ModelFileError(path, lines.get("joint"), f"latent part {name_!r} has an unknown shape {shape}")
        parts, start = [], 0
        for name_, shape, ushape in zip(names, shapes, unconstrained):
            size = int(np.prod(ushape.as_list(), dtype=np.int64))
            parts.append(LatentPart(name_, tuple(shape.as_list()), tuple(ushape.as_list()), start, size))
            start += size
        self.parts = tuple(parts)
        self.part_dtypes = tuple(dtypes)
        self.dim = start
        if self.dim == 0:
            raise ModelFileError(path, lines.get("observed"), "every part of the joint is observed: nothing is left to infer")
        self.latent_name = parts[0].name if len(parts) == 1 else "z"
        # A single scalar positive or unit-interval latent is offered on its own scale (the
        # built-in 1-D families); any other latent lives in the unconstrained R^d.
        self.support = self._scalar_support() if len(parts) == 1 and not parts[0].shape else Support.VECTOR
        if self.support is Support.VECTOR:
            self.default_family = "mean-field-normal"
        else:
            self.default_family = "lognormal" if self.support is Support.POSITIVE else "beta"
        # TFP's bijectors cache their results in a structure that concurrent calls corrupt; a
        # trainer's trace, an MCMC job's trace and a page's eager moments may come at once.
        self._lock = threading.RLock()
        self.batched = self._accepts_batches()  # False: evaluated draw by draw
        self._given_reference = namespace.get("reference")
        self._prior_lock = threading.Lock()
        self._prior = None
        self._check_initial_point()

    # -- the latent space -----------------------------------------------------------------
    @property
    def coordinates(self) -> tuple:
        """One name per coordinate of z: the part's name, with the element's index."""
        if self.support is not Support.VECTOR:
            return ("0",)
        return tuple(n for p in self.parts for n in p.coordinate_names())

    def _scalar_support(self) -> Support:
        """POSITIVE or UNIT when the single scalar latent's bijector maps onto that set, else VECTOR."""
        grid = tf.constant([-30.0, -3.0, 0.0, 3.0, 30.0], self.part_dtypes[0])
        x = self.bijector.forward(self._pack([grid]))
        x = tf.nest.flatten(x)[0].numpy().astype(np.float64)
        if np.all(np.isfinite(x)) and np.all(x >= 0) and np.all(np.diff(x) >= 0):
            return Support.UNIT if np.all(x <= 1) and x[-1] > 0.99 else Support.POSITIVE
        return Support.VECTOR

    def _pack(self, flat_parts):
        return tf.nest.pack_sequence_as(self._structure, list(flat_parts))

    def split(self, z):
        """z [..., d] (engine dtype) -> the unconstrained parts, each [..., *shape], in the model's dtypes."""
        batch = tf.shape(z)[:-1]
        return [tf.cast(tf.reshape(z[..., p.start:p.start + p.size], tf.concat([batch, p.unconstrained_shape], 0)), dt)
                for p, dt in zip(self.parts, self.part_dtypes)]

    def constrain(self, z) -> list:
        """The latent parts in the model's own coordinates, for z [..., d]."""
        if self.support is not Support.VECTOR:
            return [tf.cast(z[..., 0], self.part_dtypes[0])]
        with self._lock:
            return tf.nest.flatten(self.bijector.forward(self._pack(self.split(z))))

    # -- densities ------------------------------------------------------------------------
    def _log_density_flat(self, z):
        """Target log density of z [N, d] (N draws), in the engine's dtype."""
        if self.support is not Support.VECTOR:
            value = self._pack([tf.cast(z[..., 0], self.part_dtypes[0])])
            return tf.cast(self.pinned.unnormalized_log_prob(value), DTYPE)
        parts = self._pack(self.split(z))
        lp = self.pinned.unnormalized_log_prob(self.bijector.forward(parts))
        lp = tf.cast(lp, DTYPE) + tf.cast(self.bijector.forward_log_det_jacobian(parts), DTYPE)
        return lp

    def log_joint(self, z, data):
        """log p(observed, latent) at z (+ the bijector's log-Jacobian on R^d), vectorised over
        every leading dimension of z."""
        z = tf.convert_to_tensor(z, DTYPE)
        if self.support is not Support.VECTOR:
            z = z[..., None]
        lead = tf.shape(z)[:-1]
        flat = tf.reshape(z, [-1, self.dim])
        with self._lock:
            if self.batched:
                lp = self._log_density_flat(flat)
            else:
                lp = tf.vectorized_map(lambda one: self._log_density_flat(one[None])[0], flat, fallback_to_while_loop=True)
        return tf.reshape(lp, lead)

    def _accepts_batches(self) -> bool:
        """Whether the joint's log density takes a batch of draws and gives each draw's value."""
        z = tf.constant(np.random.default_rng(0).normal(size=(3, self.dim)) * 0.5, DTYPE)
        if self.support is not Support.VECTOR:
            z = tf.exp(z) if self.support is Support.POSITIVE else tf.sigmoid(z)
            z = z[:, :1]
        try:
            batched = self._log_density_flat(z).numpy()
        except Exception:  # noqa: BLE001 - any failure means "evaluate draw by draw"
            return False
        try:
            single = np.array([self._log_density_flat(z[i:i + 1]).numpy()[0] for i in range(3)])
        except Exception as e:  # noqa: BLE001 - the message is the user's to read
            raise ModelFileError(self.path, self._lines.get("joint"), f"the log density cannot be evaluated: {_short(e)}") from None
        return batched.shape == (3,) and np.allclose(batched, single, rtol=1e-4, atol=1e-4, equal_nan=True)

    def _check_initial_point(self):
        z0 = self.initial_point()
        try:
            value = float(self.log_joint(tf.constant(z0[None], DTYPE), {}).numpy()[0])
        except Exception as e:  # noqa: BLE001 - shape mismatches and the like surface here
            raise ModelFileError(self.path, self._lines.get("joint"), f"the log density cannot be evaluated: {_short(e)}") from None
        if not np.isfinite(value):
            where = ", ".join(f"{p.name}={_fmt(v)}" for p, v in zip(self.parts, self.constrain(tf.constant(z0[None], DTYPE))))
            raise ModelFileError(self.path, self._lines.get("joint"),
                                 f"the log density is {value} at the initial point ({where}): check the priors' "
                                 f"supports and the observed values")

    def initial_point(self) -> np.ndarray:
        """Where q is centred before training by default: unconstrained 0 (the middle of each
        part's support), or the scalar latent's default middle (1, or 0.5 in (0, 1))."""
        if self.support is Support.POSITIVE:
            return np.array([1.0])
        if self.support is Support.UNIT:
            return np.array([0.5])
        return np.zeros(self.dim)

    # -- data -----------------------------------------------------------------------------
    def simulate(self, n, seed) -> Dataset:
        """The file's observed values (a model file has one data set)."""
        arrays = {k: np.asarray(v) for k, v in self.observed.items()}
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items())
        return Dataset(self.name, arrays, f"observed in {self.path} ({shapes})")

    def data_tensors(self, dataset) -> dict:
        """None: the observed values are part of the pinned joint (one data set per file)."""
        return {}

    def cost_per_sample(self, n) -> int:
        return max(1, sum(int(np.size(v)) for v in self.observed.values()))

    # -- prior, reference, moments ----------------------------------------------------------
    def prior(self, data) -> tfd.Distribution:
        """The prior of z, moment-matched by a Normal (the unconstrained prior has no closed
        form): what init=prior starts q at."""
        with self._prior_lock:
            if self._prior is None:
                draws = self._prior_draws()
                mean = draws.mean(axis=0)
                if self.support is Support.VECTOR:
                    cov = np.cov(draws, rowvar=False).reshape(self.dim, self.dim) + 1e-9 * np.eye(self.dim)
                    self._prior = tfd.MultivariateNormalTriL(tf.constant(mean, DTYPE), tf.constant(np.linalg.cholesky(cov), DTYPE))
                else:
                    self._prior = _MomentMatched(float(mean[0]), float(draws[:, 0].var()))
            return self._prior

    def _prior_draws(self) -> np.ndarray:
        """Prior draws of the latent as z: unconstrained on R^d, as they are for a scalar latent."""
        with self._lock, warnings.catch_warnings():
            # An auto-batched joint warns that stateless seeds make it sample draw by draw: a
            # second, once per model, for draws that must be the same every time.
            warnings.filterwarnings("ignore", message="Saw Tensor seed")
            x = self.joint.sample(PRIOR_DRAWS, seed=(20, 26))
        latent = [x[p.name] if isinstance(x, dict) else getattr(x, p.name, None) for p in self.parts]
        if any(v is None for v in latent):  # a JointDistributionSequential: a list in part order
            names = self.joint._flat_resolve_names()  # TFP's resolved part names (no public accessor)
            latent = [x[names.index(p.name)] for p in self.parts]
        if self.support is not Support.VECTOR:
            return np.asarray(latent[0], dtype=np.float64).reshape(PRIOR_DRAWS, 1)
        with self._lock:
            u = tf.nest.flatten(self.bijector.inverse(self._pack(latent)))
        return np.concatenate([np.asarray(v, dtype=np.float64).reshape(PRIOR_DRAWS, -1) for v in u], axis=1)

    def reference(self, data) -> Optional[Reference]:
        """None: a model file has no closed-form posterior; the reference comes from NUTS
        (``vizvi.mcmc``), started by whoever needs it."""
        return None

    def given_reference(self) -> Optional[dict]:
        """The file's own ``reference`` ({"latent_mean", "latent_sd"}), if it gives one."""
        return self._given_reference

    def latent_moments(self, family, theta) -> tuple:
        """(mean, sd) of q in the parts' own coordinates: exact where the part's bijector is
        the identity (or for a scalar latent), else from ``MOMENT_DRAWS`` draws of q."""
        theta = np.asarray(theta, dtype=np.float64)
        if self.support is not Support.VECTOR:
            mean, sd = family.moments(theta)
            return {self.parts[0].name: float(mean[0])}, {self.parts[0].name: float(sd[0])}
        q = family.build(tf.constant(theta, DTYPE))
        z = q.sample(MOMENT_DRAWS, seed=(7, 11))
        values = self.constrain(z)
        exact_mean, exact_sd = family.moments(theta)
        means, sds = {}, {}
        for p, v, identity in zip(self.parts, values, self._identity_parts()):
            v = np.asarray(v, dtype=np.float64)
            if identity:
                m = exact_mean[p.start:p.start + p.size].reshape(p.shape)
                s = exact_sd[p.start:p.start + p.size].reshape(p.shape)
            else:
                m, s = v.mean(axis=0), v.std(axis=0)
            means[p.name], sds[p.name] = _plain(m), _plain(s)
        return means, sds

    def _identity_parts(self) -> list:
        """Per part: whether its default bijector is the identity (so q's moments are exact)."""
        if not hasattr(self, "_identity"):
            z = tf.constant(np.linspace(-3, 3, 2 * self.dim).reshape(2, self.dim), DTYPE)
            x = self.constrain(z)
            raw = self.split(z)
            self._identity = [bool(np.allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), atol=1e-6))
                              for a, b in zip(x, raw)]
        return self._identity

    def moments_of_draws(self, z: np.ndarray) -> tuple:
        """(mean, sd) by part of posterior draws z [N, d] (an MCMC reference's)."""
        values = self.constrain(tf.constant(z, DTYPE))
        means, sds = {}, {}
        for p, v in zip(self.parts, values):
            v = np.asarray(v, dtype=np.float64)
            means[p.name], sds[p.name] = _plain(v.mean(axis=0)), _plain(v.std(axis=0))
        return means, sds


class _MomentMatched:
    """A stand-in prior of a scalar latent: just its mean and variance (what init=prior reads)."""

    def __init__(self, mean: float, variance: float):
        self._mean, self._variance = mean, variance

    def mean(self):
        return tf.constant(self._mean, DTYPE)

    def variance(self):
        return tf.constant(self._variance, DTYPE)


def _plain(a: np.ndarray):
    a = np.asarray(a, dtype=np.float64)
    return float(a) if a.ndim == 0 else a.tolist()


def _fmt(v) -> str:
    a = np.asarray(v, dtype=np.float64)
    return f"{float(a.ravel()[0]):.4g}" if a.size == 1 else f"[{', '.join(f'{x:.3g}' for x in a.ravel()[:4])}{', ...' if a.size > 4 else ''}]"


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) < 300 else text[:297] + "..."


def _part_names(event_shape, joint, observed) -> list:
    """The unobserved parts' names in ``tf.nest.flatten`` order of the pinned event shape."""
    if isinstance(event_shape, dict):
        return tf.nest.flatten({k: k for k in event_shape})
    if hasattr(event_shape, "_fields"):
        return list(event_shape._fields)
    # A list (JointDistributionSequential): the remaining parts in the joint's order. TFP has no
    # public accessor for the names it resolves from the distributions and lambdas.
    return [n for n in joint._flat_resolve_names() if n not in observed]


def _observed_values(path: str, lines: dict, joint, observed) -> dict:
    """``observed`` checked against the joint's parts, each cast to its part's dtype."""
    line = lines.get("observed")
    if not isinstance(observed, dict):
        raise ModelFileError(path, line, f"`observed` must be a dict of part name -> values, not {type(observed).__name__}")
    names = list(joint._flat_resolve_names())  # (see _part_names)
    dtypes = dict(zip(names, tf.nest.flatten(joint.dtype) if not isinstance(joint.dtype, dict) else
                      [joint.dtype[n] for n in names]))
    shapes = joint.event_shape
    if isinstance(shapes, dict):
        shape_of = shapes
    elif hasattr(shapes, "_fields"):
        shape_of = shapes._asdict()
    else:
        shape_of = dict(zip(names, shapes))
    out = {}
    for name, value in observed.items():
        if name not in names:
            raise ModelFileError(path, line, f"observed name {name!r} is not a part of the joint; its parts are {', '.join(names)}")
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ModelFileError(path, line, f"observed {name!r} is not an array of numbers") from None
        if not np.all(np.isfinite(array)):
            raise ModelFileError(path, line, f"observed {name!r} has values that are not finite")
        expected = shape_of.get(name)
        if expected is not None and expected.is_fully_defined() and tuple(array.shape) != tuple(expected.as_list()):
            raise ModelFileError(path, line, f"observed {name!r} has shape {tuple(array.shape)} but the joint's part "
                                             f"{name!r} has shape {tuple(expected.as_list())}")
        out[name] = tf.constant(array, dtypes.get(name, tf.float32))
    if not out:
        raise ModelFileError(path, line, "`observed` is empty: name at least one observed part")
    return out


def _assignment_lines(source: str) -> dict:
    """Line of the top-level definition of each name the loader reads (joint, observed, ...)."""
    lines = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            names, line = [t.id for t in node.targets if isinstance(t, ast.Name)], node.lineno
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names, line = [node.target.id], node.lineno
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            # A decorated coroutine (@tfd.JointDistributionCoroutineAutoBatched) starts at its decorator.
            names, line = [node.name], (node.decorator_list[0].lineno if node.decorator_list else node.lineno)
        else:
            continue
        for n in names:
            lines[n] = line  # the last definition is the one the file ends with
    return lines


def model_name(path: str) -> str:
    """The model's name in the list: the file's name without .py, with - for _ (eight_schools.py -> eight-schools)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return re.sub(r"[^A-Za-z0-9-]+", "-", stem).strip("-").lower() or "model"


def load_model_file(path: str) -> FileModel:
    """Execute a model file and build its FileModel; a ModelFileError names the file and line."""
    try:
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
    except OSError as e:
        raise ModelFileError(path, None, f"cannot read the model file: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ModelFileError(path, None, "the model file is not UTF-8 text") from None
    try:
        lines = _assignment_lines(source)
    except SyntaxError as e:
        raise ModelFileError(path, e.lineno, f"syntax error: {e.msg}") from None
    try:
        namespace = runpy.run_path(path, run_name="vizvi_model_file")
    except SyntaxError as e:  # e.g. in a module it imports
        raise ModelFileError(e.filename or path, e.lineno, f"syntax error: {e.msg}") from None
    except BaseException as e:  # noqa: BLE001 - a user's file may raise anything, SystemExit included
        raise ModelFileError(path, _line_in(path, e), f"running the file raised {type(e).__name__}: {_short(e)}") from None
    if "joint" not in namespace:
        raise ModelFileError(path, None, "the file defines no `joint` (a tfd.JointDistribution* of the model)")
    joint = namespace["joint"]
    if not isinstance(joint, tfd.JointDistribution):
        raise ModelFileError(path, lines.get("joint"),
                             f"`joint` is a {type(joint).__name__}, not a tfd.JointDistribution (e.g. JointDistributionCoroutineAutoBatched)")
    if "observed" not in namespace:
        raise ModelFileError(path, None, "the file defines no `observed` (a dict: observed part name -> values)")
    try:
        return FileModel(path, model_name(path), namespace, lines)
    except ModelFileError:
        raise
    except Exception as e:  # noqa: BLE001 - anything the joint raises while being pinned or evaluated
        raise ModelFileError(path, _line_in(path, e) or lines.get("joint"), f"the model cannot be used: {type(e).__name__}: {_short(e)}") from None


def _line_in(path: str, e: BaseException) -> Optional[int]:
    """The last line of ``path`` in the exception's traceback (where the user's code failed)."""
    real = os.path.realpath(path)
    line = None
    for frame in traceback.extract_tb(e.__traceback__):
        if os.path.realpath(frame.filename) == real:
            line = frame.lineno
    return line


_REGISTER_LOCK = threading.Lock()


def register_model_files(paths) -> list:
    """Load each file and add its model to the model list (``vizvi.models.MODELS``). Returns
    the models; raises the first file's ModelFileError (the files before it stay registered).
    Loading a path already registered is a no-op; a name taken by another model is refused."""
    models = []
    with _REGISTER_LOCK:
        for path in paths:
            name = model_name(path)
            existing = MODELS.get(name)
            if isinstance(existing, FileModel) and os.path.realpath(existing.path) == os.path.realpath(path):
                models.append(existing)
                continue
            if existing is not None:
                raise ModelFileError(path, None, f"a model called {name!r} exists already; rename the file")
            model = load_model_file(path)
            MODELS[name] = model
            models.append(model)
    return models
