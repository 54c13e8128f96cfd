"""Alignment page: does gold data, and does each model, follow a template's rule?
Per-task statistics, the alignment-vs-accuracy chart across runs, each run's gain over a
base run split by whether its answers follow the rule (does alignment explain the
gain?), and a per-example inspector with the rule's overlap spans highlighted in the
context."""

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from cookbook_core import paths
from cookbook_core.align import alignment, gain, live
from cookbook_core.align import runs as alignment_runs
from cookbook_core.errors import BadInput, CookbookError
from cookbook_core.serve import server
from cookbook_core.studio import evaluation as studio_eval
from cookbook_core.studio.figures_align import delta_figure, gain_split_figure
from cookbook_core.studio.highlight import highlight, legend, spans_from_evidence
from cookbook_core.train import adapters

st.title("Alignment")
st.caption(
    "Template alignment (Cookbook §5): apply a template's rule to real examples. Gold "
    "alignment asks whether the gold answer follows the rule; generation alignment whether "
    "a model's answer does."
)

default_dir = os.environ.get("COOKBOOK_EVAL_DATA") or str(
    paths.PROJECT_ROOT.parent / "shared" / "data"
)
with st.sidebar:
    template = st.selectbox("Template", list(alignment.RULES), key="al_template")
    task_names = alignment_runs.tasks_for_template(template)
    task = st.selectbox("Task", task_names, key="al_task")
    data_dir = st.text_input(
        "Data folder",
        default_dir,
        key="al_data",
        help="A folder laid out like ../shared/data (one subfolder per set)",
    )
    limit = st.slider("Rows", 10, 500, 100, 10, key="al_limit")

if not Path(data_dir).is_dir():
    st.info(
        f"Point the studio at evaluation data: a folder in the normalized schema, laid out like "
        f"`../shared/data` (e.g. `{data_dir}/squad_v1_1_dev/*.jsonl`), or set `COOKBOOK_EVAL_DATA`."
    )
    st.stop()


@st.cache_data(show_spinner="Applying the rule…")
def gold(template: str, task: str, data_dir: str, limit: int):
    rows, verdicts = alignment_runs.gold_alignment(template, task, data_dir, limit=limit)
    return rows, verdicts


try:
    rows, verdicts = gold(template, task, data_dir, limit)
except BadInput as exc:
    st.error(str(exc))
    st.stop()

summary = alignment.gold_summary(verdicts)
c1, c2, c3 = st.columns(3)
c1.metric("Examples", summary["examples"])
c2.metric("Gold alignment", f"{100 * summary['gold_alignment']:.1f}%")
c3.metric("Rule abstains", f"{100 * summary['abstained']:.1f}%")

runs = alignment_runs.runs_with_task(task)
frames: dict[str, pd.DataFrame] = {}
PCT_COLS = (
    "gold_alignment",
    "generation_alignment",
    "accuracy",
    "accuracy_aligned",
    "accuracy_unaligned",
)
if runs:
    st.subheader("All evaluation runs")
    st.caption(
        f"Every evaluation run in the workspace that has `{task}`: gold alignment, generation "
        "alignment and accuracy (%), also on the examples whose answer follows the rule "
        "(aligned) and the rest."
    )
    try:
        table = alignment_runs.runs_table(template, task)
    except BadInput as exc:
        st.warning(str(exc))
    else:
        shown_all = table.copy()
        for col in PCT_COLS:
            shown_all[col] = (100 * shown_all[col].astype(float)).round(1)
        st.dataframe(shown_all, hide_index=True, width="stretch")

    st.subheader("Models")
    labels = {s["run_id"]: studio_eval.run_label(s) for s in runs}
    picked = st.multiselect(
        "Evaluation runs",
        list(labels),
        default=list(labels)[:2],
        format_func=labels.get,
        key="al_runs",
    )
    for run_id in picked:
        try:
            frames[run_id] = alignment_runs.run_frame(template, task, run_id)
        except BadInput as exc:
            st.warning(str(exc))
    if frames:
        stats = pd.DataFrame([{"run": r, **alignment_runs.summarize(f)} for r, f in frames.items()])
        shown = stats.copy()
        for col in PCT_COLS:
            shown[col] = (100 * shown[col]).round(1)
        st.dataframe(shown, hide_index=True, width="stretch")
        if len(frames) >= 2:
            base = st.selectbox("Base run", list(frames), key="al_base")
            d = stats.assign(
                delta_alignment=stats["generation_alignment"]
                - stats.set_index("run").loc[base, "generation_alignment"],
                delta_accuracy=stats["accuracy"] - stats.set_index("run").loc[base, "accuracy"],
                task=task,
            )
            st.plotly_chart(delta_figure(d[d["run"] != base]), width="stretch")
            st.markdown("##### Does alignment explain the gain?")
            st.caption(
                "Per example: each run's gain over the base run (paired, points), split by "
                "whether the run's answer follows the rule. A group's contribution is its "
                "summed differences over all examples, so the contributions add up to the "
                "gain; intervals are paired bootstrap 95% over the examples."
            )
            splits = {}
            for run_id, f in frames.items():
                if run_id == base:
                    continue
                try:
                    splits[run_id] = gain.split_frames(frames[base], f)
                except BadInput as exc:
                    st.warning(f"{run_id}: {exc}")
            if splits:
                named = {labels.get(r, r): sp for r, sp in splits.items()}
                st.plotly_chart(gain_split_figure(gain.contributions_frame(named)), width="stretch")
                for run_id, sp in splits.items():
                    st.markdown(f"**{labels.get(run_id, run_id)}**: {gain.explain(sp)}")
                    st.dataframe(gain.table(sp), hide_index=True, width="stretch")
else:
    st.info(
        f"No evaluation run has `{task}` yet: run `cookbook eval --task {task} ...` "
        "to compare models' generations with the rule."
    )

st.subheader("Inspect an example")
flt = st.radio(
    "Show",
    ["all", "gold aligned", "gold not aligned", "rule abstains"],
    horizontal=True,
    key="al_filter",
)
keep = {
    "all": lambda v: True,
    "gold aligned": lambda v: v.gold_aligned,
    "gold not aligned": lambda v: not v.gold_aligned and not v.abstained,
    "rule abstains": lambda v: v.abstained,
}[flt]
pairs = [(r, v) for r, v in zip(rows, verdicts, strict=True) if keep(v)]
if not pairs:
    st.info("No example matches this filter.")
    st.stop()
idx = st.number_input(f"Example (0–{len(pairs) - 1})", 0, len(pairs) - 1, 0, key="al_idx")
row, v = pairs[int(idx)]
gold_text = " | ".join(dict.fromkeys(map(str, v.gold))) if isinstance(v.gold, list) else v.gold
st.markdown(
    f"**{row['id']}** · rule: `{v.prediction}` · gold: `{gold_text}` · "
    + (
        ":green[gold follows the rule]"
        if v.gold_aligned
        else ("rule abstains" if v.abstained else ":red[gold does not follow the rule]")
    )
)
if "question" in row:
    st.markdown(f"**Question:** {row['question']}")
text = row.get("context")
if text:
    gold_spans = [
        (s, s + len(a))
        for s, a in zip(row.get("answer_starts", []), row.get("answers", []), strict=False)
    ]
    st.html(
        f'<div style="line-height:1.7">{highlight(text, spans_from_evidence(v.evidence, gold_spans))}</div>'
    )
    st.html(f"<small>{legend()}</small>")
if "choices" in row and "choices" in v.evidence:
    st.dataframe(
        pd.DataFrame(
            {
                "choice": row["choices"],
                "overlap with question": [c["score"] for c in v.evidence["choices"]],
                "gold": [i == row.get("answer_index") for i in range(len(row["choices"]))],
            }
        ),
        hide_index=True,
    )
for run_id, f in frames.items():
    hit = f[f["id"] == row["id"]]
    if len(hit):
        h = hit.iloc[0]
        st.markdown(
            f"**{run_id}** answered `{h['answer']}` — "
            + ("follows the rule" if h["follows_rule"] else "does not follow the rule")
            + (" · correct" if h["correct"] else " · wrong")
        )

st.markdown("##### Ask the models now")
live_server = server.running("default")
if live_server is None:
    st.caption(
        "Live answers come from a vLLM server (base model + adapters loaded by name). "
        "None is running: start one here or with `cookbook serve start`."
    )
    try:
        starting = server.read("default")
    except server.ServeError as exc:
        starting = None
        st.warning(str(exc))
    if starting is not None and starting.state == "starting":

        @st.fragment(run_every=3)
        def _wait_for_server() -> None:
            info = server.read("default")
            if info is not None and info.state == "running":
                st.rerun()
            elif info is not None and info.state != "starting":
                st.error(f"The server {info.state}: {info.reason}")
            else:
                st.info("Starting the vLLM server (about 90 s on CPU)…")

        _wait_for_server()
    elif starting is not None and starting.state in ("dead", "lost"):
        st.error(f"The last server {starting.state}: {starting.reason}")
    if (starting is None or starting.state != "starting") and st.button(
        "Start the server", key="al_serve_start"
    ):
        try:
            server.start("default", owner_pid=os.getpid(), wait=False)
        except BadInput as exc:
            st.error(str(exc))
        else:
            st.rerun()
else:
    refs = adapters.list_adapters()
    options = {"base model": None, **{a.label: a.path for a in refs}}
    chosen = st.multiselect(
        "Models",
        list(options),
        default=["base model", *list(options)[1:2]],
        max_selections=4,
        key="al_live_models",
        help="The base model and any fine-tuned adapter (training jobs, mix cells, SELF-GUIDE)",
    )
    if chosen and st.button("Generate now", key="al_live_go", type="primary"):
        try:
            with st.spinner(f"Asking {len(chosen)} model(s) through {live_server.base_url}…"):
                st.session_state["al_live"] = (
                    row["id"],
                    chosen,
                    live.answer_row(template, task, row, v, [options[c] for c in chosen]),
                )
        except CookbookError as exc:
            st.error(str(exc))
    got = st.session_state.get("al_live")
    if got and got[0] == row["id"]:
        stored = {
            run_id: f[f["id"] == row["id"]].iloc[0]["answer"]
            for run_id, f in frames.items()
            if (f["id"] == row["id"]).any()
        }
        st.dataframe(
            live.answers_frame(got[1], got[2], stored),
            hide_index=True,
            width="stretch",
        )
with st.expander("Evidence (raw)"):
    st.json(v.evidence)
