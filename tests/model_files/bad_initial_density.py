import numpy as np
import tensorflow_probability as tfp

tfd = tfp.distributions

# Exponential waiting times cannot be negative: the likelihood is -inf wherever the rate is.
joint = tfd.JointDistributionNamed(dict(
    rate=tfd.Gamma(2.0, 1.0),
    wait=lambda rate: tfd.Sample(tfd.Exponential(rate, force_probs_to_zero_outside_support=True), 3),
))

observed = {"wait": np.array([1.0, -2.0, 0.5], np.float32)}
