"""SELF-GUIDE page: pick a Super-NaturalInstructions task, read its instruction and
demonstrations, launch a run as a job, and inspect runs: the funnel (generated → kept
per filter → voted → trained), the kept pairs, the raw inputs and samples, and the
baseline vs fine-tuned metric per example."""

import pandas as pd
import streamlit as st

from cookbook_core import configs
from cookbook_core.errors import CookbookError
from cookbook_core.jobs import store as jobs
from cookbook_core.selfguide import pipeline as selfguide
from cookbook_core.selfguide import tasks as selfguide_tasks
from cookbook_core.selfguide.config import SelfGuideConfig as SGC
from cookbook_core.studio import figures_selfguide
from cookbook_core.studio import jobs as studio_jobs

ss = st.session_state
st.title("SELF-GUIDE")
st.caption(
    "SELF-GUIDE (Zhao et al. 2024): the model writes new task inputs from the instruction and a "
    "few demonstrations, answers each several times, keeps the majority answer, and is "
    "fine-tuned on the pairs that survive. Compared with few-shot prompting on the task's "
    "test rows."
)

# ----------------------------------------------------------------------------------
# Task and launch

try:
    task_names = selfguide_tasks.list_tasks()
except CookbookError as exc:
    task_names = []
    st.info(str(exc))

if task_names:
    with st.expander("Task and new run", expanded=not selfguide.list_runs()):
        name = st.selectbox("Task", task_names, key="sg_task")
        try:
            task = selfguide_tasks.load_task(name)
        except CookbookError as exc:
            st.error(str(exc))
            st.stop()
        s = task.summary()
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Family", s["family"])
        c2.metric("Metric", s["metric"])
        c3.metric("Demonstrations", s["demonstrations"])
        c4.metric("Role", s["role"])
        st.markdown(f"**Instruction.** {task.instruction}")
        if task.labels:
            st.markdown("**Labels.** " + ", ".join(f"`{lab}`" for lab in task.labels))
        st.dataframe(
            pd.DataFrame([{"input": d.input, "output": d.output} for d in task.demonstrations]),
            hide_index=True,
        )
        with st.form("sg_launch"):
            # ranges and defaults: SelfGuideConfig's declaration (selfguide/config.py)
            c1, c2, c3, c4 = st.columns(4)
            n_inputs = c1.number_input(
                "Inputs to generate", key="sg_n_inputs", **configs.widget(SGC, "n_inputs")
            )
            n_outputs = c2.number_input(
                "Samples per input", key="sg_n_outputs", **configs.widget(SGC, "n_outputs")
            )
            steps = c3.number_input(
                "Training steps", key="sg_steps", **configs.widget(SGC, "steps")
            )
            eval_limit = c4.number_input(
                "Test rows", key="sg_eval_limit", **configs.widget(SGC, "eval_limit")
            )
            min_share = st.slider(
                "Vote: minimum share",
                step=0.05,
                key="sg_min_share",
                **configs.widget(SGC, "min_share"),
            )
            if st.form_submit_button("Launch SELF-GUIDE job", icon=":material/auto_fix_high:"):
                cfg = SGC(
                    task=name,
                    n_inputs=n_inputs,
                    n_outputs=n_outputs,
                    steps=steps,
                    eval_limit=eval_limit,
                    min_share=min_share,
                )
                try:
                    job = jobs.submit("selfguide", cfg.to_dict(), name=f"selfguide-{name}")
                except CookbookError as exc:
                    st.error(str(exc))
                else:
                    ss["sg_job"] = job.id
                    st.success(f"Submitted job `{job.id}`.")

# ----------------------------------------------------------------------------------
# Runs

runs = selfguide.list_runs()
if not runs:
    st.info(
        "No SELF-GUIDE runs yet. Launch one above, or run "
        "`cookbook selfguide run --task task1345` in a terminal."
    )
    st.stop()

st.subheader("Runs")
labels = {
    r["run_id"]: f"{r['run_id']} · {r['task']} · {len(r['completed'])}/5 stages" for r in runs
}
run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="sg_run")
run_dir = next(r["run_dir"] for r in runs if r["run_id"] == run_id)
summary = selfguide.summary(run_dir)

try:
    job = jobs.get(run_id)
except CookbookError:
    job = None
if job is not None:
    frac = studio_jobs.progress_fraction(job)
    stage = job.progress.get("stage")
    st.progress(
        frac or 0.0,
        text=f"{studio_jobs.status_line(job)}" + (f" · stage {stage}" if stage else ""),
    )
    if job.state in ("failed", "lost"):
        st.error(studio_jobs.failure_details(job, studio_jobs.log_tail(job, 40)) or job.reason)
    if job.active and st.button("Refresh", key="sg_refresh", icon=":material/refresh:"):
        st.rerun()

ev = summary["eval"]
if ev.get("baseline") or ev.get("finetuned"):
    metric_names = list((ev.get("baseline") or ev.get("finetuned")).keys())
    cols = st.columns(len(metric_names))
    for col, m in zip(cols, metric_names, strict=True):
        base = (ev.get("baseline") or {}).get(m, {}).get("value")
        tuned = (ev.get("finetuned") or {}).get(m, {}).get("value")
        col.metric(
            f"{m} · fine-tuned (baseline)",
            "–" if tuned is None else f"{tuned:.3f}",
            None if tuned is None or base is None else f"{tuned - base:+.3f} vs {base:.3f}",
        )
    st.caption(f"{ev.get('n')} {ev.get('split')} rows; baseline = few-shot prompting.")

funnel = summary["funnel"]
if funnel.get("stages"):
    st.plotly_chart(figures_selfguide.funnel_figure(funnel), width="stretch")
    st.dataframe(pd.DataFrame(funnel["stages"]), hide_index=True)
else:
    st.info("The run has not finished its first stage yet.")

tabs = st.tabs(["Pairs", "Inputs", "Output samples", "Evaluation", "Config"])
pairs = selfguide.read_jsonl(f"{run_dir}/pairs.jsonl")
with tabs[0]:
    if pairs:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "input": p["meta"]["input"],
                        "output": p["completion"],
                        "share": p["meta"]["share"],
                    }
                    for p in pairs
                ]
            ),
            hide_index=True,
        )
        if summary["dataset"]:
            st.caption(f"Dataset for training and Cookbook-Mix: `{summary['dataset']}`")
    else:
        st.info("No kept pairs (yet).")
with tabs[1]:
    raw = selfguide.read_jsonl(f"{run_dir}/inputs_raw.jsonl")
    if raw:
        frame = pd.DataFrame(raw)[["round", "prompt_label", "text", "kept", "stage", "detail"]]
        only = st.radio("Show", ["all", "kept", "dropped"], horizontal=True, key="sg_inputs_show")
        if only != "all":
            frame = frame[frame["kept"] == (only == "kept")]
        st.dataframe(frame, hide_index=True)
with tabs[2]:
    outs = selfguide.read_jsonl(f"{run_dir}/outputs_raw.jsonl")
    if outs:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "input": o["input"],
                        "answer": o["answer"],
                        "reason": o["reason"],
                        "share": o["share"],
                        "samples": " | ".join(o["samples"]),
                    }
                    for o in outs
                ]
            ),
            hide_index=True,
        )
with tabs[3]:
    base = selfguide.read_jsonl(f"{run_dir}/eval_baseline.jsonl")
    tuned = {r["id"]: r for r in selfguide.read_jsonl(f"{run_dir}/eval_finetuned.jsonl")}
    if base:
        rows = []
        for r in base:
            t = tuned.get(r["id"], {})
            row = {"id": r["id"], "input": r["input"], "gold": r["gold"]}
            row["baseline"] = r["prediction"]
            row.update({f"baseline {k}": v for k, v in r["scores"].items()})
            row["fine-tuned"] = t.get("prediction")
            row.update({f"fine-tuned {k}": v for k, v in t.get("scores", {}).items()})
            rows.append(row)
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.info("No evaluation yet.")
with tabs[4]:
    st.json(summary["config"])
    st.json(summary["state"])
