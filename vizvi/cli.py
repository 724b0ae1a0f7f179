"""``python -m vizvi``: train one variational approximation headless and write its record, or
measure gradient estimators' variance (the variance explorer, ``vizvi.variance_lab``).

    python -m vizvi run --model poisson-gamma --family gamma --optimizer natural --steps 500 --json out.json
    python -m vizvi variance --mu 1 --sigma 1 --k=-3:3:13 --samples 1 --replicates 200000 --json var.json
    python -m vizvi compare --preset gamma-stall --steps 3000 --seed 0 --json set.json
    python -m vizvi compare --vary lr=0.01,0.05 --vary schedule=constant,robbins-monro --model normal-mean --json set.json
    python -m vizvi run --model-file examples/eight_schools_noncentered.py --steps 5000 --json out.json
    python -m vizvi list          # every model, family, estimator, optimizer, parameterization, cost and preset

``--model-file PATH`` (``run``, ``compare``, ``list``; may be given several times) adds the model
a Python file defines (``vizvi.model_file``) to the model list, named after the file; with one
file and no ``--model``, that model is the one trained.

Write ``--k=-3:3:13`` with ``=`` when the value starts with a minus sign: argparse reads a
separate ``-3:3:13`` as an option, not as the value of ``--k``.

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
        if message.endswith("expected one argument"):  # most likely a value such as -3:3:13
            message += " (if the value starts with '-', write --flag=VALUE)"
        sys.stderr.write(f"vizvi: error: {message}\n")
        sys.exit(EXIT_BAD_ARGUMENT)


def _add_settings(parser: argparse.ArgumentParser, settings, defaults: bool = True) -> None:
    """One ``--flag`` per CLI setting of a ``vizvi.settings`` table, its default the setting's
    (``defaults=False``: a flag not given is absent from the parsed arguments)."""
    from vizvi.settings import Kind

    for s in settings:
        if s.cli:
            # Numbers are parsed here (a typo fails before anything loads); choices and ranges
            # are checked once, by the validation, which knows what depends on what.
            kind = {Kind.INT: int, Kind.FLOAT: float}.get(s.kind)
            parser.add_argument(f"--{s.flag}", dest=s.name, default=s.default if defaults else argparse.SUPPRESS,
                                help=s.describe(),
                                **({"type": kind} if kind else {}))


def _add_model_files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-file", dest="model_files", action="append", default=[], metavar="PATH",
                        help="a Python file defining a TFP `joint` and its `observed` values (see examples/); "
                             "adds a model named after the file; may be given several times")


def _add_output(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", required=True, help=f"path of the JSON {what} to write")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser: one ``--flag`` per setting of the ``vizvi.settings`` tables."""
    from vizvi.settings import LAB_SETTINGS, RUN_SETTINGS

    p = _OneLineParser(prog="vizvi", description="Gradient-based variational inference you can watch.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    run = sub.add_parser("run", help="train one run and write its JSON record")
    _add_settings(run, RUN_SETTINGS)
    _add_model_files(run)
    run.add_argument("--reference", choices=("auto", "none"), default="auto",
                     help="auto: the model's reference posterior (exact, grid, the model file's own, or NUTS for a "
                          "model file without one); none: skip it (the record's reference is null)")
    _add_output(run, "record")
    run.add_argument("--csv", default=None, help="also write the history as CSV")
    run.add_argument("--tensorboard", default=None, help="also write tf.summary scalars to this directory")
    variance = sub.add_parser(
        "variance", help="measure the variance of five gradient estimators of E_N(mu, sigma^2)[f(x; k)]",
        epilog="Write --k=-3:3:13 (with '=') when the value starts with a minus sign.")
    _add_settings(variance, LAB_SETTINGS)
    _add_output(variance, "result")
    compare = sub.add_parser(
        "compare", help="train up to 8 runs side by side (a preset, or settings varied over values) and write their records",
        epilog="Run options given beside --preset apply to every run of the preset (e.g. --steps, --seed).")
    which = compare.add_mutually_exclusive_group(required=True)
    which.add_argument("--preset", help="a preset comparison (vizvi list shows them)")
    which.add_argument("--vary", action="append", metavar="SETTING=V1,V2,...",
                       help="a setting and its values (init values separated by ';'); several --vary make their product")
    _add_settings(compare, RUN_SETTINGS, defaults=False)
    _add_model_files(compare)
    _add_output(compare, "records")
    _add_model_files(sub.add_parser("list", help="list the choices"))
    return p


def _list_choices() -> str:
    from vizvi.estimators import ESTIMATORS
    from vizvi.families import FAMILIES, families_for
    from vizvi.models import MODELS
    from vizvi.optimizers import OPTIMIZERS
    from vizvi.parameterizations import PARAMETERIZATIONS
    from vizvi.presets import PRESETS
    from vizvi.variance_lab import COSTS, LAB_ESTIMATORS

    lines = ["models:"]
    lines += [f"  {m.name:22s} {m.description} (families: {', '.join(families_for(m))})" for m in MODELS.values()]
    lines += ["families:"] + [f"  {f.name:22s} {f.title}: {f.describe_params()}" for f in FAMILIES.values()]
    lines += ["estimators:"] + [f"  {k.value:22s} {v.description}" for k, v in ESTIMATORS.items()]
    lines += ["optimizers:"] + [f"  {k.value:22s} {v.description}" for k, v in OPTIMIZERS.items()]
    lines += ["parameterizations:"] + [f"  {k.value:22s} {v}" for k, v in PARAMETERIZATIONS.items()]
    lines += ["variance costs f(x; k):"] + [f"  {k.value:24s} {v.formula}" for k, v in COSTS.items()]
    lines += ["variance estimators:"] + [f"  {k.value:24s} {v.description}" for k, v in LAB_ESTIMATORS.items()]
    lines += ["presets (vizvi compare --preset NAME):"] + [f"  {p.name:24s} {p.title}: {len(p.configs())} runs"
                                                          for p in PRESETS.values()]
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


def _setting_values(args: argparse.Namespace, settings) -> dict:
    return {s.name: getattr(args, s.name) for s in settings if s.cli}


def config_from_args(args: argparse.Namespace):
    """The RunConfig a parsed ``run`` command describes (not yet validated)."""
    from vizvi.engine import RunConfig
    from vizvi.settings import RUN_SETTINGS

    return RunConfig(**_setting_values(args, RUN_SETTINGS))


def lab_config_from_args(args: argparse.Namespace):
    """The LabConfig a parsed ``variance`` command describes (not yet validated)."""
    from vizvi.settings import LAB_RUN_SETTINGS
    from vizvi.variance_lab import LabConfig

    return LabConfig(**_setting_values(args, LAB_RUN_SETTINGS))


def _say(args: argparse.Namespace, line: str) -> None:
    if not args.quiet:
        sys.stderr.write(line + "\n")


def _command_list(args: argparse.Namespace) -> int:
    _load_model_files(args)
    print(_list_choices())
    return 0


def _load_model_files(args: argparse.Namespace) -> list:
    """Register the ``--model-file`` models; with exactly one and no ``--model`` given, train it."""
    from vizvi.model_file import register_model_files

    models = register_model_files(getattr(args, "model_files", []))
    # ``run`` parses --model with its default, ``compare`` leaves it absent when not given.
    if len(models) == 1 and getattr(args, "model", _default_model()) == _default_model() and args.command != "list":
        args.model = models[0].name
    return models


def _default_model():
    from vizvi.settings import SETTING

    return SETTING["model"].default


def _command_run(args: argparse.Namespace) -> int:
    from vizvi import mcmc
    from vizvi.engine import Run
    from vizvi.history import to_csv, to_json

    _load_model_files(args)
    run = Run(config_from_args(args))
    job = None
    if run.reference is None and args.reference == "auto":
        given = mcmc.given_reference(run.model)
        if given is not None:
            run.attach_reference(given)
        else:  # NUTS in its own thread while the run trains
            job = mcmc.reference_job(run.model, run.dataset)
            _say(args, f"reference: NUTS started for {run.model.name}")
    run.run(lambda r: _say(args, f"step {r.step}/{r.config.steps} status {r.status}"))
    if job is not None:
        job.wait()
        _say(args, job.describe())
        if job.result is not None:
            run.attach_reference(job.result)
    record = run.record()
    _write(args.json, to_json(record), "json")
    if args.csv:
        _write(args.csv, to_csv(record), "csv")
    if args.tensorboard:
        _write_tensorboard(run, args.tensorboard)
    _say(args, f"{record['status']}: {record['steps']} steps, {record['steps_per_s'] or 0:,.0f} steps/s -> {args.json}")
    return 0


def _command_variance(args: argparse.Namespace) -> int:
    import json

    from vizvi import variance_lab

    config = variance_lab.validate_lab(lab_config_from_args(args))
    said = [0]

    def progress(fraction):
        if fraction >= 1.0 or fraction - said[0] >= 0.1:  # a line every tenth, not every batch
            said[0] = fraction
            _say(args, f"variance: {fraction:.0%} of {config.replicates:,} replicates")

    result = variance_lab.compute(config, progress)
    _write(args.json, json.dumps(variance_lab.to_json_dict(result), indent=1), "json")
    _say(args, f"done: {result.replicates:,} replicates x {len(result.k)} values of k in {result.seconds:.2f} s -> {args.json}")
    return 0


def compare_configs(args: argparse.Namespace) -> tuple:
    """(configs, description) a parsed ``compare`` command describes: the preset's runs with the
    run options given applied to each, or the product of the ``--vary`` values over a base of
    the run options given (each defaulting as for ``vizvi run``)."""
    import dataclasses

    from vizvi import compare, presets
    from vizvi.engine import RunConfig
    from vizvi.settings import RUN_SETTINGS

    given = {s.name: getattr(args, s.name) for s in RUN_SETTINGS if s.cli and hasattr(args, s.name)}
    if args.preset is not None:
        preset = presets.get_preset(args.preset)
        return [dataclasses.replace(c, **given) for c in preset.configs()], {"preset": preset.name, "given": given}
    variations = [compare.parse_vary(v) for v in args.vary]
    base = RunConfig(**given)
    return compare.vary(base, variations), {"vary": dict(variations), "base": base.to_dict()}


def _command_compare(args: argparse.Namespace) -> int:
    import json
    import time

    from vizvi.compare import RunSet

    _load_model_files(args)
    configs, described = compare_configs(args)
    t0 = time.perf_counter()
    runs = RunSet(configs)
    _say(args, f"compare: {len(runs.runs)} runs in {len(runs.layout.groups)} compiled groups "
               f"({'batched' if runs.batched else 'not batched'}); compiling")
    runs.run(lambda s: _say(args, f"step {s.step}/{s.config.steps} status {s.status}"))
    elapsed = time.perf_counter() - t0
    output = {
        "runs": runs.records(),
        "batched": runs.batched,
        "elapsed_s": elapsed,
        "config": {**described, "labels": runs.labels, "compile_s": runs.compile_s, "layout": [
            {"runs": list(g.members), "vectorized": g.vectorized, "structure": g.key._asdict()} for g in runs.layout.groups]},
    }
    _write(args.json, json.dumps(output, indent=1, default=str), "json")
    _say(args, f"done: {len(runs.runs)} runs, {', '.join(r.status.value for r in runs.runs)} in {elapsed:.1f} s -> {args.json}")
    return 0


_COMMANDS = {"list": _command_list, "run": _command_run, "variance": _command_variance, "compare": _command_compare}


def main(argv: Optional[list] = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except ConfigError as e:
        sys.stderr.write(f"vizvi: error: argument --{e.argument}: {e.message}\n")
        return EXIT_BAD_ARGUMENT
