"""Mixing page: the accuracy matrix as a heatmap, the optimizer with its objective and
bounds, and what-if sliders that show predicted per-task accuracy as weights move."""

import io

import pandas as pd
import streamlit as st

from cookbook_core import mixing
from cookbook_core.errors import BadInput

st.title("Mixing")
st.caption(
    "Cookbook-Mix assumes accuracy is linear in the mixture: "
    "acc_task(p) = Σ_t p_t · A[t, task], with A measured by training one model per template."
)

root = mixing.matrices_root()
files = sorted(root.glob("*.csv")) if root.is_dir() else []
choice = st.selectbox(
    "Accuracy matrix", ["(upload a CSV)"] + [f.name for f in files], index=1 if files else 0
)
if choice == "(upload a CSV)":
    upload = st.file_uploader(
        "CSV: first column the template ('base' for the untuned model), one column per task, "
        "accuracies in [0, 1]",
        type="csv",
    )
    if upload is None:
        st.info(
            "No accuracy matrix yet. Run a sweep (`cookbook mix sweep ...`, which writes "
            f"`{root}/<name>.csv`) or upload a CSV here."
        )
        st.stop()
    raw = pd.read_csv(io.BytesIO(upload.getvalue()), index_col=0)
else:
    raw = pd.read_csv(root / choice, index_col=0)

try:
    A_all = mixing.check_matrix(raw)
except BadInput as exc:
    st.error(str(exc))
    st.stop()

st.plotly_chart(mixing.heatmap_figure(A_all), width="stretch")
A = A_all.drop(index=["base"], errors="ignore")
templates = list(A.index)
if not templates:
    st.error("The matrix has no template rows besides 'base'.")
    st.stop()

left, right = st.columns(2)
with left:
    st.subheader("Optimize")
    objective = st.selectbox(
        "Objective",
        mixing.OBJECTIVES,
        index=1,
        key="mix_objective",
        help="mean: best average (lands on a vertex); maxmin: best worst task; "
        "entropy: mean plus temperature × entropy (spreads weight)",
    )
    temperature = st.number_input("Temperature (entropy)", 0.0001, 10.0, 0.01, format="%.4f")
    bounds = {}
    with st.expander("Per-template bounds"):
        for t in templates:
            lo, hi = st.slider(t, 0.0, 1.0, (0.0, 1.0), 0.05, key=f"bound::{t}")
            bounds[t] = (lo, hi)
    try:
        result = mixing.optimize(A, objective, bounds=bounds, temperature=temperature)
    except BadInput as exc:
        st.error(str(exc))
        result = None
    if result is not None:
        st.plotly_chart(mixing.weights_figure(result), width="stretch")
        st.caption(
            f"Objective value {100 * result.value:.1f} pts · worst task "
            f"{100 * min(result.predicted.values()):.1f} pts · mean "
            f"{100 * sum(result.predicted.values()) / len(result.predicted):.1f} pts"
        )
        if st.button("Use these weights in the what-if sliders"):
            for t in templates:
                st.session_state[f"w::{t}"] = round(result.weights[t], 2)
            st.rerun()

with right:
    st.subheader("What if")
    weights = {
        t: st.slider(t, 0.0, 1.0, round(1 / len(templates), 2), 0.01, key=f"w::{t}")
        for t in templates
    }
    total = sum(weights.values())
    if total <= 0:
        st.warning("Give at least one template a positive weight.")
    else:
        norm = {t: w / total for t, w in weights.items()}
        st.caption("normalized: " + ", ".join(f"{t} {w:.2f}" for t, w in norm.items()))
        reference = A_all.loc["base"] if "base" in A_all.index else None
        table = mixing.what_if(A, norm, reference)
        st.plotly_chart(mixing.what_if_figure(table), width="stretch")
        st.dataframe((100 * table).round(1), width="stretch")
