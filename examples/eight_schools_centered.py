"""Eight schools, centered (Rubin 1981; Gelman et al., Bayesian Data Analysis, section 5.5).

SAT coaching effects estimated in eight schools, each with a known standard error. The
centered form draws each school's effect theta[j] from Normal(mu, tau): as tau shrinks, the
thetas must crowd together, a funnel that mean-field VI (and plain HMC) handle badly. Mean-field
q's PSIS k-hat stays above 0.7 and its sd of mu is about half the posterior's (its tau lands
above the posterior's, about 6 against 3.5-3.9): compare with eight_schools_noncentered.py.

    make run MODEL=examples/eight_schools_centered.py
    python -m vizvi run --model-file examples/eight_schools_centered.py --steps 20000 --json out.json
"""

import numpy as np
import tensorflow_probability as tfp

tfd = tfp.distributions

title = "Eight schools, centered"
description = ("SAT coaching effects in 8 schools (Rubin 1981): theta_j ~ Normal(mu, tau), y_j ~ Normal(theta_j, sigma_j); "
               "mu ~ Normal(0, 5), tau ~ HalfCauchy(0, 5). In the centered form's funnel mean-field VI fails: PSIS k-hat above 0.7, mu's sd about half the posterior's.")

# Estimated treatment effects and their standard errors (Rubin 1981, Table 2).
effects = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], dtype=np.float32)
standard_errors = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], dtype=np.float32)


@tfd.JointDistributionCoroutineAutoBatched
def joint():
    mu = yield tfd.Normal(0.0, 5.0, name="mu")
    tau = yield tfd.HalfCauchy(0.0, 5.0, name="tau")
    theta = yield tfd.Sample(tfd.Normal(mu, tau), 8, name="theta")
    yield tfd.Normal(theta, standard_errors, name="y")


observed = {"y": effects}
