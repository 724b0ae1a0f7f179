"""The CLI contract scripts rely on."""

import json
import subprocess
import sys

import pytest

from vizvi.cli import main


def _vizvi(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "vizvi", *args], capture_output=True, text=True, timeout=timeout)


def test_run_writes_the_json_schema(tmp_path):
    out, csv_path, tb = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "tb"
    proc = _vizvi("run", "--model", "poisson-gamma", "--family", "gamma", "--parameterization", "exp",
                  "--init", "concentration=2,rate=0.5", "--estimator", "stl", "--samples", "8", "--optimizer", "natural",
                  "--lr", "0.2", "--steps", "400", "--seed", "3", "--variance-every", "25", "--replicates", "12",
                  "--json", str(out), "--csv", str(csv_path), "--tensorboard", str(tb), "--quiet")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    for key in ("config", "status", "steps", "elapsed_s", "steps_per_s", "final", "exact", "stalled", "diagnosis", "history"):
        assert key in r
    c = r["config"]
    assert (c["model"], c["family"], c["parameterization"], c["estimator"], c["samples"], c["optimizer"], c["lr"], c["steps"],
            c["seed"], c["variance_every"], c["replicates"], c["schedule"], c["n"]) == (
        "poisson-gamma", "gamma", "exp", "stl", 8, "natural", 0.2, 400, 3, 25, 12, "constant", 1000)
    assert r["status"] == "finished" and r["steps"] == 400
    assert set(r["final"]) >= {"elbo", "params", "kl_to_exact"}
    assert set(r["final"]["params"]) == {"concentration", "rate"}
    assert r["final"]["kl_to_exact"] < 0.05
    assert set(r["exact"]) >= {"params", "log_evidence"}
    assert r["exact"]["params"]["concentration"] > 1000
    h = r["history"]
    assert len(h["step"]) == len(h["elbo"]) == 400
    for group in ("params", "grads", "grad_variance", "grad_snr"):
        assert set(h[group]) == {"concentration", "rate"}
    assert len(h["grad_variance"]["rate"]) == len(h["variance_step"]) == 16
    # exp parameterization: params = exp(unconstrained), at every recorded step.
    import math

    assert all(abs(math.exp(u) - p) <= 1e-9 * p for u, p in zip(h["unconstrained"]["rate"], h["params"]["rate"]))
    assert isinstance(r["diagnosis"]["rate"], str) and isinstance(r["stalled"], list)
    assert csv_path.read_text().startswith("step,elbo,")
    assert any(tb.iterdir())


def test_exact_is_null_without_a_closed_form(tmp_path):
    out = tmp_path / "r.json"
    assert main(["run", "--model", "banana", "--steps", "50", "--json", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())
    assert r["exact"] is None and r["final"]["kl_to_exact"] is None
    assert r["reference"]["kind"] == "grid"


@pytest.mark.parametrize(
    "args, argument",
    [
        (["--lr", "abc"], "--lr"),
        (["--lr", "0"], "--lr"),
        (["--family", "normal"], "--family"),
        (["--model", "nope"], "--model"),
        (["--samples", "-3"], "--samples"),
        (["--estimator", "score-baseline", "--samples", "1"], "--samples"),
        (["--init", "rate=-1"], "--init"),
        (["--data", "/nonexistent.csv"], "--data"),
        (["--bogus", "1"], "--bogus"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, argument):
    proc = _vizvi("run", "--json", str(tmp_path / "x.json"), "--steps", "5", *args)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert argument in lines[0]


def test_csv_data_file(tmp_path):
    data = tmp_path / "counts.csv"
    data.write_text("count\n" + "\n".join(str(v) for v in [3, 5, 4, 6, 2] * 20))
    out = tmp_path / "r.json"
    assert main(["run", "--data", str(data), "--steps", "50", "--json", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())
    assert r["data"]["n"] == 100 and r["exact"]["params"]["concentration"] == 2 + 400


def test_list_names_every_choice(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for word in ("poisson-gamma", "banana", "full-rank-normal", "score-baseline", "natural", "identity", "gauss",
                 "measure-valued-coupled"):
        assert word in text


# -- vizvi variance ---------------------------------------------------------------------------
ESTIMATOR_NAMES = ["score", "score-baseline", "pathwise", "measure-valued", "measure-valued-coupled"]


def test_variance_writes_the_json_schema(tmp_path):
    out = tmp_path / "v.json"
    # --k=... with '=': a value that starts with '-' cannot follow --k as its own word.
    proc = _vizvi("variance", "--mu", "1", "--sigma", "1", "--k=-3:3:13", "--samples", "1", "--replicates", "3000",
                  "--seed", "2", "--cost", "gauss", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "100% of 3,000 replicates" in proc.stderr and str(out) in proc.stderr
    r = json.loads(out.read_text())
    assert {"k", "variance", "mean", "exact", "config"} <= set(r)
    assert len(r["k"]) == 13 and r["k"][0] == -3.0 and r["k"][-1] == 3.0
    for group in ("variance", "mean", "mean_stderr"):
        assert list(r[group]) == ESTIMATOR_NAMES
        assert all(set(per) == {"mu", "sigma"} and len(per["mu"]) == len(per["sigma"]) == 13 for per in r[group].values())
    assert set(r["exact"]) == {"mu", "sigma"} and len(r["exact"]["mu"]) == 13
    assert r["config"] == {"mu": 1.0, "sigma": 1.0, "k": r["k"], "cost": "gauss", "samples": 1, "replicates": 3000, "seed": 2}
    assert r["replicates"] == 3000 and r["elapsed_s"] > 0


def test_variance_quiet_writes_nothing_on_stderr(tmp_path, capfd):
    out = tmp_path / "v.json"
    assert main(["variance", "--k=-3:3:7", "--replicates", "5000", "--samples", "2", "--json", str(out), "--quiet"]) == 0
    assert capfd.readouterr().err == ""
    assert json.loads(out.read_text())["config"]["samples"] == 2


def test_variance_bad_argument_is_one_line_from_a_fresh_process(tmp_path):
    proc = _vizvi("variance", "--sigma", "0", "--json", str(tmp_path / "x.json"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["vizvi: error: argument --sigma: scale sigma must be positive, got 0.0"]


@pytest.mark.parametrize(
    "args, argument",
    [
        (["--k=1,x"], "--k"),
        (["--k", "-3:3:13"], "--k"),  # without '=': argparse's own error, with the hint
        (["--k=1:2:500"], "--k"),
        (["--sigma", "0"], "--sigma"),
        (["--sigma", "-1"], "--sigma"),
        (["--sigma", "abc"], "--sigma"),
        (["--replicates", "0"], "--replicates"),
        (["--replicates", "20000000"], "--replicates"),
        (["--replicates", "10000000", "--samples", "1000"], "--replicates"),  # over the work cap
        (["--cost", "cubic"], "--cost"),
        (["--samples", "0"], "--samples"),
    ],
)
def test_variance_bad_arguments_exit_2_with_one_line(tmp_path, capfd, args, argument):
    try:
        status = main(["variance", "--json", str(tmp_path / "x.json"), *args])
    except SystemExit as e:  # argparse's errors exit from inside parse_args
        status = e.code
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith(f"vizvi: error: argument {argument}:"), lines
    assert not (tmp_path / "x.json").exists()


def test_run_reports_the_latent_moments_of_q_and_of_the_reference(tmp_path):
    out = tmp_path / "r.json"
    assert main(["run", "--model", "poisson-gamma", "--steps", "300", "--json", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())
    params = r["final"]["params"]
    mean = params["concentration"] / params["rate"]
    assert r["final"]["latent_mean"] == {"rate": pytest.approx(mean, rel=1e-12)}
    assert r["final"]["latent_sd"]["rate"] == pytest.approx(params["concentration"] ** 0.5 / params["rate"], rel=1e-12)
    exact = r["exact"]["params"]
    assert r["reference"]["kind"] == "exact"
    assert r["reference"]["latent_mean"]["rate"] == pytest.approx(exact["concentration"] / exact["rate"], rel=1e-9)
    # 300 steps into the Gamma stall (softplus, Adam) q is far too wide: k-hat says so.
    assert r["final"]["khat"] > 0.7 and len(r["history"]["khat"]) == len(r["history"]["variance_step"])
    out2 = tmp_path / "v.json"
    assert main(["run", "--model", "correlated-gaussian", "--steps", "50", "--json", str(out2), "--quiet"]) == 0
    r2 = json.loads(out2.read_text())
    assert len(r2["final"]["latent_mean"]["z"]) == 2 and r2["reference"]["latent_mean"]["z"] == pytest.approx([1.0, -1.0])


def test_run_with_a_model_file_from_a_fresh_process(tmp_path):
    out = tmp_path / "r.json"
    proc = _vizvi("run", "--model-file", "examples/eight_schools_noncentered.py", "--steps", "3000", "--lr", "0.02",
                  "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert r["config"]["model"] == "eight-schools-noncentered" and r["status"] == "finished"
    assert set(r["final"]["latent_mean"]) == {"mu", "tau", "theta_tilde"} and len(r["final"]["latent_sd"]["theta_tilde"]) == 8
    assert r["reference"]["kind"] == "mcmc" and r["reference"]["mcmc"]["sampler"] == "NUTS"
    assert set(r["reference"]["latent_sd"]) == {"mu", "tau", "theta_tilde"}
    assert "loc[theta_tilde[3]]" in r["history"]["params"] and len(r["history"]["params"]) == 20
    assert "MCMC reference (NUTS" in proc.stderr


def test_run_with_a_file_given_reference_and_with_none(tmp_path):
    out = tmp_path / "r.json"
    assert main(["run", "--model-file", "tests/model_files/poisson_rate.py", "--steps", "50", "--json", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())
    assert r["reference"]["kind"] == "given" and r["reference"]["latent_mean"] == {"rate": pytest.approx(42 / 11)}
    assert main(["run", "--model-file", "tests/model_files/poisson_rate.py", "--reference", "none", "--steps", "50",
                 "--json", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["reference"] is None


def test_a_bad_model_file_exits_2_naming_the_file_and_line(tmp_path):
    proc = _vizvi("run", "--model-file", "tests/model_files/bad_shape.py", "--json", str(tmp_path / "x.json"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "vizvi: error: argument --model-file: tests/model_files/bad_shape.py:11: observed 'y' has shape (7,) but the "
        "joint's part 'y' has shape (8,)")


def test_list_and_compare_take_model_files(tmp_path, capsys):
    assert main(["list", "--model-file", "examples/eight_schools_centered.py"]) == 0
    assert "eight-schools-centered" in capsys.readouterr().out
    out = tmp_path / "c.json"
    assert main(["compare", "--model-file", "examples/eight_schools_centered.py", "--vary", "lr=0.01,0.02", "--steps", "200",
                 "--json", str(out), "--quiet"]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert [r["config"]["model"] for r in runs] == ["eight-schools-centered"] * 2
    assert all(set(r["final"]["latent_mean"]) == {"mu", "tau", "theta"} for r in runs)
