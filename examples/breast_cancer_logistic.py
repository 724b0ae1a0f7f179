"""Bayesian logistic regression on real data: Breast Cancer Wisconsin (Diagnostic).

569 tumours, 30 features of their cell nuclei computed from digitized images, and whether each
was malignant (data/breast_cancer_wisconsin.csv; see data/README.md for the source). The
features are standardized, so a Normal(0, 1) prior on each of the 30 coefficients is weakly
informative; the intercept gets Normal(0, 5). 31 latent coefficients: with mean-field q that
is 62 variational parameters. Many features are nearly collinear (radius, perimeter and area
correlate above 0.99), so the posterior is strongly correlated: mean-field q's marginal sds
come out far smaller than the reference's.

    make run MODEL=examples/breast_cancer_logistic.py
    python -m vizvi run --model-file examples/breast_cancer_logistic.py --steps 20000 --json out.json
"""

import os

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

title = "Logistic regression: breast cancer (31 coefficients)"
description = ("malignant ~ Bernoulli(sigmoid(b0 + X b)), 569 tumours x 30 standardized features (UCI Breast Cancer "
               "Wisconsin, Diagnostic); b ~ Normal(0, 1), b0 ~ Normal(0, 5).")

_table = np.genfromtxt(os.path.join(os.path.dirname(__file__), "data", "breast_cancer_wisconsin.csv"),
                       delimiter=",", skip_header=1)
features = _table[:, :30]
features = ((features - features.mean(axis=0)) / features.std(axis=0)).astype(np.float32)
malignant = _table[:, 30].astype(np.float32)

joint = tfd.JointDistributionNamed(dict(
    intercept=tfd.Normal(0.0, 5.0),
    coefficients=tfd.Sample(tfd.Normal(0.0, 1.0), 30),
    malignant=lambda intercept, coefficients: tfd.Independent(
        tfd.Bernoulli(logits=intercept[..., None] + tf.linalg.matvec(features, coefficients), dtype=tf.float32),
        reinterpreted_batch_ndims=1),
))

observed = {"malignant": malignant}
