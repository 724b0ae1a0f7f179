import tensorflow_probability as tfp

tfd = tfp.distributions


def load_data():
    raise FileNotFoundError("measurements.csv")


data = load_data()
