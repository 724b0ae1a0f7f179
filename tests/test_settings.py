"""The settings registry: every entry round-trips through the CLI, the URL query and the config."""

import argparse
import re

import pytest

from vizvi import cli
from vizvi.engine import RunConfig, validate
from vizvi.errors import ConfigError
from vizvi.settings import LIVE_SETTINGS, RUN_SETTINGS, SETTING, SETTINGS, URL_SETTINGS, Kind, Role

# A value other than the default for every setting (valid together).
OTHER = {
    "model": "normal-mean", "n": 50, "data": None, "seed": 7, "family": "normal", "parameterization": "exp",
    "init": "loc=0.5,scale=2", "estimator": "stl", "samples": 8, "optimizer": "rmsprop", "lr": 0.02,
    "schedule": "robbins-monro", "steps": 5000, "variance_every": 20, "replicates": 10,
    "speed": "50", "smoothing": "moving-average", "span": 30, "log_axes": True, "present": True,
    "variance_per": "evaluation",
}


def test_every_setting_has_a_test_value_and_a_help_text():
    assert set(OTHER) == set(SETTING)
    for s in SETTINGS:
        assert s.help and s.label, s.name
        if s.kind is Kind.CHOICE:
            assert s.options() and (s.default is None or s.default in s.options()), s.name
            assert OTHER[s.name] in s.options() and OTHER[s.name] != s.ui_default, s.name


def test_run_config_has_one_field_per_run_setting_with_its_default():
    config = RunConfig()
    assert list(config.to_dict()) == [s.name for s in RUN_SETTINGS]
    assert all(getattr(config, s.name) == s.default for s in RUN_SETTINGS)


@pytest.mark.parametrize("setting", [s for s in RUN_SETTINGS if s.cli], ids=lambda s: s.name)
def test_every_run_setting_round_trips_through_cli_args(setting, tmp_path):
    value = OTHER[setting.name] if setting.name != "data" else str(tmp_path / "d.csv")
    args = cli.build_parser().parse_args(["run", "--json", "x.json", f"--{setting.flag}", str(value)])
    config = cli.config_from_args(args)
    assert getattr(config, setting.name) == value
    # Every other setting keeps its default.
    assert all(getattr(config, s.name) == s.default for s in RUN_SETTINGS if s is not setting)


def test_all_cli_settings_together_make_the_config():
    argv = ["run", "--json", "x.json"]
    for s in RUN_SETTINGS:
        if s.cli and OTHER[s.name] is not None:
            argv += [f"--{s.flag}", str(OTHER[s.name])]
    config = validate(cli.config_from_args(cli.build_parser().parse_args(argv)))
    assert {s.name: getattr(config, s.name) for s in RUN_SETTINGS} == {s.name: OTHER[s.name] for s in RUN_SETTINGS}


@pytest.mark.parametrize("setting", URL_SETTINGS, ids=lambda s: s.name)
def test_every_url_setting_round_trips_through_its_query_text(setting):
    value = OTHER[setting.name]
    text = setting.to_text(value)
    assert isinstance(text, str)
    assert setting.parse(text) == value


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.kind in (Kind.INT, Kind.FLOAT, Kind.CHOICE)],
                         ids=lambda s: s.name)
def test_bad_values_name_the_setting(setting):
    bad = {Kind.INT: ["abc", "2.5", "nan"], Kind.FLOAT: ["abc", "inf"], Kind.CHOICE: ["no-such-choice"]}[setting.kind]
    if setting.hi is not None:
        bad.append(str(int(setting.hi) * 10))
    for text in bad:
        with pytest.raises(ConfigError) as err:
            setting.parse(text)
        assert err.value.argument == setting.flag and str(err.value).startswith(f"{setting.flag}: ")


def test_live_and_structural_roles():
    assert set(LIVE_SETTINGS) == {"estimator", "samples", "optimizer", "lr", "schedule", "steps", "variance_every", "replicates"}
    assert {s.name for s in SETTINGS if s.role is Role.STRUCTURAL} == {"model", "n", "data", "seed", "family",
                                                                      "parameterization", "init"}
    assert {s.name for s in SETTINGS if s.role is Role.VIEW} == {"speed", "smoothing", "span", "log_axes", "present", "variance_per"}


def test_cli_help_lists_every_cli_setting_with_its_choices(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--help"])
    text = re.sub(r"-\s+", "-", capsys.readouterr().out)  # argparse wraps lines after hyphens
    for s in RUN_SETTINGS:
        assert f"--{s.flag}" in text
    assert "robbins-monro" in text and "score-baseline" in text


def test_a_registry_entry_is_enough_for_a_new_cli_flag(monkeypatch):
    """Adding a setting is one entry: the CLI and the config pick it up with no other change."""
    import dataclasses

    from vizvi import settings

    extra = settings.Setting("warmup", Kind.INT, 0, "Warm-up", "steps before the schedule starts", Role.LIVE, lo=0, hi=10)
    monkeypatch.setattr(settings, "RUN_SETTINGS", settings.RUN_SETTINGS + (extra,))
    parser = cli.build_parser()
    args = parser.parse_args(["run", "--json", "x.json", "--warmup", "3"])
    assert args.warmup == 3
    config_cls = dataclasses.make_dataclass("C", [(s.name, object, dataclasses.field(default=s.default))
                                                  for s in settings.RUN_SETTINGS])
    assert config_cls(**{s.name: getattr(args, s.name) for s in settings.RUN_SETTINGS}).warmup == 3
    assert isinstance(args, argparse.Namespace)


def test_every_guide_demo_is_a_valid_run_page_url():
    from vizvi.ui.demos import DEMOS, settings_of

    for title, query in DEMOS:
        values = {}
        for flag, text in settings_of(query).items():
            setting = SETTING[flag.replace("-", "_")]
            assert setting.url, (title, flag)
            values[setting.name] = setting.parse(text) if setting.kind is not Kind.TEXT else text
        run_values = {k: v for k, v in values.items() if SETTING[k].role is not Role.VIEW}
        validate(RunConfig(**run_values))


def test_every_lab_demo_is_a_valid_lab_url():
    from vizvi.race import entrants
    from vizvi.settings import LAB_SETTING
    from vizvi.ui.demos import LAB_DEMOS, settings_of
    from vizvi.variance_lab import LabConfig, validate_lab

    for title, query in LAB_DEMOS:
        values = settings_of(query)
        if values.pop("view", "explorer") == "race":
            chosen = values.pop("estimators").split(",")
            run_values = {}
            for flag, text in values.items():
                setting = SETTING[flag.replace("-", "_")]
                run_values[setting.name] = setting.parse(text) if setting.kind is not Kind.TEXT else text
            config = RunConfig(**{k: v for k, v in run_values.items() if SETTING[k].role is not Role.VIEW})
            racing, refused = entrants(config, chosen)
            assert [e.value for e in racing] == chosen and not refused, title
        else:
            lab = {flag: LAB_SETTING[flag.replace("-", "_")].parse(text) if LAB_SETTING[flag.replace("-", "_")].kind
                   is not Kind.TEXT else text for flag, text in values.items()}
            validate_lab(LabConfig(**lab))
