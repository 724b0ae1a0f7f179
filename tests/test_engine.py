"""The compiled core and the Run: every combination, faults, reproducibility, no retracing."""

import itertools
import subprocess
import sys
import json

import numpy as np
import pytest
import tensorflow as tf

from vizvi.engine import (
    EngineState, Run, RunConfig, StepInputs, StructuralKey, build_chunk_fn, get_chunk_fn, validate,
)
from vizvi.errors import ConfigError
from vizvi.estimators import EstimatorName, unavailable
from vizvi.families import FAMILIES, get_family, resolve_init
from vizvi.models import MODELS, get_model
from vizvi.optimizers import OptimizerName
from vizvi.parameterizations import ParameterMap, Parameterization

MODEL_FOR_FAMILY = {
    "normal": "normal-mean",
    "lognormal": "poisson-gamma",
    "gamma": "poisson-gamma",
    "beta": "beta-bernoulli",
    "mean-field-normal": "logistic-regression",
    "full-rank-normal": "correlated-gaussian",
}


def _run_chunk(fn, opt, model, family, parameterization, data, lr, steps, variance_every=1, theta0=None):
    pm = ParameterMap(family.constraints, parameterization)
    u0 = pm.unconstrain(theta0 if theta0 is not None else family.defaults)
    state = EngineState(u0, opt.init(u0), tf.constant(0, tf.int64), tf.zeros([family.size], tf.int64))
    inputs = StepInputs(tf.constant([1, 2], tf.int32), tf.constant(lr, tf.float64), tf.constant(0, tf.int32),
                        tf.constant(variance_every, tf.int64), data)
    return fn(state, inputs, tf.constant(steps, tf.int32))


@pytest.mark.parametrize(
    "family, parameterization, estimator, optimizer",
    [(f, p, e, o) for f, p, e, o in itertools.product(FAMILIES, [p.value for p in Parameterization],
                                                     [e.value for e in EstimatorName], [o.value for o in OptimizerName])
     if EstimatorName(e) not in unavailable(FAMILIES[f], 4)],
)
def test_every_allowed_combination_runs_a_chunk_with_finite_telemetry(family, parameterization, estimator, optimizer):
    # The same chunk code the compiled path runs, executed without XLA so that all the
    # combinations fit in the suite; the compiled path is exercised per model below.
    model = get_model(MODEL_FOR_FAMILY[family])
    f = get_family(family, model)
    data = model.data_tensors(model.simulate(40, 0))
    key = StructuralKey(model.name, family, parameterization, estimator, optimizer, 4, 3)
    fn, opt = build_chunk_fn(key, jit=False, chunk_steps=3)
    state, tel, info = _run_chunk(fn, opt, model, f, parameterization, data, lr=1e-3, steps=3)
    assert int(info.count) == 3 and int(info.fault) == 0
    for field in ("elbo", "theta", "u", "grad", "grad_theta", "update", "grad_variance", "grad_snr", "lr"):
        values = getattr(tel, field).numpy()
        assert np.all(np.isfinite(values)), (field, values)
    assert np.all(tel.has_variance.numpy())
    assert np.all(tel.grad_variance.numpy() >= 0)
    assert list(tel.step.numpy()) == [1, 2, 3]
    assert not np.allclose(tel.theta.numpy()[0], tel.theta.numpy()[2])  # it moved
    assert np.all(np.asarray(f.in_support(tf.constant(tel.theta.numpy()))))


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_runs_compiled(model):
    run = Run(RunConfig(model=model, steps=300, seed=1))
    run.run()
    assert run.status == "finished" and run.step == 300
    s = run.history.series()
    assert len(s["step"]) == 300 and np.all(np.isfinite(s["elbo"])) and np.all(np.isfinite(s["theta"]))
    v = run.history.variance_series()
    assert list(v["step"]) == [1, 101, 201]
    # SNR telemetry is |mean| / sd of the single-estimate gradient, from the same replicates.
    assert np.all(v["grad_variance"] > 0) and np.all(np.isfinite(v["grad_snr"]))
    # ELBO estimates approach the exact or grid log evidence from below.
    assert np.mean(s["elbo"][-50:]) <= run.reference.log_evidence + 0.5
    assert np.mean(s["elbo"][-50:]) > np.mean(s["elbo"][:10])


@pytest.mark.parametrize(
    "changes, argument",
    [
        ({"model": "poisson"}, "model"),
        ({"family": "normal"}, "family"),
        ({"family": "beta"}, "family"),
        ({"model": "correlated-gaussian", "family": "gamma"}, "family"),
        ({"estimator": "reinforce"}, "estimator"),
        ({"estimator": "score-baseline", "samples": 1}, "samples"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"parameterization": "log"}, "parameterization"),
        ({"lr": 0}, "lr"),
        ({"lr": -0.1}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"lr": 1e300}, "lr"),
        ({"samples": 0}, "samples"),
        ({"samples": 1_000_000}, "samples"),
        ({"replicates": 1}, "replicates"),
        ({"samples": 4096, "replicates": 256, "model": "logistic-regression", "n": 100}, "samples"),
        ({"steps": -5}, "steps"),
        ({"schedule": "cosine"}, "schedule"),
        ({"n": 0}, "n"),
        ({"seed": -1}, "seed"),
        ({"init": "concentration=-2"}, "init"),
    ],
)
def test_disallowed_settings_raise_a_clear_error(changes, argument):
    with pytest.raises(ConfigError) as err:
        Run(RunConfig(**changes))
    assert err.value.argument == argument
    assert str(err.value).startswith(argument + ": ")


def test_no_retrace_when_numeric_settings_change():
    base = RunConfig(model="logistic-regression", family="full-rank-normal", steps=20, variance_every=5, replicates=8)
    run = Run(base)
    fn, _ = get_chunk_fn(run.key)
    run.run()
    traces = fn.experimental_get_tracing_count()
    assert traces == 1
    run.update_settings(lr=0.01, schedule="robbins-monro", variance_every=3)
    run.advance(10)
    for changes in ({"seed": 9}, {"n": 57}, {"n": 211, "lr": 0.2}, {"init": "loc[0]=0.3,scale_tril[1,0]=0.2"}, {"init": "random"}):
        Run(RunConfig(**{**base.__dict__, **changes})).run()
    assert fn.experimental_get_tracing_count() == traces


def test_runs_are_reproducible_and_independent_of_chunking():
    config = RunConfig(model="poisson-gamma", steps=2500, seed=4, variance_every=7)
    a = Run(config).run()
    b = Run(config)
    for k in (1, 999, 1500):  # uneven pieces crossing chunk boundaries
        b.advance(k)
    sa, sb = a.history.series(), b.history.series()
    for field in ("elbo", "theta", "grad", "update"):
        np.testing.assert_array_equal(sa[field], sb[field])
    np.testing.assert_array_equal(a.history.variance_series()["grad_snr"], b.history.variance_series()["grad_snr"])
    c = Run(RunConfig(model="poisson-gamma", steps=50, seed=5)).run()
    assert not np.array_equal(sa["elbo"][:50], c.history.series()["elbo"])


def test_huge_learning_rate_diverges_cleanly():
    run = Run(RunConfig(model="poisson-gamma", optimizer="sgd", lr=1e4, steps=100_000))
    run.run()
    assert run.status == "diverged"
    assert run.step < 10
    d = run.divergence
    assert d["parameter"] in ("concentration", "rate") and d["step"] == run.step + 1
    assert "diverged at step" in d["message"] and d["parameter"] in d["message"]
    # The last finite state is kept and is a valid q.
    assert np.all(np.isfinite(run.theta)) and np.all(run.theta > 0)
    assert run.advance(10) == 0  # a diverged run does not continue
    diagnosis = run.diagnose()
    assert diagnosis[d["parameter"]]["status"] == "diverged"


def test_huge_learning_rate_cli_never_hangs(tmp_path):
    # The failure mode this guards: an infinite Gamma concentration fed to XLA's sampler loops
    # forever. Any hang fails here through the timeout.
    out = tmp_path / "run.json"
    for optimizer, lr in (("adam", 1e5), ("momentum", 1e5)):
        proc = subprocess.run(
            [sys.executable, "-m", "vizvi", "run", "--model", "poisson-gamma", "--family", "gamma",
             "--parameterization", "identity", "--optimizer", optimizer, "--lr", str(lr), "--steps", "50000",
             "--json", str(out), "--quiet"],
            capture_output=True, text=True, timeout=180,
        )
        assert proc.returncode == 0, proc.stderr
        record = json.loads(out.read_text())
        assert record["status"] == "diverged"
        assert all(v is not None and np.isfinite(v) for v in record["final"]["params"].values())


def test_identity_parameterization_projects_and_counts():
    run = Run(RunConfig(model="poisson-gamma", parameterization="identity", optimizer="adam", lr=0.3,
                        init="concentration=0.5,rate=0.2", steps=300))
    run.run()
    projections = run.state.projections.numpy()
    assert projections.sum() > 0
    assert np.all(run.history.series()["theta"] > 0)
    assert run.record()["final"]["projections"]["concentration"] == int(projections[0])


def test_conjugate_models_reach_the_exact_posterior_natural_quickly():
    for model, family in (("poisson-gamma", "gamma"), ("normal-mean", "normal"), ("beta-bernoulli", "beta"),
                          ("correlated-gaussian", "full-rank-normal")):
        run = Run(RunConfig(model=model, family=family, optimizer="natural", steps=300)).run()
        assert run.kl_to_exact() < 0.01, (model, run.kl_to_exact())
        np.testing.assert_allclose(run.theta, run.optimum, rtol=0.1, atol=0.05)
    run = Run(RunConfig(model="normal-mean", optimizer="adam", steps=3000)).run()
    assert run.kl_to_exact() < 0.01


def test_mean_field_finds_the_too_narrow_optimum():
    run = Run(RunConfig(model="correlated-gaussian", family="mean-field-normal", optimizer="adam", lr=0.02, steps=3000)).run()
    np.testing.assert_allclose(run.theta, run.optimum, atol=0.06)
    assert run.optimum[2] < 0.5  # sqrt(1 - 0.9^2) = 0.436: far narrower than the marginal sd of 1


def _steps_to_kl(run, threshold, limit):
    while run.step < limit:
        run.advance(50)
        if run.kl_to_exact() < threshold:
            return run.step
    return None


def test_natural_gradient_beats_adam_on_poisson_gamma_by_far():
    natural = _steps_to_kl(Run(RunConfig(model="poisson-gamma", optimizer="natural", steps=10**6)), 0.05, 2000)
    adam = Run(RunConfig(model="poisson-gamma", optimizer="adam", lr=0.05, steps=5000)).run()
    assert natural is not None and natural <= 300
    assert adam.kl_to_exact() > 1.0  # still far after 5000 steps: the stall


def test_settings_change_mid_run_applies_from_next_step():
    run = Run(RunConfig(model="normal-mean", steps=10_000))
    run.advance(100)
    events = run.update_settings(lr=0.005, estimator="stl", optimizer="rmsprop")
    assert {e["setting"] for e in events} == {"lr", "estimator", "optimizer"}
    assert all(e["step"] == 100 for e in events)
    run.advance(100)
    s = run.history.series()
    assert np.all(s["lr"][:100] == 0.05) and np.all(s["lr"][100:] == 0.005)
    assert run.config.estimator == "stl" and run.config.optimizer == "rmsprop"
    with pytest.raises(ConfigError) as err:
        run.update_settings(family="gamma")
    assert err.value.argument == "family"
    with pytest.raises(ConfigError):
        run.update_settings(lr=-1)
    assert run.config.lr == 0.005  # a bad value leaves the run as it was
    # Switching the optimizer without a learning rate takes that optimizer's default.
    run.update_settings(optimizer="natural")
    assert run.config.lr == 0.1


def test_kl_telemetry_is_the_analytic_kl():
    run = Run(RunConfig(model="beta-bernoulli", steps=20)).run()
    s = run.history.series()
    assert run.kl_kind == "analytic"
    # KL before the last update equals the analytic KL at the previous parameters.
    import tensorflow_probability as tfp

    prev = tf.constant(s["theta"][-2], tf.float64)
    expected = tfp.distributions.kl_divergence(run.family.build(prev), run.model.exact_posterior(run.data)).numpy()
    assert s["kl"][-1] == pytest.approx(float(expected), rel=1e-10)
    lognormal = Run(RunConfig(model="poisson-gamma", family="lognormal", steps=5))
    assert lognormal.kl_kind.startswith("log evidence")


def test_theta_follows_the_state_and_is_a_copy():
    run = Run(RunConfig(model="poisson-gamma", steps=100))
    run.compile()
    first = run.theta
    first[0] = -1.0  # a caller's copy: the run is unaffected
    np.testing.assert_allclose(run.theta, run.param_map.constrain(run.state.u).numpy())
    run.advance(10)
    np.testing.assert_allclose(run.theta, run.param_map.constrain(run.state.u).numpy())
    assert not np.allclose(run.theta, run.theta0)


def test_step_is_callable_alone_and_is_the_chunk_s_first_row():
    """``engine.step`` is the chunk's body: one call gives the first row of a chunk's telemetry."""
    from vizvi.engine import Fault, Telemetry, chunk, initial_state, make_problem, step

    key = StructuralKey("poisson-gamma", "gamma", "softplus", "pathwise", "adam", 4, 3)
    problem = make_problem(key)
    model = problem.model
    data = model.data_tensors(model.simulate(40, 0))
    state = initial_state(problem, problem.param_map.unconstrain(problem.family.defaults))
    inputs = StepInputs(tf.constant([1, 2], tf.int32), tf.constant(0.05, tf.float64), tf.constant(1, tf.int32),
                        tf.constant(1, tf.int64), data)
    new_state, info = step(problem, state, inputs)
    assert int(info.fault) == Fault.NONE and int(new_state.step) == 1
    assert bool(info.has_variance) and np.all(np.isfinite(info.grad_variance.numpy()))
    # robbins-monro at step 0 is the base rate
    assert float(info.lr) == pytest.approx(0.05)
    _, tel, chunk_info = chunk(problem, state, inputs, tf.constant(2, tf.int32), chunk_steps=2)
    assert int(chunk_info.count) == 2
    for field in Telemetry._fields:
        np.testing.assert_array_equal(getattr(tel, field).numpy()[0], getattr(info, field).numpy(), err_msg=field)


def test_a_faulting_step_commits_nothing():
    from vizvi.engine import Fault, initial_state, make_problem, step

    problem = make_problem(StructuralKey("poisson-gamma", "gamma", "softplus", "pathwise", "sgd", 4, 3))
    data = problem.model.data_tensors(problem.model.simulate(40, 0))
    state = initial_state(problem, problem.param_map.unconstrain(problem.family.defaults))
    inputs = StepInputs(tf.constant([1, 2], tf.int32), tf.constant(1e300, tf.float64), tf.constant(0, tf.int32),
                        tf.constant(0, tf.int64), data)
    new_state, info = step(problem, state, inputs)
    assert Fault(int(info.fault)) in (Fault.GRADIENT, Fault.PARAMETER)
    np.testing.assert_array_equal(new_state.u.numpy(), state.u.numpy())
    assert int(new_state.step) == 0


def test_schedules_are_named_callables():
    from vizvi import schedules

    lr, t = tf.constant(0.1, tf.float64), tf.constant(900.0, tf.float64)
    for i, (name, sched) in enumerate(schedules.SCHEDULES.items()):
        assert float(schedules.learning_rate(tf.constant(i), lr, t)) == pytest.approx(float(sched.rule(lr, t)))
    assert float(schedules.robbins_monro(lr, t)) == pytest.approx(0.1 * 10 ** -0.6)
    assert schedules.schedule_index("robbins-monro") == 1
