"""vizvi dashboard entry: page config, the frame every page shares, and the router."""

import streamlit as st

from vizvi import ui

ui.keep_tensorflow_state_across_reruns()
ui.share_the_interpreter_with_the_trainer()

st.set_page_config(page_title="vizvi: watch variational inference", page_icon="📈", layout="wide",
                   initial_sidebar_state="expanded")

pages = [
    st.Page("pages/run.py", title="Run", icon=":material/monitoring:", default=True),
    st.Page("pages/guide.py", title="Guide", icon=":material/menu_book:"),
]
st.navigation(pages).run()
st.caption("vizvi: gradient-based variational inference, made visible · TensorFlow Probability + Streamlit + Plotly")
