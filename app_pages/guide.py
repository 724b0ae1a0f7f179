"""The guide page: demos to open, what every choice means (from the registries), how to read the charts."""

import streamlit as st

from vizvi import estimators, optimizers
from vizvi.families import FAMILIES, families_for
from vizvi.models import MODELS
from vizvi.parameterizations import PARAMETERIZATIONS
from vizvi.presets import PRESETS
from vizvi.ui.demos import DEMOS, LAB_DEMOS

st.title("Guide")
st.markdown("**Try these** (each link opens the run page with the demo's settings; press Start):\n\n"
            + "\n".join(f"- [{title}](/?{query})" for title, query in DEMOS))
st.markdown("**In the estimator lab** (the variance explorer and the estimator race):\n\n"
            + "\n".join(f"- [{title}](/lab?{query})" for title, query in LAB_DEMOS))
st.markdown("**Compare runs** (each preset opens and starts with one click; its story is above its charts):\n\n"
            + "\n".join(f"- [{p.title}](/compare?preset={p.name}): {len(p.configs())} runs" for p in PRESETS.values()))
st.markdown("**The ELBO landscape**: [the Gamma stall's valley in log coordinates](/landscape?coordinates=log), "
            "[the same paths in natural coordinates](/landscape?coordinates=natural).")
st.markdown(
    "vizvi maximises the ELBO, **E_q[log p(x, z) − log q(z)]**, by stochastic gradient ascent on the parameters "
    "of q and shows every quantity as it changes. The **ELBO** chart approaches the log evidence from below; the "
    "gap is KL(q ‖ posterior). The **parameter** panels show each parameter in its own units with the KL-optimal "
    "value (where it has a closed form) as a dashed line. The **gradient** chart shows |∂ELBO/∂u| for the "
    "unconstrained value the optimizer moves, and the **estimator** chart the variance and signal-to-noise "
    "ratio of one gradient estimate, measured from independent replicates every K steps."
)
st.subheader("Models")
st.table({"model": list(MODELS), "what": [m.description for m in MODELS.values()],
          "families": [", ".join(families_for(m)) for m in MODELS.values()]})
st.markdown(
    "**Your own model**: start the dashboard with `make run MODEL=path/to/model.py` (or `streamlit run dashboard.py "
    "-- --model-file path/to/model.py`) and the model appears in the list. The file defines `joint` (a TFP "
    "`JointDistribution*`) and `observed` (part name -> values); see `examples/` (eight schools centered and "
    "non-centered, a 31-coefficient logistic regression). Its latents are fitted on their unconstrained scale "
    "(mean-field or full-rank Normal: ADVI), a NUTS reference is drawn in the background, and its ESS and R-hat shown."
)
st.subheader("Variational families")
st.table({"family": list(FAMILIES), "what": [f.title for f in FAMILIES.values()],
          "parameters": [f.describe_params() for f in FAMILIES.values()]})
st.subheader("Gradient estimators")
st.table({"estimator": [e.value for e in estimators.ESTIMATORS],
          "what": [s.description for s in estimators.ESTIMATORS.values()]})
st.subheader("Optimizers")
st.table({"optimizer": [o.value for o in optimizers.OPTIMIZERS], "what": [s.description for s in optimizers.OPTIMIZERS.values()],
          "default learning rate": [s.default_lr for s in optimizers.OPTIMIZERS.values()]})
st.subheader("Parameterizations of positive parameters")
st.table({"parameterization": [p.value for p in PARAMETERIZATIONS], "what": list(PARAMETERIZATIONS.values())})
st.subheader("Diagnosis")
st.markdown(
    "- **stalled (step-limited)**: the gradient keeps one sign window after window but the parameter moves too "
    "little to arrive soon: the optimizer's step is the bottleneck (try `natural`, or the `exp` parameterization).\n"
    "- **stalled (noise-limited)**: no window shows a reliable gradient direction: the estimator's noise drowns "
    "the signal (try `pathwise`, `stl`, more samples, or a Robbins-Monro schedule).\n"
    "- **diverged**: a non-finite ELBO, gradient or parameter stopped the run; the last finite state is kept.\n"
    "- **PSIS k-hat** (Yao, Vehtari, Simpson and Gelman 2018), measured every K steps from 1,000 draws of q: the "
    "shape of the importance weights' tail. Below 0.5 q is close to the posterior where it matters; 0.5-0.7 usable; "
    "above 0.7 the weights have effectively infinite variance and q is not to be trusted, whatever the ELBO says."
)
