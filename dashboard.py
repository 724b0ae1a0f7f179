"""vizvi dashboard entry: runtime set-up, page config, and the router over app_pages/."""

import streamlit as st

from vizvi.ui import model_files, runtime

runtime.keep_tensorflow_state_across_reruns()
runtime.share_the_interpreter_with_the_trainer()
runtime.end_closed_websockets_quietly()
# `streamlit run dashboard.py -- --model-file a.py`: loaded once per process; a bad file is
# reported on every page and the other models work.
model_file_errors = model_files.register_from_argv()
# `-- --max-training N` (or VIZVI_MAX_TRAINING): more training sessions than that queue.
serving_errors = runtime.configure_serving()

st.set_page_config(page_title="vizvi: watch variational inference", page_icon="📈", layout="wide",
                   initial_sidebar_state="expanded")
for message in model_file_errors:
    st.error(f"Model file not loaded: {message}", icon="📄")
for message in serving_errors:
    st.error(message)

pages = [
    st.Page("app_pages/run.py", title="Run", icon=":material/monitoring:", default=True),
    st.Page("app_pages/lab.py", title="Estimator lab", icon=":material/science:"),
    st.Page("app_pages/compare.py", title="Compare runs", icon=":material/compare:"),
    st.Page("app_pages/landscape.py", title="ELBO landscape", icon=":material/landscape:"),
    st.Page("app_pages/guide.py", title="Guide", icon=":material/menu_book:"),
]
st.navigation(pages).run()
st.caption("vizvi: gradient-based variational inference, made visible · TensorFlow Probability + Streamlit + Plotly")
