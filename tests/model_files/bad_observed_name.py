import tensorflow_probability as tfp

tfd = tfp.distributions

joint = tfd.JointDistributionNamed(dict(mu=tfd.Normal(0.0, 1.0), y=lambda mu: tfd.Normal(mu, 1.0)))

observed = {"x": 1.0}
