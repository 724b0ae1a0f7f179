"""Poisson counts with a Gamma prior on the rate, in float64: one positive scalar latent, so it
is offered on its own scale (Gamma and LogNormal families) like the built-in poisson-gamma; its
exact posterior is Gamma(2 + sum(counts), 1 + n) = Gamma(42, 11)."""

import numpy as np
import tensorflow_probability as tfp

tfd = tfp.distributions

counts = np.array([3, 5, 4, 6, 2, 4, 5, 3, 4, 4], dtype=np.float64)

joint = tfd.JointDistributionNamed(dict(
    rate=tfd.Gamma(np.float64(2.0), np.float64(1.0)),
    counts=lambda rate: tfd.Sample(tfd.Poisson(rate), 10),
))

observed = {"counts": counts}
reference = {"latent_mean": {"rate": 42.0 / 11.0}, "latent_sd": {"rate": 42.0 ** 0.5 / 11.0}}
