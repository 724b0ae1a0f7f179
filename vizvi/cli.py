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
    """The CLI's argument parser: one ``--flag`` per ``vizvi.settings`` run setting."""
    from vizvi.settings import RUN_SETTINGS, Kind

    p = _OneLineParser(prog="vizvi", description="Gradient-based variational inference you can watch.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    run = sub.add_parser("run", help="train one run and write its JSON record")
    for s in RUN_SETTINGS:
        if s.cli:
            # Numbers are parsed here (a typo fails before anything loads); choices and ranges
            # are checked once, by the engine's validation, which knows what depends on what.
            kind = {Kind.INT: int, Kind.FLOAT: float}.get(s.kind)
            run.add_argument(f"--{s.flag}", dest=s.name, default=s.default, help=s.describe(),
                             **({"type": kind} if kind else {}))
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
    lines += ["optimizers:"] + [f"  {k.value:22s} {v.description}" for k, v in OPTIMIZERS.items()]
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
    from vizvi.settings import RUN_SETTINGS

    return RunConfig(**{s.name: getattr(args, s.name) for s in RUN_SETTINGS if s.cli})


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
