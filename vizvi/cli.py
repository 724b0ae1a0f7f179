"""``python -m vizvi``: train one variational approximation headless and write its record.

    python -m vizvi run --model poisson-gamma --family gamma --optimizer natural --steps 500 --json out.json
    python -m vizvi list          # every model, family, estimator, optimizer and parameterization

Bad arguments exit with status 2 and one line naming the argument.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from vizvi.errors import ConfigError

EXIT_BAD_ARGUMENT = 2


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus message on error; scripts want one line naming the argument."""

    def error(self, message):
        sys.stderr.write(f"vizvi: error: {message}\n")
        sys.exit(EXIT_BAD_ARGUMENT)


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    from vizvi.engine import SCHEDULES, RunConfig
    from vizvi.estimators import EstimatorName
    from vizvi.families import FAMILIES
    from vizvi.models import MODELS
    from vizvi.optimizers import OptimizerName
    from vizvi.parameterizations import Parameterization

    d = RunConfig()
    p = _OneLineParser(prog="python -m vizvi", description="Gradient-based variational inference you can watch.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    run = sub.add_parser("run", help="train one run and write its JSON record")
    run.add_argument("--model", default=d.model, help=f"one of: {', '.join(MODELS)}")
    run.add_argument("--family", default=None, help=f"one of: {', '.join(FAMILIES)} (default: the model's natural fit)")
    run.add_argument("--parameterization", default=d.parameterization, help=f"one of: {', '.join(x.value for x in Parameterization)}")
    run.add_argument("--init", default=None, help="name=value,... (initial constrained values), 'prior' or 'random'")
    run.add_argument("--estimator", default=d.estimator, help=f"one of: {', '.join(x.value for x in EstimatorName)}")
    run.add_argument("--samples", type=int, default=d.samples, help="Monte Carlo samples per step")
    run.add_argument("--optimizer", default=d.optimizer, help=f"one of: {', '.join(x.value for x in OptimizerName)}")
    run.add_argument("--lr", type=float, default=None, help="learning rate (default depends on the optimizer)")
    run.add_argument("--schedule", default=d.schedule, help=f"one of: {', '.join(SCHEDULES)}")
    run.add_argument("--steps", type=int, default=d.steps, help="optimisation steps")
    run.add_argument("--seed", type=int, default=d.seed, help="seed for data and Monte Carlo draws")
    run.add_argument("--n", type=int, default=None, help="number of simulated observations")
    run.add_argument("--data", default=None, help="CSV file of observations instead of simulated data")
    run.add_argument("--variance-every", type=int, default=d.variance_every, help="measure estimator variance every K steps (0: never)")
    run.add_argument("--replicates", type=int, default=d.replicates, help="independent gradient estimates per variance measurement")
    run.add_argument("--json", required=True, help="path of the JSON record to write")
    run.add_argument("--csv", default=None, help="also write the history as CSV")
    run.add_argument("--tensorboard", default=None, help="also write tf.summary scalars to this directory")
    run.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sub.add_parser("list", help="list the choices")
    return p


def _list_choices() -> str:
    from vizvi.estimators import ESTIMATORS
    from vizvi.families import FAMILIES, families_for
    from vizvi.models import MODELS
    from vizvi.optimizers import OPTIMIZERS
    from vizvi.parameterizations import PARAMETERIZATIONS

    lines = ["models:"]
    lines += [f"  {m.name:22s} {m.description} (families: {', '.join(families_for(m))})" for m in MODELS.values()]
    lines += ["families:"] + [f"  {f.name:22s} {f.title}: {f.describe_params()}" for f in FAMILIES.values()]
    lines += ["estimators:"] + [f"  {k.value:22s} {v.description}" for k, v in ESTIMATORS.items()]
    lines += ["optimizers:"] + [f"  {k.value:22s} {v}" for k, v in OPTIMIZERS.items()]
    lines += ["parameterizations:"] + [f"  {k.value:22s} {v}" for k, v in PARAMETERIZATIONS.items()]
    return "\n".join(lines)


def _write_tensorboard(run, logdir: str) -> None:
    """Write the run's (bounded) history as tf.summary scalars TensorBoard can open."""
    from vizvi._tf import tf

    names = run.family.param_names
    s, v = run.history.series(), run.history.variance_series()
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        for i, step in enumerate(s.get("step", [])):
            step = int(step)
            tf.summary.scalar("elbo", s["elbo"][i], step=step)
            if s["kl"][i] == s["kl"][i]:
                tf.summary.scalar("kl_to_exact", s["kl"][i], step=step)
            for j, n in enumerate(names):
                tf.summary.scalar(f"params/{n}", s["theta"][i, j], step=step)
                tf.summary.scalar(f"grads/{n}", s["grad"][i, j], step=step)
        for i, step in enumerate(v.get("step", [])):
            for j, n in enumerate(names):
                tf.summary.scalar(f"grad_variance/{n}", v["grad_variance"][i, j], step=int(step))
                tf.summary.scalar(f"grad_snr/{n}", v["grad_snr"][i, j], step=int(step))
    writer.flush()
    writer.close()


def _write(path: str, text: str, argument: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as e:
        raise ConfigError(argument, f"cannot write {path}: {e.strerror}") from None


def config_from_args(args: argparse.Namespace):
    """The RunConfig a parsed ``run`` command describes (not yet validated)."""
    from vizvi.engine import RunConfig

    return RunConfig(
        model=args.model, family=args.family, parameterization=args.parameterization, init=args.init,
        estimator=args.estimator, samples=args.samples, optimizer=args.optimizer, lr=args.lr, schedule=args.schedule,
        steps=args.steps, seed=args.seed, n=args.n, data=args.data, variance_every=args.variance_every,
        replicates=args.replicates,
    )


def main(argv: Optional[list] = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "list":
        print(_list_choices())
        return 0
    from vizvi.engine import Run
    from vizvi.history import to_csv, to_json

    config = config_from_args(args)

    def progress(run):
        if not args.quiet:
            sys.stderr.write(f"step {run.step}/{run.config.steps} status {run.status}\n")

    try:
        run = Run(config).run(progress)
        record = run.record()
        _write(args.json, to_json(record), "json")
        if args.csv:
            _write(args.csv, to_csv(record), "csv")
        if args.tensorboard:
            _write_tensorboard(run, args.tensorboard)
    except ConfigError as e:
        sys.stderr.write(f"vizvi: error: argument --{e.argument}: {e.message}\n")
        return EXIT_BAD_ARGUMENT
    if not args.quiet:
        sys.stderr.write(f"{record['status']}: {record['steps']} steps, {record['steps_per_s'] or 0:,.0f} steps/s -> {args.json}\n")
    return 0
