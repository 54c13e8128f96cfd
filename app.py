"""Cookbook Studio: the Streamlit entry point.

Lists the studio's pages explicitly with ``st.navigation``; each page is a thin
script under ``pages/`` that reads widgets, calls ``cookbook_core`` and renders the
tables and figures it returns.  Start it with ``make studio``.
"""

import streamlit as st

from cookbook_core import threads

threads.configure_process()  # sleep-waiting OpenMP beside background jobs (before torch)
st.set_page_config(page_title="Cookbook Studio", page_icon=":material/menu_book:", layout="wide")

pages = [
    st.Page("pages/home.py", title="Overview", icon=":material/home:", default=True),
    st.Page("pages/templates.py", title="Templates", icon=":material/extension:"),
    st.Page("pages/datasets.py", title="Datasets", icon=":material/dataset:"),
    st.Page("pages/training.py", title="Training", icon=":material/model_training:"),
    st.Page("pages/evaluation.py", title="Evaluation", icon=":material/leaderboard:"),
    st.Page("pages/mixing.py", title="Mixing", icon=":material/tune:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("pages/alignment.py", title="Alignment", icon=":material/rule:"),
    st.Page("pages/selfguide.py", title="SELF-GUIDE", icon=":material/auto_fix_high:"),
    st.Page("pages/experiments.py", title="Experiments", icon=":material/science:"),
    st.Page("pages/jobs.py", title="Jobs", icon=":material/work_history:"),
]
st.navigation(pages).run()
