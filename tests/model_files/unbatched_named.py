"""A JointDistributionNamed whose lambda cannot take a batch of draws (it indexes the draw's
own axis): the loader must find that and evaluate it draw by draw."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

x = np.linspace(-1.0, 1.0, 20).astype(np.float32)
y = (0.5 + 2.0 * x + 0.3 * np.sin(7 * x)).astype(np.float32)

joint = tfd.JointDistributionNamed(dict(
    w=tfd.Sample(tfd.Normal(0.0, 3.0), 2),
    y=lambda w: tfd.Independent(tfd.Normal(tf.reshape(w, [-1])[0] + tf.reshape(w, [-1])[1] * x, 0.5), 1),
))

observed = {"y": y}
