"""examples/eight_schools_noncentered.py in float64, so that the benchmark's competitor
(tfp.vi.fit_surrogate_posterior) and the engine compute in the same dtype."""

import numpy as np
import tensorflow_probability as tfp

tfd = tfp.distributions

effects = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
standard_errors = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
f64 = np.float64


@tfd.JointDistributionCoroutineAutoBatched
def joint():
    mu = yield tfd.Normal(f64(0.0), f64(5.0), name="mu")
    tau = yield tfd.HalfCauchy(f64(0.0), f64(5.0), name="tau")
    theta_tilde = yield tfd.Sample(tfd.Normal(f64(0.0), f64(1.0)), 8, name="theta_tilde")
    yield tfd.Normal(mu + tau * theta_tilde, standard_errors, name="y")


observed = {"y": effects}
