"""A 50-coefficient logistic regression for the benchmark: 1,000 simulated observations of 49
standard-normal features (seed 50) and an intercept, coefficients drawn from Normal(0, 0.5);
priors Normal(0, 1). float64. 100 variational parameters with mean-field q."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

_rng = np.random.default_rng(50)
features = _rng.normal(size=(1000, 49))
_true = _rng.normal(0.0, 0.5, size=50)
outcome = (_rng.random(1000) < 1.0 / (1.0 + np.exp(-(_true[0] + features @ _true[1:])))).astype(np.float64)

joint = tfd.JointDistributionNamed(dict(
    coefficients=tfd.Sample(tfd.Normal(np.float64(0.0), np.float64(1.0)), 50),
    outcome=lambda coefficients: tfd.Independent(
        tfd.Bernoulli(logits=coefficients[..., :1] + tf.linalg.matvec(features, coefficients[..., 1:]), dtype=tf.float64),
        reinterpreted_batch_ndims=1),
))

observed = {"outcome": outcome}
