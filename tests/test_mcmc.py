"""NUTS references: right on a posterior known exactly, shared, bounded in time, cancellable."""

import dataclasses
import math
import os

import numpy as np
import pytest

from vizvi import mcmc
from vizvi.model_file import register_model_files

FILES = os.path.join(os.path.dirname(__file__), "model_files")


@pytest.fixture(scope="module")
def poisson_rate():
    return register_model_files([os.path.join(FILES, "poisson_rate.py")])[0]


@pytest.fixture(scope="module")
def reference(poisson_rate):
    job = mcmc.reference_job(poisson_rate, poisson_rate.simulate(None, 0))
    assert job.wait(timeout=300) is not None, job.error
    return job.result


def test_nuts_recovers_an_exact_gamma_posterior(reference):
    # Gamma(42, 11): mean 3.818, sd 0.589.
    info = reference.mcmc
    assert reference.kind == "mcmc" and info["sampler"] == "NUTS"
    assert info["chains"] == 4 and info["draws"] == 1000 and reference.draws.shape == (4000, 1)
    assert info["rhat_max"] < 1.01 and info["ess_bulk_min"] > 400
    standard_error = math.sqrt(42) / 11 / math.sqrt(info["ess_bulk_min"])
    assert abs(reference.latent_mean["rate"] - 42 / 11) < 4 * standard_error
    assert reference.latent_sd["rate"] == pytest.approx(math.sqrt(42) / 11, rel=0.1)
    assert math.isnan(reference.log_evidence)


def test_a_job_is_shared_per_model_and_data(poisson_rate, reference):
    dataset = poisson_rate.simulate(None, 0)
    job = mcmc.reference_job(poisson_rate, dataset)
    assert job is mcmc.reference_job(poisson_rate, dataset) and job.result is reference
    assert "min ESS" in job.describe() and "R-hat" in job.describe()


def test_a_sampler_over_its_time_limit_stops_with_a_message(poisson_rate):
    settings = dataclasses.replace(mcmc.DEFAULT, time_limit_s=0.0)
    job = mcmc.McmcJob(poisson_rate, settings)
    assert job.wait(timeout=120) is None and job.done
    assert "took longer than 0 s" in job.error and "needs 100" in job.error


def test_a_job_can_be_cancelled(poisson_rate):
    settings = dataclasses.replace(mcmc.DEFAULT, draws=10_000_000, time_limit_s=3600.0)
    job = mcmc.McmcJob(poisson_rate, settings)
    job.cancel()
    assert job.wait(timeout=120) is None and job.done
    assert job.error == "the MCMC reference was cancelled"


def test_a_file_given_reference_is_used_as_it_is(poisson_rate):
    given = mcmc.given_reference(poisson_rate)
    assert given.kind == "given" and given.latent_mean == {"rate": 42.0 / 11.0}
