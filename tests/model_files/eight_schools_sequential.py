"""Eight schools (non-centered) written as a JointDistributionSequential with lambdas, the way
TFP's documentation writes such models: arguments in reverse order, float32 literals."""

import numpy as np
import tensorflow_probability as tfp

tfd = tfp.distributions

effects = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], dtype=np.float32)
standard_errors = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], dtype=np.float32)

joint = tfd.JointDistributionSequential([
    tfd.Normal(0.0, 5.0, name="mu"),
    tfd.HalfCauchy(0.0, 5.0, name="tau"),
    tfd.Sample(tfd.Normal(0.0, 1.0), 8, name="theta_tilde"),
    lambda theta_tilde, tau, mu: tfd.Independent(
        tfd.Normal(mu[..., None] + tau[..., None] * theta_tilde, standard_errors), 1, name="y"),
])

observed = {"y": effects}
