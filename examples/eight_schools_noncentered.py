"""Eight schools, non-centered (Rubin 1981; Gelman et al., Bayesian Data Analysis, section 5.5).

The same model as eight_schools_centered.py, written with standardized school effects:
theta_j = mu + tau * theta_tilde[j], theta_tilde[j] ~ Normal(0, 1). The latents are then nearly
independent a priori, the funnel is gone, and mean-field VI recovers mu's posterior.

    make run MODEL=examples/eight_schools_noncentered.py
    python -m vizvi run --model-file examples/eight_schools_noncentered.py --steps 20000 --json out.json
"""

import numpy as np
import tensorflow_probability as tfp

tfd = tfp.distributions

title = "Eight schools, non-centered"
description = ("SAT coaching effects in 8 schools (Rubin 1981), non-centered: theta_j = mu + tau * theta_tilde_j, "
               "theta_tilde_j ~ Normal(0, 1); mu ~ Normal(0, 5), tau ~ HalfCauchy(0, 5).")

# Estimated treatment effects and their standard errors (Rubin 1981, Table 2).
effects = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], dtype=np.float32)
standard_errors = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], dtype=np.float32)


@tfd.JointDistributionCoroutineAutoBatched
def joint():
    mu = yield tfd.Normal(0.0, 5.0, name="mu")
    tau = yield tfd.HalfCauchy(0.0, 5.0, name="tau")
    theta_tilde = yield tfd.Sample(tfd.Normal(0.0, 1.0), 8, name="theta_tilde")
    yield tfd.Normal(mu + tau * theta_tilde, standard_errors, name="y")


observed = {"y": effects}
