import tensorflow_probability as tfp

tfd = tfp.distributions

joint = tfd.Normal(0.0, 1.0)
observed = {"y": 1.0}
