"""The one registry of settings: every setting declared once.

Each ``Setting`` says its name, kind, default, range or source of choices, help text and
``Role``. From this table come the ``RunConfig`` dataclass and its validation
(``vizvi.engine``), the CLI flags (``vizvi.cli``), the dashboard's widgets and its URL query
(``vizvi.ui``). Adding a setting is one entry here plus its use in the math.

Names: ``name`` is the Python name (``variance_every``), ``flag`` the CLI flag, URL query key and
``ConfigError.argument`` (``variance-every``).

A second table, ``LAB_SETTINGS``, declares the variance explorer's settings the same way
(``vizvi.variance_lab``, ``vizvi variance``); its flags may repeat a run setting's flag
(``--samples``, ``--seed``), since the two tables never meet in one parser or one URL.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any, Callable, Optional, Sequence

from vizvi.errors import ConfigError


class Role(enum.Enum):
    """When a change of the setting takes effect."""

    STRUCTURAL = "structural"  # a new run (Reset): model, data, family, parameterization, init, seed
    LIVE = "live"  # the running run, from its next step: learning rate, estimator, optimizer...
    VIEW = "view"  # only how the dashboard shows the run


class Kind(enum.Enum):
    """The type of a setting's value, which also picks its widget."""

    INT = "int"
    FLOAT = "float"
    CHOICE = "choice"
    TEXT = "text"
    BOOL = "bool"


def _always(model) -> bool:
    return True


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting: everything the config, the CLI, the widgets and the URL need to know."""

    name: str
    kind: Kind
    default: Any
    label: str
    help: str
    role: Role
    lo: Optional[float] = None
    hi: Optional[float] = None
    positive: bool = False  # strictly above ``lo`` (a learning rate of 0 is no learning rate)
    choices: Optional[Callable[[], Sequence[str]]] = None  # the source of the valid values
    dashboard_default: Any = None  # where the dashboard's default differs from the CLI's
    cli: bool = True  # a ``--flag`` of ``vizvi run``
    url: bool = True  # a control of the dashboard and a key of its URL query
    applies: Callable = _always  # model -> whether the value is used (and so checked) for it

    @property
    def flag(self) -> str:
        """The CLI flag and URL key (``variance-every``)."""
        return self.name.replace("_", "-")

    @property
    def ui_default(self) -> Any:
        """The dashboard's default."""
        return self.default if self.dashboard_default is None else self.dashboard_default

    def options(self) -> list:
        """The valid values of a choice setting."""
        return list(self.choices()) if self.choices else []

    def parse(self, text) -> Any:
        """The value a URL query or CLI string stands for; ConfigError naming the flag if it is none."""
        if self.kind is Kind.INT:
            v = _number(self.flag, text)
            if v != int(v):
                raise ConfigError(self.flag, f"{text!r} is not a whole number")
            return self.check(int(v))
        if self.kind is Kind.FLOAT:
            return self.check(_number(self.flag, text))
        if self.kind is Kind.BOOL:
            if str(text) not in ("0", "1", "true", "false"):
                raise ConfigError(self.flag, f"{text!r} is not one of: 0, 1")
            return str(text) in ("1", "true")
        return self.check(str(text))

    def check(self, value) -> Any:
        """``value`` checked against the kind, range or choices; ConfigError naming the flag."""
        if self.kind in (Kind.INT, Kind.FLOAT):
            v = _number(self.flag, value)
            if self.kind is Kind.INT and v != int(v):
                raise ConfigError(self.flag, f"{value!r} is not a whole number")
            if self.positive and v <= (self.lo or 0):
                raise ConfigError(self.flag, f"{self.label.lower()} must be positive, got {value!r}")
            if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
                raise ConfigError(self.flag, f"{value!r} is out of range [{self.lo:g}, {self.hi:g}]")
            return int(v) if self.kind is Kind.INT else v
        if self.kind is Kind.CHOICE:
            options = self.options()
            if value not in options:
                raise ConfigError(self.flag, f"unknown {self.flag} {value!r}; choose one of: {', '.join(options)}")
        return value

    def to_text(self, value) -> str:
        """The value as the URL query writes it."""
        if self.kind is Kind.BOOL:
            return "1" if value else "0"
        if self.kind is Kind.FLOAT:
            return f"{value:g}"
        return str(value)

    def describe(self) -> str:
        """Help text with the range or the choices, for ``--help`` and tooltips."""
        if self.choices:
            return f"{self.help} (one of: {', '.join(self.options())})"
        return self.help


def _number(flag: str, value) -> float:
    if isinstance(value, bool):
        raise ConfigError(flag, f"{value!r} is not a number")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(flag, f"{value!r} is not a number") from None
    if not math.isfinite(v):
        raise ConfigError(flag, f"{value!r} is not a finite number")
    return v


# -- the sources of choices (imported when asked, so this module stays light) -----------------
def _models():
    from vizvi.models import MODELS

    return list(MODELS)


def _families():
    from vizvi.families import FAMILIES

    return list(FAMILIES)


def _parameterizations():
    from vizvi.parameterizations import Parameterization

    return [p.value for p in Parameterization]


def _estimators():
    from vizvi.estimators import EstimatorName

    return [e.value for e in EstimatorName]


def _optimizers():
    from vizvi.optimizers import OptimizerName

    return [o.value for o in OptimizerName]


def _schedules():
    from vizvi.schedules import SCHEDULES

    return list(SCHEDULES)


def _speeds():
    from vizvi.worker import SPEEDS

    return list(SPEEDS)


def _smoothers():
    from vizvi.charts import SMOOTHERS

    return list(SMOOTHERS)


def _takes_data(model) -> bool:
    return bool(model.csv_columns)


MAX_SAMPLES = 4096
MAX_REPLICATES = 256
MAX_LR = 1e6
MAX_STEPS = 1_000_000_000
MAX_N = 10_000_000
MAX_SEED = 2**31 - 1

S, R = Role.STRUCTURAL, Role.LIVE
SETTINGS = (
    Setting("model", Kind.CHOICE, "poisson-gamma", "Model", "target model", S, choices=_models),
    Setting("n", Kind.INT, None, "Observations (simulated)", "number of simulated observations (default: the model's)",
            S, lo=1, hi=MAX_N, applies=_takes_data),
    Setting("data", Kind.TEXT, None, "Data file", "CSV file of observations instead of simulated data", S, url=False),
    Setting("seed", Kind.INT, 0, "Seed (data and Monte Carlo draws)", "seed for data and Monte Carlo draws", S, lo=0, hi=MAX_SEED),
    Setting("family", Kind.CHOICE, None, "Family", "variational family (default: the model's natural fit)", S, choices=_families),
    Setting("parameterization", Kind.CHOICE, "softplus", "Parameterization of positive parameters",
            "how positive parameters are mapped to the unconstrained space", S, choices=_parameterizations),
    Setting("init", Kind.TEXT, None, "Initial values",
            "name=value,... (initial constrained values), 'prior' or 'random'", S),
    Setting("estimator", Kind.CHOICE, "pathwise", "Estimator", "gradient estimator", R, choices=_estimators),
    Setting("samples", Kind.INT, 16, "Monte Carlo samples per step", "Monte Carlo samples per step", R, lo=1, hi=MAX_SAMPLES),
    Setting("optimizer", Kind.CHOICE, "adam", "Optimizer", "update rule", R, choices=_optimizers),
    Setting("lr", Kind.FLOAT, None, "Learning rate", "learning rate (default depends on the optimizer)", R,
            lo=0, hi=MAX_LR, positive=True),
    Setting("schedule", Kind.CHOICE, "constant", "Schedule", "learning-rate schedule", R, choices=_schedules),
    Setting("steps", Kind.INT, 2000, "Stop after (steps)", "optimisation steps", R, lo=0, hi=MAX_STEPS,
            dashboard_default=1_000_000),
    Setting("variance_every", Kind.INT, 100, "Variance every K steps", "measure estimator variance every K steps (0: never)",
            R, lo=0, hi=MAX_STEPS),
    Setting("replicates", Kind.INT, 16, "Variance replicates", "independent gradient estimates per variance measurement",
            R, lo=2, hi=MAX_REPLICATES),
    # The dashboard's view: not part of a run, but in its URL so a shared link looks the same.
    Setting("speed", Kind.CHOICE, "200", "Speed (steps per update)", "steps per chart update ('max': as fast as it goes)",
            Role.VIEW, choices=_speeds, cli=False),
    Setting("smoothing", Kind.CHOICE, "ema", "ELBO smoothing", "how the ELBO's smoothed curve is computed", Role.VIEW,
            choices=_smoothers, cli=False),
    Setting("span", Kind.INT, 50, "Smoothing span", "steps the ELBO smoother averages over", Role.VIEW, lo=1, hi=MAX_STEPS, cli=False),
    Setting("log_axes", Kind.BOOL, False, "Log axes", "parameters on log axes, and the ELBO's gap to the log evidence "
            "(or -ELBO where it is unknown) on a log axis: a stall a hundredfold short of its optimum is no flat line",
            Role.VIEW, cli=False),
    Setting("variance_per", Kind.CHOICE, "estimate", "Variance per",
            "the variance chart per gradient estimate, or scaled to one target evaluation (variance x evaluations per "
            "estimate, SNR / sqrt of them): estimators compare at equal cost (measure-valued evaluates the target twice "
            "per parameter and sample)", Role.VIEW, choices=lambda: ("estimate", "evaluation"), cli=False),
    Setting("present", Kind.BOOL, False, "Presentation mode", "bigger type and no sidebar, for talks", Role.VIEW, cli=False),
)
del S, R
SETTING = {s.name: s for s in SETTINGS}
RUN_SETTINGS = tuple(s for s in SETTINGS if s.role is not Role.VIEW)
LIVE_SETTINGS = tuple(s.name for s in SETTINGS if s.role is Role.LIVE)
URL_SETTINGS = tuple(s for s in SETTINGS if s.url)


def by_flag(flag: str) -> Setting:
    """The setting whose CLI flag / URL key is ``flag``."""
    return SETTING[flag.replace("-", "_")]


def config_class(name: str, settings: Sequence[Setting], namespace: Optional[dict] = None, doc: str = "") -> type:
    """A dataclass with one field per setting (default: the setting's CLI default), plus ``namespace``.

    ``RunConfig`` (``vizvi.engine``) and ``LabConfig`` (``vizvi.variance_lab``) are both made
    here, so a config class is always exactly its table: a setting added to a table is a field.
    """
    return dataclasses.make_dataclass(
        name,
        [(s.name, Any, dataclasses.field(default=s.default)) for s in settings],
        namespace={**(namespace or {}), "__doc__": doc},
    )


# -- the variance explorer's settings ----------------------------------------------------------
def _costs():
    from vizvi.variance_lab import Cost

    return [c.value for c in Cost]


MAX_LAB_LOC = 1000.0
MAX_LAB_SAMPLES = 10_000
MAX_LAB_REPLICATES = 10_000_000

S = Role.STRUCTURAL
LAB_SETTINGS = (
    Setting("mu", Kind.FLOAT, 1.0, "Mean mu", "mean mu of q = N(mu, sigma^2), the distribution the gradient is taken of",
            S, lo=-MAX_LAB_LOC, hi=MAX_LAB_LOC),
    Setting("sigma", Kind.FLOAT, 1.0, "Scale sigma", "standard deviation sigma of q = N(mu, sigma^2)",
            S, lo=0, hi=MAX_LAB_LOC, positive=True),
    Setting("k", Kind.TEXT, "-3:3:13", "Values of k", "values of k: a list 0,1.5,3 or a range lo:hi:count", S),
    Setting("cost", Kind.CHOICE, "square", "Cost f(x; k)", "the cost whose expectation under q is differentiated",
            S, choices=_costs),
    Setting("samples", Kind.INT, 1, "Samples per estimate", "samples per gradient estimate", S, lo=1, hi=MAX_LAB_SAMPLES),
    Setting("replicates", Kind.INT, 200_000, "Replicates", "independent gradient estimates whose variance is measured",
            S, lo=2, hi=MAX_LAB_REPLICATES, dashboard_default=20_000),
    Setting("seed", Kind.INT, 0, "Seed", "seed of the Monte Carlo draws", S, lo=0, hi=MAX_SEED),
    Setting("log_y", Kind.BOOL, True, "Log y axis", "log y axis", Role.VIEW, cli=False),
)
del S
LAB_SETTING = {s.name: s for s in LAB_SETTINGS}
LAB_RUN_SETTINGS = tuple(s for s in LAB_SETTINGS if s.role is not Role.VIEW)  # LabConfig's fields


# -- the ELBO landscape's settings -------------------------------------------------------------
def _coordinates():
    from vizvi.landscape import Coordinates

    return [c.value for c in Coordinates]


def _elbo_methods():
    from vizvi.landscape import ElboMethod

    return [m.value for m in ElboMethod]


MAX_GRID = 200
MAX_GRID_SAMPLES = 10_000

# Structural: the paths (a change needs new runs); view: only the contour and how it is drawn
# (a change recomputes the grid or redraws, never retrains).
S, V = Role.STRUCTURAL, Role.VIEW
LANDSCAPE_SETTINGS = (
    Setting("model", Kind.CHOICE, "poisson-gamma", "Model", "target model (the landscape needs a 1-D latent)", S,
            choices=_models),
    Setting("family", Kind.CHOICE, None, "Family", "2-parameter variational family (default: the model's)", S,
            choices=_families),
    Setting("init", Kind.TEXT, None, "Start (initial values)",
            "name=value,...: the constrained values every path starts from", S),
    Setting("parameterization", Kind.CHOICE, "softplus", "Parameterization the optimizers step in",
            "how the runs map positive parameters to the unconstrained values the optimizers move", S,
            choices=_parameterizations),
    Setting("optimizers", Kind.TEXT, "adam,sgd,natural", "Optimizers", "the optimizers whose paths are drawn, "
            "comma-separated", S, choices=_optimizers),
    Setting("lr", Kind.TEXT, "", "Learning rates", "optimizer:rate,... (an optimizer not named takes its default)", S),
    Setting("samples", Kind.INT, 16, "Gradient samples per step", "Monte Carlo samples of every path's pathwise gradient "
            "estimate", S, lo=1, hi=MAX_SAMPLES),
    Setting("steps", Kind.INT, 20_000, "Steps per path", "optimisation steps of every path", S, lo=1, hi=MAX_STEPS),
    Setting("seed", Kind.INT, 0, "Seed", "seed of the data, the paths' Monte Carlo draws and the grid's common draws",
            S, lo=0, hi=MAX_SEED),
    Setting("speed", Kind.CHOICE, "200", "Speed (steps per update)", "steps per update of the paths ('max': as fast as "
            "it goes)", V, choices=_speeds),
    Setting("coordinates", Kind.CHOICE, "softplus", "Coordinates", "the coordinates of the contour's axes and the paths",
            V, choices=_coordinates),
    Setting("grid", Kind.INT, 60, "Grid points per axis", "resolution of the ELBO grid", V, lo=10, hi=MAX_GRID),
    Setting("elbo", Kind.CHOICE, "exact", "ELBO on the grid", "exact: the closed form where the model and family have "
            "one; mc: a Monte Carlo estimate with common random numbers", V, choices=_elbo_methods),
    Setting("mc_samples", Kind.INT, 256, "Monte Carlo samples per grid point", "common draws shared by every grid point",
            V, lo=2, hi=MAX_GRID_SAMPLES),
)
del S, V
LANDSCAPE_SETTING = {s.name: s for s in LANDSCAPE_SETTINGS}
