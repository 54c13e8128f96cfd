"""Training page: launch a LoRA or full fine-tune on a generated dataset (optionally with
natural-language instruction rows mixed in, as the Cookbook paper mixes 128 to keep
general ability) as a background job, watch its status, progress and loss curve live,
cancel and resume it, and see every training job with its state.  ``?data=<dataset folder>``
preselects a dataset (the Templates page's Draft tab links here that way)."""

import streamlit as st

from cookbook_core import configs, dataset_io
from cookbook_core.errors import CookbookError
from cookbook_core.jobs import store as jobs
from cookbook_core.selfguide import natural_rows
from cookbook_core.studio import jobs as studio_jobs
from cookbook_core.studio import widgets as studio_widgets
from cookbook_core.train import training
from cookbook_core.train.config import TrainConfig, lora_alpha_for

ss = st.session_state
st.title("Training")
st.caption(
    "Fine-tune a model on template data: the loss is computed on the completion tokens only; "
    "the prompt is formatted with the model's chat template, exactly as evaluation formats it. "
    "Runs are background jobs that checkpoint, so they can be cancelled and resumed."
)

# ----------------------------------------------------------------------------------
# Launch

datasets = dataset_io.list_datasets()
OTHER = "(another folder or JSONL file)"
with st.container(border=True):
    st.subheader("New fine-tune")
    if not datasets:
        st.info(
            "No generated datasets yet: make one on the **Datasets** page first (or run "
            "`cookbook generate -t document_qa -n 1000`). You can also give the path of a "
            "JSONL file of prompt/completion rows below."
        )
    labels = {d["path"]: f"{d['name']} · {d['n']:,} samples" for d in datasets}
    if ss.get("tr_data") not in (*labels, OTHER):
        ss.pop("tr_data", None)  # that dataset is gone
    wanted = st.query_params.get("data")  # ?data=<dataset folder>, e.g. from the Draft tab
    if wanted in labels and ss.get("tr_query_data") != wanted:
        ss["tr_query_data"] = wanted  # once: the user may pick another one afterwards
        ss["tr_data"] = wanted
    c1, c2 = st.columns([2, 1])
    data = c1.selectbox(
        "Dataset", [*labels, OTHER], key="tr_data", format_func=lambda p: labels.get(p, p)
    )
    if data == OTHER:
        data = c1.text_input("Dataset path", key="tr_data_path", placeholder="/path/to/data.jsonl")
    model = c2.text_input(
        "Model",
        configs.default(TrainConfig, "model"),
        key="tr_model",
        help=configs.help_text(TrainConfig, "model", with_default=False),
    )
    c1, c2, c3, c4 = st.columns(4)
    method = c1.radio(
        "Method",
        training.METHODS,
        index=training.METHODS.index(configs.default(TrainConfig, "method")),
        key="tr_method",
        horizontal=True,
    )
    # every range and default below is TrainConfig's declaration (train/config.py)
    steps = c2.number_input("Steps", key="tr_steps", **configs.widget(TrainConfig, "steps"))
    lr = c3.number_input(
        "Learning rate",
        step=1e-5,
        format="%.1e",
        key="tr_lr",
        **configs.widget(TrainConfig, "lr"),
    )
    batch = c4.number_input(
        "Batch size", key="tr_batch", **configs.widget(TrainConfig, "batch_size")
    )
    with st.expander("More options"):
        a1, a2, a3, a4, a5 = st.columns(5)
        max_length = a1.number_input(
            "Max tokens", key="tr_maxlen", **configs.widget(TrainConfig, "max_length")
        )
        lora_r = a2.number_input(
            "LoRA rank", key="tr_rank", **configs.widget(TrainConfig, "lora_r")
        )
        save_every = a3.number_input(
            "Checkpoint every", key="tr_save", **configs.widget(TrainConfig, "save_every")
        )
        seed = a4.number_input("Seed", key="tr_seed", **configs.widget(TrainConfig, "seed"))
        max_samples = a5.number_input(
            "Use rows (0: all)", key="tr_maxs", **configs.widget(TrainConfig, "max_samples")
        )
        n1, n2, n3 = st.columns([4, 1, 1])
        natural = n1.text_input(
            "Natural-language rows to mix in (optional)",
            key="tr_natural",
            placeholder="sni, /path/to/natural.jsonl or a dataset folder",
            help="Prompt/completion rows of ordinary instructions, added to the template data "
            "(the paper mixes 128 to keep the model's general ability); sni: the held-in "
            "validation rows of the SELF-GUIDE task pack in the evaluation data",
        )
        natural_n = n2.number_input(
            "How many", key="tr_natural_n", **configs.widget(TrainConfig, "natural_n")
        )
        nproc = n3.number_input(
            "Processes (DDP)", key="tr_nproc", **configs.widget(TrainConfig, "nproc")
        )
    if st.button("Start training", type="primary", icon=":material/play_arrow:", key="tr_go"):
        try:
            cfg = studio_jobs.train_config(
                data or "",
                model=model.strip() or configs.default(TrainConfig, "model"),
                method=method,
                steps=steps,
                lr=lr,
                batch_size=batch,
                max_length=max_length,
                lora_r=lora_r,
                lora_alpha=lora_alpha_for(lora_r),
                save_every=save_every,
                seed=seed,
                max_samples=configs.from_widget(TrainConfig, "max_samples", max_samples),
                natural_data=natural_rows.resolve(natural.strip() or None),
                natural_n=natural_n,
                nproc=nproc,
            )
            job = jobs.submit("train", cfg, name=f"{method} {steps} steps")
        except CookbookError as exc:
            st.error(str(exc))
        else:
            ss["tr_select_next"] = job.id
            st.toast(f"Started {job.id}")

# ----------------------------------------------------------------------------------
# Watch one run

st.subheader("Runs")
try:
    train_jobs = jobs.list_jobs(kind="train")
except CookbookError as exc:
    st.error(str(exc))
    st.stop()
if not train_jobs:
    st.info("No training runs yet: choose a dataset above and press **Start training**.")
    st.stop()

by_id = {j.id: j for j in train_jobs}
if ss.get("tr_select_next") in by_id:
    ss["tr_pick"] = ss.pop("tr_select_next")
if ss.get("tr_pick") not in by_id:
    ss.pop("tr_pick", None)
pick = st.selectbox(
    "Run",
    list(by_id),
    key="tr_pick",
    format_func=lambda i: f"{i} · {by_id[i].name or ''}",  # no state: it changes while shown
)


def run_panel(job_id: str) -> None:
    """Live status, progress, loss curve and controls of one training job."""
    job = studio_widgets.job_header(
        job_id, log_lines=60, cancelled_note="Resume continues from the last checkpoint."
    )
    if job is None:
        return
    b1, b2, _ = st.columns([1, 1, 4])
    studio_widgets.cancel_button(job, key="tr_cancel", where=b1)
    if job.state in ("cancelled", "failed", "lost") and b2.button(
        "Resume", icon=":material/replay:", key="tr_resume"
    ):
        try:
            jobs.resume(job.id)
        except CookbookError as exc:
            st.error(str(exc))
        st.rerun()
    metrics = training.read_metrics(job.run_dir)
    if metrics:
        st.plotly_chart(studio_jobs.loss_figure(metrics), width="stretch", key="tr_loss")
    else:
        st.caption("The loss curve appears after the first optimizer step.")
    summary = studio_jobs.train_summary(job)
    if job.state == "succeeded":
        first, last = summary["first_loss"], summary["last_loss"]
        change = f" (loss {first:.3f} → {last:.3f})" if first is not None else ""
        st.success(
            f"Finished {summary['steps_done']} steps{change}. Outputs: "
            f"{', '.join(summary['outputs'])} in `{job.run_dir}`. Evaluate the adapter on the "
            "**Evaluation** page."
        )
    with st.expander("Configuration"):
        st.json(job.config, expanded=1)
    seen = ss.setdefault("tr_seen_state", {})
    if seen.get(job.id, job.state) != job.state:
        seen[job.id] = job.state
        st.rerun()  # refresh the job list below
    seen[job.id] = job.state


active = by_id[pick].active
st.fragment(run_every=2.0 if active else None)(run_panel)(pick)

st.markdown("#### All training jobs")
st.dataframe(
    studio_jobs.jobs_frame(train_jobs).drop(columns=["kind"]),
    hide_index=True,
    width="stretch",
    column_config={
        "progress": st.column_config.ProgressColumn(
            "progress", min_value=0, max_value=100, format="%.0f%%"
        )
    },
)
