import numpy as np
import tensorflow_probability as tfp

tfd = tfp.distributions

joint = tfd.JointDistributionNamed(dict(
    mu=tfd.Normal(0.0, 1.0),
    y=lambda mu: tfd.Sample(tfd.Normal(mu, 1.0), 8),
))

observed = {"y": np.zeros(7, np.float32)}
