"""Jobs page: every background job (dataset generation, training, evaluation, ...) with
its state and progress, the log tail of one job, why it failed, and cancel/resume."""

import json

import streamlit as st

from cookbook_core.errors import CookbookError
from cookbook_core.jobs import store as jobs
from cookbook_core.mix import ray_cells
from cookbook_core.serve import server
from cookbook_core.studio import jobs as studio_jobs
from cookbook_core.studio import widgets as studio_widgets

ss = st.session_state
st.title("Jobs")
st.caption(
    "Long work runs as background jobs in their own processes, queued per device "
    "(training, evaluation: one at a time by default) and CPU. The same jobs are listed by "
    f"`cookbook jobs list`; their folders are under `{jobs.runs_root()}`."
)

servers = server.list_servers()
if servers:
    st.subheader("Model servers")
    st.dataframe(server.servers_table(servers), hide_index=True, width="stretch")
    for info in servers:
        if info.state in ("starting", "running") and st.button(
            f"Stop server {info.name}", key=f"jb_stop_server::{info.name}"
        ):
            server.stop(info.name)
            st.rerun()
        if info.state in ("dead", "lost"):
            st.error(f"Server {info.name} {info.state}: {info.reason}")

on_ray = ray_cells.list_cells()  # cells run by `--executor ray` (their ray.json)
if on_ray:
    st.subheader("Cells on Ray")
    st.caption(
        "Cells of sweeps and experiments run with `--executor ray`. Stop asks the cell's "
        "task to write a checkpoint and return; a later run resumes it (either executor)."
    )
    st.dataframe(
        ray_cells.table(on_ray),
        hide_index=True,
        width="stretch",
        column_config={
            "progress": st.column_config.ProgressColumn(
                "progress", min_value=0, max_value=100, format="%.0f%%"
            )
        },
    )
    for info in on_ray:
        if info["shown"] in ("submitted", "running") and st.button(
            f"Stop cell {info.get('cell', '?')}", key=f"jb_stop_ray::{info['cell_dir']}"
        ):
            ray_cells.request_stop(info["cell_dir"])
            st.toast(f"Asked cell {info.get('cell', '?')} to stop")

try:
    all_jobs = jobs.list_jobs()  # reconciles vanished workers and starts queued jobs
except CookbookError as exc:
    st.error(str(exc))
    st.stop()
if not all_jobs:
    st.info(
        "No jobs yet. Generate a dataset on the **Datasets** page, start a fine-tune on "
        "**Training** or an evaluation on **Evaluation**; each becomes a job listed here."
    )
    st.stop()

counts = {s: sum(j.state == s for j in all_jobs) for s in jobs.STATES}
cols = st.columns(len(jobs.STATES))
for col, s in zip(cols, jobs.STATES, strict=True):
    col.metric(f"{studio_jobs.STATE_ICONS[s]} {s}", counts[s])

c1, c2 = st.columns(2)
states = c1.multiselect("State", jobs.STATES, key="jb_states", placeholder="all states")
kinds = c2.multiselect(
    "Kind", sorted({j.kind for j in all_jobs}), key="jb_kinds", placeholder="all kinds"
)
shown = [
    j for j in all_jobs if (not states or j.state in states) and (not kinds or j.kind in kinds)
]
if not shown:
    st.info("No job matches these filters.")
    st.stop()
st.dataframe(
    studio_jobs.jobs_frame(shown),
    hide_index=True,
    width="stretch",
    column_config={
        "progress": st.column_config.ProgressColumn(
            "progress", min_value=0, max_value=100, format="%.0f%%"
        )
    },
)

by_id = {j.id: j for j in shown}
if ss.get("jb_pick") not in by_id:
    ss.pop("jb_pick", None)
pick = st.selectbox(
    "Job",
    list(by_id),
    key="jb_pick",
    format_func=lambda i: f"{i} · {by_id[i].name or by_id[i].kind}",  # no state: it changes
)


def job_panel(job_id: str) -> None:
    """State, progress, failure reason, controls and log tail of one job."""
    job = studio_widgets.job_header(job_id, log_lines=80)
    if job is None:
        return
    try:
        kind = jobs.get_kind(job.kind)
    except CookbookError as exc:
        st.error(str(exc))
        return
    b1, b2, b3, _ = st.columns([1, 1, 1, 3])
    action = None
    if job.active:
        if b1.button("Cancel", icon=":material/stop:", key="jb_cancel"):
            action = lambda: jobs.cancel(job.id)  # noqa: E731
        if job.state == "running" and b2.button(
            "Kill", icon=":material/dangerous:", key="jb_kill", help="SIGKILL, no checkpoint"
        ):
            action = lambda: jobs.cancel(job.id, force=True)  # noqa: E731
    elif job.state in ("cancelled", "failed", "lost"):
        if kind.resumable:
            if b1.button("Resume", icon=":material/replay:", key="jb_resume"):
                action = lambda: jobs.resume(job.id)  # noqa: E731
        else:
            b3.caption(f"{job.kind} jobs cannot be resumed; submit a new one.")
    if action is not None:
        try:
            action()
        except CookbookError as exc:
            st.error(str(exc))
        else:
            st.rerun()
    tail = st.select_slider("Log lines", [20, 50, 100, 200, 500], 50, key="jb_tail")
    log = studio_jobs.log_tail(job, tail)
    st.code(
        log.strip() or "(the log is empty)",
        language=None,
        wrap_lines=True,
        height=400 if log.count("\n") > 16 else "content",
    )
    left, right = st.columns(2)
    with left.expander("Configuration"):
        st.json(job.config, expanded=1)
    result = jobs.read_result(job)
    with right.expander("Result"):
        if result is None:
            st.caption("No result yet.")
        else:
            st.code(json.dumps(result, indent=2, default=str), language="json")
    st.caption(f"Run folder: `{job.run_dir}` · attempts {job.attempts}")
    seen = ss.setdefault("jb_seen_state", {})
    if seen.get(job.id, job.state) != job.state:
        seen[job.id] = job.state
        st.rerun()  # refresh the table
    seen[job.id] = job.state


any_active = any(j.active for j in all_jobs)
st.fragment(run_every=2.0 if any_active else None)(job_panel)(pick)
