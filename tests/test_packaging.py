"""vizvi as an installed package, used from outside the checkout.

`make venv` installs the project into .venv in editable mode: the `vizvi` command and
`import vizvi` must work from any folder, with paths relative to that folder. Also: what a
wheel ships (only vizvi/, with its .js renderer), and the dashboard's toolbar setting.
"""

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The tests run under .venv/bin/python: the console script sits next to it.
VIZVI = Path(sys.executable).parent / "vizvi"


def _env():
    # Nothing may put the checkout on the path by accident: only the installed package counts.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def _run(cmd, cwd, timeout=180):
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def vizvi_command():
    if not VIZVI.is_file():
        pytest.fail(f"{VIZVI} is missing: `make venv` installs vizvi into the venv (pip install -e .)")
    return VIZVI


def test_import_vizvi_outside_the_checkout(tmp_path):
    proc = _run([sys.executable, "-c", "import vizvi, vizvi.cli; print(vizvi.__file__)"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # Editable install: the package imported is the checkout's.
    assert Path(proc.stdout.strip()).resolve() == REPO / "vizvi" / "__init__.py"
    # The project's other folders are not installed as packages.
    assert _run([sys.executable, "-c", "import bench"], cwd=tmp_path).returncode != 0


def test_console_command_lists_the_models(tmp_path, vizvi_command):
    from vizvi.models import MODELS

    proc = _run([vizvi_command, "list"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("models:")
    for name in MODELS:
        assert f"  {name} " in proc.stdout
    # `python -m vizvi` works outside the checkout too.
    proc = _run([sys.executable, "-m", "vizvi", "list"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("models:")


def test_console_command_writes_relative_paths_in_the_working_folder(tmp_path, vizvi_command):
    proc = _run([vizvi_command, "run", "--model", "normal-mean", "--steps", "50", "--json", "out.json",
                 "--csv", "history.csv", "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "out.json").read_text())
    assert record["config"]["model"] == "normal-mean"
    assert record["status"] == "finished" and record["steps"] == 50
    assert (tmp_path / "history.csv").read_text().startswith("step,")
    assert not (REPO / "out.json").exists()


@pytest.mark.parametrize(
    "args, argument",
    [
        (["--bogus", "1"], "--bogus"),  # argparse's error: exits inside the parser
        (["--model", "nope"], "--model"),  # a ConfigError: main() returns 2, the script exits with it
    ],
)
def test_console_command_bad_argument_exits_2_with_one_line(tmp_path, vizvi_command, args, argument):
    proc = _run([vizvi_command, "run", "--json", "x.json", "--steps", "5", *args], cwd=tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert argument in lines[0]
    assert not (tmp_path / "x.json").exists()


def _source_files(root: Path) -> set:
    return {p.relative_to(root).as_posix() for ext in ("py", "js") for p in (root / "vizvi").rglob(f"*.{ext}")
            if "__pycache__" not in p.parts}


def test_wheel_ships_vizvi_with_its_data_and_nothing_else(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "requirements.txt", "requirements-test.txt", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "vizvi", src / "vizvi", ignore=shutil.ignore_patterns("__pycache__"))
    # Folders next to vizvi/ in the checkout, which must stay out of the wheel.
    for folder in ("bench", "tests", "app_pages"):
        (src / folder).mkdir()
        (src / folder / "__init__.py").write_text("")
    proc = _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                 "--wheel-dir", tmp_path / "dist", src], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp_path / "dist").glob("vizvi-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    shipped = {n for n in names if ".dist-info/" not in n}
    assert shipped == _source_files(src)
    assert "vizvi/live_chart.js" in shipped
    assert "vizvi = vizvi.cli:main" in entry_points
    # The dependencies are requirements.txt's pins; the test tools only in the "test" extra.
    pins = [line for line in (REPO / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    requires = [line.removeprefix("Requires-Dist: ") for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    assert [r for r in requires if "extra ==" not in r] == pins
    assert all("extra ==" in r for r in requires if r.startswith(("pytest", "playwright")))


def test_dashboard_toolbar_has_no_deploy_button():
    # "viewer" hides the developer options (Deploy, Rerun, Clear cache); "minimal" hides more.
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "viewer"
    # Streamlit reads it as such from the repository root (where `make run` starts it).
    code = ("from streamlit import config; config.get_config_options(force_reparse=True); "
            "print(config.get_option('client.toolbarMode'))")
    proc = _run([sys.executable, "-c", code], cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "viewer"
