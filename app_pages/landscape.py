"""The ELBO landscape page: the ELBO over the plane of a 2-parameter family's parameters, with the
paths several optimizers take across it, live.

Sidebar controls (from the landscape's settings table, restored from the URL) -> the story ->
the coordinates -> buttons -> the paths made, changed or dropped -> errors -> the URL -> the
landscape with its paths, and how each path went.
"""

import streamlit as st

from vizvi.ui import landscape

messages = landscape.query_messages()
landscape.sidebar_controls()
st.title("ELBO landscape")
st.markdown(
    "The ELBO over a grid of the variational family's two parameters, with the path each optimizer takes across it "
    "(vizvi's own engine, trained live: the same model, data, start, gradient estimator and seed for all).\n\n"
    "**Why a parameter stalls.** For a Gamma q on `poisson-gamma` the ELBO is a long, narrow valley along the line "
    "where q's mean matches the posterior's (concentration ≈ 3.9 × rate): across it the ELBO drops by hundreds to "
    "thousands, along it by only tens over thousands of units of concentration. From a concentration of 0.1, Adam "
    "(stepping in softplus coordinates) drops into the valley within a few hundred steps and then crawls along it: the "
    "gradient along the valley is small beside the ones it has seen, so each step moves the concentration by a small "
    "fraction of the learning rate (more gradient samples do not change that). The natural gradient steps in the "
    "natural parameters towards the optimum: with exact gradients every step is a fixed fraction of the straight line "
    "to it. With 16 Monte Carlo samples its first steps from so broad a q are noisy; with 256 its path in natural "
    "coordinates is straight. For the Gamma the natural parameters (concentration − 1, −rate) are an affine image of "
    "the parameters, so natural and constrained coordinates (and softplus, away from 0) look alike; log coordinates "
    "show the crawl best. Switching coordinates redraws the same runs; the table measures each path in the "
    "coordinates shown.")
st.caption(landscape.exact_caption())
landscape.coordinates_switch()
action = landscape.action_buttons()
errors = []
landscape.sync(action, errors)
for message in messages + errors:
    st.error(message)
st.query_params.from_dict(landscape.settings_for_url())
landscape.panel()
