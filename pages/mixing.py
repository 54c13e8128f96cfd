"""Mixing page: the accuracy matrix as a heatmap (for a sweep: the metric of each task,
selectable where a task has several and recorded with the matrix, and a link from each
matrix cell to the Compare page), the paper's validation protocol for a sweep (predicted
vs observed with paired interval bars, mean/median |error| next to the paper's,
leave-one-out, optimized mixtures against the alternatives), the optimizer with its
objective and bounds, what-if sliders that show predicted per-task accuracy as weights
move, and building the mixed dataset as a job."""

import io
import json

import numpy as np
import pandas as pd
import streamlit as st

from cookbook_core.errors import BadInput, CookbookError
from cookbook_core.mix import build as mix_build
from cookbook_core.mix import cells, mixing, protocol, sweep
from cookbook_core.studio import figures_mix
from cookbook_core.studio import widgets as studio_widgets

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

sweep_name = choice.removesuffix(".csv")
sweep_cfg = sweep.load(sweep_name) if sweep_name in sweep.list_sweeps() else None
if sweep_cfg is not None:
    recorded = sweep.metrics_of(sweep_cfg)
    picked_metrics = dict(recorded)
    several = [t for t in sweep_cfg.tasks if len(cells.matrix_metrics(t)) > 1]
    if several:
        with st.expander("Metric per task", expanded=False):
            cols = st.columns(min(4, len(several)))
            for i, t in enumerate(several):
                offered = list(cells.matrix_metrics(t))
                picked_metrics[t] = cols[i % len(cols)].selectbox(
                    t, offered, index=offered.index(recorded[t]), key=f"mix_metric::{t}"
                )
    if picked_metrics != recorded:
        sweep_cfg = sweep.SweepConfig(**{**sweep_cfg.to_dict(), "metrics": picked_metrics})
        raw = sweep.matrix(sweep_cfg, write=False)
        changed = ", ".join(f"{t} {m}" for t, m in picked_metrics.items() if recorded[t] != m)
        st.warning(f"Showing {changed}, read from the stored cells; not recorded yet.")
        if st.button("Record these metrics with the matrix", key="mix_metric_record"):
            try:
                sweep.record_metrics(sweep.load(sweep_name), picked_metrics)
            except BadInput as exc:
                st.error(str(exc))
            else:
                st.rerun()
    st.caption(
        "Metric per task: "
        + ", ".join(f"{t} **{m}**" for t, m in sweep.metrics_of(sweep_cfg).items())
    )
elif choice != "(upload a CSV)" and sweep.matrix_note(root / choice).get("metrics"):
    note = sweep.matrix_note(root / choice)["metrics"]
    st.caption("Metric per task: " + ", ".join(f"{t} **{m}**" for t, m in note.items()))

try:
    raw = raw.astype(float)
except ValueError as exc:
    st.error(f"The matrix must hold numbers: {exc}")
    st.stop()
st.plotly_chart(figures_mix.heatmap_figure(raw), width="stretch")
if sweep_cfg is not None:
    matrix_cells = [(t, k) for t in raw.index for k in raw.columns if np.isfinite(raw.at[t, k])]
    if matrix_cells:
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        which = c1.selectbox(
            "Compare a matrix cell's model with the base model",
            range(len(matrix_cells)),
            format_func=lambda i: f"{matrix_cells[i][0]} × {matrix_cells[i][1]}",
            key="mix_compare_cell",
        )
        template, task = matrix_cells[which]
        studio_widgets.page_link(
            "pages/compare.py",
            "Open in Compare",
            {"sweep": sweep_name, "cell": template, "task": task},
            icon=":material/compare:",
            where=c2,
        )
gaps = [(t, k) for t in raw.index for k in raw.columns if not np.isfinite(raw.at[t, k])]
if gaps:
    st.warning(
        f"{len(gaps)} cell(s) not measured yet: "
        + ", ".join(f"({t}, {k})" for t, k in gaps)
        + ". The optimizer below uses only the complete rows; finish the sweep with "
        "`cookbook mix sweep NAME`."
    )
    raw = raw.dropna()
try:
    A_all = mixing.check_matrix(raw)
except BadInput as exc:
    st.error(str(exc))
    st.stop()

A = A_all.drop(index=["base"], errors="ignore")
templates = list(A.index)
if not templates:
    st.error("The matrix has no complete template rows besides 'base'.")
    st.stop()


@st.cache_data(ttl=120, show_spinner="Bootstrapping the validation protocol…")
def _protocol(sweep_json: str) -> dict:
    return protocol.run(sweep.SweepConfig(**json.loads(sweep_json)), n_boot=500)


if sweep_cfg is not None:
    with st.expander("Does the linear model hold? (this sweep's validation mixtures)", True):
        try:
            proto = _protocol(json.dumps(sweep_cfg.to_dict(), sort_keys=True))
        except BadInput as exc:
            st.info(str(exc))
        else:
            group, s = protocol.headline(proto)
            loo = proto.get("loo_stats") or {}
            mean_ci = protocol.ci_text(s["mean_abs_error"], s["mean_lo"], s["mean_hi"], digits=2)
            median_ci = protocol.ci_text(
                s["median_abs_error"], s["median_lo"], s["median_hi"], digits=2
            )
            m1, m2, m3, m4 = st.columns(4)
            m1.metric(
                "mean |error|",
                f"{s['mean_abs_error']:.2f} pts",
                help=f"{group}; 95% CI {mean_ci}; paper: 1.4",
            )
            m2.metric(
                "median |error|",
                f"{s['median_abs_error']:.2f} pts",
                help=f"{group}; 95% CI {median_ci}; paper: 0.4",
            )
            m3.metric(
                "leave-one-out mean |error|",
                f"{loo['mean_abs_error']:.2f} pts" if loo else "—",
                help="each mixture predicted from a matrix fitted without it",
            )
            m4.metric("cells", s["cells"], help=group)
            st.plotly_chart(
                figures_mix.scatter_figure(
                    pd.DataFrame(proto["fit"]),
                    "Predicted vs observed (bars: paired 95% interval of observed - predicted)",
                ),
                width="stretch",
            )
            st.dataframe(protocol.stats_frame(proto), hide_index=True, width="stretch")
            for line in protocol.fit_verdicts(proto):
                st.markdown(f"- {line}")
            st.dataframe(protocol.fit_frame(proto), hide_index=True, width="stretch")
            if proto["optimized"]:
                st.markdown(
                    "**Optimized mixture(s) vs the base model, the uniform mixture and the best "
                    "single template** (points, paired 95% intervals)"
                )
                st.dataframe(protocol.models_table(proto), hide_index=True, width="stretch")
                st.dataframe(protocol.optimized_frame(proto), hide_index=True, width="stretch")
                for line in protocol.optimizer_verdicts(proto):
                    st.markdown(f"- {line}")

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
        st.plotly_chart(figures_mix.weights_figure(result), width="stretch")
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
        st.plotly_chart(figures_mix.what_if_figure(table), width="stretch")
        st.dataframe((100 * table).round(1), width="stretch")

st.subheader("Build the mixed dataset")
b1, b2, b3 = st.columns(3)
n_build = b1.number_input("Samples", 10, 10_000_000, 10_000, step=1000, key="build_n")
seed_build = b2.number_input("Seed", 0, 2**31 - 1, 0, key="build_seed")
if b3.button("Generate as a job", type="primary", disabled=total <= 0):
    try:
        job_id = mix_build.submit(
            weights, int(n_build), seed=int(seed_build), provenance={"objective": "what-if sliders"}
        )
    except (BadInput, CookbookError) as exc:
        st.error(str(exc))
    else:
        st.success(
            f"Queued job `{job_id}`: follow it on the Jobs page; the dataset appears on "
            "the Datasets page when it finishes."
        )
