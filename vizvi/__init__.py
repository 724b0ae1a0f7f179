"""vizvi: gradient-based variational inference you can watch while it runs.

The package is everything testable without a browser: targets (``models``), variational
families (``families``), constrained <-> unconstrained maps (``parameterizations``), gradient
estimators (``estimators``), update rules (``optimizers``), the compiled training core and the
``Run`` (``engine``), diagnostics, bounded history and the CLI.
"""

__version__ = "0.1.0"
