"""Model files: loading, the latent space, bad files' messages, and training on the examples."""

import math
import os

import numpy as np
import pytest

from vizvi._tf import tf
from vizvi.engine import Run, RunConfig
from vizvi.errors import ConfigError
from vizvi.families import families_for, get_family
from vizvi.model_file import ModelFileError, load_model_file, model_name, register_model_files
from vizvi.models import MODELS, Support
from vizvi.parameterizations import DTYPE

HERE = os.path.dirname(__file__)
FILES = os.path.join(HERE, "model_files")
EXAMPLES = os.path.join(os.path.dirname(HERE), "examples")


def model_path(name: str) -> str:
    return os.path.join(FILES, name)


def example_path(name: str) -> str:
    return os.path.join(EXAMPLES, name)


@pytest.fixture(scope="module")
def noncentered():
    return register_model_files([example_path("eight_schools_noncentered.py")])[0]


@pytest.fixture(scope="module")
def centered():
    return register_model_files([example_path("eight_schools_centered.py")])[0]


@pytest.mark.parametrize("filename, line, words", [
    ("bad_syntax.py", 5, "syntax error"),
    ("bad_no_joint.py", None, "defines no `joint`"),
    ("bad_not_a_joint.py", 5, "not a tfd.JointDistribution"),
    ("bad_no_observed.py", None, "defines no `observed`"),
    ("bad_observed_name.py", 7, "observed name 'x' is not a part of the joint; its parts are mu, y"),
    ("bad_shape.py", 11, "observed 'y' has shape (7,) but the joint's part 'y' has shape (8,)"),
    ("bad_initial_density.py", 7, "the log density is -inf at the initial point (rate=1)"),
    ("bad_raises.py", 7, "running the file raised FileNotFoundError: measurements.csv"),
])
def test_a_bad_model_file_is_named_with_its_line_and_what_is_wrong(filename, line, words):
    path = model_path(filename)
    with pytest.raises(ModelFileError) as info:
        load_model_file(path)
    error = info.value
    assert isinstance(error, ConfigError) and error.argument == "model-file"
    where = f"{path}:{line}: " if line else f"{path}: "
    assert error.message.startswith(where), error.message
    assert words in error.message


def test_a_missing_file_is_named():
    with pytest.raises(ModelFileError, match=r"nowhere\.py: cannot read the model file"):
        load_model_file(os.path.join(FILES, "nowhere.py"))


def test_a_bad_file_is_not_registered_and_the_built_ins_stay():
    before = dict(MODELS)
    with pytest.raises(ModelFileError):
        register_model_files([model_path("bad_shape.py")])
    assert MODELS == before


def test_model_names_come_from_file_names():
    assert model_name("a/b/eight_schools_centered.py") == "eight-schools-centered"
    assert model_name("My Model.v2.py") == "my-model-v2"


def test_registering_is_idempotent_and_names_are_unique(noncentered, tmp_path):
    assert register_model_files([example_path("eight_schools_noncentered.py")]) == [noncentered]
    clash = tmp_path / "poisson_gamma.py"
    clash.write_text(open(model_path("poisson_rate.py")).read())
    with pytest.raises(ModelFileError, match="a model called 'poisson-gamma' exists already"):
        register_model_files([str(clash)])


def test_the_latent_space_is_the_unobserved_parts_unconstrained(noncentered):
    m = noncentered
    assert m.support is Support.VECTOR and m.dim == 10
    assert m.coordinates == ("mu", "tau") + tuple(f"theta_tilde[{i}]" for i in range(8))
    assert families_for(m) == ["mean-field-normal", "full-rank-normal"]
    family = get_family("mean-field-normal", m)
    assert family.param_names[:3] == ("loc[mu]", "loc[tau]", "loc[theta_tilde[0]]")
    assert family.size == 20
    assert get_family("full-rank-normal", m).size == 10 + 55


def _eight_schools_log_density(z, y, se):
    """The non-centered eight schools' log density on z = (mu, log tau, theta_tilde), by hand."""
    mu, u, tt = z[0], z[1], z[2:]
    tau = math.exp(u)  # HalfCauchy's default event-space bijector is Exp
    normal = lambda x, m, s: -0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
    lp = normal(mu, 0.0, 5.0) + math.log(2 / (math.pi * 5.0 * (1 + (tau / 5.0) ** 2))) + u
    lp += sum(normal(t, 0.0, 1.0) for t in tt)
    lp += sum(normal(yj, mu + tau * t, s) for yj, t, s in zip(y, tt, se))
    return lp


@pytest.mark.parametrize("path", [example_path("eight_schools_noncentered.py"),
                                  model_path("eight_schools_sequential.py")])
def test_the_log_density_is_the_pinned_joint_plus_the_log_jacobian(path):
    m = load_model_file(path)
    y = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]
    se = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]
    z = np.random.default_rng(0).normal(size=(3, 4, 10))
    got = m.log_joint(tf.constant(z, DTYPE), {}).numpy()
    assert got.shape == (3, 4)
    want = np.array([[_eight_schools_log_density(z[i, j], y, se) for j in range(4)] for i in range(3)])
    # The model is float32 (TFP's documentation style): evaluated in its own dtype.
    np.testing.assert_allclose(got, want, rtol=2e-5)


def test_a_joint_that_cannot_take_a_batch_is_evaluated_draw_by_draw():
    m = load_model_file(model_path("unbatched_named.py"))
    assert not m.batched
    z = np.random.default_rng(1).normal(size=(5, 2))
    batched = m.log_joint(tf.constant(z, DTYPE), {}).numpy()
    single = [m.log_joint(tf.constant(z[i:i + 1], DTYPE), {}).numpy()[0] for i in range(5)]
    np.testing.assert_allclose(batched, single, rtol=1e-6)
    assert len(set(np.round(batched, 3))) == 5


def test_a_single_positive_scalar_is_offered_on_its_own_scale_and_reaches_the_exact_posterior():
    m = register_model_files([model_path("poisson_rate.py")])[0]
    assert m.support is Support.POSITIVE and m.dim == 1
    assert families_for(m) == ["lognormal", "gamma"]
    run = Run(RunConfig(model=m.name, family="gamma", optimizer="natural", lr=1.0, schedule="robbins-monro", steps=2000,
                        seed=1)).run()
    record = run.record()
    # The exact posterior is Gamma(2 + 40, 1 + 10); the file gives its moments as its reference.
    assert record["reference"] is None  # Run alone attaches none; the CLI and the page do
    assert record["final"]["latent_mean"]["rate"] == pytest.approx(42 / 11, rel=0.02)
    assert record["final"]["latent_sd"]["rate"] == pytest.approx(math.sqrt(42) / 11, rel=0.1)


def test_the_latent_moments_are_exact_for_real_parts_and_from_draws_for_the_others(noncentered):
    family = get_family("mean-field-normal", noncentered)
    theta = np.array([1.0, 0.5] + [0.0] * 8 + [2.0, 0.3] + [1.0] * 8)
    mean, sd = noncentered.latent_moments(family, theta)
    assert mean["mu"] == 1.0 and sd["mu"] == 2.0  # the identity: exact
    # tau = exp(u), u ~ Normal(0.5, 0.3): LogNormal moments, from 20,000 draws.
    assert mean["tau"] == pytest.approx(math.exp(0.5 + 0.045), rel=0.01)
    assert sd["tau"] == pytest.approx(math.exp(0.5 + 0.045) * math.sqrt(math.expm1(0.09)), rel=0.03)
    assert len(mean["theta_tilde"]) == 8


def test_prior_init_moment_matches_the_prior_of_z(noncentered):
    run = Run(RunConfig(model=noncentered.name, init="prior", steps=10))
    theta = run.theta
    # mu ~ Normal(0, 5): loc near 0, scale near 5; theta_tilde ~ Normal(0, 1).
    assert abs(theta[0]) < 0.5 and theta[10] == pytest.approx(5.0, rel=0.1)
    assert theta[12] == pytest.approx(1.0, rel=0.1)


def test_init_names_may_carry_a_part_index(noncentered):
    run = Run(RunConfig(model=noncentered.name, init="loc[theta_tilde[3]]=0.25,scale[mu]=2", steps=10))
    assert run.params()["loc[theta_tilde[3]]"] == 0.25 and run.params()["scale[mu]"] == 2.0
    with pytest.raises(ConfigError, match="has no parameter 'loc\\[theta\\[3\\]\\]'"):
        Run(RunConfig(model=noncentered.name, init="loc[theta[3]]=0", steps=10))


def test_every_estimator_and_optimizer_that_applies_trains_a_model_file(noncentered):
    """Every estimator on mean-field q, every optimizer on full-rank q (one compile each)."""
    from vizvi.estimators import ESTIMATORS, unavailable
    from vizvi.optimizers import OPTIMIZERS

    refused = unavailable(get_family("mean-field-normal", noncentered), 16)
    trained = []
    for estimator in ESTIMATORS:
        if estimator in refused:
            continue
        run = Run(RunConfig(model=noncentered.name, estimator=estimator.value, steps=200, lr=0.01)).run()
        assert run.status.value == "finished", (estimator, run.divergence)
        trained.append(estimator.value)
    assert len(trained) >= 4
    for optimizer in OPTIMIZERS:
        run = Run(RunConfig(model=noncentered.name, family="full-rank-normal", optimizer=optimizer.value, steps=200,
                            lr=0.001 if optimizer.value in ("sgd", "momentum") else None)).run()
        assert run.status.value == "finished", (optimizer, run.divergence)


def _trained_against_nuts(model, **settings):
    from vizvi import mcmc

    job = mcmc.reference_job(model, model.simulate(None, 0))
    run = Run(RunConfig(model=model.name, **settings)).run()
    assert job.wait(timeout=600) is not None, job.error
    run.attach_reference(job.result)
    return run


def _gap(check, name):
    return next(g for g in check["gaps"] if g["name"] == name)


def test_noncentered_eight_schools_mean_field_recovers_mu_and_passes_khat(noncentered):
    from vizvi.diagnostics import posterior_check

    run = _trained_against_nuts(noncentered, steps=20000, lr=0.01)
    check = posterior_check(run)
    mu = _gap(check, "mu")
    assert abs(mu["mean_gap"]) < 0.25 and 0.8 < mu["sd_ratio"] < 1.25, mu
    assert check["khat"] < 0.7
    record = run.record()
    assert record["reference"]["kind"] == "mcmc" and set(record["reference"]["latent_mean"]) == {"mu", "tau", "theta_tilde"}
    assert record["reference"]["mcmc"]["rhat_max"] < 1.05
    assert record["posterior_check"]["khat"] == check["khat"]


def test_centered_eight_schools_mean_field_is_called_unreliable(centered):
    """The funnel: mean-field q on the centered form is flagged by k-hat, and its mu is far too
    narrow against the reference (what the record and the page say)."""
    from vizvi.diagnostics import posterior_check

    run = _trained_against_nuts(centered, steps=20000, lr=0.01)
    check = posterior_check(run)
    assert check["khat"] > 0.7
    assert check["lines"][0].startswith(f"PSIS k-hat = {check['khat']:.2f} > 0.7")
    mu = _gap(check, "mu")
    assert mu["sd_ratio"] < 0.67 and "mu" in check["off"]
    assert any(line.startswith("mu: ") and "too narrow" in line for line in check["lines"])
    assert any("divergent transitions" in line for line in check["lines"])  # NUTS struggles with the funnel too


def test_the_regression_example_loads_trains_and_shows_mean_field_too_narrow():
    from vizvi.diagnostics import posterior_check

    model = register_model_files([example_path("breast_cancer_logistic.py")])[0]
    assert model.dim == 31 and get_family("mean-field-normal", model).size == 62
    run = _trained_against_nuts(model, steps=6000, lr=0.02)
    assert run.status.value == "finished"
    check = posterior_check(run)
    # Nearly collinear features: the posterior is strongly correlated and mean-field q's
    # marginal sds are too small for most coefficients.
    narrow = [g for g in check["gaps"] if g["name"].startswith("coefficients[") and g["sd_ratio"] < 0.8]
    assert len(narrow) >= 15
    assert run.record()["history"]["params"].keys() >= {"loc[coefficients[29]]", "scale[intercept]"}


def test_a_joint_evaluated_draw_by_draw_trains_compiled():
    m = register_model_files([model_path("unbatched_named.py")])[0]
    run = Run(RunConfig(model=m.name, steps=3000, lr=0.02)).run()
    assert run.status.value == "finished"
    # y = 0.5 + 2 x + a wiggle, 20 points, noise sd 0.5: the posterior mean is near (0.5, 2).
    w = run.record()["final"]["latent_mean"]["w"]
    assert w == pytest.approx([0.5, 2.0], abs=0.15)
