"""Evaluation page: launch evaluations (base model or any finished adapter: training jobs,
mix cells of sweeps and experiments, SELF-GUIDE runs) as background jobs, compare runs'
per-task scores side by side with bootstrap intervals (every run in the workspace,
cells' included, labelled by the model that made it), and browse individual examples
filtered by task and correct/incorrect."""

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from cookbook_core import configs, paths
from cookbook_core.errors import CookbookError
from cookbook_core.eval import evaluation, tasks
from cookbook_core.eval.config import EvalConfig
from cookbook_core.jobs import store as jobs
from cookbook_core.studio import evaluation as studio_eval
from cookbook_core.studio import jobs as studio_jobs
from cookbook_core.train import adapters as train_adapters

ss = st.session_state
st.title("Evaluation")
st.caption(
    "Score a model on real benchmarks (log-likelihood multiple choice as in "
    "lm-evaluation-harness, or generation with exact match / F1). Intervals are seeded "
    "bootstrap 95% intervals over examples: with few examples they are wide."
)

default_dir = os.environ.get(tasks.DATA_DIR_ENV) or str(
    paths.PROJECT_ROOT.parent / "shared" / "data"
)
NO_ADAPTER = "(none: the base model)"

# ----------------------------------------------------------------------------------
# Launch

with st.container(border=True):
    st.subheader("New evaluation")
    c1, c2 = st.columns([3, 2])
    picked = c1.multiselect("Tasks", sorted(tasks.TASKS), key="ev_tasks")
    groups = c2.multiselect(
        "Task groups",
        sorted(tasks.GROUPS),
        key="ev_groups",
        format_func=lambda g: f"{g} ({len(tasks.GROUPS[g])} tasks)",
    )
    data_dir = st.text_input(
        "Evaluation data",
        default_dir,
        key="ev_data",
        help="A folder in the normalized schema with one subfolder per set (laid out like "
        "../shared/data, e.g. squad_v1_1_dev/*.jsonl), or `hub` to read from the Hugging Face "
        "hub (needs network)",
    )
    if data_dir.strip() != "hub" and not Path(data_dir).expanduser().is_dir():
        st.info(
            f"`{data_dir}` is not a folder. Point the studio at evaluation data: a local folder "
            "in the normalized schema, one subfolder per set (like `../shared/data`: "
            "`squad_v1_1_dev/*.jsonl`, `arc_easy_test/*.jsonl`, ...), or type `hub` to use "
            f"Hugging Face datasets. `{tasks.DATA_DIR_ENV}` sets the default."
        )
    adapter_labels = {str(a.path): a.label for a in train_adapters.list_adapters()}
    if ss.get("ev_adapter") not in (NO_ADAPTER, *adapter_labels):
        ss.pop("ev_adapter", None)
    c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
    adapter = c1.selectbox(
        "Fine-tuned adapter",
        [NO_ADAPTER, *adapter_labels],
        key="ev_adapter",
        format_func=lambda a: adapter_labels.get(a, a),
        help="A finished LoRA adapter: a training job's, a mix cell's (sweeps, experiments) "
        "or a SELF-GUIDE run's; the base model it was trained on is used",
    )
    model = c2.text_input(
        "Base model",
        configs.default(EvalConfig, "model"),
        key="ev_model",
        disabled=adapter != NO_ADAPTER,
        help=configs.help_text(EvalConfig, "model", with_default=False),
    )
    # ranges and defaults: EvalConfig's declaration (eval/config.py)
    limit = c3.number_input(
        "Examples per task (0: all)", key="ev_limit", **configs.widget(EvalConfig, "limit")
    )
    max_new = c4.number_input(
        "Max new tokens (0: task's)",
        key="ev_maxnew",
        **configs.widget(EvalConfig, "max_new_tokens"),
    )
    if st.button("Start evaluation", type="primary", icon=":material/play_arrow:", key="ev_go"):
        try:
            cfg = studio_eval.eval_config(
                picked,
                groups,
                limit=configs.from_widget(EvalConfig, "limit", limit),
                model=model,
                adapter_run=None if adapter == NO_ADAPTER else adapter,
                data_dir=data_dir,
                max_new_tokens=configs.from_widget(EvalConfig, "max_new_tokens", max_new),
            )
            what = "base" if adapter == NO_ADAPTER else adapter_labels[adapter]
            job = jobs.submit("eval", cfg, name=f"{what} · {', '.join(picked + groups)}")
        except CookbookError as exc:
            st.error(str(exc))
        else:
            st.toast(f"Started {job.id}")


def active_panel() -> None:
    """Progress of running and queued evaluation jobs; reruns the page when one ends."""
    try:
        running = jobs.list_jobs(states=jobs.ACTIVE, kind="eval")
    except CookbookError as exc:
        st.error(str(exc))
        return
    for job in running:
        st.progress(
            studio_jobs.progress_fraction(job) or 0.0,
            text=f"`{job.name or job.id}` · {studio_jobs.status_line(job)}",
        )
    ids = sorted(j.id for j in running)
    if ss.get("ev_active_ids", ids) != ids:
        ss["ev_active_ids"] = ids
        st.rerun()  # one ended: show its results
    ss["ev_active_ids"] = ids


any_active = bool(jobs.list_jobs(states=jobs.ACTIVE, kind="eval"))
st.fragment(run_every=2.0 if any_active else None)(active_panel)()
failed = [j for j in jobs.list_jobs(states=("failed", "lost"), kind="eval", refresh=False)][:3]
for j in failed:
    with st.expander(f"Evaluation {j.id} {j.state}", icon=":material/error:"):
        st.error(studio_jobs.failure_details(j, studio_jobs.log_tail(j, 40)))

# ----------------------------------------------------------------------------------
# Compare runs

st.subheader("Results")
runs = evaluation.list_runs()
if not runs:
    st.info(
        "No evaluation runs yet: choose tasks above and press **Start evaluation** (a few "
        "dozen examples per task take a minute or two on a CPU), or run "
        "`cookbook eval --task arc_easy --limit 50`."
    )
    st.stop()

by_dir = {r["run_dir"]: r for r in runs}
labels = {d: studio_eval.run_label(r) for d, r in by_dir.items()}
ss.setdefault("ev_runs", list(by_dir)[:2])
ss["ev_runs"] = [d for d in ss["ev_runs"] if d in by_dir]  # runs may have been deleted
if ss.get("ev_run") not in by_dir:
    ss.pop("ev_run", None)
chosen = st.multiselect(
    "Runs to compare",
    list(by_dir),
    key="ev_runs",
    format_func=lambda d: labels[d] + ("" if by_dir[d].get("status") == "completed" else " …"),
)
frame = studio_eval.scores_frame([by_dir[d] for d in chosen])
if frame.empty:
    st.info("Pick at least one run with finished tasks.")
else:
    st.plotly_chart(studio_eval.scores_figure(frame), width="stretch", key="ev_scores")
    table = frame.pivot_table(index=["task", "metric"], columns="run", values="value", sort=False)
    st.dataframe((100 * table).round(1), width="stretch")

# ----------------------------------------------------------------------------------
# Examples

st.subheader("Examples")
c1, c2, c3 = st.columns([3, 2, 2])
run_dir = c1.selectbox("Run", list(by_dir), key="ev_run", format_func=lambda d: labels[d])
run_tasks = list(by_dir[run_dir].get("tasks", {}))
if not run_tasks:
    st.info("This run has no finished task yet.")
    st.stop()
task_name = c2.selectbox("Task", run_tasks, key="ev_task")
which = c3.radio("Show", studio_eval.FILTERS, horizontal=True, key="ev_filter")
try:
    records = evaluation.read_records(run_dir, task_name)
    examples = studio_eval.records_frame(records, task_name)
except CookbookError as exc:
    st.error(str(exc))
    st.stop()
shown = studio_eval.filter_records(examples, which)
n_ok = int(examples["correct"].sum())
st.caption(f"{n_ok}/{len(examples)} correct · {len(shown)} shown")
if shown.empty:
    st.info("No example matches this filter.")
    st.stop()
st.dataframe(shown.drop(columns=["index"]), hide_index=True, width="stretch")
pos = int(st.number_input(f"Example (0–{len(shown) - 1})", 0, len(shown) - 1, 0, key="ev_idx"))
rec = records[int(shown.iloc[pos]["index"])]
row = shown.iloc[pos]
st.markdown(
    f"**{rec.get('id')}** · "
    + (":green[correct]" if row["correct"] else ":red[incorrect]")
    + f" · model: `{row['answer']}` · gold: `{row['gold']}`"
)
prompt = rec["prompt"] if isinstance(rec["prompt"], str) else rec["prompt"][0]
st.code(prompt, language=None, wrap_lines=True)
if rec.get("continuations"):
    st.dataframe(
        pd.DataFrame(
            {
                "continuation": rec["continuations"],
                "log-likelihood": rec["loglikelihoods"],
                "greedy": rec.get("is_greedy"),
                "gold": [i == rec.get("gold") for i in range(len(rec["continuations"]))],
            }
        ),
        hide_index=True,
        width="stretch",
    )
elif "generation" in rec:
    st.markdown(f"**Generation** ({rec.get('finish')}, {rec.get('n_tokens')} tokens):")
    st.code(rec["generation"] or "(empty)", language=None, wrap_lines=True)
with st.expander("Scores (raw)"):
    st.json(rec.get("scores", {}))
